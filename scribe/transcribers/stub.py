"""A stand-in backend with a chosen latency, for the load test and the pipeline's tests.

It behaves like a remote API (sleeps, so its useful concurrency is I/O-bound)
and returns one deterministic segment per chunk that says how long the chunk
was, so stored output can be checked against what was sent.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any, Sequence

import numpy as np

from scribe.audio import SAMPLE_RATE, rms_dbfs
from scribe.core import DecodeOptions, Segment, Transcription


class StubTranscriber:
    name = "stub"

    def __init__(self, latency: tuple[float, float] = (0.0, 0.0), *, seed: int | None = None,
                 sleep=time.sleep) -> None:
        self.model = f"stub-{latency[0]:g}-{latency[1]:g}s"
        self._latency = latency
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._sleep = sleep
        self.calls = 0

    def transcribe(self, audio: np.ndarray, *, vocabulary: Sequence[str] = (),
                   options: DecodeOptions | None = None) -> Transcription:
        """Its text says how long the audio was; `vocabulary` and `options` change nothing (no
        model reads them)."""
        with self._lock:
            self.calls += 1
            delay = self._random.uniform(*self._latency)
        if delay > 0:
            self._sleep(delay)
        seconds = audio.size / SAMPLE_RATE
        if audio.size == 0 or rms_dbfs(audio) < -60:
            return Transcription([])
        return Transcription([Segment(0.0, seconds, f"stub audio of {seconds:.2f} seconds", confidence=1.0)])

    def close(self) -> None:
        """Nothing to release."""


def build(settings: Any, *, model: str | None = None, workers: int | None = None,
          progress: Any = None) -> StubTranscriber:
    """The registry's builder: latency from SCRIBE_STUB_LATENCY."""
    return StubTranscriber(settings.stub_latency)
