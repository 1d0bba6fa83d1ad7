"""The `voice_windows` table: each chunk's voice windows, measured once (by the speaker
labeler or by the worker that transcribed the chunk) and read by every later labelling.

A chunk's audio never changes (re-transcription reads the same file), so its windows stay
valid for the session's life; they are deleted with the session."""

from __future__ import annotations

from scribe.core import PackedWindows
from scribe.storage.database import Database


class VoiceWindowQueries(Database):
    """Stored voice windows, by session and chunk."""

    def save_voice_windows(self, session_id: str, seq: int, windows: PackedWindows) -> bool:
        """Store (or replace) one chunk's windows; False when the chunk no longer exists
        (its session was deleted meanwhile), so nothing is left behind."""
        with self.transaction() as cur:
            found = cur.execute("SELECT 1 FROM chunks WHERE session_id = ? AND seq = ?",
                                [session_id, seq]).fetchone()
            if found is None:
                return False
            cur.execute("""INSERT OR REPLACE INTO voice_windows
                (session_id, seq, offset_ms, frames, speech, spans, embeddings) VALUES (?, ?, ?, ?, ?, ?, ?)""",
                        [session_id, seq, windows.offset_ms, windows.frames, windows.speech, windows.spans,
                         windows.embeddings])
        return True

    def voice_windows(self, session_id: str, seq: int | None = None) -> dict[int, PackedWindows]:
        """The session's stored windows by chunk seq (only `seq`'s when given)."""
        where, params = ("AND seq = ?", [session_id, seq]) if seq is not None else ("", [session_id])
        rows = self._rows(f"""SELECT seq, offset_ms, frames, speech, spans, embeddings FROM voice_windows
            WHERE session_id = ? {where} ORDER BY seq""", params)
        return {r["seq"]: PackedWindows(r["offset_ms"], r["frames"], list(r["speech"]), list(r["spans"]),
                                        bytes(r["embeddings"])) for r in rows}
