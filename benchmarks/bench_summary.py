"""Local summary speed on synthesized meeting transcripts (the ~10k-word one is about an hour of talk).

    python3 benchmarks/bench_summary.py [--words 1000 10000 30000] [--repeat 5]

Prints a Markdown table: words, segments, first call (includes importing YAKE), median and
worst wall time of the following calls, their median CPU time (the work itself, less
sensitive to other processes on a shared machine), and the found action items / decisions as a sanity check.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from scribe.summaries import summarize_local  # noqa: E402
from transcript_gen import meeting_segments  # noqa: E402


def measure(words: int, repeat: int) -> dict[str, float]:
    segments, planted = meeting_segments(words)
    times, cpu = [], []
    summary = None
    for _ in range(repeat + 1):
        started, cpu_started = time.perf_counter(), time.process_time()
        summary = summarize_local(segments)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    found = {i.text for i in summary.action_items + summary.decisions}
    return {"words": summary.words, "segments": len(segments), "first": times[0],
            "median": statistics.median(times[1:]), "worst": max(times[1:]),
            "cpu": statistics.median(cpu[1:]),
            "planted_found": sum(1 for line in planted if line in found), "planted": len(planted)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--words", type=int, nargs="+", default=[1_000, 10_000, 30_000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print("| words | segments | first call (s) | median wall (s) | worst wall (s) | median CPU (s) "
          "| planted items found |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for words in args.words:
        r = measure(words, args.repeat)
        print(f"| {r['words']:,} | {r['segments']:,} | {r['first']:.3f} | {r['median']:.3f} | {r['worst']:.3f} "
              f"| {r['cpu']:.3f} | {r['planted_found']}/{r['planted']} |")


if __name__ == "__main__":
    main()
