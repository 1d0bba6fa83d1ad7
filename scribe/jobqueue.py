"""The job queue: claims, worker threads, retries, re-queues and the queue's events.

A job is a chunk row that is `pending` (the intake, `scribe.intake`, stored it and
called `enqueue`). `scribe-worker-N` (N = max_concurrency) threads claim a job,
transcribe it (retrying retryable errors with exponential backoff and jitter via
tenacity, honouring a server-given delay), save its segments and mark it done in one
transaction. A worker's exception marks the chunk failed, never kills the worker. A
`None` sentinel per thread stops them.

Before a backend is called, `speech_check` (Silero VAD, `scribe.vad`) may find the
chunk silent: it is then stored done with no segments and the backend is never called.
A backend that `checks_speech` (remote workers, which have the audio decoded anyway) is
asked to run the check itself and runs no model on silence; a chunk it answers `silent`
is stored the same way (`skipped_silent`, `chunk_done`), so the app runs no check.
`before_call` runs before every backend call, retries included (the Gemini
requests-per-minute limit, `scribe.ratelimit`). A chunk can be re-queued with another
backend (`requeue(..., backend=Backend(...))`): the queue keeps its default transcriber
and runs just that job with the other. The voice windows a backend measured with the text
(a remote worker asked for them) are stored before `chunk_done`, and never fail the chunk.
`scribe.pipeline.Pipeline` composes this queue with the intake.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from scribe.audio import SAMPLE_RATE, read_flac
from scribe.core import ChunkRow, DecodeOptions, PackedWindows, Transcription
from scribe.errors import TranscriptionError
from scribe.health import StorageHealth, is_storage_fault
from scribe.noisy_context import NO_AUDIO, keep_own_segments
from scribe.pipeline_options import PipelineHooks, PipelineOptions
from scribe.storage import Storage, segments_from_backend
from scribe.transcribers.base import Transcriber, call_transcriber, checks_speech
from scribe.vad import found_silent

# One logger for the intake and the queue: operators filter the queue's lines by this name.
log = logging.getLogger("scribe.pipeline")

Key = tuple[str, int]
EventListener = Callable[[str, dict], None]


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

class JobQueue:
    """The queued jobs and the worker threads that run them. `enqueue` a stored chunk,
    `start()`, `request_stop()` then `join()`."""

    def __init__(
        self,
        storage: Storage,
        transcriber: Transcriber,
        *,
        health: StorageHealth,
        options: PipelineOptions = PipelineOptions(),
        hooks: PipelineHooks = PipelineHooks(),
    ) -> None:
        """`health` is shared with the intake: a storage outage pauses every thread there.
        Of `options`, the queue reads the threads (`max_concurrency`) and the retries."""
        self.storage = storage
        self.transcriber = transcriber
        self._workers = options.max_concurrency
        self._max_attempts = options.max_attempts
        self._retry_base_seconds = options.retry_base_seconds
        self._retry_max_seconds = options.retry_max_seconds
        self._context = hooks.context
        self._clock = hooks.clock
        self._sleep = hooks.sleep
        self._backend = Backend(transcriber, hooks.before_call)
        """The default job's backend; `requeue(..., backend=...)` runs chosen jobs on another."""
        self._segment_filter = hooks.segment_filter
        self._jobs: queue.Queue[Key | None] = queue.Queue()
        self._queued: set[Key] = set()
        self._waiting_audio: dict[Key, float] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._counters = {"processed": 0, "failed": 0, "retried": 0}
        self._audio_done = 0.0
        self._threads: list[threading.Thread] = []
        self._listeners: list[EventListener] = []
        self._speech_check = hooks.speech_check
        self._job_options: dict[Key, _JobOptions] = {}
        self._skipped_silent = 0
        self._health = health
        self._held: dict[Key, Callable[[], None]] = {}
        """Outcomes computed but not yet stored (storage was down): written on the job's next run."""
        self._rerun: set[Key] = set()
        """Jobs re-queued after an error; their chunk may still be `processing` from that run."""
        self._uncount: set[Key] = set()
        """Re-queued for a storage fault: that run's attempt does not count."""
        self._job_errors = 0

    # -- lifecycle ----------------------------------------------------------
    def start(self) -> None:
        """Start the worker threads."""
        for n in range(self._workers):
            thread = threading.Thread(target=self._worker_loop, name=f"scribe-worker-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def request_stop(self) -> None:
        """Ask every worker to stop after its current chunk."""
        for _ in range(self._workers):
            self._jobs.put(None)

    def join(self, deadline: float) -> None:
        """Wait for the workers until `deadline` (time.monotonic())."""
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []

    def add_listener(self, listener: EventListener) -> None:
        """Called (on the worker's thread) for `chunk_done`, `chunk_failed`, `chunk_retry`,
        `chunk_enqueued` and `session_drained` events; must not block."""
        self._listeners.append(listener)

    def emit(self, event: str, **fields: Any) -> None:
        """Tell every listener; a broken listener is logged and skipped."""
        for listener in self._listeners:
            try:
                listener(event, fields)
            except Exception:  # a broken listener must not break the queue
                log.exception("listener failed on %s", event)

    # -- queueing -----------------------------------------------------------
    def enqueue(self, key: Key, duration_s: float) -> None:
        """Queue a stored chunk (once: a key already queued is ignored)."""
        with self._lock:
            if key in self._queued:
                return
            self._queued.add(key)
            self._waiting_audio[key] = duration_s
        self._jobs.put(key)

    def end_session(self, session_id: str, status: str) -> None:
        """End a session; it becomes done here if its chunks are all transcribed already."""
        self.storage.end_session(session_id, status, now=self._clock())
        if self.storage.mark_done_if_drained(session_id):
            self.emit("session_drained", session_id=session_id)

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
            self.enqueue((row.session_id, row.seq), (row.end_sample - row.start_sample) / SAMPLE_RATE)
            count += 1
        if count:
            log.info("recovered %d unfinished chunks", count)
        return count

    # -- waiting and counters -----------------------------------------------
    def counters(self) -> dict[str, Any]:
        """The queue's fields of `PipelineStats`."""
        with self._lock:
            return dict(
                queued=len(self._queued) - self._in_flight, in_flight=self._in_flight,
                processed=self._counters["processed"],
                failed=self._counters["failed"], retried=self._counters["retried"],
                audio_seconds_done=self._audio_done,
                audio_seconds_waiting=sum(self._waiting_audio.values()),
                skipped_silent=self._skipped_silent,
                job_errors=self._job_errors, workers_alive=self._workers_alive())

    def _workers_alive(self) -> int:
        return sum(1 for t in self._threads if t.is_alive())

    def is_empty(self) -> bool:
        """True when nothing is queued or in flight."""
        with self._lock:
            return not self._queued

    def wait_empty(self, deadline: float) -> bool:
        """Block until nothing is queued or in flight (True) or `deadline` (time.monotonic()) passes."""
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
                self.emit("session_drained", session_id=key[0])
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
            if attempts >= self._max_attempts:
                self._fail(key, f"internal error: {type(exc).__name__}: {exc}"[:300], self.transcriber)
                return None
        except Exception as second:  # storage failing while recording the failure
            if is_storage_fault(second):
                return self._health.failed(second)
            log.error("session=%s seq=%d could not record the job error: %s", *key, second)
        self._health.release_probe()
        return min(self._retry_max_seconds, self._retry_base_seconds * 2 ** min(attempts, 10))

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
        check = job.check_speech and self._speech_check is not None
        if check and not checks_speech(backend.transcriber) and self._is_silent(audio):
            return self._store_silent(row, backend.transcriber)
        context = NO_AUDIO if self._context is None else self._context.audio_before(self.storage, row, audio)
        try:
            result = self._transcribe_with_retries(row, audio, backend, context, check_speech=check)
        except TranscriptionError as exc:
            self._fail((session_id, seq), str(exc), backend.transcriber)
            return
        if result.silent:  # the backend ran the speech check (a remote worker) and found none
            return self._store_silent(row, backend.transcriber)
        rows = segments_from_backend(session_id, seq, row.start_ms, result.segments, chunk_end_ms=row.end_ms)
        finished_at = self._clock()

        def write() -> None:
            if self.storage.save_segments(session_id, seq, rows, finished_at=finished_at, usage=result.usage,
                                          model=result.model):
                self._keep_voices(row, result.voices)
                self._record_done(row, len(rows), backend.transcriber)
            else:
                log.info("session=%s seq=%d deleted while transcribing; text discarded", session_id, seq)
        self._store((session_id, seq), write)

    def _keep_voices(self, row: ChunkRow, voices: PackedWindows | None) -> None:
        """Store the voice windows the backend measured with the text, before `chunk_done` tells
        the speaker labeler. They are extra: failing to store them never fails the chunk (the
        labeler then measures them itself)."""
        if voices is None:
            return
        try:
            self.storage.save_voice_windows(row.session_id, row.seq, replace(voices, offset_ms=row.start_ms))
        except Exception as exc:
            log.warning("session=%s seq=%d voice windows not stored (%s); the speaker labeler measures them",
                        row.session_id, row.seq, exc)

    def _store_silent(self, row: ChunkRow, transcriber: Transcriber) -> None:
        """A chunk the speech check found silent, here or on a worker: done with no segments,
        counted in `skipped_silent`, `chunk_done` like any other."""
        def write() -> None:
            if self.storage.save_silent_chunk(row.session_id, row.seq, finished_at=self._clock()):
                with self._lock:
                    self._skipped_silent += 1
                self._record_done(row, 0, transcriber)
        self._store((row.session_id, row.seq), write)

    def _is_silent(self, audio: np.ndarray) -> bool:
        """True only when the speech check ran here and found no speech; a broken check sends the audio."""
        return self._speech_check is not None and found_silent(audio, self._speech_check)

    def _record_done(self, row: ChunkRow, n_segments: int, transcriber: Transcriber) -> None:
        duration = (row.end_sample - row.start_sample) / SAMPLE_RATE
        with self._lock:
            self._counters["processed"] += 1
            self._audio_done += duration
        elapsed = self._clock() - (row.started_at or self._clock())
        log.info("session=%s seq=%d done: %d segments, %.2f s for %.2f s of audio",
                 row.session_id, row.seq, n_segments, elapsed, duration)
        self.emit("chunk_done", session_id=row.session_id, seq=row.seq, backend=transcriber.name,
                  processing_s=elapsed, duration_s=duration)

    def _fail(self, key: Key, error: str, transcriber: Transcriber) -> None:
        finished_at = self._clock()

        def write() -> None:
            self.storage.fail_chunk(key[0], key[1], error, finished_at=finished_at)
            with self._lock:
                self._counters["failed"] += 1
            log.error("session=%s seq=%d failed: %s", key[0], key[1], error)
            self.emit("chunk_failed", session_id=key[0], seq=key[1], backend=transcriber.name,
                      error=error)
        self._store(key, write)

    def _transcribe_with_retries(self, row: ChunkRow, audio: np.ndarray, backend: Backend,
                                 context: np.ndarray, *, check_speech: bool = False) -> Transcription:
        """The backend's answer, after retries; `check_speech` asks a backend that `checks_speech`
        to run the check on the chunk's own audio first."""
        retrying = Retrying(
            stop=stop_after_attempt(self._max_attempts),
            wait=self._backoff,
            retry=retry_if_exception(_is_retryable),
            before_sleep=lambda state: self._note_retry(row, state, backend.transcriber),
            sleep=self._sleep,
            reraise=True,
        )
        vocabulary = self.storage.vocabulary_for(row.session_id)
        options = self.storage.options_for(row.session_id)
        try:
            return retrying(self._call_backend, audio, backend, context, vocabulary, options, check_speech)
        except TranscriptionError:
            raise
        except Exception as exc:  # an unexpected backend error, after its retries
            if is_storage_fault(exc):  # e.g. recording a retry on a full disk: the queue pauses
                raise
            raise TranscriptionError(f"{type(exc).__name__}: {exc}", retryable=False) from exc

    def _call_backend(self, audio: np.ndarray, backend: Backend, context: np.ndarray,
                      vocabulary: Sequence[str] = (), options: DecodeOptions | None = None,
                      check_speech: bool = False) -> Transcription:
        if backend.before_call is not None:
            backend.before_call()
        heard = audio if context.size == 0 else np.concatenate((context, audio))
        result = call_transcriber(backend.transcriber, heard, vocabulary, options, voices_from=context.size,
                                  speech_from=context.size if check_speech else None)
        if result.silent:
            return result
        segments = list(result.segments)
        if self._segment_filter is not None:
            segments = self._segment_filter(segments, heard)
        if heard is not audio:
            segments = keep_own_segments(segments, (heard.size - audio.size) / SAMPLE_RATE)
        return Transcription(segments, result.usage, result.model or backend.transcriber.model, result.voices)

    def _backoff(self, state: RetryCallState) -> float:
        """Exponential backoff with full jitter, never shorter than the server asked."""
        jittered = wait_random_exponential(multiplier=self._retry_base_seconds,
                                           max=self._retry_max_seconds)(state)
        exc = state.outcome.exception() if state.outcome else None
        server_delay = getattr(exc, "retry_after", None) or 0.0
        return max(jittered, min(server_delay, self._retry_max_seconds))

    def _note_retry(self, row: ChunkRow, state: RetryCallState, transcriber: Transcriber) -> None:
        exc = state.outcome.exception() if state.outcome else None
        message = f"{type(exc).__name__}: {exc}" if exc else "unknown error"
        self.storage.record_retry(row.session_id, row.seq, message)
        with self._lock:
            self._counters["retried"] += 1
        log.warning("session=%s seq=%d attempt %d failed, retrying in %.1f s: %s", row.session_id,
                    row.seq, state.attempt_number, state.next_action.sleep if state.next_action else 0,
                    message)
        self.emit("chunk_retry", session_id=row.session_id, seq=row.seq,
                  backend=transcriber.name, error=message)

    # -- running chunks again, possibly with another backend ---------------------
    def requeue(self, session_id: str, seqs: list[int] | None = None, *, backend: Backend | None = None,
                check_speech: bool = True) -> int:
        """Re-queue failed chunks (`seqs=None`) or the chosen failed/done ones.

        With `backend`, those jobs run on that transcriber (and its before_call)
        instead of the queue's; `check_speech=False` sends them even if the
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
            self.enqueue((session_id, seq), (row.end_sample - row.start_sample) / SAMPLE_RATE)
        name = (backend or self._backend).transcriber.name
        log.info("session=%s re-queued %d chunks for %s", session_id, len(requeued), name)
        return len(requeued)


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, TranscriptionError):
        return exc.retryable
    # Anything unexpected (a crash inside a backend) gets the same bounded retries.
    return isinstance(exc, Exception)
