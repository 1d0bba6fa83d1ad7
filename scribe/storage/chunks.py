"""The `chunks` table: each chunk is a job, from pending through processing to done
or failed; its timeline, attempts and token usage are stored on its row."""

from __future__ import annotations

from typing import Any, Sequence

from scribe.audio import SAMPLE_RATE
from scribe.core import CHUNK_STATUSES, ChunkRow, SegmentRow, Usage
from scribe.errors import NotFoundError
from scribe.storage.database import Database, _in_clause
from scribe.storage.segments import _insert_segments


class ChunkQueries(Database):
    """Chunks: read, and move through their states (the pipeline's job queue in the database)."""

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

    def failed_chunks(self, session_id: str) -> list[ChunkRow]:
        rows = self._rows("""SELECT * FROM chunks WHERE session_id = ? AND status = 'failed'
            ORDER BY seq""", [session_id])
        return [ChunkRow(**r) for r in rows]

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

    @staticmethod
    def counts_of(chunks: Sequence[ChunkRow]) -> dict[str, int]:
        """`chunk_counts` of rows already read: the counts agree with those rows, where a second
        query could see a chunk finish between the two."""
        counts = {status: 0 for status in CHUNK_STATUSES}
        for chunk in chunks:
            counts[chunk.status] += 1
        return counts

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

    def stored_audio_ms_many(self, session_ids: Sequence[str]) -> dict[str, int]:
        """How much audio each session has stored as chunks (its length while recording)."""
        if not session_ids:
            return {}
        rows = self.cursor().execute(f"""SELECT session_id, max(end_ms) FROM chunks
            WHERE {_in_clause('session_id', session_ids)} GROUP BY session_id""", list(session_ids)).fetchall()
        return {sid: int(ms or 0) for sid, ms in rows}

    def count_open_chunks(self, *, excluding: Sequence[str] = ()) -> int:
        """Chunks pending or processing, outside the given sessions."""
        where = f" AND NOT {_in_clause('session_id', excluding)}" if excluding else ""
        return int(self._scalar(f"""SELECT count(*) FROM chunks
            WHERE status IN ('pending', 'processing'){where}""", list(excluding)))

    def resume_point(self, session_id: str) -> tuple[int, int]:
        """(next seq, next start sample) for continuing a session."""
        row = self.cursor().execute("""SELECT coalesce(max(seq) + 1, 0), coalesce(max(end_sample), 0)
            FROM chunks WHERE session_id = ?""", [session_id]).fetchone()
        return int(row[0]), int(row[1])

    def claim_chunk(self, session_id: str, seq: int, *, backend: str, model: str,
                    now: float) -> ChunkRow | None:
        """Move a pending chunk to processing and count the attempt; None if not pending."""
        with self.transaction() as cur:
            updated = cur.execute("""UPDATE chunks SET status = 'processing', started_at = ?,
                attempts = attempts + 1, backend = ?, model = ?
                WHERE session_id = ? AND seq = ? AND status = 'pending' RETURNING seq""",
                                  [now, backend, model, session_id, seq]).fetchall()
        return self.get_chunk(session_id, seq) if updated else None

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

    def record_retry(self, session_id: str, seq: int, error: str) -> None:
        """A retryable failure: keep the chunk processing, count the attempt, keep the error."""
        with self.transaction() as cur:
            cur.execute("""UPDATE chunks SET attempts = attempts + 1, error = ?
                WHERE session_id = ? AND seq = ?""", [error, session_id, seq])

    def fail_chunk(self, session_id: str, seq: int, error: str, *, finished_at: float) -> None:
        with self.transaction() as cur:
            cur.execute("""UPDATE chunks SET status = 'failed', error = ?, finished_at = ?
                WHERE session_id = ? AND seq = ?""", [error, finished_at, session_id, seq])

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

    def clear_skip_reason(self, session_id: str, seqs: Sequence[int]) -> None:
        """Chunks about to run again lose their old skip mark."""
        if not seqs:
            return
        with self.transaction() as cur:
            cur.execute(f"""UPDATE chunks SET skip_reason = NULL WHERE session_id = ?
                AND seq IN ({', '.join('?' * len(seqs))})""", [session_id, *seqs])

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

    def session_usage(self, session_id: str) -> list[dict[str, Any]]:
        """Tokens per (backend, model) for a session's settled chunks, for the cost estimate.

        Each row: backend, model, chunks, audio_seconds, input_tokens, output_tokens,
        silent_chunks. Chunks store the tokens of their latest successful call.
        """
        return self._rows(f"""SELECT coalesce(backend, '?') AS backend, coalesce(model, '?') AS model,
                count(*) AS chunks, sum(end_sample - start_sample) / {float(SAMPLE_RATE)} AS audio_seconds,
                sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
                count(*) FILTER (WHERE skip_reason IS NOT NULL) AS silent_chunks
            FROM chunks WHERE session_id = ? AND status IN ('done', 'failed')
            GROUP BY ALL ORDER BY backend, model""", [session_id])
