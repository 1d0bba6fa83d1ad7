"""The `summaries` table: every summary version of a session, newest first."""

from __future__ import annotations

import json
import time
from typing import Any, Sequence

from scribe.core import SummaryRow
from scribe.storage.database import Database


class SummaryQueries(Database):
    """Summary versions of a session (`add_summary` checks the session with `get_session`,
    which `Storage` composes from the sessions' queries)."""

    def add_summary(self, session_id: str, *, backend: str, model: str | None, text: str,
                    key_points: Sequence[Any], action_items: Sequence[Any], details: dict[str, Any],
                    now: float | None = None) -> SummaryRow:
        """Store a new summary version (1, 2, ...); earlier versions are kept."""
        self.get_session(session_id)  # type: ignore[attr-defined]  # SessionQueries', composed by Storage
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


def _summary_row(row: dict[str, Any]) -> SummaryRow:
    row = dict(row)
    for name, empty in (("key_points", []), ("action_items", []), ("details", {})):
        row[name] = json.loads(row[name]) if row.get(name) else empty
    return SummaryRow(**row)
