"""What the Record page shows, as plain values: the live transcript (stored lines, then
partial text), the chunk table and the input level. Pure functions over rows, so they
are tested without Streamlit; `pages/record.py` and `pages/_live_text.py` draw them.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from scribe import backends
from scribe.core import ChunkRow, SegmentRow, SessionRow
from scribe.export import transcript_lines
from scribe.partials import LaneLoad, PartialText
from scribe.storage.database import ReadThrough
from scribe.timelabels import mmss

if TYPE_CHECKING:
    from scribe.capture import LiveRegistry
    from scribe.diarization import SpeakerLabeler
    from scribe.identity import Principal
    from scribe.pipeline import PipelineStats
    from scribe.storage import Storage

API_LIVE_SOURCE = "realtime"
"""The source of sessions a tool streams into the realtime socket (`scribe.realtime`)."""

LATENCY = "text after"
"""The chunk table's latency column: from the chunk's end to its stored text."""

POLICY_WORDS = {"pause": "cut at a pause near every {seconds:g} s", "fixed": "cut every {seconds:g} s",
                "quiet": "cut at the quietest moment near every {seconds:g} s", "whole": "in one piece"}


def setup_words(backend: str, model: str, policy: str, seconds: float) -> str:
    """The Record page's one line on how it transcribes, in words rather than setting values."""
    engine = backends.describe(backend, model)
    cutting = POLICY_WORDS.get(policy, policy + " {seconds:g} s").format(seconds=seconds)
    return f"Transcribed by {engine}; the audio is {cutting}."


def chunk_table(chunks: list[ChunkRow]) -> list[dict[str, Any]]:
    """One row per chunk for the page: time range, status, end-to-end latency once the
    chunk is settled (a waiting chunk has none yet), and attempts and error only when
    some chunk needed them."""
    troubled = any(c.error or c.attempts > 1 for c in chunks)
    rows = []
    for c in chunks:
        finished = c.finished_at if c.status in ("done", "failed") else None
        latency = finished - c.captured_at if finished and c.captured_at else None
        row = {"chunk": c.seq, "time": f"{mmss(c.start_ms)}-{mmss(c.end_ms)}",
               "status": c.status, LATENCY: "not yet" if latency is None else f"{latency:.1f} s"}
        if troubled:
            row.update({"attempts": c.attempts, "error": c.error or ""})
        rows.append(row)
    return rows


@dataclass(frozen=True)
class StoredText:
    """A session's stored transcript as the Record page shows it, built once per read of its
    segments (`StoredText.of`) and shared like the read: pages redraw the transcript four
    times a second, and building an hour's lines on each redraw would cost every viewer about
    12 ms of CPU a second."""

    segments: list[SegmentRow]
    text: str
    """The `transcript_lines`, one a line ('' when there are none)."""
    seqs: frozenset[int]
    """The chunks with stored segments (their partial text is no longer shown)."""

    @classmethod
    def of(cls, segments: list[SegmentRow]) -> StoredText:
        return cls(segments, "\n".join(transcript_lines(segments)), frozenset(s.seq for s in segments))


@dataclass(frozen=True)
class LiveTranscript:
    """What the Record page shows: the stored text, then partial lines (to be styled apart)."""

    stored: str
    partial: list[str]


def live_transcript(stored: StoredText, partials: list[PartialText]) -> LiveTranscript:
    """The stored `[m:ss] text` lines, then the partial text of chunks whose stored text has
    not arrived. Read the partials *before* the segments: a chunk stored in between
    then shows once (stored) rather than not at all."""
    partial = [f"[{mmss(p.start_ms)}] {p.text}" for p in partials if p.seq not in stored.seqs and p.text]
    return LiveTranscript(stored.text, partial)


UNMARKED_CHANGE_S = 5.0
"""How soon `StoredLines` and `ChunkRows` show a change their mark does not see (a line edited,
a row changed by another process). Their marks move with every write this process's pipeline
makes, so a live session's words and chunks show at the next redraw whatever this is; it only
sets how often an unchanged session is read again for every page watching it (once a second,
three reads a second per watched session cost more than a viewer's own redraws)."""


class StoredLines(ReadThrough):
    """The stored transcript of live sessions, read from the database and built into the
    page's text (`StoredText`) once per change for every page showing it: each open Record
    page redraws its transcript four times a second while a session records, and the stored
    lines change only when one of its chunks is stored. Callers check that their viewer may
    read the session first (`ReadableSessions`): the text is keyed by session alone.

    `transcript(storage, session_id, mark)` reads and builds again when `mark` differs from
    the last read's (`stored_mark`: the pipeline's count of finished chunks, which moves
    before a chunk's partial text is dropped, so a stored chunk never goes missing between the
    two, and the speaker labeler's) or the last read is older than `max_age_s` (an edit of a
    stored line also shows)."""

    def __init__(self, max_age_s: float = UNMARKED_CHANGE_S, sessions: int = 64,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(max_age_s, sessions, clock)

    def transcript(self, storage: Storage, session_id: str, mark: object) -> StoredText:
        return self._read_through((id(storage), session_id), mark,
                                  lambda: StoredText.of(storage.list_segments(session_id)))

    def count(self, storage: Storage, session_id: str, mark: object) -> int:
        """How many segments the session has stored (the status line's), from the same read
        as its lines: the transcript fragment beside it has usually made that read already."""
        return len(self.transcript(storage, session_id, mark).segments)


def stored_mark(stats: PipelineStats, speakers: SpeakerLabeler | None = None) -> tuple[int, int, int]:
    """`StoredLines`' mark: the chunks whose text was stored or failed, counted after the write,
    and the speaker labeler's requests handled (it names a chunk's speakers after its text)."""
    return stats.processed, stats.failed, speakers.handled if speakers is not None else 0


class ChunkRows(ReadThrough):
    """A session's chunk rows for the Record page's status line and chunk table, read from
    the database once per change for every page showing them: each open page asks twice a
    second, and the rows change only when a chunk is stored, claimed, retried or settled.

    `chunks(storage, session_id, mark)` reads again when `mark` moved (`chunk_mark`) or the
    last read is older than `max_age_s`: a row changed past this process's pipeline shows
    within it."""

    def __init__(self, max_age_s: float = UNMARKED_CHANGE_S, sessions: int = 64,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(max_age_s, sessions, clock)

    def chunks(self, storage: Storage, session_id: str, mark: object) -> list[ChunkRow]:
        """The rows in order; shared by every caller, so never changed in place."""
        return self._read_through((id(storage), session_id), mark,
                                  lambda: storage.list_chunks(session_id))


def chunk_mark(stats: PipelineStats) -> tuple[int, ...]:
    """`ChunkRows`' mark: it moves with every step of a chunk's row in this pipeline. A new
    row is queued after it is written; a retry, a done and a failed chunk are counted after
    their write; a claim (pending -> processing) moves a job in flight just before its write,
    so a read in that moment keeps `pending` for at most `max_age_s`. A job's errors are
    counted too: a job ending in one leaves the in-flight count where it was before."""
    return stats.queued, stats.in_flight, stats.processed, stats.failed, stats.retried, stats.job_errors


class ReadableSessions(ReadThrough):
    """Session rows as pages show them, each read at most once per `max_age_s` for all the
    pages asking with the same principal: a Record page's fragments ask for the shown session
    up to six times a second while it records (the transcript four times, the status and the
    chunk table once each), and each read is a query with the access check. A title, status
    or share changed meanwhile shows within `max_age_s`."""

    def __init__(self, max_age_s: float = 1.0, entries: int = 256,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(max_age_s, entries, clock)

    def find(self, storage: Storage, session_id: str, principal: Principal) -> SessionRow | None:
        """The session if `principal` may read it (`Storage.find_readable_session`), else None."""
        return self._read_through((id(storage), session_id, principal), None,
                                  lambda: storage.find_readable_session(session_id, principal))


def live_words_note(load: LaneLoad | None, recording: int) -> str | None:
    """Before Start: a sentence when a new recording would be past the live sessions the
    partial lane can give live words to (None when it fits, or partials are off)."""
    if load is None or load.capacity is None or recording < load.capacity:
        return None
    return (f"This server is recording {recording} session(s) and shows live words for about "
            f"{load.capacity} at once. A new recording still records and is transcribed chunk by "
            "chunk, but its live words will lag.")


def level_fraction(dbfs: float, floor_db: float = -60.0) -> float:
    """An input level in dBFS as 0..1 for a meter (floor_db and below read as empty)."""
    return float(np.clip((dbfs - floor_db) / -floor_db, 0.0, 1.0))


def api_live_sessions(registry: LiveRegistry, storage: Storage, principal: Principal,
                      rows: ReadableSessions | None = None) -> list[SessionRow]:
    """The sessions a tool streams into the realtime socket now that `principal` may read
    (`scribe.access`: their own, and what is shared with them; everything for an
    administrator or the local user), newest first. The Record page offers these to watch
    (its rows through `rows`, when given)."""
    find = storage.find_readable_session if rows is None else functools.partial(rows.find, storage)
    sessions = (find(sid, principal) for sid in registry.session_ids())
    live = [s for s in sessions if s is not None and s.source == API_LIVE_SOURCE]
    return sorted(live, key=lambda s: (s.created_at, s.id), reverse=True)
