"""The `speakers` and `diarization` tables: each session's voices, their names, and
which segment each spoke (`segments.speaker_id`)."""

from __future__ import annotations

import time
from typing import Any, Sequence

from scribe.core import LIVE, SegmentRow, SpeakerRow
from scribe.errors import NotFoundError, ScribeError
from scribe.storage.database import Database
from scribe.storage.segments import SPEAKER_JOIN, SPEAKER_NAME, _segment_row, replace_chunk_lines

MAX_EXPECTED_SPEAKERS = 20
"""The most people a user can say a meeting has (the page, the CLI and the API check it here)."""


def check_expected_speakers(count: int | None) -> int | None:
    """A number of people given by a user: None or 0 means "estimate it" (None)."""
    if not count:
        return None
    if not 1 <= count <= MAX_EXPECTED_SPEAKERS:
        raise ScribeError(f"the number of people must be between 1 and {MAX_EXPECTED_SPEAKERS}, not {count}")
    return count


class SpeakerQueries(Database):
    """Speakers and the diarization state of each session."""

    def list_speakers(self, session_id: str) -> list[SpeakerRow]:
        """The session's speakers by id, with their centroids."""
        rows = self._rows("SELECT * FROM speakers WHERE session_id = ? ORDER BY id", [session_id])
        return [SpeakerRow(**{**r, "centroid": list(r["centroid"] or [])}) for r in rows]

    def speaker_stats(self, session_id: str, transcript: str = LIVE) -> list[dict[str, Any]]:
        """Per speaker: id, name, segments and seconds of that transcript (for the page)."""
        return self._rows("""SELECT sp.id, sp.name, count(g.idx) AS segments,
                coalesce(sum(g.end_ms - g.start_ms), 0) / 1000.0 AS seconds
            FROM speakers sp LEFT JOIN segments g ON g.session_id = sp.session_id
                AND g.speaker_id = sp.id AND g.transcript = ?
            WHERE sp.session_id = ? GROUP BY sp.id, sp.name ORDER BY sp.id""", [transcript, session_id])

    def diarization_state(self, session_id: str) -> dict[str, Any] | None:
        """{expected_speakers, stage ('live' or 'final'), updated_at}, or None if never labelled."""
        rows = self._rows("SELECT * FROM diarization WHERE session_id = ?", [session_id])
        return rows[0] if rows else None

    def set_expected_speakers(self, session_id: str, count: int | None) -> None:
        """The number of voices the user says the session has (None: estimate it)."""
        count = check_expected_speakers(count)
        with self.transaction() as cur:
            cur.execute("""INSERT INTO diarization (session_id, expected_speakers, updated_at)
                VALUES (?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET
                expected_speakers = excluded.expected_speakers""", [session_id, count, time.time()])

    def save_speakers(self, session_id: str, speakers: Sequence[SpeakerRow],
                      assignments: Sequence[tuple[str, int, int, int | None]], *,
                      stage: str, replace_all: bool = False, cut: Sequence[SegmentRow] = ()) -> None:
        """Upsert speakers and set segments' speaker ids, in one transaction.

        `assignments` are (transcript, seq, idx, speaker_id). With `replace_all` the
        session's speakers not in `speakers` are removed (a re-clustering). `cut`: the lines
        of chunks where a segment was cut at a speaker change (`replace_chunk_lines`); a
        chunk whose segments changed meanwhile keeps its `assignments` instead.
        """
        with self.transaction() as cur:
            if replace_all:
                keep = [sp.id for sp in speakers]
                others = f"AND id NOT IN ({', '.join('?' * len(keep))})" if keep else ""
                cur.execute(f"DELETE FROM speakers WHERE session_id = ? {others}", [session_id, *keep])
            for sp in speakers:
                cur.execute("""INSERT INTO speakers (session_id, id, name, centroid, seconds)
                    VALUES (?, ?, ?, ?, ?) ON CONFLICT (session_id, id) DO UPDATE SET
                    centroid = excluded.centroid, seconds = excluded.seconds""",
                            [session_id, sp.id, sp.name, list(sp.centroid), sp.seconds])
            if assignments:
                cur.executemany("""UPDATE segments SET speaker_id = ? WHERE session_id = ?
                    AND transcript = ? AND seq = ? AND idx = ?""",
                                [[sid, session_id, t, seq, idx] for t, seq, idx, sid in assignments])
            chunks: dict[tuple[str, int], list[SegmentRow]] = {}
            for line in cut:
                chunks.setdefault((line.transcript, line.seq), []).append(line)
            for lines in chunks.values():
                replace_chunk_lines(cur, session_id, lines)
            cur.execute("""INSERT INTO diarization (session_id, stage, updated_at) VALUES (?, ?, ?)
                ON CONFLICT (session_id) DO UPDATE SET stage = excluded.stage,
                updated_at = excluded.updated_at""", [session_id, stage, time.time()])

    def rename_speaker(self, session_id: str, speaker_id: int, name: str) -> None:
        """Give a speaker a name; every transcript, search, summary and export shows it."""
        name = " ".join(name.split())
        if not name or len(name) > 60:
            raise ScribeError("a speaker name must be 1 to 60 characters")
        with self.transaction() as cur:
            taken = cur.execute("""SELECT id FROM speakers WHERE session_id = ? AND id <> ?
                AND lower(name) = lower(?)""", [session_id, speaker_id, name]).fetchone()
            if taken:
                raise ScribeError(f"another speaker is already called {name!r}; merge them instead")
            # A person's name wins over a recognised voice: the profile no longer names it.
            changed = cur.execute("""UPDATE speakers SET name = ?, profile_id = NULL,
                profile_by = CASE WHEN profile_by = 'refused' THEN 'refused' ELSE 'person' END
                WHERE session_id = ? AND id = ? RETURNING id""", [name, session_id, speaker_id]).fetchall()
        if not changed:
            raise NotFoundError(f"no speaker {speaker_id} in session {session_id!r}")

    def merge_speakers(self, session_id: str, keep: int, drop: int) -> None:
        """`drop`'s segments become `keep`'s; `drop` is removed; the centroids are pooled."""
        speakers = {sp.id: sp for sp in self.list_speakers(session_id)}
        if keep == drop or keep not in speakers or drop not in speakers:
            raise NotFoundError(f"cannot merge speaker {drop} into {keep} in session {session_id!r}")
        a, b = speakers[keep], speakers[drop]
        pooled = [x * max(a.seconds, 1e-3) + y * max(b.seconds, 1e-3) for x, y in zip(a.centroid, b.centroid)]
        norm = sum(v * v for v in pooled) ** 0.5 or 1.0
        with self.transaction() as cur:
            cur.execute("UPDATE segments SET speaker_id = ? WHERE session_id = ? AND speaker_id = ?",
                        [keep, session_id, drop])
            cur.execute("DELETE FROM speakers WHERE session_id = ? AND id = ?", [session_id, drop])
            cur.execute("UPDATE speakers SET centroid = ?, seconds = ? WHERE session_id = ? AND id = ?",
                        [[v / norm for v in pooled], a.seconds + b.seconds, session_id, keep])

    def speaker_segments(self, session_id: str, speaker_id: int) -> list[SegmentRow]:
        """Every segment (all transcripts) of one speaker, in time order."""
        rows = self._rows(f"""SELECT g.* EXCLUDE (speaker), {SPEAKER_NAME} AS speaker
            FROM segments g {SPEAKER_JOIN} WHERE g.session_id = ? AND g.speaker_id = ?
            ORDER BY g.start_ms, g.transcript, g.seq, g.idx""", [session_id, speaker_id])
        return [_segment_row(r) for r in rows]
