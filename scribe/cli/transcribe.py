"""`transcribe` (a file becomes a session) and `retry` (finish a session's chunks)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from scribe import backends
from scribe.api_client import ApiClient
from scribe.chunking import FILE_POLICY_NAMES, ChunkPolicy, parse_policy
from scribe.cli import remote
from scribe.cli.common import (
    EXIT_ERROR,
    add_db_flag,
    check_output_path,
    end_progress_line,
    print_recovery,
    quiet_logging,
    settings_from,
    speaker_count,
    stderr_progress,
    write_output,
)
from scribe.cli.printers import print_failures, print_timing, report_unfinished
from scribe.config import Settings
from scribe.core import SegmentRow, SessionRow
from scribe.errors import ScribeError, StorageOutageError
from scribe.export import FORMATS, render
from scribe.final_pass import KEPT_LIVE
from scribe.ingest import CheckedUpload, check_upload, ingest_file, wait_for_session
from scribe.runtime import Runtime, final_transcriber, recover_at_start
from scribe.storage import Storage
from scribe.timelabels import mmss
from scribe.transcribers.base import Transcriber


def register(sub: Any) -> None:
    _add_transcribe(sub)
    _add_retry(sub)


# -- transcribe -------------------------------------------------------------------
def _add_transcribe(sub: Any) -> None:
    p = sub.add_parser("transcribe", help="transcribe an audio file into a new session")
    p.add_argument("file", help="audio file (wav, mp3, m4a, ogg/opus, webm, flac, ...)")
    p.add_argument("--backend", choices=backends.names())
    p.add_argument("--model", help="local model (tiny.en, base, a hub name or a CTranslate2 folder; "
                   "see `models`), or Gemini model")
    p.add_argument("--chunk-seconds", type=float)
    p.add_argument("--policy", choices=FILE_POLICY_NAMES)
    p.add_argument("--format", choices=FORMATS, default="txt")
    p.add_argument("--output", help="write the transcript here instead of stdout")
    p.add_argument("--title")
    p.add_argument("--speakers", type=speaker_count, metavar="N|auto",
                   help="label who speaks: N voices, or auto to estimate (default with "
                        "SCRIBE_DIARIZATION: auto)")
    p.add_argument("--final-pass", action="store_true",
                   help="after the live chunks, run the final pass and print its transcript "
                        "(json: \"text\" is live, \"final_text\" final)")
    p.add_argument("--final-model", help="local model of the final pass (default: SCRIBE_FINAL_MODEL)")
    p.add_argument("--vocabulary", type=_vocabulary, default=[], metavar='"TERM, TERM"',
                   help="names and terms for this file, on top of the team vocabulary")
    add_db_flag(p)
    p.set_defaults(func=cmd_transcribe, remote=transcribe_through_api)


def _vocabulary(raw: str) -> list[str]:
    from scribe.storage.vocabulary import split_terms

    try:
        return split_terms(raw)
    except ScribeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_transcribe(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise ScribeError(f"{path}: no such file")
    check_output_path(args.output)
    settings = settings_from(args)
    quiet_logging(settings)
    policy = parse_policy(args.policy or settings.chunk_policy, settings.chunk_seconds)
    checked = check_upload(settings, size=path.stat().st_size, title=args.title)
    if args.final_model:
        settings = settings.with_changes(final_model=args.final_model)
    if args.final_pass:
        _warn_if_weaker(settings)
    # A new session needs nothing recovered: other sessions' chunks are left for the app
    # or `retry`, and what start-up recovery did is said.
    runtime = Runtime.build(settings, recover=[])
    print_recovery(runtime)
    try:
        # Loaded before the live chunks run, so a missing model fails before any work.
        final = final_transcriber(settings, runtime.transcriber) if args.final_pass else None
        return _run_transcribe(runtime, path, policy, args, final, checked)
    finally:
        runtime.close()


def _run_transcribe(runtime: Runtime, path: Path, policy: ChunkPolicy, args: argparse.Namespace,
                    final: Transcriber | None, checked: CheckedUpload) -> int:
    started = time.monotonic()
    wait_s = runtime.settings.storage_wait_seconds
    result = None
    try:
        result = ingest_file(path, storage=runtime.storage, pipeline=runtime.pipeline, policy=policy,
                             title=checked.title, source="cli", progress=stderr_progress("reading"),
                             max_audio_hours=checked.max_audio_hours,
                             expected_speakers=args.speakers or None, storage_wait_seconds=wait_s,
                             vocabulary=args.vocabulary)
        counts = wait_for_session(runtime.storage, result.session.id, progress=stderr_progress("transcribing"),
                                  check=lambda: _outage_check(runtime, wait_s))
    except StorageOutageError as exc:
        end_progress_line()
        session_id = result.session.id if result is not None else exc.session_id
        return _stopped_by_outage(runtime.storage, session_id or "?", exc, read_all=result is not None)
    wall = time.monotonic() - started
    end_progress_line()
    session = runtime.storage.get_session(result.session.id)
    _label_speakers(runtime, session.id, args.speakers)
    segments = runtime.storage.list_segments(session.id)
    if final is None:
        write_output(render(args.format, session, segments), args.output)
    else:
        write_output(_final_output(runtime.storage, final, session, segments, args.format), args.output)
    chunks = runtime.storage.list_chunks(session.id)
    print_timing(chunks, session.id, result.audio_seconds, wall, counts)
    return report_unfinished(chunks, session.id)


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

    if backends.runs_whisper_here(settings.backend) and weaker(settings.final_model, settings.whisper_model):
        print(f"warning: the final model {settings.final_model} is smaller than the live model "
              f"{settings.whisper_model}; its re-decode measured worse (the app skips it)", file=sys.stderr)


def _final_output(storage: Storage, final: Transcriber, session: SessionRow, live: list[SegmentRow],
                  fmt: str) -> str:
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


def transcribe_through_api(args: argparse.Namespace, client: ApiClient) -> int:
    """Upload, wait showing progress, then print what the local command prints."""
    path = Path(args.file)
    started = time.monotonic()
    made = client.upload(path, {"title": args.title, "backend": args.backend, "model": args.model,
                                "chunk_seconds": args.chunk_seconds, "policy": args.policy,
                                "speakers": args.speakers or None,
                                "vocabulary": ", ".join(args.vocabulary) or None})
    session_id = made["session_id"]
    counts, detail = remote.wait_for_session(client, session_id, stderr_progress("transcribing"))
    wall = time.monotonic() - started
    end_progress_line()
    write_output(remote.live_transcript(client, session_id, args.format), args.output)
    chunks = remote.chunk_rows(detail["chunk_list"])
    print_timing(chunks, session_id, made["audio_seconds"], wall, counts)
    print_failures(chunks)
    return 0 if counts["failed"] == 0 else 1


# -- retry ----------------------------------------------------------------------------
def _add_retry(sub: Any) -> None:
    p = sub.add_parser("retry", help="finish a session: transcribe its failed and unfinished chunks")
    p.add_argument("session_id")
    p.add_argument("--backend", choices=backends.names())
    p.add_argument("--model", help="Whisper model name or folder (local), or Gemini model")
    p.add_argument("--format", choices=FORMATS, help="also print the transcript in this format")
    p.add_argument("--output", help="write the transcript here instead of stdout (with --format)")
    add_db_flag(p)
    p.set_defaults(func=cmd_retry, remote=retry_through_api)


def cmd_retry(args: argparse.Namespace) -> int:
    check_output_path(args.output)
    settings = settings_from(args)
    quiet_logging(settings)
    # Only this session's unfinished chunks are recovered; its failed ones are queued again.
    runtime = Runtime.build(settings, recover=[args.session_id], start=False)
    try:
        session = runtime.storage.get_session(args.session_id)
        runtime.recovery = recover_at_start(runtime.storage, runtime.pipeline, [session.id])
        print_recovery(runtime)
        failed = runtime.pipeline.requeue(session.id)
        runtime.pipeline.start(recover=False)
        counts = wait_for_session(runtime.storage, session.id, progress=stderr_progress("transcribing"))
        end_progress_line()
        _print_retried(session.id, failed, counts)
        if args.format:
            session = runtime.storage.get_session(session.id)
            write_output(render(args.format, session, runtime.storage.list_segments(session.id)),
                         args.output)
        return report_unfinished(runtime.storage.list_chunks(session.id), session.id)
    finally:
        runtime.close()


def retry_through_api(args: argparse.Namespace, client: ApiClient) -> int:
    """The app re-queues the failed chunks (its queue already holds the unfinished ones); wait for all."""
    check_output_path(args.output)
    answer = client.retry(args.session_id, backend=args.backend, model=args.model)
    session_id = answer["session_id"]
    counts, detail = remote.wait_for_session(client, session_id, stderr_progress("transcribing"))
    end_progress_line()
    _print_retried(session_id, answer["requeued"], counts)
    if args.format:
        write_output(remote.live_transcript(client, session_id, args.format), args.output)
    return report_unfinished(remote.chunk_rows(detail["chunk_list"]), session_id)


def _print_retried(session_id: str, failed: int, counts: dict[str, int]) -> None:
    print(f"session {session_id}: {failed} failed chunk(s) retried; {counts['done']} of "
          f"{sum(counts.values())} chunks done", file=sys.stderr)
