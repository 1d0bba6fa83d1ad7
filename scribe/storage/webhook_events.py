"""The `webhook_events` table: the webhook's outbox (an event is stored before it is
sent, so a restart resends it)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from scribe.storage.database import Database


class WebhookEventQueries(Database):
    """The webhook outbox."""

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
