"""What the Analytics page reads: the chunk timeline as a frame, its filter choices,
and the partial lane's decode statistics (the `partial_decodes` table)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    import pandas

from scribe.access import readable_sql
from scribe.identity import Principal
from scribe.storage.database import Database, _filters


class AnalyticsQueries(Database):
    """The chunk timeline and the partial lane's statistics, filtered for the Analytics page."""

    def chunk_timings(self, *, session_ids: Sequence[str] = (), backends: Sequence[str] = (),
                      models: Sequence[str] = (), since: float | None = None,
                      until: float | None = None, limit: int = 200_000,
                      visible_to: Principal | None = None) -> "pandas.DataFrame":
        """Every chunk's timeline joined with its session, newest chunks first.

        Returns a pandas DataFrame (DuckDB builds it column-wise, which stays fast
        at 100k+ rows where a list of dicts would not). `since`/`until` filter on
        the chunk's `captured_at`; `limit` bounds what a page ever loads; `visible_to` keeps
        the sessions that principal may read.
        """
        clauses, params = _timing_filters(session_ids, backends, models, since, until)
        _readable(clauses, params, visible_to, "s")
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        sql = f"""SELECT c.session_id, s.title, s.source, c.seq, c.start_ms, c.end_ms,
                c.start_sample, c.end_sample, c.status, c.attempts, c.error,
                c.captured_at, c.enqueued_at, c.started_at, c.finished_at,
                coalesce(c.backend, s.backend) AS backend, coalesce(c.model, s.model) AS model
            FROM chunks c JOIN sessions s ON s.id = c.session_id {where}
            ORDER BY c.captured_at DESC NULLS LAST, c.session_id, c.seq LIMIT ?"""
        return self.cursor().execute(sql, [*params, limit]).df()

    def timing_facets(self, *, recent_sessions: int = 500,
                      visible_to: Principal | None = None) -> dict[str, list]:
        """Filter choices for the analytics page: backends, models, recent sessions (of the
        sessions `visible_to` may read)."""
        cur = self.cursor()
        readable, params = readable_sql(visible_to, "s") if visible_to else ("TRUE", [])
        mine = f"FROM chunks c JOIN sessions s ON s.id = c.session_id WHERE {readable}"
        backends = [r[0] for r in cur.execute(
            f"SELECT DISTINCT c.backend {mine} AND c.backend IS NOT NULL ORDER BY 1", params).fetchall()]
        models = [r[0] for r in cur.execute(
            f"SELECT DISTINCT c.model {mine} AND c.model IS NOT NULL ORDER BY 1", params).fetchall()]
        sessions = self._rows(f"""SELECT id, title, created_at FROM sessions s WHERE {readable}
            ORDER BY created_at DESC, id DESC LIMIT ?""", [*params, recent_sessions])
        span = cur.execute(f"SELECT min(c.captured_at), max(c.captured_at) {mine}", params).fetchone()
        return {"backends": backends, "models": models, "sessions": sessions,
                "captured_range": [span[0], span[1]]}

    def save_partial_decodes(self, decodes: Sequence[Any]) -> None:
        """Append `scribe.partials.PartialDecode` records (statistics only, never text)."""
        if not decodes:
            return
        with self.transaction() as cur:
            cur.executemany("""INSERT INTO partial_decodes (session_id, seq, produced_at, audio_end_ms,
                lag_s, decode_s, words, coalesced, paused) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                            [[d.session_id, d.seq, d.produced_at, d.audio_end_ms, d.lag_s, d.decode_s,
                              d.words, d.coalesced, d.paused] for d in decodes])

    def partial_lane_stats(self, *, session_ids: Sequence[str] = (), since: float | None = None,
                           until: float | None = None, visible_to: Principal | None = None
                           ) -> list[dict[str, Any]]:
        """Per session with partial decodes: decodes, requests replaced (coalesced; paused
        under backlog), lag p50/p95/max, decode time, and the session's audio seconds."""
        where, params = _partial_filters(session_ids, since, until, visible_to)
        return self._rows(f"""SELECT p.session_id, s.title, count(*) AS decodes,
                sum(p.coalesced) AS coalesced, sum(p.paused) AS paused,
                quantile_cont(p.lag_s, 0.5) AS lag_p50_s, quantile_cont(p.lag_s, 0.95) AS lag_p95_s,
                max(p.lag_s) AS lag_max_s, avg(p.decode_s) AS decode_mean_s,
                max(s.duration_ms) / 1000.0 AS audio_s
            FROM partial_decodes p JOIN sessions s ON s.id = p.session_id {where}
            GROUP BY p.session_id, s.title ORDER BY min(p.produced_at) DESC""", params)

    def partial_lags(self, *, session_ids: Sequence[str] = (), since: float | None = None,
                     until: float | None = None, visible_to: Principal | None = None) -> list[float]:
        """Every partial decode's lag in seconds (for percentiles across sessions)."""
        where, params = _partial_filters(session_ids, since, until, visible_to)
        rows = self.cursor().execute(f"""SELECT p.lag_s FROM partial_decodes p
            JOIN sessions s ON s.id = p.session_id {where}""", params).fetchall()
        return [r[0] for r in rows]


def _timing_filters(session_ids: Sequence[str], backends: Sequence[str], models: Sequence[str],
                    since: float | None, until: float | None) -> tuple[list[str], list[Any]]:
    return _filters([("c.session_id", session_ids), ("coalesce(c.backend, s.backend)", backends),
                     ("coalesce(c.model, s.model)", models)], "c.captured_at", since, until)


def _readable(clauses: list[str], params: list[Any], visible_to: Principal | None, alias: str) -> None:
    """Add the access rule's condition for `visible_to` (None: every session)."""
    if visible_to is not None:
        condition, more = readable_sql(visible_to, alias)
        clauses.append(condition)
        params.extend(more)


def _partial_filters(session_ids: Sequence[str], since: float | None, until: float | None,
                     visible_to: Principal | None = None) -> tuple[str, list[Any]]:
    clauses, params = _filters([("p.session_id", session_ids)], "p.produced_at", since, until)
    _readable(clauses, params, visible_to, "s")
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params
