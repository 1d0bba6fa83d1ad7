"""The backend protocol: 16 kHz float32 audio in, a `Transcription` (segments in chunk time) out."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from scribe.core import Transcription


@runtime_checkable
class Transcriber(Protocol):
    """A backend, as the pipeline, the final pass, the lab and the distributed worker use it.

    `transcribe` runs on the caller's thread (a pipeline worker, `scribe-final-pass`,
    a Dramatiq worker thread) and may block; several threads may call it at once, so
    what one call returns never passes through the transcriber's attributes. It raises
    `scribe.errors.TranscriptionError` (with `retryable`) on failure; anything else it
    raises is treated as a retryable internal error.
    """

    name: str
    """The backend's name (`local`, `gemini`, `stub`), stored with each chunk it transcribes."""
    model: str
    """The model it is configured with, stored when a chunk is claimed."""

    def transcribe(self, audio: np.ndarray) -> Transcription:
        """Transcribe a whole chunk: finished segments (never a lazy generator) and this call's usage."""
        ...

    def close(self) -> None:
        """Release what the backend holds (threads, connections); called once, when its runtime closes."""
        ...
