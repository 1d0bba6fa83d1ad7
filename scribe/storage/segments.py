"""The `segments` table with the overlays every reader sees: a person's corrections
(`segment_edits`) replace the machine text, and a session speaker's name (`speakers`)
replaces the backend's label."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any, Sequence

import duckdb

from scribe.access import readable_sql
from scribe.core import LIVE, Segment, SegmentRow, Word
from scribe.errors import NotFoundError, ScribeError
from scribe.identity import Principal
from scribe.storage.database import Database, _in_clause, dict_rows

SPEAKER_JOIN = "LEFT JOIN speakers sp ON sp.session_id = g.session_id AND sp.id = g.speaker_id"
SPEAKER_NAME = "coalesce(sp.name, g.speaker)"
"""A segment's speaker as every reader sees it: the name of its session speaker (renames
apply everywhere at once), else the label its backend gave (Gemini), else NULL."""


class SegmentQueries(Database):
    """Transcripts as readers see them, their search, and a person's corrections."""

    def list_segments(self, session_id: str, transcript: str = LIVE, *, seq: int | None = None) -> list[SegmentRow]:
        """One transcript in order, as readers see it: a person's edit replaces the machine
        text (kept in `machine_text`), so search, summaries and exports agree; `speaker` is
        the speaker's current name (see SPEAKER_NAME). With `seq`, that chunk's lines only:
        what is done once per chunk must not read the whole meeting, or its cost grows with
        the meeting's length."""
        rows = self._rows(f"""SELECT g.* EXCLUDE (text, speaker),
                CASE WHEN e.text IS NOT NULL THEN g.text END AS machine_text,
                coalesce(e.text, g.text) AS text, {SPEAKER_NAME} AS speaker
            FROM segments g LEFT JOIN segment_edits e USING (session_id, transcript, seq, idx) {SPEAKER_JOIN}
            WHERE g.session_id = ? AND g.transcript = ? AND (g.seq = ? OR ? IS NULL) ORDER BY g.seq, g.idx""",
                          [session_id, transcript, seq, seq])
        return [_segment_row(r) for r in rows]

    def transcript_counts(self, session_id: str) -> dict[str, int]:
        """Segments per stored transcript ('live', 'final') of one session."""
        rows = self.cursor().execute("""SELECT transcript, count(*) FROM segments
            WHERE session_id = ? GROUP BY transcript""", [session_id]).fetchall()
        return {name: int(n) for name, n in rows}

    def session_text(self, session_id: str, transcript: str = LIVE) -> str:
        """One transcript of a session as plain text, in order (for WER)."""
        rows = self.cursor().execute("""SELECT text FROM segments WHERE session_id = ?
            AND transcript = ? ORDER BY seq, idx""", [session_id, transcript]).fetchall()
        return " ".join(r[0] for r in rows)

    def repeated_live_segments(self, session_ids: Sequence[str]) -> int:
        """Live segment rows that repeat another row of the same chunk (0 when writes are idempotent)."""
        if not session_ids:
            return 0
        return int(self._scalar(f"""SELECT count(*) - count(DISTINCT (session_id, seq, start_ms, end_ms, text))
            FROM segments WHERE transcript = 'live' AND {_in_clause('session_id', session_ids)}""",
                                list(session_ids)))

    def search_segments(self, *, like: Sequence[str], regex: Sequence[str], limit: int = 50,
                        offset: int = 0, visible_to: Principal | None = None) -> tuple[list[dict[str, Any]], int]:
        """Segments matching every ILIKE pattern (escape char backslash) and every regex, any case.

        Each session is searched in the transcript a reader sees: 'final' where it
        exists, else 'live'. Newest session first, then time in the session; the
        full key makes paging stable. Returns (one page of hits, total hits). `visible_to`:
        only sessions that principal may read (`scribe.access`), in the hits and the total.
        """
        if not like and not regex:
            return [], 0
        conditions = [r"g.text ILIKE ? ESCAPE '\'" for _ in like]
        conditions += ["regexp_matches(g.text, ?, 'i')" for _ in regex]
        # A person's edit is what a reader sees, so it is what search matches.
        readable, readable_params = readable_sql(visible_to, "s") if visible_to else ("TRUE", [])
        edited = """(SELECT g.session_id, g.transcript, g.seq, g.idx, g.start_ms, g.end_ms, g.speaker,
                g.speaker_id, coalesce(e.text, g.text) AS text
            FROM segments g LEFT JOIN segment_edits e USING (session_id, transcript, seq, idx))"""
        # Match first (cheap ILIKE before the regex), then keep the transcript a reader sees;
        # the window count gives the total in the same scan.
        base = f"""WITH hits AS (SELECT g.* FROM {edited} g WHERE {' AND '.join(conditions)})
            SELECT h.session_id, s.title, s.created_at, h.transcript, h.seq, h.idx, h.start_ms, h.end_ms,
                   h.text, {SPEAKER_NAME.replace('g.', 'h.')} AS speaker, count(*) OVER () AS total
            FROM hits h JOIN sessions s ON s.id = h.session_id {SPEAKER_JOIN.replace('g.', 'h.')}
            WHERE (h.transcript = 'final' OR h.session_id NOT IN
                  (SELECT session_id FROM segments WHERE transcript = 'final')) AND {readable}"""
        params = [*like, *regex, *readable_params]
        rows = self._rows(f"""{base} ORDER BY s.created_at DESC, h.session_id DESC, h.start_ms, h.seq, h.idx
            LIMIT ? OFFSET ?""", [*params, limit, offset])
        if rows:
            total = int(rows[0]["total"])
        else:  # past the last page (or nothing at all): count without paging
            total = int(self._scalar(f"SELECT count(*) FROM ({base})", params)) if offset else 0
        for row in rows:
            del row["total"]
        return rows, total

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


def _segment_row(row: dict[str, Any]) -> SegmentRow:
    row = dict(row)
    row["flags"] = json.loads(row["flags"]) if row.get("flags") else []
    row["words"] = words_from_json(row.get("words"))
    return SegmentRow(**row)


def words_to_json(words: Sequence[Word]) -> str | None:
    """`segments.words`: [[start_ms, end_ms, text], ...] in session time; NULL when none."""
    if not words:
        return None
    return json.dumps([[int(round(w.start * 1000)), int(round(w.end * 1000)), w.text] for w in words])


def words_from_json(stored: str | None) -> list[Word]:
    """The words of a stored segment, times in seconds of the session."""
    return [Word(start / 1000, end / 1000, text) for start, end, text in json.loads(stored)] if stored else []


def replace_chunk_lines(cur: duckdb.DuckDBPyConnection, session_id: str, lines: Sequence[SegmentRow]) -> bool:
    """Rewrite one chunk's segments of one transcript as `lines`, in order, after some were
    cut where the speaker changes: each line carries the `idx` of the segment it came from and
    is renumbered 0..n-1, and a person's correction moves with its segment.

    Writes nothing and returns False when the stored segments are no longer the ones the
    lines came from (re-transcribed meanwhile), or when an edited segment would be cut: a
    person's text is never split by guesswork."""
    transcript, seq = lines[0].transcript, lines[0].seq
    key = [session_id, transcript, seq]
    stored = {r["idx"]: _segment_row(r) for r in dict_rows(cur.execute(
        "SELECT * FROM segments WHERE session_id = ? AND transcript = ? AND seq = ?", key))}
    sources = [line.idx for line in lines]
    if set(stored) != set(sources) or any(
            [w for line in lines if line.idx == idx for w in line.words] != row.words
            for idx, row in stored.items() if sources.count(idx) > 1):
        return False
    edits = cur.execute("""SELECT idx, text, edited_at FROM segment_edits WHERE session_id = ?
        AND transcript = ? AND seq = ?""", key).fetchall()
    if any(sources.count(idx) > 1 for idx, *_ in edits):
        return False
    new_idx = {idx: n for n, idx in reversed(list(enumerate(sources)))}
    rows = [replace(stored[line.idx], idx=n, speaker_id=line.speaker_id) if sources.count(line.idx) == 1
            else replace(stored[line.idx], idx=n, speaker_id=line.speaker_id, start_ms=line.start_ms,
                         end_ms=line.end_ms, text=line.text, words=list(line.words))
            for n, line in enumerate(lines)]
    cur.execute("DELETE FROM segments WHERE session_id = ? AND transcript = ? AND seq = ?", key)
    cur.execute("DELETE FROM segment_edits WHERE session_id = ? AND transcript = ? AND seq = ?", key)
    _insert_segments(cur, rows)
    if edits:
        cur.executemany("""INSERT INTO segment_edits (session_id, transcript, seq, idx, text, edited_at)
            VALUES (?, ?, ?, ?, ?, ?)""", [[*key, new_idx[idx], text, at] for idx, text, at in edits])
    return True


def _insert_segments(cur: duckdb.DuckDBPyConnection, segments: Sequence[SegmentRow]) -> None:
    if not segments:
        return
    cur.executemany("""INSERT INTO segments (session_id, transcript, seq, idx, start_ms, end_ms,
        text, speaker, confidence, no_speech_prob, flags, speaker_id, words)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    [[s.session_id, s.transcript, s.seq, s.idx, s.start_ms, s.end_ms, s.text,
                      s.speaker, s.confidence, s.no_speech_prob, json.dumps(s.flags) if s.flags else None,
                      s.speaker_id, words_to_json(s.words)]
                     for s in segments])


def segments_from_backend(session_id: str, seq: int, chunk_start_ms: int,
                          segments: Sequence[Segment], *, chunk_end_ms: int | None = None,
                          transcript: str = LIVE) -> list[SegmentRow]:
    """Backend segments (times relative to the chunk) as rows in absolute session time."""
    rows = []
    chunk_start_s = chunk_start_ms / 1000
    chunk_end_s = None if chunk_end_ms is None else chunk_end_ms / 1000
    for idx, seg in enumerate(segments):
        start = chunk_start_ms + int(round(seg.start * 1000))
        end = max(start, chunk_start_ms + int(round(seg.end * 1000)))
        if chunk_end_ms is not None:
            start, end = min(start, chunk_end_ms), min(end, chunk_end_ms)
        rows.append(SegmentRow(session_id=session_id, seq=seq, idx=idx, start_ms=start, end_ms=end,
                               text=seg.text, speaker=seg.speaker, confidence=seg.confidence,
                               no_speech_prob=seg.no_speech_prob, flags=list(seg.flags),
                               transcript=transcript, words=_in_session_time(seg.words, chunk_start_s,
                                                                             chunk_end_s)))
    return rows


def _in_session_time(words: Sequence[Word], chunk_start_s: float, chunk_end_s: float | None) -> list[Word]:
    moved = [w.shifted(chunk_start_s) for w in words]
    if chunk_end_s is None:
        return moved
    return [Word(min(w.start, chunk_end_s), min(w.end, chunk_end_s), w.text) for w in moved]
