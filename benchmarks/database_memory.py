"""DuckDB's memory while a long history of voice windows is written, with and without a bound.

    python3 benchmarks/database_memory.py [--chunks 2000] [--window-kb 120] [--bound 0 --bound 128]
        [--layout app --layout blob] [--json out.json]

Each chunk of a recording leaves its voice windows in the database (about 20 KB for 15 s of
speech). This writes `--chunks` chunks' windows of `--window-kb` each (120 KB reaches in
minutes what a team's months of meetings reach) into a fresh database file, with a CHECKPOINT
every 200 chunks, once for every `--layout` and `--bound` (DuckDB's `memory_limit` in MB; 0:
DuckDB's own, 80 % of RAM; the app's is `database.MEMORY_LIMIT_MB`):

- `app`: the app's own tables and code (`Storage.save_voice_windows`: rows of at most
  `WINDOW_PIECE_BYTES`, values small enough to stay inside DuckDB's column blocks);
- `blob`: a scratch table holding each chunk's windows as one BLOB, as the app once did.

Each case runs in its own process and prints one line: chunks stored before DuckDB failed (and
its message), the process's highest RSS seen at a checkpoint, DuckDB's own figure for its
memory at the end, the file's size, and the median and longest checkpoint. Why the app stores
the windows in pieces: a checkpoint holds every large value of a table's row group at once, so
under a bound the `blob` layout fails once its windows outgrow the bound, and without one DuckDB
keeps what it wrote; in pieces the app's bound holds.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from seed_sessions import save_chunk_windows  # noqa: E402

from scribe.backends import STAND_IN  # noqa: E402
from scribe.storage import Storage  # noqa: E402

CHECKPOINT_EVERY = 200


def _app_writer(store: Storage):
    session = store.create_session(title="history", source="upload", backend=STAND_IN, model=STAND_IN,
                                   chunk_seconds=15, chunk_policy="pause:15", now=time.time())

    def write(seq: int, windows: bytes) -> None:
        save_chunk_windows(store, session.id, seq, windows)
    return write


def _blob_writer(store: Storage):
    cur = store.cursor()
    cur.execute("CREATE TABLE window_blobs (seq INTEGER PRIMARY KEY, data BLOB NOT NULL)")

    def write(seq: int, windows: bytes) -> None:
        cur.execute("INSERT INTO window_blobs VALUES (?, ?)", [seq, windows])
    return write


def run_case(layout: str, bound_mb: int, chunks: int, window_kb: int) -> dict:
    """One layout under one bound, in a fresh database (call in its own process)."""
    folder = Path(tempfile.mkdtemp(prefix="scribe-db-memory-"))
    store = Storage(folder / "scribe.duckdb")
    cur = store.cursor()
    cur.execute(f"SET memory_limit = '{bound_mb}MB'" if bound_mb else "RESET memory_limit")
    write = _app_writer(store) if layout == "app" else _blob_writer(store)
    rng = np.random.default_rng(0)
    checkpoints: list[float] = []
    peak_rss = psutil.Process().memory_info().rss
    stored, error = 0, None
    try:
        for seq in range(chunks):
            write(seq, rng.bytes(window_kb * 1000))
            stored = seq + 1
            if stored % CHECKPOINT_EVERY == 0:
                started = time.perf_counter()
                cur.execute("CHECKPOINT")
                checkpoints.append(time.perf_counter() - started)
                peak_rss = max(peak_rss, psutil.Process().memory_info().rss)
        database_mb = store.memory_mb()
    except Exception as exc:  # DuckDB's fatal error ends the case: the instance must be reopened
        error, database_mb = str(exc).splitlines()[0][:160], None
    return {"layout": layout, "bound_mb": bound_mb, "chunks": chunks, "window_kb": window_kb,
            "stored": stored, "stored_mb": round(stored * window_kb / 1000, 1), "error": error,
            "peak_rss_mb": round(peak_rss / 2**20), "database_mb": database_mb,
            "file_mb": round(os.path.getsize(folder / "scribe.duckdb") / 2**20),
            "checkpoint_median_ms": round(statistics.median(checkpoints) * 1000) if checkpoints else None,
            "checkpoint_max_ms": round(max(checkpoints) * 1000) if checkpoints else None}


def _in_process(queue, *args) -> None:
    queue.put(run_case(*args))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--window-kb", type=int, default=120)
    parser.add_argument("--bound", type=int, action="append", help="memory_limit in MB (0: DuckDB's own)")
    parser.add_argument("--layout", choices=["app", "blob"], action="append")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = []
    context = multiprocessing.get_context("spawn")  # a fresh process per case: its own RSS, no broken DuckDB
    for layout in args.layout or ["app", "blob"]:
        for bound in args.bound or [0, 128]:
            queue = context.Queue()
            worker = context.Process(target=_in_process, args=(queue, layout, bound, args.chunks, args.window_kb))
            worker.start()
            result = queue.get()
            worker.join()
            results.append(result)
            print(json.dumps(result), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
