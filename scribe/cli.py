"""`python -m scribe COMMAND ...`: the command-line face of the library.

Every command builds Settings from the environment plus its flags, and turns
the library's named errors into one clear line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from scribe.chunking import parse_policy
from scribe.config import Settings
from scribe.errors import ScribeError
from scribe.export import FORMATS, render
from scribe.ingest import ingest_file, wait_for_session
from scribe.runtime import Runtime, configure_logging
from scribe.storage import Storage

EXIT_ERROR = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ScribeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted; chunks already stored will be finished on the next start", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scribe", description="Scribe meeting transcription")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_transcribe(sub)
    _add_sessions(sub)
    _add_bench(sub)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    backend = getattr(args, "backend", None)
    model = getattr(args, "model", None)
    overrides = {
        "backend": backend,
        "db_path": Path(args.db) if getattr(args, "db", None) else None,
        "chunk_seconds": getattr(args, "chunk_seconds", None),
        "chunk_policy": getattr(args, "policy", None),
    }
    settings = Settings.from_env(**overrides)
    if model:
        key = "gemini_model" if settings.backend == "gemini" else "whisper_model"
        settings = settings.with_changes(**{key: model})
    return settings


def _add_db_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="DuckDB file (default: SCRIBE_DB or <data>/scribe.duckdb)")


# -- transcribe ---------------------------------------------------------------
def _add_transcribe(sub) -> None:
    p = sub.add_parser("transcribe", help="transcribe an audio file into a new session")
    p.add_argument("file", help="audio file (wav, mp3, m4a, ogg/opus, webm, flac, ...)")
    p.add_argument("--backend", choices=["local", "gemini", "stub"])
    p.add_argument("--model", help="Whisper model name or folder (local), or Gemini model")
    p.add_argument("--chunk-seconds", type=float)
    p.add_argument("--policy", choices=["fixed", "pause", "whole"])
    p.add_argument("--format", choices=FORMATS, default="txt")
    p.add_argument("--output", help="write the transcript here instead of stdout")
    p.add_argument("--title")
    _add_db_flag(p)
    p.set_defaults(func=cmd_transcribe)


def cmd_transcribe(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise ScribeError(f"{path}: no such file")
    policy_name = args.policy or None
    settings = _settings(argparse.Namespace(**{**vars(args), "policy": None if policy_name == "whole" else policy_name}))
    configure_logging(settings.log_level if settings.log_level != "INFO" else "WARNING")
    policy = parse_policy(policy_name or settings.chunk_policy, settings.chunk_seconds)
    runtime = Runtime.build(settings)
    try:
        return _run_transcribe(runtime, path, policy, args)
    finally:
        runtime.close()


def _run_transcribe(runtime: Runtime, path: Path, policy, args: argparse.Namespace) -> int:
    started = time.monotonic()
    result = ingest_file(path, storage=runtime.storage, pipeline=runtime.pipeline, policy=policy,
                         title=args.title, source="cli", progress=_stderr_progress("reading"))
    counts = wait_for_session(runtime.storage, result.session.id, progress=_stderr_progress("transcribing"))
    wall = time.monotonic() - started
    print(file=sys.stderr)
    session = runtime.storage.get_session(result.session.id)
    segments = runtime.storage.list_segments(session.id)
    _write_output(render(args.format, session, segments), args.output)
    _print_timing(runtime.storage, session.id, result.audio_seconds, wall, counts)
    return 0 if counts["failed"] == 0 else 1


def _stderr_progress(stage: str) -> Callable[[float, str], None]:
    """A one-line progress display that redraws only when the whole percent changes."""
    last = [-1]

    def report(fraction: float, message: str) -> None:
        percent = int(fraction * 100)
        if percent != last[0]:
            last[0] = percent
            print(f"\r{stage}: {percent:3d}%  {message:<40}", end="", file=sys.stderr, flush=True)
    return report


def _write_output(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def _print_timing(storage: Storage, session_id: str, audio_s: float, wall: float,
                  counts: dict[str, int]) -> None:
    processing = [c.finished_at - c.started_at for c in storage.list_chunks(session_id)
                  if c.finished_at and c.started_at and c.status == "done"]
    p50 = statistics.median(processing) if processing else 0.0
    p95 = _percentile(processing, 95)
    print(f"session {session_id}: {counts['done']} chunks done, {counts['failed']} failed\n"
          f"audio {audio_s:.1f} s, wall {wall:.1f} s, real-time factor {wall / max(audio_s, 1e-9):.3f}, "
          f"chunk processing p50 {p50:.2f} s, p95 {p95:.2f} s", file=sys.stderr)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


# -- sessions -----------------------------------------------------------------
def _add_sessions(sub) -> None:
    p = sub.add_parser("sessions", help="list stored sessions, newest first")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--limit", type=int, default=50)
    _add_db_flag(p)
    p.set_defaults(func=cmd_sessions)


def cmd_sessions(args: argparse.Namespace) -> int:
    settings = _settings(args)
    storage = Storage(settings.db)
    try:
        rows = storage.list_sessions(limit=args.limit)
        counts = {r.id: storage.chunk_counts(r.id) for r in rows}
    finally:
        storage.close()
    if args.json:
        print(json.dumps([{**r.__dict__, "chunks": counts[r.id]} for r in rows], indent=2))
        return 0
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created_at))
        c = counts[r.id]
        print(f"{r.id}  {when}  {r.duration_ms / 1000:7.1f}s  {r.status:<11} {r.backend:<6} "
              f"{c['done']}/{sum(c.values())} chunks{'  ' + str(c['failed']) + ' failed' if c['failed'] else ''}"
              f"  {r.title}")
    return 0


# -- bench (issue 7) ----------------------------------------------------------
def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="load test: N simulated live sessions through the real queue",
                       description="Simulate N live sessions (20 ms 48 kHz frames -> resampler -> "
                       "chunker -> queue -> DuckDB in a temp folder) and report lost/duplicated "
                       "chunks, latency percentiles, throughput, backlog, RSS and CPU.")
    p.add_argument("--sessions", type=int, default=10, help="concurrent sessions (default 10)")
    p.add_argument("--minutes", type=float, default=1.0, help="audio minutes per session (default 1)")
    p.add_argument("--backend", choices=["stub", "local"], default="stub")
    p.add_argument("--stub-latency", type=_latency_range, default=(1.0, 3.0), metavar="LO-HI",
                   help="stub seconds per chunk, uniform in LO-HI (default 1-3)")
    p.add_argument("--stub-error-rate", type=float, default=0.0, metavar="P",
                   help="fraction of backend calls that fail with a retryable error (default 0)")
    p.add_argument("--concurrency", type=int, help="worker threads (default 32 stub, 2 local)")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--realtime", dest="speed", action="store_const", const=1.0,
                      help="feed audio at real-time pace (default)")
    pace.add_argument("--fast", dest="speed", action="store_const", const=math.inf,
                      help="feed audio as fast as possible")
    pace.add_argument("--speed", dest="speed", type=float, help="feed at N x real time")
    p.add_argument("--policy", default="pause:15", help="chunk policy (default pause:15)")
    p.add_argument("--model", default="tiny.en", help="Whisper model for --backend local")
    p.add_argument("--audio", type=Path, help="loop this audio file instead of synthetic speech")
    p.add_argument("--data-dir", type=Path, help="keep the DuckDB and audio here (default: temp, removed)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=cmd_bench, speed=1.0)


def _latency_range(raw: str) -> tuple[float, float]:
    lo, sep, hi = raw.partition("-")
    try:
        return (float(lo), float(hi if sep else lo))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO-HI seconds like 1-3, got {raw!r}") from None


def cmd_bench(args: argparse.Namespace) -> int:
    from scribe.bench import BenchConfig, format_report, run_bench

    configure_logging("WARNING")
    concurrency = args.concurrency or (32 if args.backend == "stub" else 2)
    config = BenchConfig(sessions=args.sessions, minutes=args.minutes, backend=args.backend,
                         stub_latency=args.stub_latency, stub_error_rate=args.stub_error_rate,
                         concurrency=concurrency, speed=args.speed, chunk_policy=args.policy,
                         whisper_model=args.model, audio_path=args.audio, data_dir=args.data_dir)
    report = run_bench(config, progress=lambda line: print(f"\r{line:<90}", end="", file=sys.stderr,
                                                           flush=True))
    print(file=sys.stderr)
    print(report.to_json() if args.json else format_report(report))
    return 0 if report.lost == 0 and report.duplicated == 0 and report.audio_gaps == 0 else 1
