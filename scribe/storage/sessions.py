"""The `sessions` table: a session's life from recording to done, listing and deletion."""

from __future__ import annotations

import time
import uuid
from typing import Any, Sequence

from scribe.access import readable_sql
from scribe.core import SESSION_STATUSES, SessionRow, one_line
from scribe.errors import NotFoundError
from scribe.identity import LOCAL_ID, Principal
from scribe.storage.database import Database, _filters, _in_clause

NO_SPEECH_SQL = """(sessions.status IN ('done', 'stopped')
    AND NOT EXISTS (SELECT 1 FROM segments g WHERE g.session_id = sessions.id)
    AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.session_id = sessions.id
                    AND c.status IN ('pending', 'processing', 'failed')))"""
"""A finished session whose every chunk settled without a word: nothing was said."""


class SessionQueries(Database):
    """Sessions: create, read, list, end, and delete with everything they own."""

    def create_session(self, *, title: str, source: str, backend: str, model: str,
                       chunk_seconds: float, chunk_policy: str, session_id: str | None = None,
                       status: str = "recording", now: float | None = None,
                       owner_id: str = LOCAL_ID) -> SessionRow:
        row = SessionRow(id=session_id or new_session_id(), title=one_line(title) or "Untitled",
                         source=source, status=status, backend=backend, model=model,
                         chunk_seconds=chunk_seconds, chunk_policy=chunk_policy,
                         created_at=now if now is not None else time.time(), owner_id=owner_id)
        with self.transaction() as cur:
            cur.execute("""INSERT INTO sessions (id, title, source, status, backend, model,
                chunk_seconds, chunk_policy, created_at, owner_id, visibility)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                        [row.id, row.title, row.source, row.status, row.backend, row.model,
                         row.chunk_seconds, row.chunk_policy, row.created_at, row.owner_id,
                         row.visibility])
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

    def find_readable_session(self, session_id: str, principal: Principal) -> SessionRow | None:
        """The session if `principal` may read it (`scribe.access`), else None."""
        condition, params = readable_sql(principal)
        rows = self._rows(f"SELECT * FROM sessions WHERE id = ? AND {condition}", [session_id, *params])
        return SessionRow(**rows[0]) if rows else None

    def list_sessions(self, *, limit: int = 50, offset: int = 0, statuses: Sequence[str] = (),
                      since: float | None = None, until: float | None = None,
                      hide_no_speech: bool = False, visible_to: Principal | None = None,
                      shared_with_me: bool = False) -> list[SessionRow]:
        """Newest first; `id` breaks ties so paging is stable. `hide_no_speech` leaves out
        finished sessions in which nothing was said (see NO_SPEECH_SQL). `visible_to` keeps
        the sessions that principal may read; `shared_with_me` only those of other owners."""
        where, params = _session_filters(statuses, since, until, hide_no_speech, visible_to, shared_with_me)
        rows = self._rows(f"SELECT * FROM sessions {where} ORDER BY created_at DESC, id DESC "
                          "LIMIT ? OFFSET ?", [*params, limit, offset])
        return [SessionRow(**r) for r in rows]

    def count_sessions(self, *, statuses: Sequence[str] = (), since: float | None = None,
                       until: float | None = None, hide_no_speech: bool = False,
                       visible_to: Principal | None = None, shared_with_me: bool = False) -> int:
        where, params = _session_filters(statuses, since, until, hide_no_speech, visible_to, shared_with_me)
        return int(self._scalar(f"SELECT count(*) FROM sessions {where}", params))

    def no_speech_sessions(self, session_ids: Sequence[str]) -> set[str]:
        """Which of these sessions are finished with nothing said (NO_SPEECH_SQL), in one query."""
        if not session_ids:
            return set()
        rows = self.cursor().execute(f"""SELECT id FROM sessions WHERE {_in_clause('id', session_ids)}
            AND {NO_SPEECH_SQL}""", list(session_ids)).fetchall()
        return {r[0] for r in rows}

    def resumable_sessions(self, *, source: str = "mic", limit: int = 20,
                           include_recording: bool = False, owner_id: str | None = None) -> list[SessionRow]:
        """Recent sessions of `source` that can be continued (not currently recording).

        `include_recording` keeps sessions still marked recording, for a caller that knows
        which captures are live (a capture stopped a moment ago ends on the writer thread).
        `owner_id`: only that person's sessions (one continues only one's own recording)."""
        status = "" if include_recording else "AND status <> 'recording'"
        owner = "" if owner_id is None else "AND owner_id = ?"
        rows = self._rows(f"""SELECT * FROM sessions WHERE source = ? {status} {owner}
            ORDER BY created_at DESC, id DESC LIMIT ?""",
                          [source, *([] if owner_id is None else [owner_id]), limit])
        return [SessionRow(**r) for r in rows]

    def update_session(self, session_id: str, **fields: Any) -> None:
        allowed = {"title", "status", "ended_at", "duration_ms", "backend", "model", "owner_id", "visibility"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"cannot update session fields {sorted(unknown)}")
        if fields.get("status") not in (None, *SESSION_STATUSES):
            raise ValueError(f"bad session status {fields['status']!r}")
        if "title" in fields:
            fields["title"] = one_line(fields["title"]) or "Untitled"
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

    def delete_session(self, session_id: str) -> None:
        self.get_session(session_id)
        with self.transaction() as cur:
            for table, key in (("segments", "session_id"), ("segment_edits", "session_id"),
                               ("chunks", "session_id"), ("summaries", "session_id"),
                               ("partial_decodes", "session_id"), ("speakers", "session_id"),
                               ("diarization", "session_id"), ("voice_windows", "session_id"),
                               ("voice_window_pieces", "session_id"),
                               ("session_vocabulary", "session_id"),
                               ("session_decoding", "session_id"),
                               ("session_shares", "session_id"),
                               ("sessions", "id")):
                cur.execute(f"DELETE FROM {table} WHERE {key} = ?", [session_id])
        self._decode_inputs.changed()


def _session_filters(statuses: Sequence[str], since: float | None, until: float | None,
                     hide_no_speech: bool = False, visible_to: Principal | None = None,
                     shared_with_me: bool = False) -> tuple[str, list[Any]]:
    clauses, params = _filters([("status", statuses)], "created_at", since, until)
    if hide_no_speech:
        clauses.append(f"NOT {NO_SPEECH_SQL}")
    if visible_to is not None:
        condition, more = readable_sql(visible_to)
        clauses.append(condition)
        params.extend(more)
        if shared_with_me:
            clauses.append("sessions.owner_id <> ?")
            params.append(visible_to.user_id)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def new_session_id() -> str:
    """Sortable by creation time, unique: `YYYYmmdd-HHMMSS-xxxxxx`."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
