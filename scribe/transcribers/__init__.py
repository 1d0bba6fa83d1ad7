"""Backends behind one small protocol. A new backend is one new module here."""

from __future__ import annotations

from scribe.config import Settings
from scribe.transcribers.base import Segment, Transcriber, Usage

__all__ = ["Segment", "Transcriber", "Usage", "make_transcriber"]


def make_transcriber(settings: Settings, backend: str | None = None) -> Transcriber:
    """Build the backend named by `backend` (default: the settings' backend).

    Heavy SDKs are imported here, inside the backend's constructor, so an
    ImportError becomes a clear BackendUnavailableError.
    """
    name = backend or settings.backend
    if name == "local":
        from scribe.transcribers.local import LocalWhisperTranscriber

        return LocalWhisperTranscriber(
            settings.whisper_model,
            compute_type=settings.whisper_compute_type,
            threads=settings.whisper_threads,
            workers=settings.max_concurrency,
        )
    if name == "stub":
        from scribe.transcribers.stub import StubTranscriber

        return StubTranscriber(settings.stub_latency)
    if name == "gemini":
        from scribe.transcribers.gemini import GeminiTranscriber

        return GeminiTranscriber.from_settings(settings)
    from scribe.errors import SettingsError

    raise SettingsError(f"SCRIBE_BACKEND={name!r} is not a known backend (local, gemini, stub)")
