"""DuckDB storage: the schema, its migrations, and every query the app runs.

One `Storage` owns the process's single DuckDB connection (DuckDB allows one
writing process per file). Each thread reads through its own cursor; writes are
serialised by a lock and run inside `transaction()`, so a chunk's segments and
its status change commit together or not at all.

Times are epoch seconds (DOUBLE) for arithmetic on the chunk timeline;
positions in a session are milliseconds (`*_ms`) and exact samples (`*_sample`).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import duckdb

from scribe.core import (CHUNK_STATUSES, LIVE, SESSION_STATUSES, ChunkRow, Segment, SegmentRow,
                         SessionRow, SpeakerRow, SummaryRow, Usage)
from scribe.errors import NotFoundError, ScribeError


def _m1_initial(cur: duckdb.DuckDBPyConnection) -> None:
    cur.execute("""
        CREATE TABLE sessions (
            id VARCHAR PRIMARY KEY, title VARCHAR NOT NULL, source VARCHAR NOT NULL,
            status VARCHAR NOT NULL, backend VARCHAR NOT NULL, model VARCHAR NOT NULL,
            chunk_seconds DOUBLE NOT NULL, chunk_policy VARCHAR NOT NULL,
            created_at DOUBLE NOT NULL, ended_at DOUBLE, duration_ms BIGINT NOT NULL DEFAULT 0)""")
    cur.execute("""
        CREATE TABLE chunks (
            session_id VARCHAR NOT NULL, seq INTEGER NOT NULL,
            start_ms BIGINT NOT NULL, end_ms BIGINT NOT NULL,
            start_sample BIGINT NOT NULL, end_sample BIGINT NOT NULL,
            audio_path VARCHAR NOT NULL, status VARCHAR NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, error VARCHAR,
            captured_at DOUBLE, enqueued_at DOUBLE, started_at DOUBLE, finished_at DOUBLE,
            backend VARCHAR, model VARCHAR,
            input_tokens BIGINT NOT NULL DEFAULT 0, output_tokens BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (session_id, seq))""")
    cur.execute("""
        CREATE TABLE segments (
            session_id VARCHAR NOT NULL, transcript VARCHAR NOT NULL DEFAULT 'live',
            seq INTEGER NOT NULL, idx INTEGER NOT NULL,
            start_ms BIGINT NOT NULL, end_ms BIGINT NOT NULL, text VARCHAR NOT NULL,
            speaker VARCHAR, confidence DOUBLE, no_speech_prob DOUBLE, flags VARCHAR,
            PRIMARY KEY (session_id, transcript, seq, idx))""")
    cur.execute("""
        CREATE TABLE summaries (
            session_id VARCHAR NOT NULL, version INTEGER NOT NULL, created_at DOUBLE NOT NULL,
            backend VARCHAR NOT NULL, model VARCHAR, text VARCHAR NOT NULL,
            key_points VARCHAR, action_items VARCHAR, details VARCHAR,
            PRIMARY KEY (session_id, version))""")
    cur.execute("CREATE INDEX sessions_by_created ON sessions (created_at)")
    cur.execute("CREATE INDEX chunks_by_status ON chunks (status)")
    cur.execute("CREATE INDEX segments_by_session ON segments (session_id)")


def _m_chunk_skip_reason(cur: duckdb.DuckDBPyConnection) -> None:
    """Chunks stored empty without calling the backend say why."""
    cur.execute("ALTER TABLE chunks ADD COLUMN skip_reason VARCHAR")


def _m_lab_runs(cur: duckdb.DuckDBPyConnection) -> None:
    """Chunking-lab results: one row per policy run, grouped by experiment."""
    cur.execute("""
        CREATE TABLE lab_runs (
            id VARCHAR PRIMARY KEY, experiment VARCHAR NOT NULL, created_at DOUBLE NOT NULL,
            audio_label VARCHAR NOT NULL, audio_seconds DOUBLE NOT NULL, policy VARCHAR NOT NULL,
            backend VARCHAR NOT NULL, model VARCHAR NOT NULL, wer DOUBLE NOT NULL,
            chunks INTEGER NOT NULL, mean_chunk_s DOUBLE NOT NULL, latency_s DOUBLE NOT NULL,
            processing_s DOUBLE NOT NULL, calls INTEGER NOT NULL, cost_usd DOUBLE NOT NULL,
            words_lost INTEGER NOT NULL, words_duplicated INTEGER NOT NULL,
            reference_words INTEGER NOT NULL, hypothesis VARCHAR NOT NULL)""")
    cur.execute("CREATE INDEX lab_runs_by_created ON lab_runs (created_at)")


def _m_partial_decodes(cur: duckdb.DuckDBPyConnection) -> None:
    """Statistics of the partial lane (its text is never stored): one row per decode."""
    cur.execute("""
        CREATE TABLE partial_decodes (
            session_id VARCHAR NOT NULL, seq INTEGER NOT NULL, produced_at DOUBLE NOT NULL,
            audio_end_ms BIGINT NOT NULL, lag_s DOUBLE NOT NULL, decode_s DOUBLE NOT NULL,
            words INTEGER NOT NULL, coalesced INTEGER NOT NULL, paused INTEGER NOT NULL)""")
    cur.execute("CREATE INDEX partial_decodes_by_session ON partial_decodes (session_id)")


def _m_webhook_events(cur: duckdb.DuckDBPyConnection) -> None:
    """The webhook outbox: an event is stored before it is sent, so a restart resends it."""
    cur.execute("""
        CREATE TABLE webhook_events (
            id VARCHAR PRIMARY KEY, event VARCHAR NOT NULL, session_id VARCHAR NOT NULL,
            payload VARCHAR NOT NULL, created_at DOUBLE NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at DOUBLE NOT NULL, delivered_at DOUBLE, failed_at DOUBLE,
            last_error VARCHAR)""")


def _m_speakers(cur: duckdb.DuckDBPyConnection) -> None:
    """Speaker labels: the voices of each session, each segment's speaker, the expected count."""
    cur.execute("""
        CREATE TABLE speakers (
            session_id VARCHAR NOT NULL, id INTEGER NOT NULL, name VARCHAR NOT NULL,
            centroid FLOAT[], seconds DOUBLE NOT NULL DEFAULT 0,
            PRIMARY KEY (session_id, id))""")
    cur.execute("""
        CREATE TABLE diarization (
            session_id VARCHAR PRIMARY KEY, expected_speakers INTEGER,
            stage VARCHAR NOT NULL DEFAULT 'live', updated_at DOUBLE)""")
    cur.execute("ALTER TABLE segments ADD COLUMN speaker_id INTEGER")


def _m_segment_edits(cur: duckdb.DuckDBPyConnection) -> None:
    """A person's corrections, kept beside the machine text: re-transcription and the
    final pass rewrite `segments`, never this table."""
    cur.execute("""
        CREATE TABLE segment_edits (
            session_id VARCHAR NOT NULL, transcript VARCHAR NOT NULL, seq INTEGER NOT NULL,
            idx INTEGER NOT NULL, text VARCHAR NOT NULL, edited_at DOUBLE NOT NULL,
            PRIMARY KEY (session_id, transcript, seq, idx))""")


MIGRATIONS: list[tuple[str, Callable[[duckdb.DuckDBPyConnection], None]]] = [
    ("initial schema", _m1_initial),
    ("chunks.skip_reason", _m_chunk_skip_reason),
    ("lab runs", _m_lab_runs),
    ("partial decodes", _m_partial_decodes),
    ("webhook events", _m_webhook_events),
    ("speakers", _m_speakers),
    ("segment edits", _m_segment_edits),
]
"""Ordered; the position (1-based) is the version recorded in `schema_version`."""


class Storage:
    """The one owner of the DuckDB file. Safe to share between threads."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(self.path)
        except duckdb.Error as exc:
            raise ScribeError(f"cannot open database {self.path}: {exc}") from None
        self._write_lock = threading.RLock()
        self._local = threading.local()
        self.migrate()

    def close(self) -> None:
        self._con.close()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor (DuckDB connections are not shared across threads)."""
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._local.cursor = self._con.cursor()
        return cur

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Serialised write transaction: commits on success, rolls back on error."""
        with self._write_lock:
            cur = self.cursor()
            cur.execute("BEGIN TRANSACTION")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cur = self.cursor().execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    def _scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.cursor().execute(sql, params).fetchone()
        return row[0] if row else None

    # -- migrations ---------------------------------------------------------
    def migrate(self) -> int:
        """Apply pending migrations in order; return the schema version."""
        with self.transaction() as cur:
            cur.execute("""CREATE TABLE IF NOT EXISTS schema_version (
                version INTEGER PRIMARY KEY, name VARCHAR, applied_at DOUBLE)""")
            current = cur.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
            for version, (name, migration) in enumerate(MIGRATIONS, start=1):
                if version > current:
                    migration(cur)
                    cur.execute("INSERT INTO schema_version VALUES (?, ?, ?)", [version, name, time.time()])
        return len(MIGRATIONS)

    def schema_version(self) -> int:
        return int(self._scalar("SELECT max(version) FROM schema_version"))

    # -- sessions -----------------------------------------------------------
    def create_session(self, *, title: str, source: str, backend: str, model: str,
                       chunk_seconds: float, chunk_policy: str, session_id: str | None = None,
                       status: str = "recording", now: float | None = None) -> SessionRow:
        row = SessionRow(id=session_id or new_session_id(), title=title.strip() or "Untitled",
                         source=source, status=status, backend=backend, model=model,
                         chunk_seconds=chunk_seconds, chunk_policy=chunk_policy,
                         created_at=now if now is not None else time.time())
        with self.transaction() as cur:
            cur.execute("""INSERT INTO sessions (id, title, source, status, backend, model,
                chunk_seconds, chunk_policy, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                        [row.id, row.title, row.source, row.status, row.backend, row.model,
                         row.chunk_seconds, row.chunk_policy, row.created_at])
        return row

    def get_session(self, session_id: str) -> SessionRow:
        rows = self._rows("SELECT * FROM sessions WHERE id = ?", [session_id])
        if not rows:
            raise NotFoundError(f"no session {session_id!r}")
        return SessionRow(**rows[0])

    def find_session(self, session_id: str) -> SessionRow | None:
        try:
            return self.get_session(session_id)
        except NotFoundError:
            return None

    def list_sessions(self, *, limit: int = 50, offset: int = 0, statuses: Sequence[str] = (),
                      since: float | None = None, until: float | None = None,
                      hide_no_speech: bool = False) -> list[SessionRow]:
        """Newest first; `id` breaks ties so paging is stable. `hide_no_speech` leaves out
        finished sessions in which nothing was said (see NO_SPEECH_SQL)."""
        where, params = _session_filters(statuses, since, until, hide_no_speech)
        rows = self._rows(f"SELECT * FROM sessions {where} ORDER BY created_at DESC, id DESC "
                          "LIMIT ? OFFSET ?", [*params, limit, offset])
        return [SessionRow(**r) for r in rows]

    def count_sessions(self, *, statuses: Sequence[str] = (), since: float | None = None,
                       until: float | None = None, hide_no_speech: bool = False) -> int:
        where, params = _session_filters(statuses, since, until, hide_no_speech)
        return int(self._scalar(f"SELECT count(*) FROM sessions {where}", params))

    def update_session(self, session_id: str, **fields: Any) -> None:
        allowed = {"title", "status", "ended_at", "duration_ms", "backend", "model"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"cannot update session fields {sorted(unknown)}")
        if fields.get("status") not in (None, *SESSION_STATUSES):
            raise ValueError(f"bad session status {fields['status']!r}")
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self.transaction() as cur:
            cur.execute(f"UPDATE sessions SET {assignments} WHERE id = ?", [*fields.values(), session_id])

    def end_session(self, session_id: str, status: str, *, now: float | None = None) -> None:
        """Mark a session stopped or interrupted and record its duration from its chunks."""
        duration = self._scalar("SELECT coalesce(max(end_ms), 0) FROM chunks WHERE session_id = ?",
                                [session_id])
        self.update_session(session_id, status=status, ended_at=now or time.time(),
                            duration_ms=int(duration))

    def mark_done_if_drained(self, session_id: str) -> bool:
        """A stopped session whose chunks are all settled becomes done; True if it just did."""
        with self.transaction() as cur:
            open_chunks = cur.execute("""SELECT count(*) FROM chunks WHERE session_id = ?
                AND status IN ('pending', 'processing')""", [session_id]).fetchone()[0]
            if open_chunks:
                return False
            changed = cur.execute("""UPDATE sessions SET status = 'done'
                WHERE id = ? AND status = 'stopped' RETURNING id""", [session_id]).fetchall()
            return bool(changed)

    def resume_point(self, session_id: str) -> tuple[int, int]:
        """(next seq, next start sample) for continuing a session."""
        row = self.cursor().execute("""SELECT coalesce(max(seq) + 1, 0), coalesce(max(end_sample), 0)
            FROM chunks WHERE session_id = ?""", [session_id]).fetchone()
        return int(row[0]), int(row[1])

    def delete_session(self, session_id: str) -> None:
        self.get_session(session_id)
        with self.transaction() as cur:
            for table, key in (("segments", "session_id"), ("segment_edits", "session_id"),
                               ("chunks", "session_id"), ("summaries", "session_id"),
                               ("partial_decodes", "session_id"), ("speakers", "session_id"),
                               ("diarization", "session_id"), ("sessions", "id")):
                cur.execute(f"DELETE FROM {table} WHERE {key} = ?", [session_id])

    # -- chunks -------------------------------------------------------------
    def insert_chunk(self, row: ChunkRow) -> bool:
        """Insert a pending chunk; False (and nothing changed) if it already exists."""
        with self.transaction() as cur:
            exists = cur.execute("SELECT 1 FROM chunks WHERE session_id = ? AND seq = ?",
                                 [row.session_id, row.seq]).fetchone()
            if exists:
                return False
            cur.execute("""INSERT INTO chunks (session_id, seq, start_ms, end_ms, start_sample,
                end_sample, audio_path, status, captured_at, enqueued_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)""",
                        [row.session_id, row.seq, row.start_ms, row.end_ms, row.start_sample,
                         row.end_sample, row.audio_path, row.captured_at, row.enqueued_at])
            return True

    def chunk_exists(self, session_id: str, seq: int) -> bool:
        return self._scalar("SELECT count(*) FROM chunks WHERE session_id = ? AND seq = ?",
                            [session_id, seq]) > 0

    def get_chunk(self, session_id: str, seq: int) -> ChunkRow:
        rows = self._rows("SELECT * FROM chunks WHERE session_id = ? AND seq = ?", [session_id, seq])
        if not rows:
            raise NotFoundError(f"no chunk {seq} in session {session_id!r}")
        return ChunkRow(**rows[0])

    def list_chunks(self, session_id: str) -> list[ChunkRow]:
        rows = self._rows("SELECT * FROM chunks WHERE session_id = ? ORDER BY seq", [session_id])
        return [ChunkRow(**r) for r in rows]

    def claim_chunk(self, session_id: str, seq: int, *, backend: str, model: str,
                    now: float) -> ChunkRow | None:
        """Move a pending chunk to processing and count the attempt; None if not pending."""
        with self.transaction() as cur:
            updated = cur.execute("""UPDATE chunks SET status = 'processing', started_at = ?,
                attempts = attempts + 1, backend = ?, model = ?
                WHERE session_id = ? AND seq = ? AND status = 'pending' RETURNING seq""",
                                  [now, backend, model, session_id, seq]).fetchall()
        return self.get_chunk(session_id, seq) if updated else None

    def record_retry(self, session_id: str, seq: int, error: str) -> None:
        """A retryable failure: keep the chunk processing, count the attempt, keep the error."""
        with self.transaction() as cur:
            cur.execute("""UPDATE chunks SET attempts = attempts + 1, error = ?
                WHERE session_id = ? AND seq = ?""", [error, session_id, seq])

    def save_segments(self, session_id: str, seq: int, segments: Sequence[SegmentRow], *,
                      finished_at: float, usage: Usage | None = None, model: str | None = None) -> bool:
        """Replace the chunk's live segments and mark it done, in one transaction.

        `usage` is this call's tokens; `model` the model that answered (None keeps the
        one recorded when the chunk was claimed).

        Returns False and writes nothing when the chunk no longer exists (its session
        was deleted or discarded while it was being transcribed): deletes are final."""
        usage = usage or Usage()
        with self.transaction() as cur:
            marked = cur.execute("""UPDATE chunks SET status = 'done', finished_at = ?, error = NULL,
                input_tokens = ?, output_tokens = ?, model = coalesce(?, model)
                WHERE session_id = ? AND seq = ? RETURNING seq""",
                                 [finished_at, usage.input_tokens, usage.output_tokens, model, session_id,
                                  seq]).fetchall()
            if not marked:
                return False
            cur.execute("DELETE FROM segments WHERE session_id = ? AND seq = ? AND transcript = 'live'",
                        [session_id, seq])
            _insert_segments(cur, segments)
        return True

    def fail_chunk(self, session_id: str, seq: int, error: str, *, finished_at: float) -> None:
        with self.transaction() as cur:
            cur.execute("""UPDATE chunks SET status = 'failed', error = ?, finished_at = ?
                WHERE session_id = ? AND seq = ?""", [error, finished_at, session_id, seq])

    def requeue_failed(self, session_id: str, seqs: Sequence[int] | None = None) -> list[int]:
        """Failed (or chosen) chunks back to pending; returns their seqs."""
        condition = "status = 'failed'" if seqs is None else \
            f"seq IN ({', '.join('?' * len(seqs))}) AND status IN ('failed', 'done')"
        params = [session_id] if seqs is None else [session_id, *seqs]
        if seqs is not None and not seqs:
            return []
        with self.transaction() as cur:
            rows = cur.execute(f"""UPDATE chunks SET status = 'pending', error = NULL
                WHERE session_id = ? AND {condition} RETURNING seq""", params).fetchall()
            cur.execute("UPDATE sessions SET status = 'stopped' WHERE id = ? AND status = 'done'",
                        [session_id])
        return sorted(r[0] for r in rows)

    def reset_unfinished(self, session_ids: Sequence[str] | None = None) -> list[ChunkRow]:
        """After a restart: processing chunks back to pending; return every pending chunk
        (of the given sessions only, when `session_ids` is given)."""
        if session_ids is not None and not session_ids:
            return []
        where = "" if session_ids is None else f" AND {_in_clause('session_id', session_ids)}"
        params = [] if session_ids is None else list(session_ids)
        with self.transaction() as cur:
            cur.execute(f"UPDATE chunks SET status = 'pending' WHERE status = 'processing'{where}", params)
        rows = self._rows(f"SELECT * FROM chunks WHERE status = 'pending'{where} ORDER BY enqueued_at, seq",
                          params)
        return [ChunkRow(**r) for r in rows]

    def count_open_chunks(self, *, excluding: Sequence[str] = ()) -> int:
        """Chunks pending or processing, outside the given sessions."""
        where = f" AND NOT {_in_clause('session_id', excluding)}" if excluding else ""
        return int(self._scalar(f"""SELECT count(*) FROM chunks
            WHERE status IN ('pending', 'processing'){where}""", list(excluding)))

    def release_chunk(self, session_id: str, seq: int, *, uncount: bool = False) -> bool:
        """A `processing` chunk whose job will run again goes back to `pending`; with
        `uncount` its last attempt is taken back (it failed for a storage outage, not the
        chunk). True if it was processing."""
        with self.transaction() as cur:
            rows = cur.execute(f"""UPDATE chunks SET status = 'pending'
                {', attempts = greatest(attempts - 1, 0)' if uncount else ''}
                WHERE session_id = ? AND seq = ? AND status = 'processing' RETURNING seq""",
                               [session_id, seq]).fetchall()
        return bool(rows)

    def chunk_attempts(self, session_id: str, seq: int) -> int | None:
        """Attempts counted so far, or None if the chunk no longer exists."""
        value = self._scalar("SELECT attempts FROM chunks WHERE session_id = ? AND seq = ?",
                             [session_id, seq])
        return None if value is None else int(value)

    def chunk_counts(self, session_id: str) -> dict[str, int]:
        rows = self.cursor().execute("""SELECT status, count(*) FROM chunks WHERE session_id = ?
            GROUP BY status""", [session_id]).fetchall()
        counts = {status: 0 for status in CHUNK_STATUSES}
        counts.update({status: int(n) for status, n in rows})
        return counts

    # -- segments -----------------------------------------------------------
    def list_segments(self, session_id: str, transcript: str = LIVE) -> list[SegmentRow]:
        """One transcript in order, as readers see it: a person's edit replaces the machine
        text (kept in `machine_text`), so search, summaries and exports agree; `speaker` is
        the speaker's current name (see SPEAKER_NAME)."""
        rows = self._rows(f"""SELECT g.* EXCLUDE (text, speaker),
                CASE WHEN e.text IS NOT NULL THEN g.text END AS machine_text,
                coalesce(e.text, g.text) AS text, {SPEAKER_NAME} AS speaker
            FROM segments g LEFT JOIN segment_edits e USING (session_id, transcript, seq, idx) {SPEAKER_JOIN}
            WHERE g.session_id = ? AND g.transcript = ? ORDER BY g.seq, g.idx""", [session_id, transcript])
        return [_segment_row(r) for r in rows]

    def edit_segment(self, session_id: str, transcript: str, seq: int, idx: int, text: str, *,
                     now: float | None = None) -> None:
        """Store a person's text for one segment; text equal to the machine's removes the edit."""
        clean = " ".join(text.split())
        if not clean:
            raise ScribeError("a transcript line cannot be empty; undo the edit instead")
        machine = self._scalar("""SELECT text FROM segments WHERE session_id = ? AND transcript = ?
            AND seq = ? AND idx = ?""", [session_id, transcript, seq, idx])
        if machine is None:
            raise NotFoundError(f"no segment {seq}.{idx} in the {transcript} transcript of {session_id!r}")
        if clean == " ".join(machine.split()):
            self.undo_edit(session_id, transcript, seq, idx)
            return
        with self.transaction() as cur:
            cur.execute("""INSERT OR REPLACE INTO segment_edits (session_id, transcript, seq, idx, text,
                edited_at) VALUES (?, ?, ?, ?, ?, ?)""",
                        [session_id, transcript, seq, idx, clean, now if now is not None else time.time()])

    def undo_edit(self, session_id: str, transcript: str, seq: int, idx: int) -> bool:
        """Back to the machine text; True if there was an edit."""
        with self.transaction() as cur:
            gone = cur.execute("""DELETE FROM segment_edits WHERE session_id = ? AND transcript = ?
                AND seq = ? AND idx = ? RETURNING seq""", [session_id, transcript, seq, idx]).fetchall()
        return bool(gone)

    def replace_transcript(self, session_id: str, transcript: str, segments: Sequence[SegmentRow]) -> bool:
        """Swap a whole non-live transcript (e.g. the final pass) in one transaction.

        Returns False and writes nothing when the session no longer exists (deleted
        during a final pass): deletes are final."""
        if transcript == LIVE:
            raise ValueError("the live transcript is written chunk by chunk")
        with self.transaction() as cur:
            if not cur.execute("SELECT 1 FROM sessions WHERE id = ?", [session_id]).fetchone():
                return False
            cur.execute("DELETE FROM segments WHERE session_id = ? AND transcript = ?",
                        [session_id, transcript])
            _insert_segments(cur, segments)
        return True

    # -- silent chunks, failures, re-transcription, token usage -----------------
    def save_silent_chunk(self, session_id: str, seq: int, *, finished_at: float) -> bool:
        """The speech check found no speech: done, no segments, no tokens, backend not called.
        False (nothing written) when the chunk no longer exists."""
        with self.transaction() as cur:
            marked = cur.execute("""UPDATE chunks SET status = 'done', finished_at = ?, error = NULL,
                input_tokens = 0, output_tokens = 0, skip_reason = 'silence'
                WHERE session_id = ? AND seq = ? RETURNING seq""", [finished_at, session_id, seq]).fetchall()
            if not marked:
                return False
            cur.execute("DELETE FROM segments WHERE session_id = ? AND seq = ? AND transcript = 'live'",
                        [session_id, seq])
        return True

    def clear_skip_reason(self, session_id: str, seqs: Sequence[int]) -> None:
        """Chunks about to run again lose their old skip mark."""
        if not seqs:
            return
        with self.transaction() as cur:
            cur.execute(f"""UPDATE chunks SET skip_reason = NULL WHERE session_id = ?
                AND seq IN ({', '.join('?' * len(seqs))})""", [session_id, *seqs])

    def failed_chunks(self, session_id: str) -> list[ChunkRow]:
        rows = self._rows("""SELECT * FROM chunks WHERE session_id = ? AND status = 'failed'
            ORDER BY seq""", [session_id])
        return [ChunkRow(**r) for r in rows]

    def session_usage(self, session_id: str) -> list[dict[str, Any]]:
        """Tokens per (backend, model) for a session's settled chunks, for the cost estimate.

        Each row: backend, model, chunks, audio_seconds, input_tokens, output_tokens,
        silent_chunks. Chunks store the tokens of their latest successful call.
        """
        return self._rows("""SELECT coalesce(backend, '?') AS backend, coalesce(model, '?') AS model,
                count(*) AS chunks, sum(end_sample - start_sample) / 16000.0 AS audio_seconds,
                sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
                count(*) FILTER (WHERE skip_reason IS NOT NULL) AS silent_chunks
            FROM chunks WHERE session_id = ? AND status IN ('done', 'failed')
            GROUP BY ALL ORDER BY backend, model""", [session_id])

    # -- live sessions: browser recording, orphans at start-up -----------------
    def interrupt_orphaned_recordings(self, *, now: float | None = None) -> list[str]:
        """At app start: sessions still `recording` lost their process; mark them
        `interrupted` (their stored chunks are transcribed as usual). Returns their ids."""
        ids = [r[0] for r in self.cursor().execute(
            "SELECT id FROM sessions WHERE status = 'recording' ORDER BY created_at").fetchall()]
        for session_id in ids:
            self.end_session(session_id, "interrupted", now=now)
        return ids

    def interrupt_orphans_once(self, *, now: float | None = None) -> list[str]:
        """`interrupt_orphaned_recordings`, once per Storage (per database file per process):
        a second Runtime on the same database must not end this process's live sessions."""
        with self._write_lock:
            if getattr(self, "_orphans_checked", False):
                return []
            self._orphans_checked = True
        return self.interrupt_orphaned_recordings(now=now)

    def resumable_sessions(self, *, source: str = "mic", limit: int = 20,
                           include_recording: bool = False) -> list[SessionRow]:
        """Recent sessions of `source` that can be continued (not currently recording).

        `include_recording` keeps sessions still marked recording, for a caller that knows
        which captures are live (a capture stopped a moment ago ends on the writer thread)."""
        status = "" if include_recording else "AND status <> 'recording'"
        rows = self._rows(f"""SELECT * FROM sessions WHERE source = ? {status}
            ORDER BY created_at DESC, id DESC LIMIT ?""", [source, limit])
        return [SessionRow(**r) for r in rows]

    # -- history, search and summaries ----------------------------------------
    def chunk_counts_many(self, session_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """Chunk counts by status for a page of sessions, in one query (not one per row)."""
        counts = {sid: {status: 0 for status in CHUNK_STATUSES} for sid in session_ids}
        if not session_ids:
            return counts
        rows = self.cursor().execute(f"""SELECT session_id, status, count(*) FROM chunks
            WHERE {_in_clause('session_id', session_ids)}
            GROUP BY session_id, status""", list(session_ids)).fetchall()
        for sid, status, n in rows:
            counts[sid][status] = int(n)
        return counts

    def no_speech_sessions(self, session_ids: Sequence[str]) -> set[str]:
        """Which of these sessions are finished with nothing said (NO_SPEECH_SQL), in one query."""
        if not session_ids:
            return set()
        rows = self.cursor().execute(f"""SELECT id FROM sessions WHERE {_in_clause('id', session_ids)}
            AND {NO_SPEECH_SQL}""", list(session_ids)).fetchall()
        return {r[0] for r in rows}

    def repeated_live_segments(self, session_ids: Sequence[str]) -> int:
        """Live segment rows that repeat another row of the same chunk (0 when writes are idempotent)."""
        if not session_ids:
            return 0
        return int(self._scalar(f"""SELECT count(*) - count(DISTINCT (session_id, seq, start_ms, end_ms, text))
            FROM segments WHERE transcript = 'live' AND {_in_clause('session_id', session_ids)}""",
                                list(session_ids)))

    def transcript_counts(self, session_id: str) -> dict[str, int]:
        """Segments per stored transcript ('live', 'final') of one session."""
        rows = self.cursor().execute("""SELECT transcript, count(*) FROM segments
            WHERE session_id = ? GROUP BY transcript""", [session_id]).fetchall()
        return {name: int(n) for name, n in rows}

    def search_segments(self, *, like: Sequence[str], regex: Sequence[str], limit: int = 50,
                        offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Segments matching every ILIKE pattern (escape char backslash) and every regex, any case.

        Each session is searched in the transcript a reader sees: 'final' where it
        exists, else 'live'. Newest session first, then time in the session; the
        full key makes paging stable. Returns (one page of hits, total hits).
        """
        if not like and not regex:
            return [], 0
        conditions = [r"g.text ILIKE ? ESCAPE '\'" for _ in like]
        conditions += ["regexp_matches(g.text, ?, 'i')" for _ in regex]
        # A person's edit is what a reader sees, so it is what search matches.
        edited = """(SELECT g.session_id, g.transcript, g.seq, g.idx, g.start_ms, g.end_ms, g.speaker,
                g.speaker_id, coalesce(e.text, g.text) AS text
            FROM segments g LEFT JOIN segment_edits e USING (session_id, transcript, seq, idx))"""
        # Match first (cheap ILIKE before the regex), then keep the transcript a reader sees;
        # the window count gives the total in the same scan.
        base = f"""WITH hits AS (SELECT g.* FROM {edited} g WHERE {' AND '.join(conditions)})
            SELECT h.session_id, s.title, s.created_at, h.transcript, h.seq, h.idx, h.start_ms, h.end_ms,
                   h.text, {SPEAKER_NAME.replace('g.', 'h.')} AS speaker, count(*) OVER () AS total
            FROM hits h JOIN sessions s ON s.id = h.session_id {SPEAKER_JOIN.replace('g.', 'h.')}
            WHERE h.transcript = 'final' OR h.session_id NOT IN
                  (SELECT session_id FROM segments WHERE transcript = 'final')"""
        params = [*like, *regex]
        rows = self._rows(f"""{base} ORDER BY s.created_at DESC, h.session_id DESC, h.start_ms, h.seq, h.idx
            LIMIT ? OFFSET ?""", [*params, limit, offset])
        if rows:
            total = int(rows[0]["total"])
        else:  # past the last page (or nothing at all): count without paging
            total = int(self._scalar(f"SELECT count(*) FROM ({base})", params)) if offset else 0
        for row in rows:
            del row["total"]
        return rows, total

    def add_summary(self, session_id: str, *, backend: str, model: str | None, text: str,
                    key_points: Sequence[Any], action_items: Sequence[Any], details: dict[str, Any],
                    now: float | None = None) -> SummaryRow:
        """Store a new summary version (1, 2, ...); earlier versions are kept."""
        self.get_session(session_id)
        created = now if now is not None else time.time()
        with self.transaction() as cur:
            version = cur.execute("SELECT coalesce(max(version), 0) + 1 FROM summaries WHERE session_id = ?",
                                  [session_id]).fetchone()[0]
            cur.execute("""INSERT INTO summaries (session_id, version, created_at, backend, model, text,
                key_points, action_items, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                        [session_id, version, created, backend, model, text, json.dumps(list(key_points)),
                         json.dumps(list(action_items)), json.dumps(details)])
        return SummaryRow(session_id, int(version), created, backend, model, text, list(key_points),
                          list(action_items), dict(details))

    def list_summaries(self, session_id: str) -> list[SummaryRow]:
        """Every stored summary version of a session, newest first."""
        rows = self._rows("SELECT * FROM summaries WHERE session_id = ? ORDER BY version DESC", [session_id])
        return [_summary_row(r) for r in rows]

    # -- chunking lab ------------------------------------------------------
    LAB_RUN_FIELDS = ("id", "experiment", "created_at", "audio_label", "audio_seconds", "policy",
                      "backend", "model", "wer", "chunks", "mean_chunk_s", "latency_s",
                      "processing_s", "calls", "cost_usd", "words_lost", "words_duplicated",
                      "reference_words", "hypothesis")

    def save_lab_run(self, run: dict[str, Any]) -> None:
        """Store one policy run (keys: LAB_RUN_FIELDS; `id` and `created_at` filled if missing)."""
        row = {"id": uuid.uuid4().hex, "created_at": time.time(), **run}
        values = [row[name] for name in self.LAB_RUN_FIELDS]
        with self.transaction() as cur:
            cur.execute(f"INSERT INTO lab_runs ({', '.join(self.LAB_RUN_FIELDS)}) "
                        f"VALUES ({', '.join('?' * len(values))})", values)

    def list_lab_runs(self, *, limit: int = 200, experiment: str | None = None) -> list[dict[str, Any]]:
        """Newest first (runs of one experiment in the order they ran)."""
        where, params = ("WHERE experiment = ?", [experiment]) if experiment else ("", [])
        return self._rows(f"SELECT * FROM lab_runs {where} ORDER BY created_at DESC, id LIMIT ?",
                          [*params, limit])

    # -- webhook outbox ----------------------------------------------------
    def add_webhook_event(self, event: str, session_id: str, payload: dict[str, Any], *,
                          now: float | None = None) -> str:
        """Store an event to send (due at once); returns its id."""
        event_id = uuid.uuid4().hex
        created = now if now is not None else time.time()
        with self.transaction() as cur:
            cur.execute("""INSERT INTO webhook_events (id, event, session_id, payload, created_at,
                next_attempt_at) VALUES (?, ?, ?, ?, ?, ?)""",
                        [event_id, event, session_id, json.dumps(payload), created, created])
        return event_id

    def due_webhook_events(self, *, now: float, limit: int = 20) -> list[dict[str, Any]]:
        """Unsent, not given up, due by `now`; oldest first, payload decoded."""
        rows = self._rows("""SELECT * FROM webhook_events WHERE delivered_at IS NULL AND failed_at IS NULL
            AND next_attempt_at <= ? ORDER BY next_attempt_at, created_at LIMIT ?""", [now, limit])
        for row in rows:
            row["payload"] = json.loads(row["payload"])
        return rows

    def next_webhook_attempt(self) -> float | None:
        """When the earliest unsent event is due (None when nothing waits)."""
        return self._scalar("""SELECT min(next_attempt_at) FROM webhook_events
            WHERE delivered_at IS NULL AND failed_at IS NULL""")

    def settle_webhook_event(self, event_id: str, *, now: float, error: str | None = None,
                             retry_at: float | None = None) -> None:
        """One attempt's outcome: delivered (no error), retry at `retry_at`, or given up."""
        with self.transaction() as cur:
            if error is None:
                cur.execute("""UPDATE webhook_events SET attempts = attempts + 1, delivered_at = ?,
                    last_error = NULL WHERE id = ?""", [now, event_id])
            elif retry_at is not None:
                cur.execute("""UPDATE webhook_events SET attempts = attempts + 1, next_attempt_at = ?,
                    last_error = ? WHERE id = ?""", [retry_at, error, event_id])
            else:
                cur.execute("""UPDATE webhook_events SET attempts = attempts + 1, failed_at = ?,
                    last_error = ? WHERE id = ?""", [now, error, event_id])

    def list_webhook_events(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first, payload decoded (tests, diagnostics)."""
        rows = self._rows("SELECT * FROM webhook_events ORDER BY created_at DESC LIMIT ?", [limit])
        for row in rows:
            row["payload"] = json.loads(row["payload"])
        return rows

    def session_text(self, session_id: str, transcript: str = LIVE) -> str:
        """One transcript of a session as plain text, in order (for WER)."""
        rows = self.cursor().execute("""SELECT text FROM segments WHERE session_id = ?
            AND transcript = ? ORDER BY seq, idx""", [session_id, transcript]).fetchall()
        return " ".join(r[0] for r in rows)

    # -- analytics: the chunk timeline as a frame -----------------------------
    def chunk_timings(self, *, session_ids: Sequence[str] = (), backends: Sequence[str] = (),
                      models: Sequence[str] = (), since: float | None = None,
                      until: float | None = None, limit: int = 200_000) -> "pandas.DataFrame":  # noqa: F821
        """Every chunk's timeline joined with its session, newest chunks first.

        Returns a pandas DataFrame (DuckDB builds it column-wise, which stays fast
        at 100k+ rows where a list of dicts would not). `since`/`until` filter on
        the chunk's `captured_at`; `limit` bounds what a page ever loads.
        """
        clauses, params = _timing_filters(session_ids, backends, models, since, until)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        sql = f"""SELECT c.session_id, s.title, s.source, c.seq, c.start_ms, c.end_ms,
                c.start_sample, c.end_sample, c.status, c.attempts, c.error,
                c.captured_at, c.enqueued_at, c.started_at, c.finished_at,
                coalesce(c.backend, s.backend) AS backend, coalesce(c.model, s.model) AS model
            FROM chunks c JOIN sessions s ON s.id = c.session_id {where}
            ORDER BY c.captured_at DESC NULLS LAST, c.session_id, c.seq LIMIT ?"""
        return self.cursor().execute(sql, [*params, limit]).df()

    def timing_facets(self, *, recent_sessions: int = 500) -> dict[str, list]:
        """Filter choices for the analytics page: backends, models, recent sessions."""
        cur = self.cursor()
        backends = [r[0] for r in cur.execute(
            "SELECT DISTINCT backend FROM chunks WHERE backend IS NOT NULL ORDER BY 1").fetchall()]
        models = [r[0] for r in cur.execute(
            "SELECT DISTINCT model FROM chunks WHERE model IS NOT NULL ORDER BY 1").fetchall()]
        sessions = self._rows("""SELECT id, title, created_at FROM sessions
            ORDER BY created_at DESC, id DESC LIMIT ?""", [recent_sessions])
        span = cur.execute("SELECT min(captured_at), max(captured_at) FROM chunks").fetchone()
        return {"backends": backends, "models": models, "sessions": sessions,
                "captured_range": [span[0], span[1]]}


    # -- the partial lane's statistics ---------------------------------------------
    def save_partial_decodes(self, decodes: Sequence[Any]) -> None:
        """Append `scribe.partials.PartialDecode` records (statistics only, never text)."""
        if not decodes:
            return
        with self.transaction() as cur:
            cur.executemany("""INSERT INTO partial_decodes (session_id, seq, produced_at, audio_end_ms,
                lag_s, decode_s, words, coalesced, paused) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                            [[d.session_id, d.seq, d.produced_at, d.audio_end_ms, d.lag_s, d.decode_s,
                              d.words, d.coalesced, d.paused] for d in decodes])

    def partial_lane_stats(self, *, session_ids: Sequence[str] = (), since: float | None = None,
                           until: float | None = None) -> list[dict[str, Any]]:
        """Per session with partial decodes: decodes, requests replaced (coalesced; paused
        under backlog), lag p50/p95/max, decode time, and the session's audio seconds."""
        where, params = _partial_filters(session_ids, since, until)
        return self._rows(f"""SELECT p.session_id, s.title, count(*) AS decodes,
                sum(p.coalesced) AS coalesced, sum(p.paused) AS paused,
                quantile_cont(p.lag_s, 0.5) AS lag_p50_s, quantile_cont(p.lag_s, 0.95) AS lag_p95_s,
                max(p.lag_s) AS lag_max_s, avg(p.decode_s) AS decode_mean_s,
                max(s.duration_ms) / 1000.0 AS audio_s
            FROM partial_decodes p JOIN sessions s ON s.id = p.session_id {where}
            GROUP BY p.session_id, s.title ORDER BY min(p.produced_at) DESC""", params)

    def partial_lags(self, *, session_ids: Sequence[str] = (), since: float | None = None,
                     until: float | None = None) -> list[float]:
        """Every partial decode's lag in seconds (for percentiles across sessions)."""
        where, params = _partial_filters(session_ids, since, until)
        rows = self.cursor().execute(f"SELECT p.lag_s FROM partial_decodes p {where}", params).fetchall()
        return [r[0] for r in rows]
    # -- speakers ---------------------------------------------------------------
    def list_speakers(self, session_id: str) -> list[SpeakerRow]:
        """The session's speakers by id, with their centroids."""
        rows = self._rows("SELECT * FROM speakers WHERE session_id = ? ORDER BY id", [session_id])
        return [SpeakerRow(**{**r, "centroid": list(r["centroid"] or [])}) for r in rows]

    def speaker_stats(self, session_id: str, transcript: str = LIVE) -> list[dict[str, Any]]:
        """Per speaker: id, name, segments and seconds of that transcript (for the page)."""
        return self._rows("""SELECT sp.id, sp.name, count(g.idx) AS segments,
                coalesce(sum(g.end_ms - g.start_ms), 0) / 1000.0 AS seconds
            FROM speakers sp LEFT JOIN segments g ON g.session_id = sp.session_id
                AND g.speaker_id = sp.id AND g.transcript = ?
            WHERE sp.session_id = ? GROUP BY sp.id, sp.name ORDER BY sp.id""", [transcript, session_id])

    def diarization_state(self, session_id: str) -> dict[str, Any] | None:
        """{expected_speakers, stage ('live' or 'final'), updated_at}, or None if never labelled."""
        rows = self._rows("SELECT * FROM diarization WHERE session_id = ?", [session_id])
        return rows[0] if rows else None

    def set_expected_speakers(self, session_id: str, count: int | None) -> None:
        """The number of voices the user says the session has (None: estimate it)."""
        with self.transaction() as cur:
            cur.execute("""INSERT INTO diarization (session_id, expected_speakers, updated_at)
                VALUES (?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET
                expected_speakers = excluded.expected_speakers""", [session_id, count, time.time()])

    def save_speakers(self, session_id: str, speakers: Sequence[SpeakerRow],
                      assignments: Sequence[tuple[str, int, int, int | None]], *,
                      stage: str, replace_all: bool = False) -> None:
        """Upsert speakers and set segments' speaker ids, in one transaction.

        `assignments` are (transcript, seq, idx, speaker_id). With `replace_all` the
        session's speakers not in `speakers` are removed (a re-clustering).
        """
        with self.transaction() as cur:
            if replace_all:
                keep = [sp.id for sp in speakers]
                others = f"AND id NOT IN ({', '.join('?' * len(keep))})" if keep else ""
                cur.execute(f"DELETE FROM speakers WHERE session_id = ? {others}", [session_id, *keep])
            for sp in speakers:
                cur.execute("""INSERT INTO speakers (session_id, id, name, centroid, seconds)
                    VALUES (?, ?, ?, ?, ?) ON CONFLICT (session_id, id) DO UPDATE SET
                    centroid = excluded.centroid, seconds = excluded.seconds""",
                            [session_id, sp.id, sp.name, list(sp.centroid), sp.seconds])
            if assignments:
                cur.executemany("""UPDATE segments SET speaker_id = ? WHERE session_id = ?
                    AND transcript = ? AND seq = ? AND idx = ?""",
                                [[sid, session_id, t, seq, idx] for t, seq, idx, sid in assignments])
            cur.execute("""INSERT INTO diarization (session_id, stage, updated_at) VALUES (?, ?, ?)
                ON CONFLICT (session_id) DO UPDATE SET stage = excluded.stage,
                updated_at = excluded.updated_at""", [session_id, stage, time.time()])

    def rename_speaker(self, session_id: str, speaker_id: int, name: str) -> None:
        """Give a speaker a name; every transcript, search, summary and export shows it."""
        name = " ".join(name.split())
        if not name or len(name) > 60:
            raise ScribeError("a speaker name must be 1 to 60 characters")
        with self.transaction() as cur:
            taken = cur.execute("""SELECT id FROM speakers WHERE session_id = ? AND id <> ?
                AND lower(name) = lower(?)""", [session_id, speaker_id, name]).fetchone()
            if taken:
                raise ScribeError(f"another speaker is already called {name!r}; merge them instead")
            changed = cur.execute("""UPDATE speakers SET name = ? WHERE session_id = ? AND id = ?
                RETURNING id""", [name, session_id, speaker_id]).fetchall()
        if not changed:
            raise NotFoundError(f"no speaker {speaker_id} in session {session_id!r}")

    def merge_speakers(self, session_id: str, keep: int, drop: int) -> None:
        """`drop`'s segments become `keep`'s; `drop` is removed; the centroids are pooled."""
        speakers = {sp.id: sp for sp in self.list_speakers(session_id)}
        if keep == drop or keep not in speakers or drop not in speakers:
            raise NotFoundError(f"cannot merge speaker {drop} into {keep} in session {session_id!r}")
        a, b = speakers[keep], speakers[drop]
        pooled = [x * max(a.seconds, 1e-3) + y * max(b.seconds, 1e-3) for x, y in zip(a.centroid, b.centroid)]
        norm = sum(v * v for v in pooled) ** 0.5 or 1.0
        with self.transaction() as cur:
            cur.execute("UPDATE segments SET speaker_id = ? WHERE session_id = ? AND speaker_id = ?",
                        [keep, session_id, drop])
            cur.execute("DELETE FROM speakers WHERE session_id = ? AND id = ?", [session_id, drop])
            cur.execute("UPDATE speakers SET centroid = ?, seconds = ? WHERE session_id = ? AND id = ?",
                        [[v / norm for v in pooled], a.seconds + b.seconds, session_id, keep])

    def speaker_segments(self, session_id: str, speaker_id: int) -> list[SegmentRow]:
        """Every segment (all transcripts) of one speaker, in time order."""
        rows = self._rows(f"""SELECT g.* EXCLUDE (speaker), {SPEAKER_NAME} AS speaker
            FROM segments g {SPEAKER_JOIN} WHERE g.session_id = ? AND g.speaker_id = ?
            ORDER BY g.start_ms, g.transcript, g.seq, g.idx""", [session_id, speaker_id])
        return [_segment_row(r) for r in rows]


def _summary_row(row: dict[str, Any]) -> SummaryRow:
    row = dict(row)
    for name, empty in (("key_points", []), ("action_items", []), ("details", {})):
        row[name] = json.loads(row[name]) if row.get(name) else empty
    return SummaryRow(**row)


def _insert_segments(cur: duckdb.DuckDBPyConnection, segments: Sequence[SegmentRow]) -> None:
    if not segments:
        return
    cur.executemany("""INSERT INTO segments (session_id, transcript, seq, idx, start_ms, end_ms,
        text, speaker, confidence, no_speech_prob, flags, speaker_id)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    [[s.session_id, s.transcript, s.seq, s.idx, s.start_ms, s.end_ms, s.text,
                      s.speaker, s.confidence, s.no_speech_prob, json.dumps(s.flags) if s.flags else None,
                      s.speaker_id]
                     for s in segments])


SPEAKER_JOIN = "LEFT JOIN speakers sp ON sp.session_id = g.session_id AND sp.id = g.speaker_id"
SPEAKER_NAME = "coalesce(sp.name, g.speaker)"
"""A segment's speaker as every reader sees it: the name of its session speaker (renames
apply everywhere at once), else the label its backend gave (Gemini), else NULL."""


def _segment_row(row: dict[str, Any]) -> SegmentRow:
    row = dict(row)
    row["flags"] = json.loads(row["flags"]) if row.get("flags") else []
    return SegmentRow(**row)


def _in_clause(column: str, values: Sequence[Any]) -> str:
    return f"{column} IN ({', '.join('?' * len(values))})"


def _filters(members: Sequence[tuple[str, Sequence[Any]]], time_column: str, since: float | None,
             until: float | None) -> tuple[list[str], list[Any]]:
    """WHERE clauses (and their parameters) for `column IN (...)` lists and a time range."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, values in members:
        if values:
            clauses.append(_in_clause(column, values))
            params.extend(values)
    for op, bound in ((">=", since), ("<", until)):
        if bound is not None:
            clauses.append(f"{time_column} {op} ?")
            params.append(bound)
    return clauses, params


NO_SPEECH_SQL = """(sessions.status IN ('done', 'stopped')
    AND NOT EXISTS (SELECT 1 FROM segments g WHERE g.session_id = sessions.id)
    AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.session_id = sessions.id
                    AND c.status IN ('pending', 'processing', 'failed')))"""
"""A finished session whose every chunk settled without a word: nothing was said."""


def _session_filters(statuses: Sequence[str], since: float | None,
                     until: float | None, hide_no_speech: bool = False) -> tuple[str, list[Any]]:
    clauses, params = _filters([("status", statuses)], "created_at", since, until)
    if hide_no_speech:
        clauses.append(f"NOT {NO_SPEECH_SQL}")
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def new_session_id() -> str:
    """Sortable by creation time, unique: `YYYYmmdd-HHMMSS-xxxxxx`."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def segments_from_backend(session_id: str, seq: int, chunk_start_ms: int,
                          segments: Sequence[Segment], *, chunk_end_ms: int | None = None,
                          transcript: str = LIVE) -> list[SegmentRow]:
    """Backend segments (times relative to the chunk) as rows in absolute session time."""
    rows = []
    for idx, seg in enumerate(segments):
        start = chunk_start_ms + int(round(seg.start * 1000))
        end = max(start, chunk_start_ms + int(round(seg.end * 1000)))
        if chunk_end_ms is not None:
            start, end = min(start, chunk_end_ms), min(end, chunk_end_ms)
        rows.append(SegmentRow(session_id=session_id, seq=seq, idx=idx, start_ms=start, end_ms=end,
                               text=seg.text, speaker=seg.speaker, confidence=seg.confidence,
                               no_speech_prob=seg.no_speech_prob, flags=list(seg.flags),
                               transcript=transcript))
    return rows


def _timing_filters(session_ids: Sequence[str], backends: Sequence[str], models: Sequence[str],
                    since: float | None, until: float | None) -> tuple[list[str], list[Any]]:
    return _filters([("c.session_id", session_ids), ("coalesce(c.backend, s.backend)", backends),
                     ("coalesce(c.model, s.model)", models)], "c.captured_at", since, until)


def _partial_filters(session_ids: Sequence[str], since: float | None,
                     until: float | None) -> tuple[str, list[Any]]:
    clauses, params = _filters([("p.session_id", session_ids)], "p.produced_at", since, until)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params
