"""Backends behind one small protocol. A new backend is one new module here (with a `build`
function) plus one `register(...)` line in `scribe/backends.py`."""

from __future__ import annotations

from scribe.config import Settings
from scribe.transcribers.base import Transcriber

__all__ = ["Transcriber", "make_transcriber"]


def make_transcriber(settings: Settings, backend: str | None = None, *, model: str | None = None,
                     workers: int | None = None, progress=None) -> Transcriber:
    """Build the backend named by `backend` (default: the settings' backend), as the registry says.

    `model` picks another local model than SCRIBE_WHISPER_MODEL (the final pass's
    job); models are loaded once per process and shared. `progress(fraction, message)`
    hears about a model being assembled or downloaded.

    Heavy SDKs are imported here, inside the backend's constructor, so an
    ImportError becomes a clear BackendUnavailableError.
    """
    from scribe.backends import spec

    return spec(backend or settings.backend).build(settings, model=model, workers=workers, progress=progress)
