"""Google Gemini as a transcription backend (google-genai SDK, JSON output with a schema).

Each chunk goes inline as FLAC bytes (WAV and FLAC are formats the Gemini API
lists; webm is not). The answer must be `{"segments": [{start, end, speaker,
text}]}` with times in seconds from the start of the chunk. What comes back is
checked before anything is stored: no text or text that is not JSON is a
retryable failure; times slightly outside the chunk are clamped and the
segment flagged `clamped`; times far outside it (a model answering in
milliseconds or in session time) fail the call rather than be stored wrong.

Retries belong to the pipeline: the SDK is built with retries off and every
error is mapped to TranscriptionError by `scribe.gemini_client`.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np

from scribe.audio import SAMPLE_RATE, encode_bytes
from scribe.backends import GEMINI_PRICES
from scribe.core import DecodeOptions, Segment, Transcription
from scribe.errors import TranscriptionError
from scribe.gemini_client import client_from_settings, generate_json
from scribe.vocabulary import gemini_instruction

SCHEMA: dict[str, Any] = {
    "type": "OBJECT",
    "properties": {
        "segments": {
            "type": "ARRAY",
            "items": {
                "type": "OBJECT",
                "properties": {
                    "start": {"type": "NUMBER", "description": "seconds from the start of the clip"},
                    "end": {"type": "NUMBER", "description": "seconds from the start of the clip"},
                    "speaker": {"type": "STRING", "description": "e.g. Speaker 1"},
                    "text": {"type": "STRING", "description": "verbatim words"},
                },
                "required": ["start", "end", "text"],
                "propertyOrdering": ["start", "end", "speaker", "text"],
            },
        },
    },
    "required": ["segments"],
}

INSTRUCTION = (
    "You transcribe meeting audio verbatim. Write exactly the words spoken, in the language "
    "spoken, without summarising, translating or correcting. Split the speech into segments "
    "at sentence or speaker boundaries. Times are seconds from the start of this clip. Label "
    "speakers 'Speaker 1', 'Speaker 2', ... in order of appearance. If nothing is spoken, "
    "return an empty segments list; never invent words for noise or silence."
)

MODEL_CHOICES = tuple(GEMINI_PRICES)
"""The model names a caller may choose: the ones the price table knows."""
CLAMP_TOLERANCE_S = 1.0
"""Times up to this far outside the chunk are clamped (and flagged); further out is an error."""


class GeminiTranscriber:
    """Gemini over the google-genai SDK. Thread-safe: one shared client, each call's usage in its answer."""

    name = "gemini"

    def __init__(self, client: Any, model: str, *, api_key: str | None = None,
                 audio_format: str = "FLAC") -> None:
        self.model = model
        self._client = client  # kept referenced: an unreferenced genai.Client closes itself
        self._api_key = api_key  # only to redact it from server messages
        self._format = audio_format.upper()

    @classmethod
    def from_settings(cls, settings: Any) -> "GeminiTranscriber":
        """Build from Settings; BackendUnavailableError (naming GEMINI_API_KEY) without a key."""
        return cls(client_from_settings(settings), settings.gemini_model,
                   api_key=settings.gemini_api_key)

    def transcribe(self, audio: np.ndarray, *, vocabulary: Sequence[str] = (),
                   options: DecodeOptions | None = None) -> Transcription:
        """Runs on a pipeline worker thread; blocks for one API call (no retries here). The
        vocabulary, and a session's prompt and language, are lines of the instruction; its
        temperature is the call's."""
        options = options or DecodeOptions()
        duration = audio.size / SAMPLE_RATE
        instruction = "\n".join(filter(None, [INSTRUCTION, gemini_instruction(vocabulary),
                                              _options_instruction(options)]))
        reply = generate_json(self._client, model=self.model, contents=self._contents(audio, duration),
                              schema=SCHEMA, system_instruction=instruction, api_key=self._api_key,
                              temperature=options.temperature or 0.0)
        return Transcription(parse_segments(reply.data, duration), reply.usage)

    def close(self) -> None:
        """Nothing to release: the client stays referenced as long as this transcriber is."""

    def _contents(self, audio: np.ndarray, duration: float) -> list[Any]:
        from google.genai import types

        mime = "audio/flac" if self._format == "FLAC" else "audio/wav"
        ask = f"Transcribe this {duration:.1f}-second clip."
        return [types.Part.from_bytes(data=encode_bytes(audio, self._format), mime_type=mime), ask]


def _options_instruction(options: DecodeOptions) -> str:
    """A session's language and prompt as lines of Gemini's instruction (empty when not asked)."""
    lines = []
    if options.language:
        lines.append(f"The speech is in the language with ISO 639-1 code {options.language!r}.")
    if options.prompt:
        lines.append(f"Context from the person who sent the audio (follow its spellings): {options.prompt}")
    return "\n".join(lines)


# -- validating the answer ----------------------------------------------------
def parse_segments(data: Any, duration: float) -> list[Segment]:
    """Check Gemini's JSON and turn it into Segments; raise TranscriptionError if it is unusable."""
    items = data.get("segments") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise TranscriptionError("Gemini's answer has no 'segments' list", retryable=True)
    segments = [_segment(item, n) for n, item in enumerate(items)]
    segments = [s for s in segments if s.text]
    for segment in segments:
        _fit_into_chunk(segment, duration)
    return sorted(segments, key=lambda s: (s.start, s.end))


def _segment(item: Any, n: int) -> Segment:
    if not isinstance(item, dict):
        raise TranscriptionError(f"Gemini segment {n} is not an object", retryable=True)
    text = item.get("text")
    if text is not None and not isinstance(text, str):
        raise TranscriptionError(f"Gemini segment {n} has non-text 'text'", retryable=True)
    speaker = item.get("speaker")
    return Segment(start=_seconds(item.get("start"), n, "start"), end=_seconds(item.get("end"), n, "end"),
                   text=(text or "").strip(), speaker=str(speaker).strip() or None if speaker else None)


_CLOCK_RE = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")


def _seconds(value: Any, n: int, name: str) -> float:
    """A time in seconds; also accepts "75.2" and "1:15.2" (models sometimes write clock times)."""
    if isinstance(value, bool):
        value = None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip().removesuffix("s")
        if (match := _CLOCK_RE.match(text)):
            hours, minutes, seconds = match.groups()
            return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
        try:
            return float(text)
        except ValueError:
            pass
    raise TranscriptionError(f"Gemini segment {n} has no usable '{name}' time ({value!r})", retryable=True)


def _fit_into_chunk(segment: Segment, duration: float) -> None:
    """Clamp times into [0, duration] and flag it; refuse times that are far outside."""
    low, high = -CLAMP_TOLERANCE_S, duration + CLAMP_TOLERANCE_S
    if not (low <= segment.start <= high and low <= segment.end <= high):
        raise TranscriptionError(
            f"Gemini gave times outside the {duration:.1f} s chunk "
            f"({segment.start:.1f}-{segment.end:.1f} s)", retryable=True)
    start, end = min(max(segment.start, 0.0), duration), min(max(segment.end, 0.0), duration)
    if end < start:
        start, end = end, start
    if (start, end) != (segment.start, segment.end):
        segment.start, segment.end = start, end
        segment.flags.append("clamped")


def build(settings: Any, *, model: str | None = None, workers: int | None = None,
          progress: Any = None) -> GeminiTranscriber:
    """The registry's builder: SCRIBE_GEMINI_MODEL with GEMINI_API_KEY."""
    return GeminiTranscriber.from_settings(settings)
