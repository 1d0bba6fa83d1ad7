"""Stored sessions: `sessions`, `export`, `search`, `summarize`, `delete` (each with its API twin)."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from scribe.api_client import ApiClient
from scribe.cli import remote
from scribe.cli.common import (
    MAX_LIMIT,
    MAX_PAGE,
    add_db_flag,
    close_progress_line,
    open_storage,
    stderr_progress,
    write_output,
)
from scribe.cli.printers import print_deleted, print_search, print_sessions, print_summary
from scribe.core import SessionRow
from scribe.errors import ScribeError
from scribe.export import FORMATS, render
from scribe.summaries import OFFLINE_SUMMARIZER, SUMMARY_BACKENDS

PAGE = 500
"""Sessions fetched per API call."""


def register(sub: Any) -> None:
    _add_sessions(sub)
    _add_export(sub)
    _add_search(sub)
    _add_summarize(sub)
    _add_delete(sub)


# -- sessions -------------------------------------------------------------------------
def _add_sessions(sub: Any) -> None:
    p = sub.add_parser("sessions", help="list stored sessions, newest first")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--limit", type=int, default=50)
    add_db_flag(p)
    p.set_defaults(func=cmd_sessions, remote=sessions_through_api)


def cmd_sessions(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= MAX_LIMIT:
        raise ScribeError(f"--limit must be between 1 and {MAX_LIMIT}")
    config, storage = open_storage(args)
    try:
        rows = storage.list_sessions(limit=args.limit)
        counts = storage.chunk_counts_many([r.id for r in rows])
    finally:
        storage.close()
    return print_sessions(rows, counts, as_json=args.json, source=str(config.db.resolve()))


def sessions_through_api(args: argparse.Namespace, client: ApiClient) -> int:
    rows: list[SessionRow] = []
    counts: dict[str, dict[str, int]] = {}
    while len(rows) < args.limit:
        page = client.sessions(limit=min(PAGE, args.limit - len(rows)), offset=len(rows))
        for item in page["sessions"]:
            rows.append(remote.session_row(item))
            counts[item["id"]] = item["chunks"]
        if len(page["sessions"]) == 0 or len(rows) >= page["total"]:
            break
    return print_sessions(rows, counts, as_json=args.json, source=f"the Scribe app at {client.base_url}")


# -- export -----------------------------------------------------------------------------
def _add_export(sub: Any) -> None:
    p = sub.add_parser("export", help="write a stored transcript as txt, md, srt, vtt or json")
    p.add_argument("session_id")
    p.add_argument("--format", choices=FORMATS, default="txt")
    p.add_argument("--output", help="write here instead of stdout")
    p.add_argument("--transcript", choices=["live", "final"],
                   help="which transcript (default: final when there is one, else live)")
    add_db_flag(p)
    p.set_defaults(func=cmd_export, remote=export_through_api)


def cmd_export(args: argparse.Namespace) -> int:
    from scribe.history import choose_transcript

    _settings, storage = open_storage(args)
    try:
        session = storage.get_session(args.session_id)
        shown, available = choose_transcript(storage, session.id, args.transcript)
        if args.transcript and args.transcript not in available:
            raise ScribeError(f"session {session.id} has no {args.transcript} transcript")
        text = render(args.format, session, storage.list_segments(session.id, shown))
    finally:
        storage.close()
    write_output(text, args.output)
    return 0


def export_through_api(args: argparse.Namespace, client: ApiClient) -> int:
    write_output(client.transcript(args.session_id, args.format, args.transcript), args.output)
    return 0


# -- search -----------------------------------------------------------------------------
def _add_search(sub: Any) -> None:
    p = sub.add_parser("search", help='search every transcript (words, "quoted phrases")')
    p.add_argument("query")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--page", type=int, default=1)
    add_db_flag(p)
    p.set_defaults(func=cmd_search, remote=search_through_api)


def cmd_search(args: argparse.Namespace) -> int:
    from scribe.search import search

    if not (1 <= args.limit <= MAX_LIMIT and 1 <= args.page <= MAX_PAGE):
        raise ScribeError(f"--limit must be between 1 and {MAX_LIMIT}, --page between 1 and {MAX_PAGE}")
    _settings, storage = open_storage(args)
    try:
        page = search(storage, args.query, limit=args.limit, offset=(args.page - 1) * args.limit)
    finally:
        storage.close()
    hits = [{**h.__dict__, "start": h.start_ms / 1000, "end": h.end_ms / 1000} for h in page.hits]
    return print_search(page.query, page.total, hits, page=args.page, limit=args.limit, as_json=args.json)


def search_through_api(args: argparse.Namespace, client: ApiClient) -> int:
    page = client.search(args.query, limit=args.limit, offset=(args.page - 1) * args.limit)
    return print_search(page["query"], page["total"], page["hits"], page=args.page, limit=args.limit,
                        as_json=args.json)


# -- summarize --------------------------------------------------------------------------
def _add_summarize(sub: Any) -> None:
    p = sub.add_parser("summarize", help="summarize a session and store it as a new version")
    p.add_argument("session_id")
    p.add_argument("--backend", choices=SUMMARY_BACKENDS, default=OFFLINE_SUMMARIZER)
    p.add_argument("--transcript", choices=["live", "final"])
    p.add_argument("--json", action="store_true", help="print JSON")
    add_db_flag(p)
    p.set_defaults(func=cmd_summarize, remote=summarize_through_api)


def cmd_summarize(args: argparse.Namespace) -> int:
    from scribe.summaries import summarize_session

    # --backend picks the summarizer, not the transcription backend.
    settings, storage = open_storage(argparse.Namespace(**{**vars(args), "backend": None}))
    try:
        summary, row = summarize_session(storage, settings, args.session_id, backend=args.backend,
                                         transcript=args.transcript, progress=stderr_progress("summarizing"))
    finally:
        storage.close()
    close_progress_line()
    return print_summary(summary, row.session_id, row.version, as_json=args.json)


def summarize_through_api(args: argparse.Namespace, client: ApiClient) -> int:
    from scribe.summaries import Summary, TimedItem

    data = client.summarize(args.session_id, backend=args.backend, transcript=args.transcript)
    session_id, version = data.pop("session_id"), data.pop("version")
    for name in ("key_points", "decisions", "action_items"):
        data[name] = [TimedItem(**item) for item in data[name]]
    close_progress_line()
    return print_summary(Summary(**data), session_id, version, as_json=args.json)


# -- delete -----------------------------------------------------------------------------
def _add_delete(sub: Any) -> None:
    p = sub.add_parser("delete", help="delete a session: its rows and its audio folder, nothing else")
    p.add_argument("session_id")
    p.add_argument("--force", action="store_true",
                   help="delete even while it is recording or has chunks in the queue")
    add_db_flag(p)
    p.set_defaults(func=cmd_delete, remote=delete_through_api)


def cmd_delete(args: argparse.Namespace) -> int:
    from scribe.history import delete_session

    settings, storage = open_storage(args)
    try:
        # This process holds the database, so no queue is working on its chunks.
        report = delete_session(storage, settings.audio_dir, args.session_id, force=args.force,
                                queue_running=False)
    finally:
        storage.close()
    return print_deleted(asdict(report))


def delete_through_api(args: argparse.Namespace, client: ApiClient) -> int:
    return print_deleted(client.delete(args.session_id, force=args.force))
