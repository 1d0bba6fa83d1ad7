"""Backends behind one small protocol. A new backend is one new module here."""

from __future__ import annotations

from scribe.config import Settings
from scribe.transcribers.base import Transcriber

__all__ = ["Transcriber", "make_transcriber"]


def make_transcriber(settings: Settings, backend: str | None = None, *, model: str | None = None,
                     workers: int | None = None, progress=None) -> Transcriber:
    """Build the backend named by `backend` (default: the settings' backend).

    `model` picks another local model than SCRIBE_WHISPER_MODEL (the final pass's
    job); models are loaded once per process and shared. `progress(fraction, message)`
    hears about a model being assembled or downloaded.

    Heavy SDKs are imported here, inside the backend's constructor, so an
    ImportError becomes a clear BackendUnavailableError.
    """
    name = backend or settings.backend
    if name == "local":
        from scribe.transcribers.local import LocalWhisperTranscriber

        return LocalWhisperTranscriber(
            model or settings.whisper_model,
            compute_type=settings.whisper_compute_type,
            threads=settings.whisper_threads,
            workers=workers or settings.max_concurrency,
            language=settings.language,
            model_dir=settings.models_dir,
            progress=progress,
        )
    if name == "stub":
        from scribe.transcribers.stub import StubTranscriber

        return StubTranscriber(settings.stub_latency)
    if name == "gemini":
        from scribe.transcribers.gemini import GeminiTranscriber

        return GeminiTranscriber.from_settings(settings)
    from scribe.errors import SettingsError

    raise SettingsError(f"SCRIBE_BACKEND={name!r} is not a known backend (local, gemini, stub)")
