"""People who signed in, session shares, personal API tokens and the audit log.

Tokens are stored only as their SHA-256 hash; the token itself exists once, in the answer
to its creation. The audit log is append-only: who did what to which thing, and when.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from scribe.identity import Principal, normalize_email
from scribe.storage.database import Database


@dataclass(frozen=True)
class UserRow:
    id: str
    email: str
    name: str
    first_seen: float
    last_seen: float


@dataclass(frozen=True)
class TokenRow:
    id: str
    user_id: str
    label: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None


@dataclass(frozen=True)
class AuditRow:
    id: str
    at: float
    actor_id: str
    actor: str
    action: str
    target: str
    detail: str


class AccountQueries(Database):
    """The `users`, `session_shares`, `api_tokens` and `audit_log` tables."""

    # -- people -----------------------------------------------------------------
    def record_user(self, principal: Principal, *, now: float | None = None) -> None:
        """Remember a person at each sign-in (so others can share with their email)."""
        now = now if now is not None else time.time()
        with self.transaction() as cur:
            cur.execute("""INSERT INTO users (id, email, name, first_seen, last_seen) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET email = excluded.email, name = excluded.name,
                last_seen = excluded.last_seen""",
                        [principal.user_id, principal.email, principal.name, now, now])

    def users_by_email(self, email: str) -> list[UserRow]:
        return [UserRow(**r) for r in self._rows(
            "SELECT * FROM users WHERE email = ? ORDER BY last_seen DESC", [normalize_email(email)])]

    def get_user(self, user_id: str) -> UserRow | None:
        rows = self._rows("SELECT * FROM users WHERE id = ?", [user_id])
        return UserRow(**rows[0]) if rows else None

    def list_users(self) -> list[UserRow]:
        return [UserRow(**r) for r in self._rows("SELECT * FROM users ORDER BY email")]

    # -- shares -------------------------------------------------------------------
    def add_share(self, session_id: str, user_id: str, *, shared_by: str) -> bool:
        """Share with one person; False when they already had it."""
        with self.transaction() as cur:
            added = cur.execute("""INSERT INTO session_shares (session_id, user_id, shared_by, shared_at)
                VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING user_id""",
                                [session_id, user_id, shared_by, time.time()]).fetchall()
        return bool(added)

    def remove_share(self, session_id: str, user_id: str) -> bool:
        with self.transaction() as cur:
            removed = cur.execute("""DELETE FROM session_shares WHERE session_id = ? AND user_id = ?
                RETURNING user_id""", [session_id, user_id]).fetchall()
        return bool(removed)

    def session_shares(self, session_id: str) -> list[UserRow]:
        """The people a session is shared with (their latest known email and name)."""
        return [UserRow(**r) for r in self._rows("""SELECT u.* FROM session_shares sh
            JOIN users u ON u.id = sh.user_id WHERE sh.session_id = ? ORDER BY u.email""", [session_id])]

    # -- API tokens ------------------------------------------------------------------
    def add_token(self, user_id: str, label: str, token_hash: str) -> TokenRow:
        row = TokenRow(uuid.uuid4().hex[:12], user_id, label, time.time(), None, None)
        with self.transaction() as cur:
            cur.execute("""INSERT INTO api_tokens (id, user_id, label, token_hash, created_at)
                VALUES (?, ?, ?, ?, ?)""", [row.id, user_id, label, token_hash, row.created_at])
        return row

    def token_by_hash(self, token_hash: str) -> TokenRow | None:
        rows = self._rows("""SELECT id, user_id, label, created_at, last_used_at, revoked_at
            FROM api_tokens WHERE token_hash = ?""", [token_hash])
        return TokenRow(**rows[0]) if rows else None

    def touch_token(self, token_id: str, *, now: float | None = None) -> None:
        with self.transaction() as cur:
            cur.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?",
                        [now if now is not None else time.time(), token_id])

    def list_tokens(self, user_id: str) -> list[TokenRow]:
        return [TokenRow(**r) for r in self._rows("""SELECT id, user_id, label, created_at, last_used_at,
            revoked_at FROM api_tokens WHERE user_id = ? ORDER BY created_at DESC""", [user_id])]

    def revoke_token(self, user_id: str, token_id: str) -> bool:
        """Revoke one of `user_id`'s tokens; False when they have no such live token."""
        with self.transaction() as cur:
            done = cur.execute("""UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND user_id = ?
                AND revoked_at IS NULL RETURNING id""", [time.time(), token_id, user_id]).fetchall()
        return bool(done)

    # -- audit log ---------------------------------------------------------------------
    def audit(self, actor: Principal, action: str, target: str, detail: str = "") -> None:
        with self.transaction() as cur:
            cur.execute("""INSERT INTO audit_log (id, "at", actor_id, actor, action, target, detail)
                VALUES (?, ?, ?, ?, ?, ?, ?)""",
                        [uuid.uuid4().hex, time.time(), actor.user_id, actor.label, action, target, detail])

    def list_audit(self, *, limit: int = 500, offset: int = 0) -> list[AuditRow]:
        rows: list[dict[str, Any]] = self._rows(
            'SELECT * FROM audit_log ORDER BY "at" DESC, id LIMIT ? OFFSET ?', [limit, offset])
        return [AuditRow(**r) for r in rows]
