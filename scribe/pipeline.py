"""The transcription queue: durable jobs, worker threads, retries, recovery.

A chunk becomes a job in two steps, in this order: its audio is written to
`<audio_dir>/<session>/<seq>.flac` (fsynced, renamed into place), then its row
is inserted `pending`. The row *is* the job, so a crash after both steps loses
nothing (`start()` re-queues it) and a crash between them leaves only a file
that a resubmission overwrites. Submitting the same (session, seq) twice is a
no-op.

Threads:
- `scribe-writer-N` (N = writer_threads): take chunks from `submit_nowait` (the
  live capture path) and make them durable, so the WebRTC thread never waits on
  disk or DuckDB. A session always maps to the same writer, so its chunks and
  its end are written in order; several writers overlap FLAC encoding and
  fsyncs across sessions (one writer was the latency tail at 100 sessions).
  Their queues are unbounded on purpose: dropping audio is never an option, and
  a growing backlog is logged and shown (`stats().intake`).
- `scribe-worker-N` (N = max_concurrency): claim a pending chunk, transcribe it
  (retrying retryable errors with exponential backoff and jitter via tenacity,
  honouring a server-given delay), save its segments and mark it done in one
  transaction. A worker's exception marks the chunk failed, never kills the
  worker. A `None` sentinel per thread stops them.

Before a backend is called, `speech_check` (Silero VAD, `scribe.vad`) may find
the chunk silent: it is then stored done with no segments and the backend is
never called. `before_call` runs before every backend call, retries included
(the Gemini requests-per-minute limit, `scribe.ratelimit`). A chunk can be
re-queued with another backend (`requeue(..., backend=Backend(...))`): the
pipeline keeps its default transcriber and runs just that job with the other.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import queue
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from scribe.audio import SAMPLE_RATE, read_flac, write_flac_atomic
from scribe.chunking import Chunk
from scribe.config import Settings
from scribe.core import ChunkRow, Transcription
from scribe.errors import ScribeError, TranscriptionError
from scribe.hallucination import SegmentFilter, guard_segments
from scribe.health import HealthStats, StorageHealth, is_storage_fault, space_probe
from scribe.noisy_context import NO_AUDIO, NoisyContext, keep_own_segments
from scribe.storage import Storage, segments_from_backend
from scribe.transcribers.base import Transcriber, call_transcriber

log = logging.getLogger("scribe.pipeline")

Key = tuple[str, int]
EventListener = Callable[[str, dict], None]


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
class Backend:
    """A transcriber and the hook run before each of its calls (e.g. a rate limiter)."""

    transcriber: Transcriber
    before_call: Callable[[], None] | None = None


@dataclass(frozen=True)
class _JobOptions:
    """How one queued chunk runs when it differs from the pipeline's default."""

    backend: Backend | None = None
    check_speech: bool = True


_DEFAULT_JOB = _JobOptions()


class _Intake:
    """The writers' queues. A session always maps to the same queue (crc32 of its id),
    so its chunks and the steps queued after them are handled in order."""

    def __init__(self, shards: int) -> None:
        self.queues: list[queue.Queue] = [queue.Queue() for _ in range(shards)]

    def for_session(self, session_id: str) -> queue.Queue:
        return self.queues[zlib.crc32(session_id.encode()) % len(self.queues)]

    def put_all(self, item: object) -> None:
        for q in self.queues:
            q.put(item)

    def qsize(self) -> int:
        return sum(q.qsize() for q in self.queues)

    def unfinished(self) -> int:
        return sum(q.unfinished_tasks for q in self.queues)


@dataclass(frozen=True)
class _Spilled:
    """A chunk whose files `submit_nowait` already wrote; the writer inserts its row."""

    chunk: Chunk


class _AfterAll:
    """A step put in every writer queue: the last writer to reach it runs it, so it
    runs after everything queued before it anywhere."""

    def __init__(self, step: Callable[[], None], parties: int) -> None:
        self._step, self._left, self._lock = step, parties, threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last:
            self._step()


class Pipeline:
    """Owns the job queue and its threads. Construct, `start()`, `submit()`, `stop()`."""

    def __init__(
        self,
        storage: Storage,
        transcriber: Transcriber,
        *,
        audio_dir: Path,
        options: PipelineOptions = PipelineOptions(),
        context: NoisyContext | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        before_call: Callable[[], None] | None = None,
        speech_check: Callable[[np.ndarray], bool] | None = None,
        segment_filter: SegmentFilter | None = guard_segments,
        health: StorageHealth | None = None,
    ) -> None:
        """`context`: the noisy-chunk context policy (None: chunks are heard alone).
        `before_call` runs before every backend call, `speech_check` decides whether a chunk
        is worth sending, `segment_filter` checks every backend's output (the hallucination
        guard; None keeps raw output)."""
        self.storage = storage
        self.transcriber = transcriber
        self.audio_dir = Path(audio_dir)
        self.options = options
        self._context = context
        self._clock = clock
        self._sleep = sleep
        self._backend = Backend(transcriber, before_call)
        """The default job's backend; `requeue(..., backend=...)` runs chosen jobs on another."""
        self._segment_filter = segment_filter
        self._jobs: queue.Queue[Key | None] = queue.Queue()
        self._intake = _Intake(max(1, options.writer_threads))
        self._queued: set[Key] = set()
        self._waiting_audio: dict[Key, float] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._counters = {"processed": 0, "failed": 0, "retried": 0}
        self._audio_done = 0.0
        self._threads: list[threading.Thread] = []
        self._listeners: list[EventListener] = []
        self._intake_error: BaseException | None = None
        self._speech_check = speech_check
        self._job_options: dict[Key, _JobOptions] = {}
        self._intake_audio = 0.0
        self._skipped_silent = 0
        # Storage outages pause every thread here instead of failing jobs (scribe.health).
        self._health = health or StorageHealth(probe=space_probe(self.audio_dir))
        self._held: dict[Key, Callable[[], None]] = {}
        """Outcomes computed but not yet stored (storage was down): written on the job's next run."""
        self._rerun: set[Key] = set()
        """Jobs re-queued after an error; their chunk may still be `processing` from that run."""
        self._uncount: set[Key] = set()
        """Re-queued for a storage fault: that run's attempt does not count."""
        self._job_errors = 0
        # Live audio waiting for a writer is bounded in RAM, in total and per session;
        # past either bound `submit_nowait` writes the chunk's files itself (a spill).
        self._intake_memory = 0.0
        self._intake_by_session: dict[str, float] = {}
        self._spilled = 0
        self._room = threading.Condition(self._lock)

    # -- lifecycle ----------------------------------------------------------
    def start(self, *, recover: bool = True) -> "Pipeline":
        """Re-queue unfinished work left by a previous process (unless `recover=False`:
        the caller chose what to recover), then start threads."""
        if self._threads:
            return self
        if recover:
            self.recover()
        for n, intake in enumerate(self._intake.queues):
            self._spawn(f"scribe-writer-{n}", functools.partial(self._writer_loop, intake))
        for n in range(self.options.max_concurrency):
            self._spawn(f"scribe-worker-{n}", self._worker_loop)
        return self

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the intake, stop the workers after their current chunk."""
        self._health.close()
        self._intake.put_all(None)
        for _ in range(self.options.max_concurrency):
            self._jobs.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []

    def add_listener(self, listener: EventListener) -> None:
        """Called (on the worker's thread) for `chunk_done`, `chunk_failed`, `chunk_retry`,
        `chunk_enqueued` and `session_drained` events; must not block."""
        self._listeners.append(listener)

    def _emit(self, event: str, **fields) -> None:
        for listener in self._listeners:
            try:
                listener(event, fields)
            except Exception:  # a broken listener must not break the queue
                log.exception("listener failed on %s", event)

    # -- submitting ---------------------------------------------------------
    def submit(self, chunk: Chunk) -> bool:
        """Make a chunk durable and queue it. Returns False if it was already submitted.

        Blocks on disk and DuckDB: call from a worker-ish thread (CLI, upload,
        the writer thread), never from the WebRTC event loop.
        """
        if self.storage.chunk_exists(chunk.session_id, chunk.seq):
            log.info("session=%s seq=%d already submitted; ignored", chunk.session_id, chunk.seq)
            return False
        self._write_chunk_files(chunk)
        return self._insert_row(chunk)

    def _write_chunk_files(self, chunk: Chunk) -> None:
        """The chunk's audio and, beside it, what its row will say: if the process dies
        before the row commits, the next start stores the row (`adopt_orphan_audio`)."""
        path = self.audio_path(chunk.session_id, chunk.seq)
        path.parent.mkdir(parents=True, exist_ok=True)
        sidecar = path.with_suffix(".json")
        tmp = sidecar.with_name(f".{sidecar.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps({"seq": chunk.seq, "start_sample": chunk.start_sample,
                                       "end_sample": chunk.end_sample, "captured_at": chunk.captured_at}))
            os.replace(tmp, sidecar)
        finally:
            tmp.unlink(missing_ok=True)
        write_flac_atomic(chunk.pcm, path)  # its folder fsync also makes the sidecar's rename durable

    def _insert_row(self, chunk: Chunk) -> bool:
        path = self.audio_path(chunk.session_id, chunk.seq)
        row = ChunkRow(session_id=chunk.session_id, seq=chunk.seq, start_ms=chunk.start_ms,
                       end_ms=chunk.end_ms, start_sample=chunk.start_sample,
                       end_sample=chunk.end_sample, audio_path=str(path), status="pending",
                       captured_at=chunk.captured_at, enqueued_at=self._clock())
        inserted = self.storage.insert_chunk(row)
        path.with_suffix(".json").unlink(missing_ok=True)
        if not inserted:
            return False
        log.debug("session=%s seq=%d enqueued (%.2f s)", chunk.session_id, chunk.seq, chunk.duration_s)
        self._enqueue((chunk.session_id, chunk.seq), chunk.duration_s)
        self._emit("chunk_enqueued", session_id=chunk.session_id, seq=chunk.seq,
                   duration_s=chunk.duration_s)
        return True

    def submit_waiting_out_faults(self, chunk: Chunk, give_up_after: float | None = None) -> bool:
        """`submit`, waiting while the disk or database refuses writes (one log line per
        outage), then writing the same chunk again: audio is never dropped for an outage.
        Raises ScribeError if the pipeline stops during the outage, StorageOutageError once
        it has lasted `give_up_after` seconds (None: wait as long as it takes)."""
        return self._health.write_through_outages(
            lambda: self.submit(chunk), size=(chunk.end_sample - chunk.start_sample) * 2,
            give_up_after=give_up_after,
            stopped=f"stopped while storage was down; session {chunk.session_id} chunk {chunk.seq} "
                    "was not stored")

    def submit_nowait(self, chunk: Chunk, *, wait_for_room: bool = False) -> None:
        """Hand a chunk to the writer thread (live capture path).

        Returns at once while the writers keep up. Audio waiting in RAM is bounded
        (`intake_memory_seconds` in total, `intake_session_seconds` per session): past
        a bound the chunk's files are written here, on the caller's thread, and only
        its row is left to the writer, so audio is never dropped and RAM never grows
        without bound. With `wait_for_room` the caller waits for room instead (a
        feeder that can slow down, e.g. `bench --fast`).
        """
        if self._intake_error is not None:
            raise ScribeError(f"the chunk writer stopped: {self._intake_error}")
        item: Chunk | _Spilled = chunk
        if wait_for_room:
            self._wait_for_room(chunk)
        elif not self._has_room(chunk):
            item = self._spill(chunk)
        with self._lock:
            self._intake_audio += chunk.duration_s
            if item is chunk:
                self._hold(chunk.session_id, chunk.duration_s)
        self._intake.for_session(chunk.session_id).put(item)
        backlog = self._intake.qsize()
        if backlog and backlog % 10 == 0:
            log.warning("chunk writer backlog is %d chunks (disk or database slow)", backlog)

    def _has_room(self, chunk: Chunk) -> bool:
        with self._lock:
            return self._room_for(chunk)

    def _room_for(self, chunk: Chunk) -> bool:
        """Caller holds the lock. One chunk always fits in an empty intake."""
        return (self._intake_memory + chunk.duration_s <= self.options.intake_memory_seconds and
                self._intake_by_session.get(chunk.session_id, 0.0) + chunk.duration_s
                <= self.options.intake_session_seconds) or self._intake_memory == 0

    def _wait_for_room(self, chunk: Chunk) -> None:
        with self._room:
            while not self._room_for(chunk):
                self._room.wait(0.5)

    def _hold(self, session_id: str, seconds: float) -> None:
        """Count audio held in RAM (caller holds the lock); negative to release it."""
        self._intake_memory = max(0.0, self._intake_memory + seconds)
        left = self._intake_by_session.get(session_id, 0.0) + seconds
        if left > 1e-9:
            self._intake_by_session[session_id] = left
        else:
            self._intake_by_session.pop(session_id, None)
        if seconds < 0:
            self._room.notify_all()

    def _spill(self, chunk: Chunk) -> "_Spilled":
        """Write the chunk's files now (waiting out a storage outage); the row follows on
        the writer thread, in the session's order."""
        self._health.write_through_outages(lambda: self._write_chunk_files(chunk),
                                           stopped="stopped while storage was down; the chunk was not stored")
        with self._lock:
            self._spilled += 1
        if self._spilled == 1 or self._spilled % 100 == 0:
            log.warning("session=%s seq=%d writers behind; chunk written to disk by the feeder "
                        "(%d spilled so far)", chunk.session_id, chunk.seq, self._spilled)
        return _Spilled(Chunk(chunk.session_id, chunk.seq, chunk.start_sample, chunk.end_sample,
                              NO_AUDIO, chunk.captured_at))

    def call_after_intake(self, step: Callable[[], None], session_id: str | None = None) -> None:
        """Run `step` on a writer thread once the chunks handed to `submit_nowait` before
        it are durable: that session's chunks, or with no session every chunk (e.g. end
        a live session only after its last chunk is stored, so it never becomes done
        with a chunk still on its way). Returns at once."""
        if session_id is not None:
            self._intake.for_session(session_id).put(step)
        else:
            self._intake.put_all(_AfterAll(step, len(self._intake.queues)))

    @staticmethod
    def _run_step(step: Callable[[], None]) -> None:
        try:
            step()
        except Exception:  # a failed bookkeeping step must not stop chunk intake
            log.exception("writer step %r failed", step)

    def flush_intake(self, timeout: float = 30.0) -> bool:
        """Wait until every chunk given to `submit_nowait` is durable."""
        deadline = time.monotonic() + timeout
        while self._intake.unfinished() and time.monotonic() < deadline:
            time.sleep(0.01)
        return self._intake.unfinished() == 0

    def _writer_loop(self, intake: "queue.Queue[Chunk | Callable[[], None] | None]") -> None:
        while (item := intake.get()) is not None:
            try:
                if callable(item):  # a step queued by call_after_intake
                    self._run_step(item)
                else:
                    self._write(item)
            finally:
                intake.task_done()
        intake.task_done()

    def _write(self, item: "Chunk | _Spilled") -> None:
        spilled = isinstance(item, _Spilled)
        chunk = item.chunk if isinstance(item, _Spilled) else item
        try:
            if spilled:
                self._insert_waiting_out_faults(chunk)
            else:
                self.submit_waiting_out_faults(chunk)
        except BaseException as exc:  # surfaced to the next submit_nowait caller
            log.exception("session=%s seq=%d could not be stored", chunk.session_id, chunk.seq)
            self._intake_error = exc
        finally:
            with self._lock:
                self._intake_audio = max(0.0, self._intake_audio - chunk.duration_s)
                if not spilled:
                    self._hold(chunk.session_id, -chunk.duration_s)

    def _insert_waiting_out_faults(self, chunk: Chunk) -> None:
        """The row of a spilled chunk (its files are on disk already)."""
        self._health.write_through_outages(
            lambda: self._insert_row(chunk),
            stopped=f"stopped while storage was down; chunk {chunk.seq} waits on disk and is stored "
                    "at the next start")

    def adopt_orphan_audio(self, session_ids: Sequence[str] | None = None) -> int:
        """Store the rows of chunk files written before a crash whose row never committed
        (their sidecar says where they belong). Returns how many were adopted."""
        adopted = 0
        folders = [self.audio_dir / s for s in session_ids] if session_ids is not None else \
            (sorted(p for p in self.audio_dir.iterdir() if p.is_dir()) if self.audio_dir.is_dir() else [])
        for folder in folders:
            for sidecar in sorted(folder.glob("[0-9]*.json")):
                adopted += self._adopt(folder.name, sidecar)
        if adopted:
            log.warning("stored %d chunk(s) whose audio was written before a crash", adopted)
        return adopted

    def _adopt(self, session_id: str, sidecar: Path) -> int:
        flac = sidecar.with_suffix(".flac")
        try:
            meta = json.loads(sidecar.read_text())
            chunk = Chunk(session_id, int(meta["seq"]), int(meta["start_sample"]),
                          int(meta["end_sample"]), NO_AUDIO, float(meta.get("captured_at") or 0.0))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("session=%s %s unreadable (%s); left in place", session_id, sidecar.name, exc)
            return 0
        if self.storage.find_session(session_id) is None or not flac.is_file() or \
                self.storage.chunk_exists(session_id, chunk.seq):
            sidecar.unlink(missing_ok=True)  # deleted session, lost audio, or row already there
            return 0
        return int(self._insert_row(chunk))

    def _enqueue(self, key: Key, duration_s: float) -> None:
        with self._lock:
            if key in self._queued:
                return
            self._queued.add(key)
            self._waiting_audio[key] = duration_s
        self._jobs.put(key)

    def finish_session(self, session_id: str, status: str = "stopped") -> None:
        """End a session (stopped or interrupted) once its last chunk is submitted.

        Waits for the writer thread, so call it from a thread that may block
        (CLI, upload). A stopped session whose chunks are already all
        transcribed becomes done here; otherwise the worker that settles its
        last chunk does it.
        """
        self.flush_intake()
        self._end_session(session_id, status)

    def finish_session_after_intake(self, session_id: str, status: str = "stopped") -> None:
        """Non-blocking `finish_session` for the live path: runs on the writer thread
        after every chunk handed over before it is durable."""
        self.call_after_intake(lambda: self._end_session(session_id, status), session_id)

    def _end_session(self, session_id: str, status: str) -> None:
        self.storage.end_session(session_id, status, now=self._clock())
        if self.storage.mark_done_if_drained(session_id):
            self._emit("session_drained", session_id=session_id)

    # -- recovery and retries -----------------------------------------------
    def recover(self, session_ids: Sequence[str] | None = None) -> int:
        """Queue every pending or interrupted chunk whose audio is on disk (of the given
        sessions only, when `session_ids` is given)."""
        count = 0
        for row in self.storage.reset_unfinished(session_ids):
            if not Path(row.audio_path).is_file():
                self.storage.fail_chunk(row.session_id, row.seq, "audio file missing after restart",
                                        finished_at=self._clock())
                log.error("session=%s seq=%d audio missing; marked failed", row.session_id, row.seq)
                continue
            self._enqueue((row.session_id, row.seq), (row.end_sample - row.start_sample) / SAMPLE_RATE)
            count += 1
        if count:
            log.info("recovered %d unfinished chunks", count)
        return count

    # -- waiting and counters -----------------------------------------------
    def stats(self) -> PipelineStats:
        with self._lock:
            return PipelineStats(
                queued=len(self._queued) - self._in_flight, in_flight=self._in_flight,
                intake=self._intake.qsize(), processed=self._counters["processed"],
                failed=self._counters["failed"], retried=self._counters["retried"],
                audio_seconds_done=self._audio_done,
                audio_seconds_waiting=sum(self._waiting_audio.values()),
                intake_audio_seconds=self._intake_audio, skipped_silent=self._skipped_silent,
                job_errors=self._job_errors, workers_alive=self._workers_alive(),
                intake_memory_seconds=self._intake_memory, intake_spilled=self._spilled,
                **_health_fields(self._health.stats()))

    def _workers_alive(self) -> int:
        return sum(1 for t in self._threads if t.name.startswith("scribe-worker") and t.is_alive())

    def is_idle(self) -> bool:
        with self._lock:
            return not self._queued and self._intake.unfinished() == 0

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Block until nothing is queued or in flight (True) or the timeout passes."""
        deadline = time.monotonic() + timeout
        if not self.flush_intake(timeout):
            return False
        with self._idle:
            while self._queued:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(min(remaining, 0.5))
        return True

    # -- workers ------------------------------------------------------------
    def _worker_loop(self) -> None:
        """Runs on `scribe-worker-N`. Nothing a job does can end this loop: every error is
        caught in `_run_job`, and the job is kept and run again later."""
        while (key := self._jobs.get()) is not None:
            if not self._health.wait_turn():
                break  # stopping during a storage outage; the row stays pending for the next start
            try:
                self._run_job(key)
            except BaseException:  # last line of defence: the job stays queued for a restart
                log.critical("session=%s seq=%d worker error outside the job", *key, exc_info=True)

    def _run_job(self, key: Key) -> None:
        with self._lock:
            self._in_flight += 1
        retry_in: float | None = None
        try:
            self._attempt(key)
            # Session bookkeeping before settling, so `wait_idle()` returning means it is visible.
            if self.storage.mark_done_if_drained(key[0]):
                self._emit("session_drained", session_id=key[0])
            self._health.succeeded()
        except Exception as exc:
            retry_in = self._job_failed(key, exc)
        finally:
            self._settle(key, retry_in)

    def _attempt(self, key: Key) -> None:
        """Store a held outcome, or run the job (releasing the chunk left `processing` by a
        failed run of this same job first)."""
        with self._lock:
            held = self._held.pop(key, None)
            rerun = key in self._rerun
        if held is not None:
            return self._store(key, held)
        if rerun:
            with self._lock:
                uncount = key in self._uncount
            self.storage.release_chunk(*key, uncount=uncount)
        self._process(*key)

    def _store(self, key: Key, write: Callable[[], None]) -> None:
        """Run a job's final write; if storage refuses it, keep it for the job's next run, so
        a transcription (maybe paid for) is not done twice because the disk was full."""
        try:
            write()
        except Exception as exc:
            if is_storage_fault(exc):
                with self._lock:
                    self._held[key] = write
            raise

    def _job_failed(self, key: Key, exc: Exception) -> float | None:
        """An error escaped a job: log it once and say when to run the job again.

        A storage fault pauses the whole queue (scribe.health) and costs no attempt. Any
        other error (a bug, bad data) counts as an attempt, is retried with backoff, and
        fails the chunk after `max_attempts`."""
        if is_storage_fault(exc):
            with self._lock:
                self._uncount.add(key)
            return self._health.failed(exc)
        with self._lock:
            self._job_errors += 1
            self._uncount.discard(key)
        log.error("session=%s seq=%d job error: %s", *key, exc, exc_info=exc)
        attempts = 1
        try:
            found = self.storage.chunk_attempts(*key)
            if found is None:
                return None  # the chunk was deleted meanwhile
            attempts = found
            if attempts >= self.options.max_attempts:
                self._fail(key, f"internal error: {type(exc).__name__}: {exc}"[:300], self.transcriber)
                return None
        except Exception as second:  # storage failing while recording the failure
            if is_storage_fault(second):
                return self._health.failed(second)
            log.error("session=%s seq=%d could not record the job error: %s", *key, second)
        self._health.release_probe()
        return min(self.options.retry_max_seconds, self.options.retry_base_seconds * 2 ** min(attempts, 10))

    def _settle(self, key: Key, retry_in: float | None = None) -> None:
        """The job is over (`retry_in` None) or will run again after `retry_in` seconds."""
        with self._idle:
            self._in_flight -= 1
            if retry_in is None:
                self._queued.discard(key)
                self._waiting_audio.pop(key, None)
                self._rerun.discard(key)
                self._uncount.discard(key)
            else:
                self._rerun.add(key)
            self._idle.notify_all()
        if retry_in is not None:
            self._requeue_later(key, retry_in)

    def _requeue_later(self, key: Key, delay: float) -> None:
        if delay <= 0 or not self._health.ok:  # an outage already delays every job at the gate
            self._jobs.put(key)
            return
        timer = threading.Timer(delay, self._jobs.put, args=(key,))
        timer.daemon = True
        timer.name = "scribe-requeue"
        timer.start()

    def _process(self, session_id: str, seq: int) -> None:
        with self._lock:
            job = self._job_options.pop((session_id, seq), _DEFAULT_JOB)
        backend = job.backend or self._backend
        row = self.storage.claim_chunk(session_id, seq, backend=backend.transcriber.name,
                                       model=backend.transcriber.model, now=self._clock())
        self._health.succeeded()  # the claim was a write: an outage is over, don't hold others back
        if row is None:
            return  # already done, failed or claimed: a duplicate delivery
        audio = read_flac(Path(row.audio_path))
        if job.check_speech and self._is_silent(audio):
            self._store((session_id, seq), lambda: self._save_silent(row, backend.transcriber, self._clock()))
            return
        context = NO_AUDIO if self._context is None else self._context.audio_before(self.storage, row, audio)
        try:
            result = self._transcribe_with_retries(row, audio, backend, context)
        except TranscriptionError as exc:
            self._fail((session_id, seq), str(exc), backend.transcriber)
            return
        rows = segments_from_backend(session_id, seq, row.start_ms, result.segments, chunk_end_ms=row.end_ms)
        finished_at = self._clock()

        def write() -> None:
            if self.storage.save_segments(session_id, seq, rows, finished_at=finished_at, usage=result.usage,
                                          model=result.model):
                self._record_done(row, len(rows), backend.transcriber)
            else:
                log.info("session=%s seq=%d deleted while transcribing; text discarded", session_id, seq)
        self._store((session_id, seq), write)

    def _save_silent(self, row: ChunkRow, transcriber: Transcriber, finished_at: float) -> None:
        if self.storage.save_silent_chunk(row.session_id, row.seq, finished_at=finished_at):
            with self._lock:
                self._skipped_silent += 1
            self._record_done(row, 0, transcriber)

    def _is_silent(self, audio: np.ndarray) -> bool:
        """True only when the speech check ran and found no speech; a broken check sends the audio."""
        if self._speech_check is None:
            return False
        try:
            return not self._speech_check(audio)
        except Exception:
            log.exception("speech check failed; transcribing the chunk anyway")
            return False

    def _record_done(self, row: ChunkRow, n_segments: int, transcriber: Transcriber) -> None:
        duration = (row.end_sample - row.start_sample) / SAMPLE_RATE
        with self._lock:
            self._counters["processed"] += 1
            self._audio_done += duration
        elapsed = self._clock() - (row.started_at or self._clock())
        log.info("session=%s seq=%d done: %d segments, %.2f s for %.2f s of audio",
                 row.session_id, row.seq, n_segments, elapsed, duration)
        self._emit("chunk_done", session_id=row.session_id, seq=row.seq, backend=transcriber.name,
                   processing_s=elapsed, duration_s=duration)

    def _fail(self, key: Key, error: str, transcriber: Transcriber) -> None:
        finished_at = self._clock()

        def write() -> None:
            self.storage.fail_chunk(key[0], key[1], error, finished_at=finished_at)
            with self._lock:
                self._counters["failed"] += 1
            log.error("session=%s seq=%d failed: %s", key[0], key[1], error)
            self._emit("chunk_failed", session_id=key[0], seq=key[1], backend=transcriber.name,
                       error=error)
        self._store(key, write)

    def _transcribe_with_retries(self, row: ChunkRow, audio: np.ndarray, backend: Backend,
                                 context: np.ndarray) -> Transcription:
        retrying = Retrying(
            stop=stop_after_attempt(self.options.max_attempts),
            wait=self._backoff,
            retry=retry_if_exception(_is_retryable),
            before_sleep=lambda state: self._note_retry(row, state, backend.transcriber),
            sleep=self._sleep,
            reraise=True,
        )
        vocabulary = self.storage.vocabulary_for(row.session_id)
        try:
            return retrying(self._call_backend, audio, backend, context, vocabulary)
        except TranscriptionError:
            raise
        except Exception as exc:  # an unexpected backend error, after its retries
            if is_storage_fault(exc):  # e.g. recording a retry on a full disk: the queue pauses
                raise
            raise TranscriptionError(f"{type(exc).__name__}: {exc}", retryable=False) from exc

    def _call_backend(self, audio: np.ndarray, backend: Backend, context: np.ndarray,
                      vocabulary: Sequence[str] = ()) -> Transcription:
        if backend.before_call is not None:
            backend.before_call()
        heard = audio if context.size == 0 else np.concatenate((context, audio))
        result = call_transcriber(backend.transcriber, heard, vocabulary)
        segments = list(result.segments)
        if self._segment_filter is not None:
            segments = self._segment_filter(segments, heard)
        if heard is not audio:
            segments = keep_own_segments(segments, (heard.size - audio.size) / SAMPLE_RATE)
        return Transcription(segments, result.usage, result.model or backend.transcriber.model)

    def _backoff(self, state: RetryCallState) -> float:
        """Exponential backoff with full jitter, never shorter than the server asked."""
        jittered = wait_random_exponential(multiplier=self.options.retry_base_seconds,
                                           max=self.options.retry_max_seconds)(state)
        exc = state.outcome.exception() if state.outcome else None
        server_delay = getattr(exc, "retry_after", None) or 0.0
        return max(jittered, min(server_delay, self.options.retry_max_seconds))

    def _note_retry(self, row: ChunkRow, state: RetryCallState, transcriber: Transcriber) -> None:
        exc = state.outcome.exception() if state.outcome else None
        message = f"{type(exc).__name__}: {exc}" if exc else "unknown error"
        self.storage.record_retry(row.session_id, row.seq, message)
        with self._lock:
            self._counters["retried"] += 1
        log.warning("session=%s seq=%d attempt %d failed, retrying in %.1f s: %s", row.session_id,
                    row.seq, state.attempt_number, state.next_action.sleep if state.next_action else 0,
                    message)
        self._emit("chunk_retry", session_id=row.session_id, seq=row.seq,
                   backend=transcriber.name, error=message)

    def audio_path(self, session_id: str, seq: int) -> Path:
        return self.audio_dir / session_id / f"{seq:06d}.flac"

    # -- running chunks again, possibly with another backend ---------------------
    def requeue(self, session_id: str, seqs: list[int] | None = None, *, backend: Backend | None = None,
                check_speech: bool = True) -> int:
        """Re-queue failed chunks (`seqs=None`) or the chosen failed/done ones.

        With `backend`, those jobs run on that transcriber (and its before_call)
        instead of the pipeline's; `check_speech=False` sends them even if the
        speech check would call them silent (a person asked for this chunk).
        Chunks still pending or processing are left alone. Returns how many were queued.
        """
        requeued = self.storage.requeue_failed(session_id, seqs)
        self.storage.clear_skip_reason(session_id, requeued)
        options = _JobOptions(backend=backend, check_speech=check_speech)
        for seq in requeued:
            if options != _DEFAULT_JOB:
                with self._lock:
                    self._job_options[(session_id, seq)] = options
            row = self.storage.get_chunk(session_id, seq)
            self._enqueue((session_id, seq), (row.end_sample - row.start_sample) / SAMPLE_RATE)
        name = (backend or self._backend).transcriber.name
        log.info("session=%s re-queued %d chunks for %s", session_id, len(requeued), name)
        return len(requeued)



def _health_fields(health: HealthStats) -> dict:
    return {"storage_ok": health.storage_ok, "storage_faults": health.storage_faults,
            "storage_down_s": health.storage_down_s, "storage_error": health.storage_error}


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, TranscriptionError):
        return exc.retryable
    # Anything unexpected (a crash inside a backend) gets the same bounded retries.
    return isinstance(exc, Exception)
