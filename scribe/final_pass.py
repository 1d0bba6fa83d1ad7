"""The final pass: after a session stops, transcribe the whole recording in one go.

Live chunks are short so text appears quickly; each cut costs the model some
context. Once a session is stopped and every chunk is settled, the final pass
reassembles the chunk FLACs into the full recording, transcribes it in one
long-context call and stores the result as the session's `final` transcript.
The `live` transcript is never touched, so both can be compared (the lab does).

Threads: the pipeline's `session_drained` event arrives on a worker thread and
only queues the session id. One daemon thread `scribe-final-pass` does the
work, and only while the pipeline is idle, so live chunks always go first: on
the local model one long call would otherwise hold the CPU for a while.
"""

from __future__ import annotations

import bisect
import logging
import queue
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from scribe.audio import SAMPLE_RATE, read_flac
from scribe.config import Settings
from scribe.errors import AudioDecodeError
from scribe.hallucination import guard_segments
from scribe.storage import FINAL, SegmentRow, Storage, segments_from_backend
from scribe.transcribers.base import Segment, Transcriber

log = logging.getLogger("scribe.final_pass")

SegmentFilter = Callable[[list[Segment], np.ndarray], list[Segment]]


def final_pass_enabled(settings: Settings) -> bool:
    """On by default for the local backend (free, and it matches whole-file WER).

    Not for Gemini: one long request per meeting costs money and may exceed the
    request size limit; its live chunks are already long-context enough.
    """
    return settings.final_pass and settings.backend == "local"


def session_audio(storage: Storage, session_id: str) -> np.ndarray:
    """The session's recording rebuilt from its chunk files (silence where one is missing)."""
    chunks = storage.list_chunks(session_id)
    total = max((c.end_sample for c in chunks), default=0)
    audio = np.zeros(total, dtype=np.float32)
    for chunk in chunks:
        path = Path(chunk.audio_path)
        try:
            pcm = read_flac(path)
        except (AudioDecodeError, OSError, RuntimeError) as exc:
            log.warning("session=%s seq=%d audio unreadable (%s); silence in the final pass",
                        session_id, chunk.seq, exc)
            continue
        span = min(pcm.size, chunk.end_sample - chunk.start_sample)
        audio[chunk.start_sample:chunk.start_sample + span] = pcm[:span]
    return audio


def run_final_pass(storage: Storage, transcriber: Transcriber, session_id: str, *,
                   segment_filter: SegmentFilter | None = guard_segments) -> list[SegmentRow]:
    """Transcribe the whole session once and store it as the `final` transcript.

    Runs on the calling thread and blocks for the length of one long backend call.
    Each final segment is filed under the chunk its start falls in, so pages can
    line the two transcripts up.
    """
    audio = session_audio(storage, session_id)
    segments = list(transcriber.transcribe(audio)) if audio.size else []
    if segment_filter is not None:
        segments = segment_filter(segments, audio)
    rows = _file_under_chunks(storage, session_id, segments, audio.size)
    if not storage.replace_transcript(session_id, FINAL, rows):
        log.info("session=%s deleted during its final pass; result discarded", session_id)
        return []
    log.info("session=%s final pass: %d segments over %.1f s", session_id, len(rows),
             audio.size / SAMPLE_RATE)
    return rows


def _file_under_chunks(storage: Storage, session_id: str, segments: list[Segment],
                       n_samples: int) -> list[SegmentRow]:
    chunks = storage.list_chunks(session_id)
    starts = [c.start_ms for c in chunks] or [0]
    seqs = [c.seq for c in chunks] or [0]
    rows = segments_from_backend(session_id, 0, 0, segments, chunk_end_ms=n_samples * 1000 // SAMPLE_RATE,
                                 transcript=FINAL)
    next_idx: dict[int, int] = {}
    for row in rows:
        row.seq = seqs[max(0, bisect.bisect_right(starts, row.start_ms) - 1)]
        row.idx = next_idx.get(row.seq, 0)
        next_idx[row.seq] = row.idx + 1
    return rows


class FinalPass:
    """Runs `run_final_pass` for each stopped, drained session on its own thread."""

    def __init__(self, storage: Storage, transcriber: Transcriber, *, is_idle: Callable[[], bool] = lambda: True,
                 poll_seconds: float = 0.5, segment_filter: SegmentFilter | None = guard_segments) -> None:
        self.storage = storage
        self.transcriber = transcriber
        self._is_idle = is_idle
        self._poll = poll_seconds
        self._segment_filter = segment_filter
        self._requests: queue.Queue[str | None] = queue.Queue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.completed: list[str] = []
        self.errors: dict[str, str] = {}
        self._listeners: list[Callable[[str], None]] = []

    def attach(self, pipeline) -> "FinalPass":
        """Listen to the pipeline's events and wait for its queue before each pass."""
        self._is_idle = pipeline.is_idle
        pipeline.add_listener(self.on_event)
        return self.start()

    def start(self) -> "FinalPass":
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="scribe-final-pass", daemon=True)
            self._thread.start()
        return self

    def on_event(self, event: str, fields: dict) -> None:
        """Pipeline listener; runs on a worker thread, so it only queues the session."""
        if event == "session_drained":
            self.request(fields["session_id"])

    def add_listener(self, listener: Callable[[str], None]) -> None:
        """Called with the session id on `scribe-final-pass` after a pass is stored; must not block."""
        self._listeners.append(listener)

    def _stored(self, session_id: str) -> None:
        self.completed.append(session_id)
        for listener in self._listeners:
            try:
                listener(session_id)
            except Exception:  # a broken listener must not stop the passes
                log.exception("session=%s final pass listener failed", session_id)

    def request(self, session_id: str) -> None:
        """Queue a final pass; it runs only if the session is stopped with no open chunks."""
        self._requests.put(session_id)

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._requests.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wait_idle(self, timeout: float = 120.0) -> bool:
        """Block until every queued request is handled (tests, CLI)."""
        deadline = time.monotonic() + timeout
        while self._requests.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.05)
        return self._requests.unfinished_tasks == 0

    def _loop(self) -> None:
        while (session_id := self._requests.get()) is not None:
            try:
                if self._wait_for_quiet_queue() and self._ready(session_id):
                    run_final_pass(self.storage, self.transcriber, session_id,
                                   segment_filter=self._segment_filter)
                    self._stored(session_id)
            except Exception as exc:  # the live transcript stands; the error is kept and logged
                log.exception("session=%s final pass failed", session_id)
                self.errors[session_id] = f"{type(exc).__name__}: {exc}"
            finally:
                self._requests.task_done()
        self._requests.task_done()

    def _wait_for_quiet_queue(self) -> bool:
        """Live chunks first: wait while the pipeline has work (False if stopping)."""
        while not self._is_idle():
            if self._stopping.wait(self._poll):
                return False
        return not self._stopping.is_set()

    def _ready(self, session_id: str) -> bool:
        session = self.storage.find_session(session_id)
        if session is None or session.status not in ("stopped", "done"):
            return False  # still recording: drained only for now
        counts = self.storage.chunk_counts(session_id)
        return counts["pending"] == 0 and counts["processing"] == 0 and counts["done"] > 0
