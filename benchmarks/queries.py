"""Query latency at scale: a 240-chunk session's transcript among 1M segments, and a page
of the session list among 10k sessions.

Seeds a fresh DuckDB (the real schema, via Storage) with bulk SQL inserts, then
times the queries the app runs through `Storage`, including the conversion to
dataclasses. Prints a markdown table (median and p95 of --repeat runs).

    python3 benchmarks/queries.py [--sessions 10000] [--segments 1000000] [--repeat 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scribe import analytics  # noqa: E402
from scribe.storage import Storage  # noqa: E402

TARGET = "target-session"
TARGET_CHUNKS = 240
SEGMENTS_PER_CHUNK = 4


def seed(storage: Storage, sessions: int, segments: int) -> None:
    """Bulk-insert `sessions` sessions, ~`segments` segments and their chunks in three statements.

    The target session has 240 chunks (an hour at 15 s) with 4 segments each;
    the other sessions share the remaining segments, 4 per chunk.
    """
    others = sessions - 1
    rest_chunks = max(0, segments - TARGET_CHUNKS * SEGMENTS_PER_CHUNK) // SEGMENTS_PER_CHUNK
    per_session = max(1, -(-rest_chunks // max(others, 1)))  # ceiling: at least `segments` in all
    now = time.time()
    with storage.transaction() as cur:
        cur.execute("""INSERT INTO sessions SELECT
                CASE WHEN i = 0 THEN ? ELSE 'session-' || lpad(i::VARCHAR, 6, '0') END,
                'Meeting ' || i, 'mic', 'done', 'local', 'tiny.en', 15.0, 'pause:15',
                ? - i * 3600.0, ? - i * 3600.0 + 900, 900000
            FROM range(?) t(i)""", [TARGET, now, now, sessions])
        cur.execute("""INSERT INTO chunks (session_id, seq, start_ms, end_ms, start_sample, end_sample,
                audio_path, status, attempts, captured_at, enqueued_at, started_at, finished_at,
                backend, model)
            SELECT s.id, c.seq, c.seq * 15000, c.seq * 15000 + 15000, c.seq * 240000,
                c.seq * 240000 + 240000, 'audio/' || s.id || '/' || c.seq || '.flac', 'done', 1,
                s.created_at + c.seq * 15 + 15, s.created_at + c.seq * 15 + 15.05,
                s.created_at + c.seq * 15 + 15.2, s.created_at + c.seq * 15 + 16.4, 'local', 'tiny.en'
            FROM sessions s, LATERAL (SELECT unnest(range(CASE WHEN s.id = ? THEN ? ELSE ? END)) AS seq) c""",
                    [TARGET, TARGET_CHUNKS, per_session])
        cur.execute("""INSERT INTO segments (session_id, transcript, seq, idx, start_ms, end_ms, text,
                confidence, no_speech_prob)
            SELECT c.session_id, 'live', c.seq, k.idx, c.start_ms + k.idx * 3750,
                c.start_ms + k.idx * 3750 + 3500,
                'segment ' || k.idx || ' of chunk ' || c.seq || ' where people talk about the plan',
                0.8, 0.01
            FROM chunks c, range(?) k(idx)""", [SEGMENTS_PER_CHUNK])


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    fn()  # warm the cache once, as a page rerun would
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))], result


def _sessions_page_rows(storage: Storage) -> list[tuple[str, Callable[[], object]]]:
    """The Sessions page's own query (`history.list_page`: count + page + chunk counts),
    when that module is present."""
    try:
        from scribe.history import list_page
    except ImportError:
        return []
    return [("Sessions page: history.list_page, page 1 of 50",
             lambda: list_page(storage, page=1, per_page=50)[0]),
            ("Sessions page: history.list_page, page 100 of 50",
             lambda: list_page(storage, page=100, per_page=50)[0])]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--segments", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="scribe-queries-") as folder:
        storage = Storage(Path(folder) / "scribe.duckdb")
        t0 = time.perf_counter()
        seed(storage, args.sessions, args.segments)
        seed_s = time.perf_counter() - t0
        cur = storage.cursor()
        counts = [cur.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("sessions", "chunks", "segments")]
        print(f"seeded {counts[0]:,} sessions, {counts[1]:,} chunks, {counts[2]:,} segments "
              f"in {seed_s:.1f} s\n")
        rows = [
            ("transcript of a 240-chunk session (list_segments)",
             lambda: storage.list_segments(TARGET)),
            ("  the same SQL alone (fetchall, no dataclasses)",
             lambda: storage.cursor().execute(
                 "SELECT * FROM segments WHERE session_id = ? AND transcript = 'live' ORDER BY seq, idx",
                 [TARGET]).fetchall()),
            ("session list, first page of 50 (list_sessions)", lambda: storage.list_sessions(limit=50)),
            ("session list, page 100 of 50 (offset 4950)",
             lambda: storage.list_sessions(limit=50, offset=4950)),
            ("session count (count_sessions)", lambda: storage.count_sessions()),
            ("chunk counts of one session (chunk_counts)", lambda: storage.chunk_counts(TARGET)),
            ("analytics frame of one session (load_chunks)",
             lambda: analytics.load_chunks(storage, session_ids=[TARGET])),
            ("analytics frame, newest 200k chunks (load_chunks)",
             lambda: analytics.load_chunks(storage)),
        ]
        rows += _sessions_page_rows(storage)
        print("| query | rows | median ms | p95 ms |\n|---|---:|---:|---:|")
        for name, fn in rows:
            median, p95, result = timed(fn, args.repeat if "200k" not in name else max(3, args.repeat // 10))
            n = result if isinstance(result, int) else len(result)
            print(f"| {name} | {n:,} | {median:.1f} | {p95:.1f} |")
        storage.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
