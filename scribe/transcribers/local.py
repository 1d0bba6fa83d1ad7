"""Local Whisper through faster-whisper (CTranslate2). No key, no network.

Models are named through the registry (`scribe.models`) and always loaded by
folder path: a bare name would send faster-whisper to a network hub. Each model
is loaded once per process and shared by all workers, lanes and sessions.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from scribe.core import DecodeOptions, Segment, Transcription, Word
from scribe.errors import BackendUnavailableError, ModelNotFoundError
from scribe.models import BASE, BUNDLED, HUB_LISTED, Progress, model_folder
from scribe.vocabulary import keep_term_segments, whisper_prompt

BUNDLED_MODEL = BUNDLED
MODEL_CHOICES = (BUNDLED, BASE, *HUB_LISTED)
"""The model names a caller may choose by name (the model registry's; folders are the operator's)."""
VOCABULARY_OPTION = "hotwords"
"""How the vocabulary reaches Whisper: `hotwords` (every 30 s window) or `initial_prompt`
(the first window only, with previous-text conditioning off)."""
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
"""faster-whisper's default: a decode that fails its checks (repetition, low log-probability)
is tried again hotter. A session's asked temperature is the first step."""
FRAMES_PER_SECOND = 100
"""Whisper's log-mel frames per second of audio."""
ENCODER_PADDING_SECONDS = 2.0
"""Padding the encoder reads after the audio of a window shorter than Whisper's 30 s
(`short_window`). faster-whisper pads every window to 30 s, and the encoder's cost (and the
decoder's cross-attention over its output) grows with its input: a 15 s chunk read as its
audio plus this took a third less CPU at the same WER (BENCHMARKS.md, "The chunk lane's
encoder window")."""
ENCODER_BUCKET_SECONDS = 1.0
"""The short window's length is rounded up to whole seconds. Every distinct input length costs
the encoder's convolution a kernel compiled and cached for that shape (oneDNN's primitive
cache, up to 1,024 of them), so chunks cut at arbitrary lengths grew the process by about
1.5 MB a chunk (over 100 MB in 70 chunks); whole seconds give a chunk lane at most 30 shapes
(BENCHMARKS.md, "Memory over a long run of live sessions")."""
SHORT_WINDOW_MODELS = (BASE,)
"""The models measured to keep their WER with the short window, on English. tiny.en's cost is
mostly its decoder (the window saved it about a tenth) and with it tiny.en ended windows early,
dropping whole sentences; larger models are not measured yet. Other languages keep 30 s windows:
base on espeak German, a clip it reads with the full window, came back empty with the short one."""
SHORT_WINDOW_LANGUAGES = ("en",)
_full_window = threading.local()
"""Set on a thread while its decode must read 30 s windows (a language not measured)."""
_models: dict[tuple[str, str, int, bool], "_Loaded"] = {}
_models_lock = threading.Lock()


def resolve_model(name_or_path: str, *, model_dir: Path | None = None,
                  progress: Progress | None = None) -> str:
    """The folder to load for a registry name, folder path or hub name (see scribe.models).

    Raises ModelNotFoundError with what to do when the model cannot be had here.
    """
    return str(model_folder(name_or_path, model_dir=model_dir, progress=progress))


@dataclass
class _Loaded:
    model: Any
    workers: int


def load_model(name_or_path: str, *, compute_type: str = "int8", threads: int = 0,
               workers: int = 1, model_dir: Path | None = None, progress: Progress | None = None,
               short_window: bool = False) -> Any:
    """Load (once per process) and return a faster-whisper WhisperModel.

    Every lane asking for the same folder, compute type, threads and window shares one
    model: a request for fewer concurrent `workers` than the loaded model allows
    reuses it; a request for more loads a larger one for later callers.
    `short_window`: the encoder reads a short window's audio plus
    `ENCODER_PADDING_SECONDS`, not 30 s (`short_window_features`).
    """
    folder = resolve_model(name_or_path, model_dir=model_dir, progress=progress)
    key = (folder, compute_type, threads, short_window)
    with _models_lock:
        loaded = _models.get(key)
        if loaded is None or loaded.workers < workers:
            model = _construct(folder, compute_type, threads, workers, short_window)
            loaded = _models[key] = _Loaded(model, workers)
        return loaded.model


def _construct(folder: str, compute_type: str, threads: int, workers: int, short_window: bool) -> Any:
    try:
        from faster_whisper import WhisperModel
    except ImportError:
        raise BackendUnavailableError("faster-whisper is not installed: pip install faster-whisper") from None
    model_class = _short_window_model(WhisperModel) if short_window else WhisperModel
    try:
        return model_class(folder, device="cpu", compute_type=compute_type,
                           cpu_threads=threads, num_workers=workers)
    except (RuntimeError, ValueError, OSError) as exc:
        raise ModelNotFoundError(f"cannot load Whisper model from {folder}: {exc}") from None


def _short_window_model(whisper_model: type) -> type:
    """faster-whisper's model, its encoder fed `short_window_features`: every decode through
    its `transcribe` (the chunk lane's, the final pass's, a worker's) is cut alike, and
    timestamps and word times follow the shorter encoder output."""

    class ShortWindowWhisper(whisper_model):
        def encode(self, features: np.ndarray) -> Any:
            if getattr(_full_window, "on", False):
                return super().encode(features)
            return super().encode(short_window_features(features))

    return ShortWindowWhisper


def short_window_features(features: np.ndarray, padding_s: float = ENCODER_PADDING_SECONDS) -> np.ndarray:
    """A window's log-mel features (faster-whisper pads each window with zero frames up to
    30 s) cut to the frames of its audio plus `padding_s` of that padding, rounded up to whole
    `ENCODER_BUCKET_SECONDS`. A frame of audio is never all zero once normalised (digital
    silence reads -1.5), so the zero frames at the end are the padding."""
    frames = features.shape[-1]
    heard = np.flatnonzero(np.any(features.reshape(-1, frames) != 0, axis=0))
    end = int(heard[-1]) + 1 if heard.size else 0
    bucket = int(ENCODER_BUCKET_SECONDS * FRAMES_PER_SECOND)
    return features[..., :min(frames, -(-(end + int(padding_s * FRAMES_PER_SECOND)) // bucket) * bucket)]


class LocalWhisperTranscriber:
    """faster-whisper on the CPU; thread-safe for up to `workers` concurrent calls."""

    name = "local"

    def __init__(self, model: str = BUNDLED_MODEL, *, compute_type: str = "int8",
                 threads: int = 0, workers: int = 1, vad_filter: bool = True, language: str = "en",
                 model_dir: Path | None = None, progress: Progress | None = None,
                 word_times: bool = True, short_window: bool = True) -> None:
        self.model = model
        self.short_window = short_window and model in SHORT_WINDOW_MODELS
        self._whisper = load_model(model, compute_type=compute_type, threads=threads, workers=workers,
                                   model_dir=model_dir, progress=progress, short_window=self.short_window)
        self.english_only = model.endswith(".en") or self._whisper.model.is_multilingual is False
        # Multilingual models are told the language: detecting it costs a pass and
        # misfires on short or noisy chunks.
        self.language = "en" if self.english_only else language
        self.vad_filter = vad_filter
        self.word_times = word_times
        """Ask for each word's time (cross-attention alignment): lines are cut where the
        speaker changes between words, and the API serves them (BENCHMARKS.md for the cost)."""

    def transcribe(self, audio: np.ndarray, *, vocabulary: Sequence[str] = (),
                   options: DecodeOptions | None = None) -> Transcription:
        """Runs on a worker thread. Forces the lazy generator before returning; costs no tokens.

        With a vocabulary the chunk is decoded twice, without and with the terms, and only
        the changes that write a term are kept (`scribe.vocabulary.keep_term_segments`):
        the terms alone nudge ordinary words too (BENCHMARKS.md "Team vocabulary")."""
        asked = options or DecodeOptions()
        plain = self._decode(audio, self.decode_options((), asked))
        if not vocabulary_options(vocabulary):
            return Transcription(plain)
        biased = self._decode(audio, self.decode_options(vocabulary, asked))
        return Transcription(keep_term_segments(plain, biased, vocabulary))

    def _decode(self, audio: np.ndarray, asked: dict[str, Any]) -> list[Segment]:
        # vad_filter: without it tiny.en writes "You" for 15 s of silence.
        segments, _info = self._whisper.transcribe(
            audio,
            vad_filter=self.vad_filter,
            condition_on_previous_text=False,
            word_timestamps=self.word_times,
            **asked,
        )
        # The segments are lazy: the encoder runs while they are read, on this thread.
        _full_window.on = self.short_window and asked.get("language") not in SHORT_WINDOW_LANGUAGES
        try:
            return to_segments(segments)
        finally:
            _full_window.on = False

    def close(self) -> None:
        """Nothing to release: the model is the process's, shared with other lanes."""

    def decode_options(self, vocabulary: Sequence[str], options: DecodeOptions) -> dict[str, Any]:
        """faster-whisper's arguments for the team's words and the session's own options. An
        English-only model decodes English whatever was asked (the API refuses another language
        before anything is stored)."""
        asked: dict[str, Any] = {"language": self.language if self.english_only else
                                 options.language or self.language, **vocabulary_options(vocabulary)}
        if options.prompt:  # beside the vocabulary's hotwords, or after its words in one prompt
            asked["initial_prompt"] = " ".join(filter(None, [asked.get("initial_prompt"), options.prompt]))
        if options.temperature is not None:
            asked["temperature"] = [options.temperature,
                                    *(t for t in FALLBACK_TEMPERATURES if t > options.temperature)]
        return asked


def vocabulary_options(vocabulary: Sequence[str]) -> dict[str, str]:
    """faster-whisper's options for the team's words: the prompt Whisper's decoder reads
    before each window (hotwords; BENCHMARKS.md "Team vocabulary" for why this one)."""
    prompt = whisper_prompt(vocabulary)
    return {VOCABULARY_OPTION: prompt} if prompt else {}


def to_segments(whisper_segments: Any) -> list[Segment]:
    """faster-whisper's (lazy) segments as finished `Segment`s, empty ones dropped."""
    return [_to_segment(s) for s in list(whisper_segments) if s.text.strip()]


def _to_segment(whisper_segment: Any) -> Segment:
    return Segment(
        start=float(whisper_segment.start),
        end=float(whisper_segment.end),
        text=whisper_segment.text.strip(),
        confidence=round(math.exp(whisper_segment.avg_logprob), 4),
        no_speech_prob=round(float(whisper_segment.no_speech_prob), 4),
        words=[Word(round(float(w.start), 3), round(float(w.end), 3), w.word)
               for w in (whisper_segment.words or ())],
    )


def build(settings: Any, *, model: str | None = None, workers: int | None = None,
          progress: Any = None) -> LocalWhisperTranscriber:
    """The registry's builder: SCRIBE_WHISPER_MODEL (or `model`), loaded once per process."""
    return LocalWhisperTranscriber(
        model or settings.whisper_model,
        compute_type=settings.whisper_compute_type,
        threads=settings.whisper_threads,
        workers=workers or settings.max_concurrency,
        language=settings.language,
        model_dir=settings.models_dir,
        progress=progress,
        short_window=settings.whisper_short_window,
    )
