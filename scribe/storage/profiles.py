"""The `voice_profiles` table: named voices kept across sessions, and which session
speaker each one names (`speakers.profile_id`, `speakers.profile_by`)."""

from __future__ import annotations

import math
import time
import uuid
from typing import Sequence

import duckdb

from scribe.core import VoiceProfile
from scribe.errors import NotFoundError, ScribeError
from scribe.storage.database import Database

NAME_LIMIT = 60
"""The longest profile name, as for a session speaker's name."""


def clean_name(name: str) -> str:
    """A person's name as stored: runs of whitespace (newlines, tabs) become one space.
    Anything else is kept as typed and shown literally; ScribeError if empty or too long."""
    cleaned = " ".join(str(name).split())
    if not cleaned or len(cleaned) > NAME_LIMIT:
        raise ScribeError(f"a voice's name must be 1 to {NAME_LIMIT} characters")
    return cleaned


def _unit(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [float(v) / norm for v in vector]


class ProfileQueries(Database):
    """Voice profiles, and the session speakers they name."""

    def list_profiles(self) -> list[VoiceProfile]:
        rows = self._rows("SELECT * FROM voice_profiles ORDER BY lower(name), created_at")
        return [VoiceProfile(**{**r, "embedding": list(r["embedding"])}) for r in rows]

    def get_profile(self, profile_id: str) -> VoiceProfile:
        rows = self._rows("SELECT * FROM voice_profiles WHERE id = ?", [profile_id])
        if not rows:
            raise NotFoundError(f"no voice profile {profile_id!r}")
        return VoiceProfile(**{**rows[0], "embedding": list(rows[0]["embedding"])})

    def add_profile(self, name: str, embedding: Sequence[float], seconds: float, *,
                    created_by: str | None = None) -> VoiceProfile:
        """A new named voice; ScribeError if the name is taken (improve that one instead)."""
        name = clean_name(name)
        now = time.time()
        profile_id = uuid.uuid4().hex[:12]
        with self.transaction() as cur:
            self._refuse_taken(cur, name, None)
            cur.execute("INSERT INTO voice_profiles VALUES (?, ?, ?, ?, 1, ?, ?, ?)",
                        [profile_id, name, _unit(embedding), float(seconds), created_by, now, now])
        return self.get_profile(profile_id)

    def improve_profile(self, profile_id: str, embedding: Sequence[float], seconds: float) -> VoiceProfile:
        """Pool more speech into a profile: the mean of both, weighted by seconds of speech."""
        old = self.get_profile(profile_id)
        pooled = [a * old.seconds + b * seconds for a, b in zip(old.embedding, embedding)]
        with self.transaction() as cur:
            cur.execute("""UPDATE voice_profiles SET embedding = ?, seconds = ?, recordings = recordings + 1,
                updated_at = ? WHERE id = ?""", [_unit(pooled), old.seconds + seconds, time.time(), profile_id])
        return self.get_profile(profile_id)

    def rename_profile(self, profile_id: str, name: str) -> VoiceProfile:
        """Rename a voice; every session speaker it names takes the new name."""
        name = clean_name(name)
        self.get_profile(profile_id)
        with self.transaction() as cur:
            self._refuse_taken(cur, name, profile_id)
            cur.execute("UPDATE voice_profiles SET name = ?, updated_at = ? WHERE id = ?",
                        [name, time.time(), profile_id])
            cur.execute("UPDATE speakers SET name = ? WHERE profile_id = ?", [name, profile_id])
        return self.get_profile(profile_id)

    def delete_profile(self, profile_id: str) -> int:
        """Delete a voice and its embedding for good. Session speakers it named keep the name
        as plain text. Returns how many session speakers it named."""
        self.get_profile(profile_id)
        with self.transaction() as cur:
            used = cur.execute("""UPDATE speakers SET profile_id = NULL, profile_by = 'person'
                WHERE profile_id = ? RETURNING session_id""", [profile_id]).fetchall()
            cur.execute("DELETE FROM voice_profiles WHERE id = ?", [profile_id])
        try:  # the deleted embedding leaves the write-ahead log now, not at the next checkpoint
            self.cursor().execute("CHECKPOINT")
        except duckdb.TransactionException:
            pass  # other writes are open: DuckDB's own checkpoint does it once they end
        return len(used)

    def profile_uses(self, profile_id: str) -> int:
        """How many session speakers this profile names."""
        return int(self._scalar("SELECT count(*) FROM speakers WHERE profile_id = ?", [profile_id]))

    def set_speaker_profile(self, session_id: str, speaker_id: int, profile_id: str | None, *,
                            by: str | None, name: str) -> None:
        """Tie a session speaker to a profile (or untie it), with the name it shows."""
        with self.transaction() as cur:
            changed = cur.execute("""UPDATE speakers SET profile_id = ?, profile_by = ?, name = ?
                WHERE session_id = ? AND id = ? RETURNING id""",
                                  [profile_id, by, name, session_id, speaker_id]).fetchall()
        if not changed:
            raise NotFoundError(f"no speaker {speaker_id} in session {session_id!r}")

    @staticmethod
    def _refuse_taken(cur, name: str, profile_id: str | None) -> None:
        taken = cur.execute("SELECT id FROM voice_profiles WHERE lower(name) = lower(?) AND id IS DISTINCT FROM ?",
                            [name, profile_id]).fetchone()
        if taken:
            raise ScribeError(f"a voice called {name!r} exists already (profile {taken[0]}); "
                              "add speech to it instead")
