"""`bench`: the load test (simulated live sessions through the real queue, in a temp folder)."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from scribe import backends
from scribe.config import parse_latency_range
from scribe.runtime import configure_logging


def register(sub: Any) -> None:
    p = sub.add_parser("bench", help="load test: N simulated live sessions through the real queue",
                       description="Simulate N live sessions (20 ms 48 kHz frames -> resampler -> "
                       "chunker -> queue -> DuckDB in a temp folder) and report lost/duplicated "
                       "chunks, latency percentiles, throughput, backlog, RSS and CPU.")
    # Defaults: None here, BenchConfig's (the one source) unless a flag is given.
    p.add_argument("--sessions", type=int, help="concurrent sessions (default 10)")
    p.add_argument("--minutes", type=float, help="audio minutes per session (default 1)")
    p.add_argument("--backend", choices=backends.benched())
    p.add_argument("--stub-latency", type=_latency_range, metavar="LO-HI",
                   help="stub seconds per chunk, uniform in LO-HI (default 1-3)")
    p.add_argument("--stub-error-rate", type=float, metavar="P",
                   help="fraction of backend calls that fail with a retryable error (default 0)")
    p.add_argument("--concurrency", type=int, help="worker threads (default " + ", ".join(
        f"{backends.spec(name).bench_threads} {name}" for name in backends.benched()) + ")")
    p.add_argument("--writers", type=int, help="chunk writer threads (default 4)")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--realtime", dest="speed", action="store_const", const=1.0,
                      help="feed audio at real-time pace (default)")
    pace.add_argument("--fast", dest="speed", action="store_const", const=math.inf,
                      help="feed audio as fast as possible")
    pace.add_argument("--speed", dest="speed", type=float, help="feed at N x real time")
    p.add_argument("--policy", help="chunk policy (default pause:15)")
    p.add_argument("--model", help="Whisper model for --backend local (default tiny.en)")
    p.add_argument("--audio", type=Path, help="loop this audio file instead of synthetic speech")
    p.add_argument("--data-dir", type=Path, help="keep the DuckDB and audio here (default: temp, removed)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=cmd_bench, speed=None)


def _latency_range(raw: str) -> tuple[float, float]:
    try:
        return parse_latency_range(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO-HI seconds like 1-3, got {raw!r}") from None


def cmd_bench(args: argparse.Namespace) -> int:
    from scribe.bench import format_report, run_bench

    configure_logging("WARNING")
    config = config_from(args)
    report = run_bench(config, progress=lambda line: print(f"\r{line:<90}", end="", file=sys.stderr,
                                                           flush=True))
    print(file=sys.stderr)
    print(report.to_json() if args.json else format_report(report))
    return 0 if report.lost == 0 and report.duplicated == 0 and report.audio_gaps == 0 else 1


def config_from(args: argparse.Namespace) -> Any:
    """The run's BenchConfig: the flags given, BenchConfig's defaults for the rest."""
    from scribe.bench import BenchConfig

    given = {"sessions": args.sessions, "minutes": args.minutes, "backend": args.backend,
             "stub_latency": args.stub_latency, "stub_error_rate": args.stub_error_rate,
             "concurrency": args.concurrency, "writers": args.writers, "speed": args.speed,
             "chunk_policy": args.policy, "whisper_model": args.model, "audio_path": args.audio,
             "data_dir": args.data_dir}
    return BenchConfig(**{name: value for name, value in given.items() if value is not None})
