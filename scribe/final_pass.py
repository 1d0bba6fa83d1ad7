"""The final pass: after a session stops, re-decode the recording with the final model.

Live chunks are short so text appears quickly; each cut costs the model some
context, and the live model may be a small one. Once a session is stopped and
every chunk is settled, the final pass re-decodes the stored chunk FLACs in long
windows (at most WINDOW_SECONDS each, so memory stays bounded however long the
session) with SCRIBE_FINAL_MODEL, and stores the result as the session's `final`
transcript. Where a window's re-decode is less sure of itself than the live text,
or heard nothing, the live segments are kept (flagged `kept_live`): measured on
conversational speech, a re-decode can make text worse. The `live` transcript is
never touched, so both can be compared and a reader can choose.

Threads: the pipeline's `session_drained` event arrives on a worker thread and
only queues the session id. One daemon thread `scribe-final-pass` does the
work, and only while the pipeline is idle, so live chunks always go first: on
the local model one long call would otherwise hold the CPU for a while.
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from scribe import backends
from scribe.audio import SAMPLE_RATE, read_flac_range
from scribe.background import RequestThread
from scribe.config import Settings
from scribe.core import FINAL, LIVE, ChunkRow, DecodeOptions, Segment, SegmentRow
from scribe.errors import AudioDecodeError
from scribe.hallucination import SegmentFilter, guard_segments
from scribe.models import weaker
from scribe.storage import Storage, segments_from_backend
from scribe.transcribers.base import Transcriber, call_transcriber

log = logging.getLogger("scribe.final_pass")

WINDOW_SECONDS = 120.0
"""Longest stretch decoded at once: ~7.7 MB of audio however long the session is.
Windows end on stored chunk boundaries (pauses, with the default policy); inside
a window faster-whisper keeps its own 30 s long-form context."""
KEEP_LIVE_MARGIN = 0.0
"""A window keeps its live text when the re-decode's mean confidence is below the
live text's by more than this (see BENCHMARKS.md for the measurements behind it)."""
KEPT_LIVE = "kept_live"
"""Flag on final-transcript segments copied from the live transcript by the rule."""


def final_pass_enabled(settings: Settings) -> bool:
    """On by default for a backend running Whisper here (`whisper_here` in the registry), when the
    final model is not smaller than the live one.

    Not for Gemini: one long request per meeting costs money and its live chunks
    are already long-context enough. Not with a smaller model than the live one:
    that re-decode measured worse than the live text (BENCHMARKS.md).
    """
    return (settings.final_pass and backends.runs_whisper_here(settings.backend)
            and not weaker(settings.final_model, settings.whisper_model))


def session_audio(storage: Storage, session_id: str) -> np.ndarray:
    """The whole recording in memory (the lab's stored-session export; the final pass reads windows)."""
    chunks = storage.list_chunks(session_id)
    return window_audio(chunks, 0, max((c.end_sample for c in chunks), default=0))


@dataclass
class FinalPassReport:
    """What one final pass did: windows re-decoded, and how many kept their live text."""

    session_id: str
    rows: list[SegmentRow]
    windows: int
    kept_live: int
    audio_seconds: float


def run_final_pass(storage: Storage, transcriber: Transcriber, session_id: str, *,
                   segment_filter: SegmentFilter | None = guard_segments,
                   window_seconds: float = WINDOW_SECONDS,
                   keep_live_margin: float | None = KEEP_LIVE_MARGIN) -> list[SegmentRow]:
    """Re-decode the session window by window and store the result as the `final` transcript.

    Runs on the calling thread. Memory is bounded by one window of audio, never the
    whole recording. Where a window's re-decode is less sure of itself than the live
    text (`keep_live_margin`; None = always take the re-decode), the live segments
    are kept, flagged `kept_live`: the final pass never silently makes text worse.
    Each final segment is filed under the chunk its start falls in.
    """
    return final_pass_report(storage, transcriber, session_id, segment_filter=segment_filter,
                             window_seconds=window_seconds, keep_live_margin=keep_live_margin).rows


def final_pass_report(storage: Storage, transcriber: Transcriber, session_id: str, *,
                      segment_filter: SegmentFilter | None = guard_segments,
                      window_seconds: float = WINDOW_SECONDS,
                      keep_live_margin: float | None = KEEP_LIVE_MARGIN) -> FinalPassReport:
    """`run_final_pass` returning what it did (windows, how many kept the live text)."""
    chunks = storage.list_chunks(session_id)
    decoded = decode_windows(transcriber, chunks, window_seconds=window_seconds,
                             segment_filter=segment_filter, vocabulary=storage.vocabulary_for(session_id),
                             options=storage.options_for(session_id))
    segments, kept = choose_per_window(decoded, storage.list_segments(session_id, LIVE), keep_live_margin)
    total = max((c.end_sample for c in chunks), default=0)
    rows = _file_under_chunks(session_id, chunks, segments, total)
    if not storage.replace_transcript(session_id, FINAL, rows):
        log.info("session=%s deleted during its final pass; result discarded", session_id)
        return FinalPassReport(session_id, [], len(decoded), kept, total / SAMPLE_RATE)
    log.info("session=%s final pass: %d segments over %.1f s in %d windows, %d kept live",
             session_id, len(rows), total / SAMPLE_RATE, len(decoded), kept)
    return FinalPassReport(session_id, rows, len(decoded), kept, total / SAMPLE_RATE)


@dataclass
class DecodedWindow:
    start_sample: int
    end_sample: int
    segments: list[Segment]
    """Re-decoded segments, times in session seconds."""


def decode_windows(transcriber: Transcriber, chunks: Sequence[ChunkRow], *,
                   window_seconds: float = WINDOW_SECONDS,
                   segment_filter: SegmentFilter | None = guard_segments,
                   vocabulary: Sequence[str] = (), options: DecodeOptions | None = None) -> list[DecodedWindow]:
    """Re-decode the session one window at a time (only one window's audio in memory), with the
    words and decode options its chunks had."""
    return [DecodedWindow(start, end, _decode_window(transcriber, chunks, start, end, segment_filter,
                                                     vocabulary, options))
            for start, end in plan_windows(chunks, int(window_seconds * SAMPLE_RATE))]


def choose_per_window(windows: Sequence[DecodedWindow], live: Sequence[SegmentRow],
                      keep_live_margin: float | None) -> tuple[list[Segment], int]:
    """The final text: each window's re-decode, or its live segments where the rule keeps them.

    Returns (segments in session seconds, number of windows that kept their live text).
    """
    segments: list[Segment] = []
    kept = 0
    for window in windows:
        lo, hi = window.start_sample * 1000, window.end_sample * 1000
        window_live = [r for r in live if lo <= r.start_ms * SAMPLE_RATE < hi]
        if keep_live_margin is not None and _keep_live(window.segments, window_live, keep_live_margin):
            segments += [_live_as_segment(r) for r in window_live]
            kept += 1
        else:
            segments += [replace(s) for s in window.segments]
    return segments, kept


def plan_windows(chunks: Sequence[ChunkRow], max_samples: int) -> list[tuple[int, int]]:
    """(start, end) sample ranges covering the chunks, each at most `max_samples` long.

    Consecutive chunks are grouped while they fit; a chunk longer than a window
    (the `whole` policy) is split into equal pieces.
    """
    windows: list[tuple[int, int]] = []
    start: int | None = None
    end = 0
    for chunk in sorted(chunks, key=lambda c: c.start_sample):
        if start is not None and chunk.end_sample - start > max_samples:
            windows.append((start, end))
            start = None
        if start is None:
            start = chunk.start_sample
        end = chunk.end_sample
        if end - start > max_samples:
            pieces = -(-(end - start) // max_samples)
            step = -(-(end - start) // pieces)
            windows += [(s, min(s + step, end)) for s in range(start, end, step)]
            start = None
    if start is not None:
        windows.append((start, end))
    return windows


def window_audio(chunks: Sequence[ChunkRow], start: int, end: int) -> np.ndarray:
    """Samples [start, end) of the session, read only from the chunk files that overlap it.

    A missing or unreadable chunk file is silence (and a warning), never a failed pass.
    """
    audio = np.zeros(max(0, end - start), dtype=np.float32)
    for chunk in chunks:
        lo, hi = max(start, chunk.start_sample), min(end, chunk.end_sample)
        if lo >= hi:
            continue
        try:
            pcm = read_flac_range(Path(chunk.audio_path), lo - chunk.start_sample, hi - chunk.start_sample)
        except (AudioDecodeError, OSError, RuntimeError) as exc:
            log.warning("session=%s seq=%d audio unreadable (%s); silence in the final pass",
                        chunk.session_id, chunk.seq, exc)
            continue
        audio[lo - start:lo - start + pcm.size] = pcm[:hi - lo]
    return audio


def _decode_window(transcriber: Transcriber, chunks: Sequence[ChunkRow], start: int, end: int,
                   segment_filter: SegmentFilter | None, vocabulary: Sequence[str] = (),
                   options: DecodeOptions | None = None) -> list[Segment]:
    """The window's segments in session time (seconds)."""
    audio = window_audio(chunks, start, end)
    segments = list(call_transcriber(transcriber, audio, vocabulary, options).segments) if audio.size else []
    if segment_filter is not None:
        segments = segment_filter(segments, audio)
    offset = start / SAMPLE_RATE
    for seg in segments:
        seg.shift(offset)
    return segments


def _keep_live(decoded: list[Segment], live: list[SegmentRow], margin: float) -> bool:
    """The rule: keep live text where the re-decode is less confident than it, or found nothing."""
    if not live:
        return False
    if not decoded:
        return True  # the re-decode lost words the live lane heard
    new = _mean_confidence([(s.end - s.start, s.confidence) for s in decoded])
    old = _mean_confidence([((r.end_ms - r.start_ms) / 1000, r.confidence) for r in live])
    return new is not None and old is not None and new + margin < old


def _mean_confidence(spans: list[tuple[float, float | None]]) -> float | None:
    """Duration-weighted mean confidence (None when the backend reports none)."""
    known = [(max(d, 0.01), c) for d, c in spans if c is not None]
    if not known:
        return None
    return sum(d * c for d, c in known) / sum(d for d, _c in known)


def _live_as_segment(row: SegmentRow) -> Segment:
    flags = list(row.flags) + ([KEPT_LIVE] if KEPT_LIVE not in row.flags else [])
    return Segment(row.start_ms / 1000, row.end_ms / 1000, row.text, speaker=row.speaker,
                   confidence=row.confidence, no_speech_prob=row.no_speech_prob, flags=flags,
                   words=list(row.words))


def _file_under_chunks(session_id: str, chunks: Sequence[ChunkRow], segments: list[Segment],
                       n_samples: int) -> list[SegmentRow]:
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


class FinalPass(RequestThread[str]):
    """Runs `run_final_pass` for each stopped, drained session on its own thread."""

    thread_name = "scribe-final-pass"

    def __init__(self, storage: Storage, transcriber: Transcriber, *, is_idle: Callable[[], bool] = lambda: True,
                 poll_seconds: float = 0.5, segment_filter: SegmentFilter | None = guard_segments) -> None:
        super().__init__(is_idle=is_idle, poll_seconds=poll_seconds)
        self.storage = storage
        self.transcriber = transcriber
        self._segment_filter = segment_filter
        self.completed: list[str] = []
        self.errors: dict[str, str] = {}
        self._listeners: list[Callable[[str], None]] = []

    def attach(self, pipeline) -> "FinalPass":
        """Listen to the pipeline's events and wait for its queue before each pass."""
        self._is_idle = pipeline.is_idle
        pipeline.add_listener(self.on_event)
        return self.start()

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
        self.put(session_id)

    def handle(self, session_id: str) -> None:
        try:
            if self.wait_for_quiet() and self._ready(session_id):
                run_final_pass(self.storage, self.transcriber, session_id,
                               segment_filter=self._segment_filter)
                if self.storage.find_session(session_id) is not None:  # not deleted meanwhile
                    self._stored(session_id)
        except Exception as exc:  # the live transcript stands; the error is kept and logged
            log.exception("session=%s final pass failed", session_id)
            self.errors[session_id] = f"{type(exc).__name__}: {exc}"

    def _ready(self, session_id: str) -> bool:
        session = self.storage.find_session(session_id)
        if session is None or session.status not in ("stopped", "done"):
            return False  # still recording: drained only for now
        counts = self.storage.chunk_counts(session_id)
        return counts["pending"] == 0 and counts["processing"] == 0 and counts["done"] > 0
