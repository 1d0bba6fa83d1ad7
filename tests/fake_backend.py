"""A backend that exists only in the tests: one module (this) plus one registry line.

`tests/test_backends.py` registers it and checks that the CLI, the API's upload form and the
settings take it with nothing else changed."""

from __future__ import annotations

from typing import Any

import numpy as np

from scribe.audio import SAMPLE_RATE
from scribe.core import Segment, Transcription

MODEL_CHOICES = ("echo-1", "echo-2")
"""The names a caller may pick when a test registers it with a model setting."""


class EchoTranscriber:
    name = "echo"

    def __init__(self, model: str) -> None:
        self.model = model

    def transcribe(self, audio: np.ndarray) -> Transcription:
        seconds = audio.size / SAMPLE_RATE
        return Transcription([Segment(0.0, seconds, f"echo heard {seconds:.1f} seconds", confidence=1.0)])

    def close(self) -> None:
        """Nothing to release."""


def build(settings: Any, *, model: str | None = None, workers: int | None = None, progress: Any = None
          ) -> EchoTranscriber:
    return EchoTranscriber(model or "echo-1")
