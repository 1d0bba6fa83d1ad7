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
from typing import Any, Callable, Sequence

import duckdb

from scribe.chunking import FILE_POLICY_NAMES, POLICY_HELP, POLICY_NAMES, parse_policy
from scribe.config import Settings, parse_latency_range
from scribe.core import SessionRow
from scribe.errors import ScribeError, StorageOutageError
from scribe.export import FORMATS, render
from scribe.ingest import ingest_file, wait_for_session
from scribe.final_pass import KEPT_LIVE
from scribe.runtime import Runtime, configure_logging, final_transcriber, recover_at_start
from scribe.storage import Storage, check_expected_speakers
from scribe.timelabels import local_datetime, mmss
from scribe.transcribers.base import Transcriber

EXIT_ERROR = 2
MAX_LIMIT = 100_000
"""Largest --limit; with --page it keeps every offset far inside DuckDB's integers."""
MAX_PAGE = 1_000_000


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except ScribeError as exc:
        _end_progress_line()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except (OSError, duckdb.Error) as exc:  # a full disk, a locked or damaged database file
        _end_progress_line()
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted; chunks already stored will be finished on the next start", file=sys.stderr)
        return 130


def _one_line(exc: BaseException) -> str:
    text = (getattr(exc, "strerror", None) or str(exc)).splitlines()
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    return f"{text[0][:300] if text else type(exc).__name__}{where}"


def _run(args: argparse.Namespace) -> int:
    """The database first; when a running Scribe app holds it, the same command through its API."""
    from scribe import cli_remote

    try:
        return args.func(args)
    except ScribeError as exc:
        holder = cli_remote.database_holder(exc)
        if holder is None or args.command not in cli_remote.COMMANDS:
            raise
    return cli_remote.run(args, holder)


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
    _add_speakers(sub)
    _add_eval(sub)
    _add_bench(sub)
    _add_retry(sub)
    _add_models(sub)
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
    p.add_argument("--model", help="local model (tiny.en, base, a hub name or a CTranslate2 folder; "
                   "see `models`), or Gemini model")
    p.add_argument("--chunk-seconds", type=float)
    p.add_argument("--policy", choices=FILE_POLICY_NAMES)
    p.add_argument("--format", choices=FORMATS, default="txt")
    p.add_argument("--output", help="write the transcript here instead of stdout")
    p.add_argument("--title")
    p.add_argument("--speakers", type=_speaker_count, metavar="N|auto",
                   help="label who speaks: N voices, or auto to estimate (default with "
                        "SCRIBE_DIARIZATION: auto)")
    p.add_argument("--final-pass", action="store_true",
                   help="after the live chunks, run the final pass and print its transcript "
                        "(json: \"text\" is live, \"final_text\" final)")
    p.add_argument("--final-model", help="local model of the final pass (default: SCRIBE_FINAL_MODEL)")
    _add_db_flag(p)
    p.set_defaults(func=cmd_transcribe)


def _speaker_count(raw: str) -> int:
    """`auto` is 0 (estimate the count); otherwise 1..MAX_EXPECTED_SPEAKERS voices."""
    if raw.strip().lower() == "auto":
        return 0
    try:
        return check_expected_speakers(int(raw)) or 0
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of speakers or auto, not {raw!r}") from None
    except ScribeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_transcribe(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise ScribeError(f"{path}: no such file")
    _check_output_path(args.output)
    settings = _settings(args)
    configure_logging(settings.log_level if settings.log_level != "INFO" else "WARNING")
    policy = parse_policy(args.policy or settings.chunk_policy, settings.chunk_seconds)
    if args.final_model:
        settings = settings.with_changes(final_model=args.final_model)
    if args.final_pass:
        _warn_if_weaker(settings)
    # A new session needs nothing recovered: other sessions' chunks are left for the app
    # or `retry`, and what start-up recovery did is said.
    runtime = Runtime.build(settings, recover=[])
    _print_recovery(runtime)
    try:
        # Loaded before the live chunks run, so a missing model fails before any work.
        final = final_transcriber(settings, runtime.transcriber) if args.final_pass else None
        return _run_transcribe(runtime, path, policy, args, final)
    finally:
        runtime.close()


def _run_transcribe(runtime: Runtime, path: Path, policy, args: argparse.Namespace,
                    final: Transcriber | None = None) -> int:
    started = time.monotonic()
    wait_s = runtime.settings.storage_wait_seconds
    result = None
    try:
        result = ingest_file(path, storage=runtime.storage, pipeline=runtime.pipeline, policy=policy,
                             title=args.title, source="cli", progress=_stderr_progress("reading"),
                             max_audio_hours=runtime.settings.max_audio_hours,
                             expected_speakers=args.speakers or None, storage_wait_seconds=wait_s)
        counts = wait_for_session(runtime.storage, result.session.id, progress=_stderr_progress("transcribing"),
                                  check=lambda: _outage_check(runtime, wait_s))
    except StorageOutageError as exc:
        _end_progress_line()
        session_id = result.session.id if result is not None else exc.session_id
        return _stopped_by_outage(runtime.storage, session_id or "?", exc, read_all=result is not None)
    wall = time.monotonic() - started
    _end_progress_line()
    session = runtime.storage.get_session(result.session.id)
    _label_speakers(runtime, session.id, args.speakers)
    segments = runtime.storage.list_segments(session.id)
    if final is None:
        _write_output(render(args.format, session, segments), args.output)
    else:
        _write_output(_final_output(runtime.storage, final, session, segments, args.format), args.output)
    _print_timing(runtime.storage, session.id, result.audio_seconds, wall, counts)
    return _report_unfinished(runtime.storage, session.id)


def _outage_check(runtime: Runtime, wait_s: float) -> None:
    """Stop waiting for the transcription once storage has refused writes for `wait_s`."""
    stats = runtime.pipeline.stats()
    if not stats.storage_ok and stats.storage_down_s >= wait_s:
        raise StorageOutageError(f"storage has refused writes for {stats.storage_down_s:.0f} s "
                                 f"({stats.storage_error})", seconds=stats.storage_down_s)


def _stopped_by_outage(storage: Storage, session_id: str, exc: StorageOutageError, *, read_all: bool) -> int:
    """A full or failing disk outlasted SCRIBE_STORAGE_WAIT_SECONDS: say what is kept and how to finish."""
    chunks = storage.list_chunks(session_id)
    done = sum(c.status == "done" for c in chunks)
    kept = f"{len(chunks)} chunk(s), {mmss(chunks[-1].end_ms)} of audio" if chunks else "no chunk"
    print(f"error: {exc}; stopped waiting (SCRIBE_STORAGE_WAIT_SECONDS). Session {session_id} keeps "
          f"{kept} ({done} transcribed). Free space, then run `python -m scribe retry {session_id}` "
          "to transcribe the stored chunks" + ("." if read_all else
                                               "; the rest of the file was not read, so run transcribe "
                                               "again for all of it."), file=sys.stderr)
    return EXIT_ERROR


def _print_recovery(runtime: Runtime) -> None:
    for line in runtime.recovery.lines() if runtime.recovery else []:
        print(f"note: {line}", file=sys.stderr)


def _report_unfinished(storage: Storage, session_id: str) -> int:
    """0 when every chunk of the session is done; else say which are not, why, how to retry, and 1."""
    chunks = storage.list_chunks(session_id)
    open_seqs = [c.seq for c in chunks if c.status in ("pending", "processing")]
    failed = [c.seq for c in chunks if c.status == "failed"]
    if not open_seqs and not failed:
        return 0
    if open_seqs:
        print(f"{len(open_seqs)} chunk(s) not transcribed yet (seq {_seq_list(open_seqs)}); "
              "the transcript above is incomplete", file=sys.stderr)
    _print_failures(storage, session_id)
    print(f"to finish it: python -m scribe retry {session_id}", file=sys.stderr)
    return 1


def _seq_list(seqs: list[int], limit: int = 10) -> str:
    shown = ", ".join(str(s) for s in seqs[:limit])
    return shown + (f", ... ({len(seqs) - limit} more)" if len(seqs) > limit else "")


def _check_output_path(output: str | None) -> None:
    """Fail before any work when the transcript could not be written where asked."""
    if not output:
        return
    target = Path(output)
    if target.is_dir():
        raise ScribeError(f"--output {output}: is a folder; give a file name")
    if not target.parent.is_dir():
        raise ScribeError(f"--output {output}: folder {target.parent} does not exist")
    if not os.access(target.parent, os.W_OK):
        raise ScribeError(f"--output {output}: folder {target.parent} is not writable")


_progress_open = [False]
"""True while a progress line is drawn without its newline."""


def _end_progress_line() -> None:
    """Messages start on their own line, not after a half-drawn progress line."""
    if _progress_open[0]:
        print(file=sys.stderr)
        _progress_open[0] = False


def _label_speakers(runtime: Runtime, session_id: str, count: int | None) -> None:
    """Speaker labels for a transcribed file: asked for with --speakers, or on by default
    (SCRIBE_DIARIZATION), when a missing model only warns."""
    if count is None and not runtime.settings.diarization:
        return
    from scribe.diarization import relabel_session
    from scribe.errors import SpeakerModelError

    if count:
        runtime.storage.set_expected_speakers(session_id, count)
    try:
        relabel_session(runtime.storage, session_id, n_speakers=count or None,
                        max_speakers=runtime.settings.max_speakers)
    except SpeakerModelError as exc:
        if count is not None:
            raise
        print(f"warning: no speaker labels: {exc}", file=sys.stderr)


def _warn_if_weaker(settings: Settings) -> None:
    from scribe.models import weaker

    if settings.backend == "local" and weaker(settings.final_model, settings.whisper_model):
        print(f"warning: the final model {settings.final_model} is smaller than the live model "
              f"{settings.whisper_model}; its re-decode measured worse (the app skips it)", file=sys.stderr)


def _final_output(storage: Storage, final: Transcriber, session, live, fmt: str) -> str:
    """Run the final pass here, on the main thread (a daemon thread would die mid-call at
    exit), and render its transcript; JSON carries the live `text` beside `final_text`."""
    from scribe.export import plain_text
    from scribe.final_pass import final_pass_report

    started = time.monotonic()
    report = final_pass_report(storage, final, session.id)
    print(f"final pass ({final.model}): {report.windows} window(s), {report.kept_live} kept the live text, "
          f"{time.monotonic() - started:.1f} s", file=sys.stderr)
    if fmt != "json":
        return render(fmt, session, report.rows)
    payload = json.loads(render("json", session, live))
    payload.update({
        "final_text": plain_text(report.rows), "final_model": final.model,
        "final_segments": [{"seq": s.seq, "start": s.start_ms / 1000, "end": s.end_ms / 1000, "text": s.text,
                            "speaker": s.speaker, "kept_live": KEPT_LIVE in s.flags} for s in report.rows],
        "final_windows": report.windows, "final_windows_kept_live": report.kept_live,
    })
    return json.dumps(payload, ensure_ascii=False, indent=2) + "\n"


def _stderr_progress(stage: str) -> Callable[[float, str], None]:
    """A one-line progress display that redraws only when the whole percent changes."""
    last = [-1]

    def report(fraction: float, message: str) -> None:
        percent = int(fraction * 100)
        if percent != last[0]:
            last[0] = percent
            _progress_open[0] = True
            print(f"\r{stage}: {percent:3d}%  {message:<40}", end="", file=sys.stderr, flush=True)
    return report


def _write_output(text: str, output: str | None) -> None:
    if output:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ScribeError(f"cannot write {output}: {exc.strerror or exc}") from None
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
    if not 1 <= args.limit <= MAX_LIMIT:
        raise ScribeError(f"--limit must be between 1 and {MAX_LIMIT}")
    _config, storage = _open_storage(args)
    try:
        rows = storage.list_sessions(limit=args.limit)
        counts = storage.chunk_counts_many([r.id for r in rows])
    finally:
        storage.close()
    return print_sessions(rows, counts, as_json=args.json)


def print_sessions(rows: list[SessionRow], counts: dict[str, dict[str, int]], *, as_json: bool) -> int:
    if as_json:
        print(json.dumps([{**r.__dict__, "chunks": counts[r.id]} for r in rows], indent=2))
        return 0
    for r in rows:
        when = local_datetime(r.created_at)
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


# -- failures -----------------------------------------------------------------
def _print_failures(storage: Storage, session_id: str, limit: int = 3) -> None:
    """Say why chunks failed: each distinct error once (errors never contain the API key)."""
    errors: dict[str, list[int]] = {}
    for chunk in storage.failed_chunks(session_id):
        errors.setdefault(chunk.error or "unknown error", []).append(chunk.seq)
    for error, seqs in list(errors.items())[:limit]:
        print(f"{len(seqs)} chunk(s) failed (first seq {seqs[0]}): {error}", file=sys.stderr)


# -- export, search, summarize, delete -----------------------------------------
def _open_storage(args: argparse.Namespace) -> tuple[Settings, Storage]:
    """The database, after marking sessions a dead process left `recording` as
    interrupted (this process holds the file, so no live process is recording them)."""
    settings = _settings(args)
    storage = Storage(settings.db)
    try:
        interrupted = storage.interrupt_orphans_once()
    except Exception:
        storage.close()
        raise
    if interrupted:
        print(f"note: {len(interrupted)} session(s) left recording by a process that died marked "
              f"interrupted: {', '.join(interrupted)}", file=sys.stderr)
    return settings, storage


def _add_speakers(sub) -> None:
    p = sub.add_parser("speakers", help="list, rename, merge, split or relabel a session's speakers")
    p.add_argument("session_id")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--rename", nargs=2, metavar=("ID", "NAME"), help="give speaker ID a name")
    action.add_argument("--merge", nargs=2, type=int, metavar=("KEEP", "DROP"),
                        help="DROP's segments become KEEP's")
    action.add_argument("--split", type=int, metavar="ID", help="split speaker ID into two voices")
    action.add_argument("--relabel", type=_speaker_count, metavar="N|auto",
                        help="cluster the whole recording again with N voices (auto: estimate)")
    p.add_argument("--json", action="store_true")
    _add_db_flag(p)
    p.set_defaults(func=cmd_speakers)


def cmd_speakers(args: argparse.Namespace) -> int:
    from scribe import diarization
    from scribe.history import choose_transcript

    settings, storage = _open_storage(args)
    try:
        session = storage.get_session(args.session_id)
        if args.rename:
            storage.rename_speaker(session.id, _speaker_id(args.rename[0]), args.rename[1])
        elif args.merge:
            storage.merge_speakers(session.id, *args.merge)
        elif args.split is not None:
            diarization.split_speaker(storage, session.id, args.split)
        elif args.relabel is not None:
            storage.set_expected_speakers(session.id, args.relabel or None)
            diarization.relabel_session(storage, session.id, max_speakers=settings.max_speakers)
        rows = storage.speaker_stats(session.id, choose_transcript(storage, session.id)[0])
    finally:
        storage.close()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(f"{row['id']:>3}  {row['name']:<30} {row['segments']:>5} segments  {row['seconds']:8.1f} s")
    return 0


def _speaker_id(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ScribeError(f"a speaker id is a number (see `speakers SESSION`), not {raw!r}") from None


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
    from scribe.search import search

    if not (1 <= args.limit <= MAX_LIMIT and 1 <= args.page <= MAX_PAGE):
        raise ScribeError(f"--limit must be between 1 and {MAX_LIMIT}, --page between 1 and {MAX_PAGE}")
    _settings_, storage = _open_storage(args)
    try:
        page = search(storage, args.query, limit=args.limit, offset=(args.page - 1) * args.limit)
    finally:
        storage.close()
    hits = [{**h.__dict__, "start": h.start_ms / 1000, "end": h.end_ms / 1000} for h in page.hits]
    return print_search(page.query, page.total, hits, args)


def print_search(query: str, total: int, hits: list[dict], args: argparse.Namespace) -> int:
    """Hits as JSON or one line each; exit 1 when nothing matched."""
    from scribe.timelabels import mmss

    if args.json:
        print(json.dumps({"query": query, "total": total, "page": args.page, "hits": hits},
                         indent=2, ensure_ascii=False))
        return 0
    for h in hits:
        who = f"{h['speaker']}: " if h["speaker"] else ""
        print(f"{h['session_id']}  [{mmss(h['start_ms'])}]  {who}{h['text']}")
    pages = max(1, -(-total // args.limit))
    print(f"{total} match(es); page {args.page} of {pages}", file=sys.stderr)
    return 0 if total else 1


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
    _progress_open[0] = False
    return print_summary(summary, row.session_id, row.version, as_json=args.json)


def print_summary(summary, session_id: str, version: int, *, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"session_id": session_id, "version": version, **summary.to_dict()},
                         indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(_summary_text(summary, version))
    return 0


def _summary_text(summary, version: int) -> str:
    from scribe.timelabels import mmss

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
        # This process holds the database, so no queue is working on its chunks.
        report = delete_session(storage, settings.audio_dir, args.session_id, force=args.force,
                                queue_running=False)
    finally:
        storage.close()
    return print_deleted(report)


def print_deleted(report) -> int:
    print(f"deleted session {report.session_id}: {report.segments} segments, {report.chunks} chunks, "
          f"{report.summaries} summaries, {report.audio_files} audio files")
    return 0


# -- eval (chunking lab) --------------------------------------------------------
def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="score chunking policies on a recording against a reference")
    p.add_argument("audio", help="audio file, or 'demo' for the built-in demo recording")
    p.add_argument("--reference", help="reference transcript (text file); not needed for 'demo'")
    p.add_argument("--policy", action="append", dest="policies", metavar="POLICY",
                   help="; ".join(POLICY_HELP[name] for name in POLICY_NAMES) + "; repeat for several "
                        "(default: whole, fixed:15, pause:15)")
    p.add_argument("--backend", choices=["local", "gemini", "stub"])
    p.add_argument("--model", help="Whisper model name or folder (local), or Gemini model")
    p.add_argument("--json", action="store_true", help='print {"runs": [...]} as JSON')
    p.add_argument("--no-save", action="store_true", help="do not store the runs in DuckDB")
    _add_db_flag(p)
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    return eval_command(args, open_results=lambda settings: Storage(settings.db))


def eval_command(args: argparse.Namespace, open_results: Callable[[Settings], Any]) -> int:
    """`eval`, storing the runs in what `open_results` gives (anything with save_lab_run, close)."""
    from scribe import lab
    from scribe.transcribers import make_transcriber

    audio, reference = _eval_inputs(args)
    settings = _settings(args)
    configure_logging(settings.log_level if settings.log_level != "INFO" else "WARNING")
    policies = args.policies or list(lab.DEFAULT_POLICIES)
    for spec in policies:
        parse_policy(spec)  # a typo fails before the model loads
    results = None if args.no_save else open_results(settings)  # a held database fails before it too
    try:
        transcriber = make_transcriber(settings)
        runs = lab.run_eval(audio, reference, policies, transcriber=transcriber, results=results,
                            label=Path(audio).name, progress=_stderr_progress("evaluating"),
                            context_seconds=settings.noisy_context_seconds)
    finally:
        if results is not None:
            results.close()
    _end_progress_line()
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
# -- bench --------------------------------------------------------------------
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


# -- retry ----------------------------------------------------------------------
def _add_retry(sub) -> None:
    p = sub.add_parser("retry", help="finish a session: transcribe its failed and unfinished chunks")
    p.add_argument("session_id")
    p.add_argument("--backend", choices=["local", "gemini", "stub"])
    p.add_argument("--model", help="Whisper model name or folder (local), or Gemini model")
    p.add_argument("--format", choices=FORMATS, help="also print the transcript in this format")
    p.add_argument("--output", help="write the transcript here instead of stdout (with --format)")
    _add_db_flag(p)
    p.set_defaults(func=cmd_retry)


def cmd_retry(args: argparse.Namespace) -> int:
    _check_output_path(args.output)
    settings = _settings(args)
    configure_logging(settings.log_level if settings.log_level != "INFO" else "WARNING")
    # Only this session's unfinished chunks are recovered; its failed ones are queued again.
    runtime = Runtime.build(settings, recover=[args.session_id], start=False)
    try:
        session = runtime.storage.get_session(args.session_id)
        runtime.recovery = recover_at_start(runtime.storage, runtime.pipeline, [session.id])
        _print_recovery(runtime)
        failed = runtime.pipeline.requeue(session.id)
        runtime.pipeline.start(recover=False)
        counts = wait_for_session(runtime.storage, session.id, progress=_stderr_progress("transcribing"))
        _end_progress_line()
        print(f"session {session.id}: {failed} failed chunk(s) retried; {counts['done']} of "
              f"{sum(counts.values())} chunks done", file=sys.stderr)
        if args.format:
            session = runtime.storage.get_session(session.id)
            _write_output(render(args.format, session, runtime.storage.list_segments(session.id)),
                          args.output)
        return _report_unfinished(runtime.storage, session.id)
    finally:
        runtime.close()


# -- models ---------------------------------------------------------------------
def _add_models(sub) -> None:
    p = sub.add_parser("models", help="list the local models: where each comes from, ready offline, size")
    p.add_argument("--get", metavar="NAME", help="prepare a model now (assemble base, or download a hub "
                   "name with a progress bar) so it works offline later")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_models)


def cmd_models(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from scribe.models import list_models, model_folder

    settings = Settings.from_env()
    if args.get:
        folder = model_folder(args.get, model_dir=settings.models_dir)
        print(f"{args.get}: ready at {folder}", file=sys.stderr)
    configured = tuple(dict.fromkeys([settings.whisper_model, settings.final_model]))
    rows = list_models(settings.models_dir, extra=configured)
    if args.json:
        print(json.dumps([{**asdict(r), "configured_for": _jobs(settings, r.name)} for r in rows], indent=2))
        return 0
    print(f"{'model':<18} {'ready offline':<13} {'size':>9}  {'used for':<14} source")
    for r in rows:
        size = f"{r.size_bytes / 1e6:.0f} MB" if r.size_bytes else "-"
        print(f"{r.name:<18} {'yes' if r.ready_offline else 'no':<13} {size:>9}  "
              f"{', '.join(_jobs(settings, r.name)) or '-':<14} {r.source}")
    return 0


def _jobs(settings: Settings, name: str) -> list[str]:
    """Which jobs the settings give this model (SCRIBE_WHISPER_MODEL, SCRIBE_FINAL_MODEL)."""
    return [job for job, model in (("live", settings.whisper_model), ("final", settings.final_model))
            if model == name]
