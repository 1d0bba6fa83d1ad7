"""What the pipeline's two parts are given: `PipelineOptions` (numbers: threads, retries, intake
bounds) and `PipelineHooks` (what they call besides the backend). Each is listed here once;
`Pipeline` hands both to `Intake` and `JobQueue`, which read the fields they use."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from scribe.hallucination import SegmentFilter, guard_segments
from scribe.noisy_context import NoisyContext

if TYPE_CHECKING:
    from scribe.config import Settings


@dataclass(frozen=True)
class PipelineOptions:
    """How the queue runs: its threads, retries and live-intake bounds (the Settings of the
    same names; defaults suit a test or a one-off run)."""

    max_concurrency: int = 1
    """Worker threads: jobs transcribed at once."""
    max_attempts: int = 5
    """Backend calls per chunk (retries included) before it is failed."""
    retry_base_seconds: float = 1.0
    """First retry's backoff scale (exponential, full jitter)."""
    retry_max_seconds: float = 60.0
    """Longest wait between retries (also caps a server-given delay)."""
    writer_threads: int = 1
    """Chunk writers; a session always maps to the same one."""
    intake_memory_seconds: float = 600.0
    """Live audio held in RAM for the writers, in total, before chunks are spilled to disk."""
    intake_session_seconds: float = 120.0
    """The same bound per session."""

    @classmethod
    def from_settings(cls, settings: Settings) -> "PipelineOptions":
        """The options the app and the CLI run with (SCRIBE_MAX_CONCURRENCY and friends)."""
        return cls(max_concurrency=settings.max_concurrency, max_attempts=settings.max_attempts,
                   retry_base_seconds=settings.retry_base_seconds, retry_max_seconds=settings.retry_max_seconds,
                   writer_threads=settings.writer_threads, intake_memory_seconds=settings.intake_memory_seconds,
                   intake_session_seconds=settings.intake_session_seconds)


@dataclass(frozen=True)
class PipelineHooks:
    """What the pipeline calls besides the backend (defaults: the real clock, no checks but the
    hallucination guard)."""

    context: NoisyContext | None = None
    """The noisy-chunk context policy; None: every chunk is heard alone."""
    before_call: Callable[[], None] | None = None
    """Runs before every backend call, retries included (a rate limit)."""
    speech_check: Callable[[np.ndarray], bool] | None = None
    """Whether a chunk is worth sending (the Silero speech check); None: every chunk is sent."""
    segment_filter: SegmentFilter | None = guard_segments
    """Checks every backend's output (the hallucination guard); None keeps raw output."""
    clock: Callable[[], float] = time.time
    """Wall-clock time for the rows' timestamps."""
    sleep: Callable[[float], None] = time.sleep
    """How a retry waits."""
