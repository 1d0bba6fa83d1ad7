"""Sessions page queries at scale: paging and search over 10,000 sessions.

    python3 benchmarks/bench_history.py [--sessions 10000] [--segments 40] [--repeat 5]

Builds a temporary DuckDB with N sessions of M chunks (one segment each) by bulk SQL,
then times what one Sessions-page run costs: a page of listings with chunk counts
(`history.list_page`, first and last page, with a status filter) and searches (a rare
phrase, a common word, a word that is nowhere). Prints a Markdown table of medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scribe import history  # noqa: E402
from scribe.search import search  # noqa: E402
from scribe.storage import Storage  # noqa: E402

WORDS = "budget launch customer release design review hiring plan timeline server latency roadmap".split()


def build(storage: Storage, sessions: int, segments: int) -> None:
    """Bulk-insert sessions, chunks and segments with SQL (seconds instead of minutes)."""
    words = ", ".join(f"'{w}'" for w in WORDS)
    with storage.transaction() as cur:
        cur.execute(f"""INSERT INTO sessions SELECT 'S' || lpad(i::VARCHAR, 6, '0'), 'Meeting ' || i, 'mic',
            CASE WHEN i % 50 = 0 THEN 'interrupted' ELSE 'done' END, 'local', 'tiny.en', 15, 'pause',
            1.7e9 + i * 3600, 1.7e9 + i * 3600 + {segments * 15}, {segments * 15_000}
            FROM range({sessions}) t(i)""")
        cur.execute(f"""INSERT INTO chunks (session_id, seq, start_ms, end_ms, start_sample, end_sample,
            audio_path, status) SELECT 'S' || lpad(i::VARCHAR, 6, '0'), j, j * 15000, (j + 1) * 15000,
            j * 240000, (j + 1) * 240000, '/nowhere', CASE WHEN (i + j) % 97 = 0 THEN 'failed' ELSE 'done' END
            FROM range({sessions}) a(i), range({segments}) b(j)""")
        cur.execute(f"""INSERT INTO segments (session_id, transcript, seq, idx, start_ms, end_ms, text)
            SELECT 'S' || lpad(i::VARCHAR, 6, '0'), 'live', j, 0, j * 15000 + 200, j * 15000 + 14000,
            'so the ' || list_element([{words}], 1 + (i * 7 + j) % {len(WORDS)}) || ' item number ' || j ||
            CASE WHEN i = {sessions // 2} AND j = 3 THEN ' and the purple elephant plan' ELSE '' END ||
            ' is what we talked about in meeting ' || i
            FROM range({sessions}) a(i), range({segments}) b(j)""")


def timed(fn, repeat: int) -> float:
    fn()  # warm caches once, as a page's second run would be
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--segments", type=int, default=40, help="segments (and chunks) per session")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        storage = Storage(Path(tmp) / "bench.duckdb")
        started = time.perf_counter()
        build(storage, args.sessions, args.segments)
        print(f"built {args.sessions:,} sessions, {args.sessions * args.segments:,} chunks and segments "
              f"in {time.perf_counter() - started:.1f} s\n")
        last = -(-args.sessions // 25)
        cases = {
            "list page 1 (25 rows + chunk counts + total)": lambda: history.list_page(storage, page=1),
            f"list page {last} (last)": lambda: history.list_page(storage, page=last),
            "list filtered by status=interrupted": lambda: history.list_page(storage, statuses=["interrupted"]),
            'search "purple elephant" (1 hit)': lambda: search(storage, '"purple elephant"'),
            "search budget (many hits, first page)": lambda: search(storage, "budget"),
            "search zebra (no hit)": lambda: search(storage, "zebra"),
        }
        print("| query | median (ms) |")
        print("|---|---:|")
        for name, fn in cases.items():
            print(f"| {name} | {timed(fn, args.repeat) * 1000:.1f} |")
        hits = search(storage, '"purple elephant"')
        assert hits.total == 1, hits.total
        storage.close()


if __name__ == "__main__":
    main()
