"""The `vocabulary` table (the team's words), `session_vocabulary` (words added for one
session only, e.g. `transcribe FILE --vocabulary`) and `session_decoding` (a session's own
language, prompt and temperature, e.g. from the OpenAI API): what the lanes give the model
besides the audio."""

from __future__ import annotations

import time
import unicodedata
from typing import Iterable

from scribe.core import DecodeOptions, VocabularyTerm
from scribe.errors import NotFoundError, ScribeError
from scribe.storage.database import Database

MAX_TERMS = 100
"""The most terms the team vocabulary holds: Whisper reads at most ~220 prompt tokens."""
MAX_TERM_CHARS = 40
MAX_TERM_WORDS = 5


def clean_term(term: str) -> str:
    """A term as stored; ScribeError saying why it cannot be one."""
    cleaned = " ".join(str(term).split())
    if not cleaned:
        raise ScribeError("a vocabulary term cannot be empty")
    if len(cleaned) > MAX_TERM_CHARS or len(cleaned.split()) > MAX_TERM_WORDS:
        raise ScribeError(f"{cleaned[:50]!r} is too long for a term (at most {MAX_TERM_CHARS} characters "
                          f"and {MAX_TERM_WORDS} words)")
    if any(ch in ",;" or unicodedata.category(ch)[0] == "C" for ch in cleaned):
        raise ScribeError(f"{cleaned!r}: a term cannot hold commas, semicolons or control characters "
                          "(commas separate terms)")
    if not any(ch.isalnum() for ch in cleaned):
        raise ScribeError(f"{cleaned!r}: a term needs at least one letter or digit")
    return cleaned


def split_terms(text: str) -> list[str]:
    """'a, b; c' -> ['a', 'b', 'c'] (each cleaned; duplicates dropped, any case)."""
    out: dict[str, str] = {}
    for part in str(text).replace(";", ",").split(","):
        if part.strip():
            term = clean_term(part)
            out.setdefault(term.lower(), term)
    return list(out.values())


class VocabularyQueries(Database):
    """The team vocabulary and per-session additions."""

    def list_vocabulary(self) -> list[VocabularyTerm]:
        rows = self._rows("SELECT * EXCLUDE (key) FROM vocabulary ORDER BY lower(term)")
        return [VocabularyTerm(**r) for r in rows]

    def add_terms(self, terms: Iterable[str], *, source: str = "typed", detail: str | None = None,
                  created_by: str | None = None) -> list[str]:
        """Add terms (ones already there, in any case, are skipped); all or none.
        Returns the terms that were new. ScribeError for a bad term or past MAX_TERMS."""
        cleaned = {clean_term(t).lower(): clean_term(t) for t in terms}
        with self.transaction() as cur:
            have = {r[0] for r in cur.execute("SELECT key FROM vocabulary").fetchall()}
            new = [term for key, term in cleaned.items() if key not in have]
            if len(have) + len(new) > MAX_TERMS:
                raise ScribeError(f"the vocabulary holds at most {MAX_TERMS} terms ({len(have)} now, "
                                  f"{len(new)} more asked): Whisper reads only ~220 tokens of it; "
                                  "remove some first")
            now = time.time()
            if new:
                cur.executemany("INSERT INTO vocabulary VALUES (?, ?, ?, ?, ?, ?)",
                                [[t.lower(), t, source, detail, created_by, now] for t in new])
        self._decode_inputs.changed()
        return new

    def get_term(self, term: str) -> VocabularyTerm:
        rows = self._rows("SELECT * EXCLUDE (key) FROM vocabulary WHERE key = lower(?)", [" ".join(term.split())])
        if not rows:
            raise NotFoundError(f"{term!r} is not in the vocabulary")
        return VocabularyTerm(**rows[0])

    def remove_term(self, term: str) -> None:
        """Remove a term (any case); NotFoundError if it is not there."""
        self.get_term(term)
        with self.transaction() as cur:
            cur.execute("DELETE FROM vocabulary WHERE key = lower(?)", [" ".join(term.split())])
        self._decode_inputs.changed()

    def set_session_terms(self, session_id: str, terms: Iterable[str]) -> None:
        """Words for one session only (on top of the team's)."""
        cleaned = {clean_term(t).lower(): clean_term(t) for t in terms}
        with self.transaction() as cur:
            cur.execute("DELETE FROM session_vocabulary WHERE session_id = ?", [session_id])
            if cleaned:
                cur.executemany("INSERT INTO session_vocabulary VALUES (?, ?)",
                                [[session_id, t] for t in cleaned.values()])
        self._decode_inputs.changed()

    def set_session_options(self, session_id: str, options: DecodeOptions) -> None:
        """A session's own decode options (replacing any it had); the default removes them."""
        with self.transaction() as cur:
            cur.execute("DELETE FROM session_decoding WHERE session_id = ?", [session_id])
            if options.asked():
                cur.execute("INSERT INTO session_decoding VALUES (?, ?, ?, ?)",
                            [session_id, options.language, options.prompt, options.temperature])
        self._decode_inputs.changed()

    def options_for(self, session_id: str | None) -> DecodeOptions:
        """The decode options a lane gives its model for a session (read beside `vocabulary_for`;
        kept between writes, as the partial lane asks before every decode)."""
        return self._decode_inputs.get(("options", session_id), lambda: self._read_options(session_id))

    def _read_options(self, session_id: str | None) -> DecodeOptions:
        rows = self._rows("SELECT language, prompt, temperature FROM session_decoding WHERE session_id = ?",
                          [session_id])
        return DecodeOptions(**rows[0]) if rows else DecodeOptions()

    def recent_corrections(self, limit: int = 200) -> list[dict]:
        """The newest corrections a person saved: session_id, the machine's text and theirs."""
        return self._rows("""SELECT e.session_id, g.text AS machine_text, e.text AS corrected
            FROM segment_edits e JOIN segments g USING (session_id, transcript, seq, idx)
            ORDER BY e.edited_at DESC LIMIT ?""", [limit])

    def vocabulary_for(self, session_id: str | None = None) -> list[str]:
        """The words a lane gives its model for a session: the session's own, then the team's
        (newest first), each once (kept between writes, as `options_for`)."""
        return list(self._decode_inputs.get(("vocabulary", session_id), lambda: self._read_vocabulary(session_id)))

    def _read_vocabulary(self, session_id: str | None) -> tuple[str, ...]:
        rows = self.cursor().execute("""SELECT term FROM (
                SELECT term, 0 AS tier, 0.0 AS added FROM session_vocabulary WHERE session_id = ?
                UNION ALL SELECT term, 1, created_at FROM vocabulary) ORDER BY tier, added DESC""",
                                     [session_id]).fetchall()
        seen: dict[str, str] = {}
        for (term,) in rows:
            seen.setdefault(term.lower(), term)
        return tuple(seen.values())
