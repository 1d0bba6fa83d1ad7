"""The `voice_windows` table: each chunk's voice windows, measured once (by the speaker
labeler or by the worker that transcribed the chunk) and read by every later labelling. The
windows' bytes are in `voice_window_pieces`, in rows of at most `WINDOW_PIECE_BYTES`.

A chunk's audio never changes (re-transcription reads the same file), so its windows stay
valid for the session's life; they are deleted with the session."""

from __future__ import annotations

from scribe.core import PackedWindows
from scribe.storage.database import Database
from scribe.storage.migrations import WINDOW_PIECE_BYTES


class VoiceWindowQueries(Database):
    """Stored voice windows, by session and chunk."""

    def save_voice_windows(self, session_id: str, seq: int, windows: PackedWindows) -> bool:
        """Store (or replace) one chunk's windows; False when the chunk no longer exists
        (its session was deleted meanwhile), so nothing is left behind."""
        data = windows.embeddings
        parts = [data[k:k + WINDOW_PIECE_BYTES] for k in range(0, len(data), WINDOW_PIECE_BYTES)]
        with self.transaction() as cur:
            found = cur.execute("SELECT 1 FROM chunks WHERE session_id = ? AND seq = ?",
                                [session_id, seq]).fetchone()
            if found is None:
                return False
            cur.execute("""INSERT OR REPLACE INTO voice_windows (session_id, seq, offset_ms, frames, speech, spans)
                VALUES (?, ?, ?, ?, ?, ?)""", [session_id, seq, windows.offset_ms, windows.frames, windows.speech,
                                               windows.spans])
            cur.execute("DELETE FROM voice_window_pieces WHERE session_id = ? AND seq = ?", [session_id, seq])
            cur.execute("""INSERT INTO voice_window_pieces
                SELECT $session, $seq, generate_subscripts($parts::BLOB[], 1) - 1, unnest($parts::BLOB[])""",
                        {"session": session_id, "seq": seq, "parts": parts})
        return True

    def voice_windows(self, session_id: str, seq: int | None = None) -> dict[int, PackedWindows]:
        """The session's stored windows by chunk seq (only `seq`'s when given)."""
        where, params = ("AND w.seq = ?", [session_id, seq]) if seq is not None else ("", [session_id])
        cur = self.cursor().execute(f"""
            SELECT w.seq, w.offset_ms, w.frames, w.speech, w.spans, p.data FROM voice_windows w
            LEFT JOIN voice_window_pieces p ON p.session_id = w.session_id AND p.seq = w.seq
            WHERE w.session_id = ? {where} ORDER BY w.seq, p.part""", params)
        chunks: dict[int, tuple[tuple, list[bytes]]] = {}
        for chunk_seq, *head, data in cur.fetchall():  # one session's windows, each chunk's pieces in order
            pieces = chunks.setdefault(chunk_seq, (tuple(head), []))[1]
            if data is not None:
                pieces.append(bytes(data))
        return {key: PackedWindows(offset_ms, frames, list(speech), list(spans), b"".join(pieces))
                for key, ((offset_ms, frames, speech, spans), pieces) in chunks.items()}
