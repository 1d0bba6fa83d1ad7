"""The durable intake: a chunk becomes a stored, `pending` row, then a job.

A chunk is stored in two steps, in this order: its audio is written to
`<audio_dir>/<session>/<seq>.flac` (fsynced, renamed into place), then its row is
inserted `pending`. The row *is* the job, so a crash after both steps loses nothing
(the next start re-queues it) and a crash between them leaves only a file that a
resubmission overwrites or `adopt_orphan_audio` stores. Submitting the same
(session, seq) twice is a no-op. Each stored row is handed to `on_stored` (the
pipeline queues it as a job).

`scribe-writer-N` (N = writer_threads) threads take chunks from `submit_nowait` (the
live capture path) and make them durable, so the WebRTC thread never waits on disk or
DuckDB. A session always maps to the same writer, so its chunks and its end are
written in order; several writers overlap FLAC encoding and fsyncs across sessions
(one writer was the latency tail at 100 sessions). Audio waiting for a writer is
bounded in RAM; past the bound the feeder writes the chunk's files itself (a spill)
and only the row is left to the writer, so audio is never dropped.
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
from typing import Any, Callable, Sequence

from scribe.audio import write_flac_atomic
from scribe.chunking import Chunk
from scribe.core import ChunkRow
from scribe.errors import ScribeError
from scribe.health import StorageHealth
from scribe.noisy_context import NO_AUDIO
from scribe.pipeline_options import PipelineOptions
from scribe.storage import Storage

# One logger for the intake and the queue: operators filter the queue's lines by this name.
log = logging.getLogger("scribe.pipeline")


class _Shards:
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


class Intake:
    """Makes chunks durable: `submit` on the caller's thread, `submit_nowait` through
    the writer threads. `start()`, `request_stop()` then `join()`."""

    def __init__(
        self,
        storage: Storage,
        *,
        audio_dir: Path,
        health: StorageHealth,
        on_stored: Callable[[Chunk], None],
        options: PipelineOptions = PipelineOptions(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`on_stored` runs after a chunk's row is inserted (it queues the job); of `options`
        the intake reads the writer threads and the bounds on live audio held in RAM for them,
        in total and per session; `health` is shared with the job queue."""
        self.storage = storage
        self.audio_dir = Path(audio_dir)
        self._health = health
        self._on_stored = on_stored
        self._memory_bound = options.intake_memory_seconds
        self._session_bound = options.intake_session_seconds
        self._clock = clock
        self._intake = _Shards(max(1, options.writer_threads))
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._intake_error: BaseException | None = None
        self._intake_audio = 0.0
        # Live audio waiting for a writer is bounded in RAM, in total and per session;
        # past either bound `submit_nowait` writes the chunk's files itself (a spill).
        self._intake_memory = 0.0
        self._intake_by_session: dict[str, float] = {}
        self._spilled = 0
        self._room = threading.Condition(self._lock)

    # -- lifecycle ----------------------------------------------------------
    def start(self) -> None:
        """Start the writer threads."""
        for n, intake in enumerate(self._intake.queues):
            thread = threading.Thread(target=functools.partial(self._writer_loop, intake),
                                      name=f"scribe-writer-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def request_stop(self) -> None:
        """Ask the writers to stop once what was handed to them before is durable."""
        self._intake.put_all(None)

    def join(self, deadline: float) -> None:
        """Wait for the writers until `deadline` (time.monotonic())."""
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []

    def audio_path(self, session_id: str, seq: int) -> Path:
        """Where a chunk's audio lives."""
        return self.audio_dir / session_id / f"{seq:06d}.flac"

    def counters(self) -> dict[str, Any]:
        """The intake's fields of `PipelineStats`."""
        with self._lock:
            return dict(intake=self._intake.qsize(), intake_audio_seconds=self._intake_audio,
                        intake_memory_seconds=self._intake_memory, intake_spilled=self._spilled)

    def unfinished(self) -> int:
        """Chunks and steps handed to the writers and not yet done."""
        return self._intake.unfinished()

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
        self._on_stored(chunk)
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
        return (self._intake_memory + chunk.duration_s <= self._memory_bound and
                self._intake_by_session.get(chunk.session_id, 0.0) + chunk.duration_s
                <= self._session_bound) or self._intake_memory == 0

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

    def flush_intake(self, timeout: float = 30.0, session_id: str | None = None) -> bool:
        """Wait until every chunk given to `submit_nowait` is durable (with `session_id`: that
        session's chunks and the steps queued after them, e.g. its end). False on timeout."""
        if session_id is not None:
            reached = threading.Event()
            self.call_after_intake(reached.set, session_id)
            return reached.wait(timeout)
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
