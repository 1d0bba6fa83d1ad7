"""The backend protocol: 16 kHz float32 audio in, a `Transcription` (segments in chunk time) out."""

from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from scribe.core import DecodeOptions, Transcription


@runtime_checkable
class Transcriber(Protocol):
    """A backend, as the pipeline, the final pass, the lab and the distributed worker use it.

    `transcribe` runs on the caller's thread (a pipeline worker, `scribe-final-pass`,
    a Dramatiq worker thread) and may block; several threads may call it at once, so
    what one call returns never passes through the transcriber's attributes. It raises
    `scribe.errors.TranscriptionError` (with `retryable`) on failure; anything else it
    raises is treated as a retryable internal error.

    A backend that can also measure a chunk's voice windows (a remote worker) has
    `returns_voices = True` and accepts `voices_from=n`: the chunk's own audio starts at
    sample n (before it, context), and `Transcription.voices` holds that audio's windows.
    A backend that can run the speech check where the audio already is (a remote worker) has
    `checks_speech = True` and accepts `speech_from=n`: when `audio[n:]` holds no speech it
    calls no model and answers `Transcription([], silent=True)`.
    """

    name: str
    """The backend's name (`local`, `gemini`, `stub`), stored with each chunk it transcribes."""
    model: str
    """The model it is configured with, stored when a chunk is claimed."""

    def transcribe(self, audio: np.ndarray, *, vocabulary: Sequence[str] = (),
                   options: DecodeOptions | None = None) -> Transcription:
        """Transcribe a whole chunk: finished segments (never a lazy generator) and this call's usage.

        `vocabulary`: the team's words (names, products, jargon) in priority order, for the
        model to spell them so; a backend that cannot use them ignores them.
        `options`: the session's own language, prompt and temperature, where the backend has them."""
        ...

    def close(self) -> None:
        """Release what the backend holds (threads, connections); called once, when its runtime closes."""
        ...


def call_transcriber(transcriber: Transcriber, audio: np.ndarray, vocabulary: Sequence[str] = (),
                     options: DecodeOptions | None = None, *, voices_from: int | None = None,
                     speech_from: int | None = None) -> Transcription:
    """`transcriber.transcribe(audio)`, with the vocabulary and the decode options only when
    there are some, so a backend written before them (or a test's own) keeps working without;
    `voices_from` and `speech_from` (where the chunk's own audio starts) only to a backend that
    `returns_voices` or `checks_speech`."""
    asked: dict[str, Any] = {}
    if vocabulary:
        asked["vocabulary"] = list(vocabulary)
    if options is not None and options.asked():
        asked["options"] = options
    if voices_from is not None and getattr(transcriber, "returns_voices", False):
        asked["voices_from"] = voices_from
    if speech_from is not None and checks_speech(transcriber):
        asked["speech_from"] = speech_from
    return transcriber.transcribe(audio, **asked)


def checks_speech(transcriber: Transcriber) -> bool:
    """Whether the backend runs the speech check itself when asked (`speech_from`)."""
    return bool(getattr(transcriber, "checks_speech", False))
