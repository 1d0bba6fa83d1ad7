"""The transcription pipeline: the durable intake feeding the job queue.

`Pipeline` composes two parts and is what the app, the CLI and the tests hold:
- `scribe.intake.Intake`: `submit` (on the caller's thread), `submit_nowait` (the live
  path, through `scribe-writer-N` threads, bounded in RAM with spills to disk),
  `call_after_intake`, `adopt_orphan_audio`. A stored chunk row is a `pending` job.
- `scribe.jobqueue.JobQueue`: `scribe-worker-N` threads that claim jobs, transcribe
  them with retries, store the outcome; `requeue`, `recover` and the events.

Both share one `StorageHealth`: a storage outage pauses every thread instead of
failing jobs (scribe.health).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from scribe.chunking import Chunk
from scribe.health import HealthStats, StorageHealth, space_probe
from scribe.intake import Intake
from scribe.jobqueue import Backend, EventListener, JobQueue
from scribe.pipeline_options import PipelineHooks, PipelineOptions
from scribe.storage import Storage
from scribe.transcribers.base import Transcriber

__all__ = ["Backend", "EventListener", "Pipeline", "PipelineHooks", "PipelineOptions", "PipelineStats"]


@dataclass
class PipelineStats:
    """Counters a page or the bench can read at any time without touching the DB."""

    queued: int
    in_flight: int
    intake: int
    processed: int
    failed: int
    retried: int
    audio_seconds_done: float
    audio_seconds_waiting: float
    intake_audio_seconds: float = 0.0
    """Audio handed to `submit_nowait` but not yet durable (the writer's backlog)."""
    skipped_silent: int = 0
    """Chunks stored empty because the speech check found no speech."""
    storage_ok: bool = True
    """False while the disk or database refuses writes (the queue is paused meanwhile)."""
    storage_faults: int = 0
    """Writes that failed for a storage reason since start (each job was kept and retried)."""
    storage_down_s: float = 0.0
    """How long the current storage outage has lasted (0 when writes succeed)."""
    storage_error: str | None = None
    """The latest storage outage's error, one line."""
    job_errors: int = 0
    """Unexpected errors inside jobs (logged once each, the job retried with backoff)."""
    workers_alive: int = 0
    """Worker threads running (equals max_concurrency unless stopped)."""
    intake_memory_seconds: float = 0.0
    """Audio held in RAM by the writers' queues (bounded; beyond it chunks are spilled)."""
    intake_spilled: int = 0
    """Chunks written straight to disk by `submit_nowait` because the writers fell behind."""

    @property
    def backlog_seconds(self) -> float:
        """All audio not yet transcribed: queued, in flight, and still in the writer's queue."""
        return self.audio_seconds_waiting + self.intake_audio_seconds


class Pipeline:
    """The intake and the job queue under one name. Construct, `start()`, `submit()`, `stop()`."""

    def __init__(self, storage: Storage, transcriber: Transcriber, *, audio_dir: Path,
                 options: PipelineOptions = PipelineOptions(), hooks: PipelineHooks = PipelineHooks(),
                 health: StorageHealth | None = None) -> None:
        """`options`: threads, retries and intake bounds; `hooks`: the context policy, the
        call hook, the speech check, the output filter, the clock (`PipelineHooks`)."""
        self.storage = storage
        self.transcriber = transcriber
        self.audio_dir = Path(audio_dir)
        self.options = options
        # Storage outages pause every thread of both parts instead of failing jobs (scribe.health).
        self._health = health or StorageHealth(probe=space_probe(self.audio_dir))
        self.jobs = JobQueue(storage, transcriber, health=self._health, options=options, hooks=hooks)
        self.intake = Intake(storage, audio_dir=self.audio_dir, health=self._health, on_stored=self._queue_stored,
                             options=options, clock=hooks.clock)
        self._running = False

    def _queue_stored(self, chunk: Chunk) -> None:
        self.jobs.enqueue((chunk.session_id, chunk.seq), chunk.duration_s)
        self.jobs.emit("chunk_enqueued", session_id=chunk.session_id, seq=chunk.seq,
                       duration_s=chunk.duration_s)

    # -- lifecycle ----------------------------------------------------------
    def start(self, *, recover: bool = True) -> "Pipeline":
        """Re-queue unfinished work left by a previous process (unless `recover=False`:
        the caller chose what to recover), then start threads."""
        if self._running:
            return self
        if recover:
            self.recover()
        self.intake.start()
        self.jobs.start()
        self._running = True
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the intake, stop the workers after their current chunk."""
        self._health.close()
        self.intake.request_stop()
        self.jobs.request_stop()
        deadline = time.monotonic() + timeout
        self.intake.join(deadline)
        self.jobs.join(deadline)
        self._running = False

    def add_listener(self, listener: EventListener) -> None:
        """Called (on the worker's thread) for `chunk_done`, `chunk_failed`, `chunk_retry`,
        `chunk_enqueued` and `session_drained` events; must not block."""
        self.jobs.add_listener(listener)

    # -- the intake ---------------------------------------------------------
    def submit(self, chunk: Chunk) -> bool:
        """Make a chunk durable and queue it (`Intake.submit`)."""
        return self.intake.submit(chunk)

    def submit_waiting_out_faults(self, chunk: Chunk, give_up_after: float | None = None) -> bool:
        """`submit`, waiting out storage outages (`Intake.submit_waiting_out_faults`)."""
        return self.intake.submit_waiting_out_faults(chunk, give_up_after)

    def submit_nowait(self, chunk: Chunk, *, wait_for_room: bool = False) -> None:
        """Hand a chunk to the writer threads (`Intake.submit_nowait`)."""
        self.intake.submit_nowait(chunk, wait_for_room=wait_for_room)

    def call_after_intake(self, step: Callable[[], None], session_id: str | None = None) -> None:
        """Run `step` once earlier chunks are durable (`Intake.call_after_intake`)."""
        self.intake.call_after_intake(step, session_id)

    def flush_intake(self, timeout: float = 30.0, session_id: str | None = None) -> bool:
        """Wait until chunks given to `submit_nowait` (all, or one session's) are durable."""
        return self.intake.flush_intake(timeout, session_id)

    def adopt_orphan_audio(self, session_ids: Sequence[str] | None = None) -> int:
        """Store rows of chunk files written before a crash (`Intake.adopt_orphan_audio`)."""
        return self.intake.adopt_orphan_audio(session_ids)

    def audio_path(self, session_id: str, seq: int) -> Path:
        return self.intake.audio_path(session_id, seq)

    def finish_session(self, session_id: str, status: str = "stopped") -> None:
        """End a session (stopped or interrupted) once its last chunk is submitted.

        Waits for the writer thread, so call it from a thread that may block
        (CLI, upload). A stopped session whose chunks are already all
        transcribed becomes done here; otherwise the worker that settles its
        last chunk does it.
        """
        self.intake.flush_intake()
        self.jobs.end_session(session_id, status)

    def finish_session_after_intake(self, session_id: str, status: str = "stopped") -> None:
        """Non-blocking `finish_session` for the live path: runs on the writer thread
        after every chunk handed over before it is durable."""
        self.intake.call_after_intake(lambda: self.jobs.end_session(session_id, status), session_id)

    # -- the job queue ------------------------------------------------------
    def recover(self, session_ids: Sequence[str] | None = None) -> int:
        """Queue every pending or interrupted chunk whose audio is on disk (`JobQueue.recover`)."""
        return self.jobs.recover(session_ids)

    def requeue(self, session_id: str, seqs: list[int] | None = None, *, backend: Backend | None = None,
                check_speech: bool = True) -> int:
        """Re-queue failed or chosen chunks, maybe on another backend (`JobQueue.requeue`)."""
        return self.jobs.requeue(session_id, seqs, backend=backend, check_speech=check_speech)

    # -- waiting and counters -----------------------------------------------
    def stats(self) -> PipelineStats:
        return PipelineStats(**self.jobs.counters(), **self.intake.counters(),
                             **_health_fields(self._health.stats()))

    def is_idle(self) -> bool:
        return self.jobs.is_empty() and self.intake.unfinished() == 0

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Block until nothing is queued or in flight (True) or the timeout passes."""
        deadline = time.monotonic() + timeout
        if not self.flush_intake(timeout):
            return False
        return self.jobs.wait_empty(deadline)


def _health_fields(health: HealthStats) -> dict:
    return {"storage_ok": health.storage_ok, "storage_faults": health.storage_faults,
            "storage_down_s": health.storage_down_s, "storage_error": health.storage_error}
