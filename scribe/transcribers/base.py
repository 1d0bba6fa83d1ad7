"""The backend protocol: 16 kHz float32 audio in, segments (times relative to the chunk) out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass
class Segment:
    """One piece of recognised speech. Times are seconds from the start of the audio given."""

    start: float
    end: float
    text: str
    speaker: str | None = None
    confidence: float | None = None
    """Mean token probability (0..1) where the backend reports one."""
    no_speech_prob: float | None = None
    flags: list[str] = field(default_factory=list)
    """Doubts about this segment (e.g. `clamped`, `low_confidence`, `hallucination`)."""


@dataclass
class Usage:
    """What one backend call cost: tokens for metered APIs, zero for local models."""

    input_tokens: int = 0
    output_tokens: int = 0


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
