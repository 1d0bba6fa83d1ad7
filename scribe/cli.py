"""`python -m scribe COMMAND ...`: the command-line face of the library.

Every command builds Settings from the environment plus its flags, and turns
the library's named errors into one clear line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from scribe.chunking import parse_policy
from scribe.config import Settings, parse_latency_range
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
    _add_worker(sub)
    _add_export(sub)
    _add_search(sub)
    _add_summarize(sub)
    _add_delete(sub)
    _add_eval(sub)
    _add_bench(sub)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    backend = getattr(args, "backend", None)
    model = getattr(args, "model", None)
    db = Path(args.db) if getattr(args, "db", None) else None
    overrides = {
        "backend": backend,
        "db_path": db,
        # Chunk audio goes beside the database it belongs to, not to ./data/audio,
        # unless SCRIBE_DATA_DIR says where.
        **({"data_dir": db.parent} if db is not None and not os.environ.get("SCRIBE_DATA_DIR") else {}),
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
    _print_failures(runtime.storage, session.id)
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
    _config, storage = _open_storage(args)
    try:
        rows = storage.list_sessions(limit=args.limit)
        counts = storage.chunk_counts_many([r.id for r in rows])
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


# -- worker -------------------------------------------------------------------
def _add_worker(sub) -> None:
    p = sub.add_parser("worker", help="run a Dramatiq transcription worker (scale-out)")
    p.add_argument("--redis", help="Redis URL (default: SCRIBE_REDIS_URL)")
    p.add_argument("--backend", choices=["local", "gemini", "stub"])
    p.add_argument("--model", help="Whisper model name or folder (local), or Gemini model")
    p.add_argument("--threads", type=int, default=1, help="jobs run at once in this worker")
    p.add_argument("--rpm", type=int, help="global requests-per-minute cap shared by all workers "
                   "(default: SCRIBE_GEMINI_RPM for gemini, none otherwise)")
    p.set_defaults(func=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    import signal
    import threading

    from scribe.distributed import TranscriptionWorker, safe_url, wait_for_redis
    from scribe.transcribers import make_transcriber

    settings = _settings(args)
    url = args.redis or settings.redis_url
    if not url:
        raise ScribeError("no Redis URL: pass --redis redis://HOST:6379/0 or set SCRIBE_REDIS_URL")
    configure_logging(settings.log_level)
    wait_for_redis(url)
    rpm = args.rpm or (settings.gemini_rpm if settings.backend == "gemini" else None)
    worker = TranscriptionWorker(url, make_transcriber(settings), rpm=rpm, threads=max(1, args.threads))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"worker ready: {settings.backend} backend, {args.threads} thread(s), Redis {safe_url(url)}",
          file=sys.stderr, flush=True)
    worker.run_until(stop)
    return 0


# -- failures (issue 4) -------------------------------------------------------
def _print_failures(storage: Storage, session_id: str, limit: int = 3) -> None:
    """Say why chunks failed: each distinct error once (errors never contain the API key)."""
    errors: dict[str, list[int]] = {}
    for chunk in storage.failed_chunks(session_id):
        errors.setdefault(chunk.error or "unknown error", []).append(chunk.seq)
    for error, seqs in list(errors.items())[:limit]:
        print(f"{len(seqs)} chunk(s) failed (first seq {seqs[0]}): {error}", file=sys.stderr)


# -- export, search, summarize, delete (issue 5) -------------------------------
def _open_storage(args: argparse.Namespace) -> tuple[Settings, Storage]:
    settings = _settings(args)
    return settings, Storage(settings.db)


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="write a stored transcript as txt, md, srt, vtt or json")
    p.add_argument("session_id")
    p.add_argument("--format", choices=FORMATS, default="txt")
    p.add_argument("--output", help="write here instead of stdout")
    p.add_argument("--transcript", choices=["live", "final"],
                   help="which transcript (default: final when there is one, else live)")
    _add_db_flag(p)
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from scribe.history import choose_transcript

    _settings_, storage = _open_storage(args)
    try:
        session = storage.get_session(args.session_id)
        shown, available = choose_transcript(storage, session.id, args.transcript)
        if args.transcript and args.transcript not in available:
            raise ScribeError(f"session {session.id} has no {args.transcript} transcript")
        text = render(args.format, session, storage.list_segments(session.id, shown))
    finally:
        storage.close()
    _write_output(text, args.output)
    return 0


def _add_search(sub) -> None:
    p = sub.add_parser("search", help='search every transcript (words, "quoted phrases")')
    p.add_argument("query")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--page", type=int, default=1)
    _add_db_flag(p)
    p.set_defaults(func=cmd_search)


def cmd_search(args: argparse.Namespace) -> int:
    from scribe.export import mmss
    from scribe.search import search

    if args.limit < 1 or args.page < 1:
        raise ScribeError("--limit and --page must be at least 1")
    _settings_, storage = _open_storage(args)
    try:
        page = search(storage, args.query, limit=args.limit, offset=(args.page - 1) * args.limit)
    finally:
        storage.close()
    if args.json:
        print(json.dumps({"query": page.query, "total": page.total, "page": args.page,
                          "hits": [{**h.__dict__, "start": h.start_ms / 1000, "end": h.end_ms / 1000}
                                   for h in page.hits]}, indent=2, ensure_ascii=False))
        return 0
    for h in page.hits:
        who = f"{h.speaker}: " if h.speaker else ""
        print(f"{h.session_id}  [{mmss(h.start_ms)}]  {who}{h.text}")
    print(f"{page.total} match(es); page {args.page} of {page.pages}", file=sys.stderr)
    return 0 if page.total else 1


def _add_summarize(sub) -> None:
    p = sub.add_parser("summarize", help="summarize a session and store it as a new version")
    p.add_argument("session_id")
    p.add_argument("--backend", choices=["local", "gemini"], default="local")
    p.add_argument("--transcript", choices=["live", "final"])
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_db_flag(p)
    p.set_defaults(func=cmd_summarize)


def cmd_summarize(args: argparse.Namespace) -> int:
    from scribe.summaries import summarize_session

    # --backend picks the summarizer, not the transcription backend.
    settings, storage = _open_storage(argparse.Namespace(**{**vars(args), "backend": None}))
    try:
        summary, row = summarize_session(storage, settings, args.session_id, backend=args.backend,
                                         transcript=args.transcript, progress=_stderr_progress("summarizing"))
    finally:
        storage.close()
    print(file=sys.stderr)
    if args.json:
        print(json.dumps({"session_id": row.session_id, "version": row.version, **summary.to_dict()},
                         indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(_summary_text(summary, row.version))
    return 0


def _summary_text(summary, version: int) -> str:
    from scribe.export import mmss

    def items(title: str, rows) -> list[str]:
        lines = [f"\n{title}:"] if rows else []
        for i in rows:
            extra = "".join(f" ({k}: {v})" for k, v in (("owner", i.owner), ("due", i.due)) if v)
            lines.append(f"  [{mmss(i.start_ms)}] {i.text}{extra}")
        return lines

    head = [f"{summary.title}  (version {version}, {summary.backend} {summary.model})", "",
            summary.overview]
    if summary.keywords:
        head.append("\nKeywords: " + ", ".join(summary.keywords))
    body = items("Key points", summary.key_points) + items("Decisions", summary.decisions) + \
        items("Action items", summary.action_items)
    return "\n".join(head + body) + "\n"


def _add_delete(sub) -> None:
    p = sub.add_parser("delete", help="delete a session: its rows and its audio folder, nothing else")
    p.add_argument("session_id")
    p.add_argument("--force", action="store_true",
                   help="delete even while it is recording or has chunks in the queue")
    _add_db_flag(p)
    p.set_defaults(func=cmd_delete)


def cmd_delete(args: argparse.Namespace) -> int:
    from scribe.history import delete_session

    settings, storage = _open_storage(args)
    try:
        report = delete_session(storage, settings.audio_dir, args.session_id, force=args.force)
    finally:
        storage.close()
    print(f"deleted session {report.session_id}: {report.segments} segments, {report.chunks} chunks, "
          f"{report.summaries} summaries, {report.audio_files} audio files")
    return 0


# -- eval (chunking lab) --------------------------------------------------------
def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="score chunking policies on a recording against a reference")
    p.add_argument("audio", help="audio file, or 'demo' for the built-in demo recording")
    p.add_argument("--reference", help="reference transcript (text file); not needed for 'demo'")
    p.add_argument("--policy", action="append", dest="policies", metavar="POLICY",
                   help="fixed:N, pause:N, quiet:N (previous pause policy) or whole; repeat for several "
                        "(default: whole, fixed:15, pause:15)")
    p.add_argument("--backend", choices=["local", "gemini", "stub"])
    p.add_argument("--model", help="Whisper model name or folder (local), or Gemini model")
    p.add_argument("--json", action="store_true", help='print {"runs": [...]} as JSON')
    p.add_argument("--no-save", action="store_true", help="do not store the runs in DuckDB")
    _add_db_flag(p)
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from scribe import lab
    from scribe.transcribers import make_transcriber

    audio, reference = _eval_inputs(args)
    settings = _settings(argparse.Namespace(**{**vars(args), "policy": None}))
    configure_logging(settings.log_level if settings.log_level != "INFO" else "WARNING")
    policies = args.policies or list(lab.DEFAULT_POLICIES)
    for spec in policies:
        parse_policy(spec)  # a typo fails before the model loads
    transcriber = make_transcriber(settings)
    results = None if args.no_save else Storage(settings.db)
    try:
        runs = lab.run_eval(audio, reference, policies, transcriber=transcriber, results=results,
                            label=Path(audio).name, progress=_stderr_progress("evaluating"),
                            context_seconds=settings.noisy_context_seconds)
    finally:
        if results is not None:
            results.close()
    print(file=sys.stderr)
    print(lab.runs_json(runs) if args.json else _runs_table(runs))
    return 0


def _eval_inputs(args: argparse.Namespace) -> tuple[Path, str]:
    from scribe import lab

    if args.audio == "demo" and not Path("demo").exists():
        audio, reference = lab.demo_recording()
        return audio, lab.read_reference(args.reference) if args.reference else reference
    audio = Path(args.audio)
    if not audio.is_file():
        raise ScribeError(f"{audio}: no such file")
    if not args.reference:
        raise ScribeError("--reference REF.txt is required (the words actually spoken)")
    return audio, lab.read_reference(args.reference)


def _runs_table(runs) -> str:
    lines = [f"{'policy':<12} {'WER %':>6} {'chunks':>6} {'mean s':>7} {'latency s':>9} "
             f"{'lost':>5} {'dup':>4} {'calls':>5} {'cost $':>8}"]
    for r in runs:
        lines.append(f"{r.policy:<12} {r.wer * 100:6.1f} {r.chunks:6d} {r.mean_chunk_s:7.1f} "
                     f"{r.latency_s:9.1f} {r.words_lost:5d} {r.words_duplicated:4d} {r.calls:5d} "
                     f"{r.cost_usd:8.4f}")
    return "\n".join(lines)
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
    p.add_argument("--writers", type=int, default=4, help="chunk writer threads (default 4)")
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
    try:
        return parse_latency_range(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO-HI seconds like 1-3, got {raw!r}") from None


def cmd_bench(args: argparse.Namespace) -> int:
    from scribe.bench import BenchConfig, format_report, run_bench

    configure_logging("WARNING")
    concurrency = args.concurrency or (32 if args.backend == "stub" else 2)
    config = BenchConfig(sessions=args.sessions, minutes=args.minutes, backend=args.backend,
                         stub_latency=args.stub_latency, stub_error_rate=args.stub_error_rate,
                         concurrency=concurrency, writers=args.writers, speed=args.speed,
                         chunk_policy=args.policy,
                         whisper_model=args.model, audio_path=args.audio, data_dir=args.data_dir)
    report = run_bench(config, progress=lambda line: print(f"\r{line:<90}", end="", file=sys.stderr,
                                                           flush=True))
    print(file=sys.stderr)
    print(report.to_json() if args.json else format_report(report))
    return 0 if report.lost == 0 and report.duplicated == 0 and report.audio_gaps == 0 else 1
