"""The backend protocol: 16 kHz float32 audio in, segments (times relative to the chunk) out."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from scribe.core import Segment


@runtime_checkable
class Transcriber(Protocol):
    """A backend. `transcribe` runs on a pipeline worker thread and may block.

    It raises `scribe.errors.TranscriptionError` (with `retryable`) on failure;
    anything else it raises is treated as a retryable internal error.
    """

    name: str
    model: str

    def transcribe(self, audio: np.ndarray, *, prompt: str | None = None) -> list[Segment]:
        """Transcribe a whole chunk; return finished segments (never a lazy generator)."""
        ...
