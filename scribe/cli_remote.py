"""CLI commands through a running Scribe app's API, for when that app holds the database.

`cli._run` tries every command on the database first; when DuckDB says another process holds
the file, it calls `run()` here, which finds the app at SCRIBE_API_URL (with SCRIBE_API_TOKEN),
checks that the app really serves that database, and runs the same command through the API
with the same flags, the same output (the CLI's own printers) and the same exit codes. When no
app can take over, one line says what holds the database and what to do.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

from scribe import cli
from scribe.api_client import ApiClient, ApiRequestError, ApiUnreachableError, lock_holder
from scribe.config import Settings
from scribe.core import SessionRow
from scribe.errors import ScribeError

WAIT_TIMEOUT_S = 3600.0
POLL_S = 0.3
PAGE = 500


def database_holder(exc: BaseException) -> str | None:
    """Who holds the database, when `exc` is DuckDB refusing a second process; else None."""
    return lock_holder(str(exc))


def run(args: argparse.Namespace, holder: str) -> int:
    settings = Settings.from_env(db_path=Path(args.db) if getattr(args, "db", None) else None)
    client = connect(settings, holder)
    try:
        return COMMANDS[args.command](args, client)
    finally:
        client.close()


def connect(settings: Settings, holder: str) -> ApiClient:
    """The API of the app that holds `settings.db`, or a ScribeError saying what to do."""
    db, url = settings.db.resolve(), settings.api_url
    client = ApiClient(url, settings.api_token)
    try:
        served = Path(client.health()["database"]).resolve()
    except ApiUnreachableError:
        client.close()
        raise ScribeError(f"{db} is in use by {holder} and no Scribe app answers at {url}: stop that "
                          "process, or set SCRIBE_API_URL to the Scribe app that holds it") from None
    except ApiRequestError as exc:
        client.close()
        todo = ("set SCRIBE_API_TOKEN to the app's token" if exc.status in (401, 403)
                else "try again once the app has started, or see its log")
        raise ScribeError(f"{db} is in use by {holder}; the Scribe app at {url} answered HTTP "
                          f"{exc.status} ({exc}): {todo}") from None
    if served != db:
        client.close()
        raise ScribeError(f"{db} is in use by {holder}; the Scribe app at {url} serves {served} instead: "
                          "stop that process, or set SCRIBE_API_URL to the app that holds it")
    return client


# -- the commands ---------------------------------------------------------------
def sessions(args: argparse.Namespace, client: ApiClient) -> int:
    rows, counts = [], {}
    while len(rows) < args.limit:
        page = client.sessions(limit=min(PAGE, args.limit - len(rows)), offset=len(rows))
        for item in page["sessions"]:
            rows.append(_session_row(item))
            counts[item["id"]] = item["chunks"]
        if len(page["sessions"]) == 0 or len(rows) >= page["total"]:
            break
    return cli.print_sessions(rows, counts, as_json=args.json)


def export(args: argparse.Namespace, client: ApiClient) -> int:
    cli._write_output(client.transcript(args.session_id, args.format, args.transcript), args.output)
    return 0


def search(args: argparse.Namespace, client: ApiClient) -> int:
    page = client.search(args.query, limit=args.limit, offset=(args.page - 1) * args.limit)
    return cli.print_search(page["query"], page["total"], page["hits"], args)


def summarize(args: argparse.Namespace, client: ApiClient) -> int:
    from scribe.summaries import Summary, TimedItem

    data = client.summarize(args.session_id, backend=args.backend, transcript=args.transcript)
    session_id, version = data.pop("session_id"), data.pop("version")
    for name in ("key_points", "decisions", "action_items"):
        data[name] = [TimedItem(**item) for item in data[name]]
    print(file=sys.stderr)
    return cli.print_summary(Summary(**data), session_id, version, as_json=args.json)


def delete(args: argparse.Namespace, client: ApiClient) -> int:
    return cli.print_deleted(SimpleNamespace(**client.delete(args.session_id, force=args.force)))


def evaluate(args: argparse.Namespace, client: ApiClient) -> int:
    return cli.eval_command(args, open_results=lambda _settings: client)


def transcribe(args: argparse.Namespace, client: ApiClient) -> int:
    """Upload, wait showing progress, then print what the local command prints."""
    path = Path(args.file)
    started = time.monotonic()
    made = client.upload(path, {"title": args.title, "backend": args.backend, "model": args.model,
                                "chunk_seconds": args.chunk_seconds, "policy": args.policy,
                                "speakers": args.speakers or None})
    session_id = made["session_id"]
    counts, detail = wait_for_session(client, session_id, cli._stderr_progress("transcribing"))
    wall = time.monotonic() - started
    cli._end_progress_line()
    cli._write_output(_live_transcript(client, session_id, args.format), args.output)
    chunks = _ChunkList(detail["chunk_list"])
    cli._print_timing(chunks, session_id, made["audio_seconds"], wall, counts)
    cli._print_failures(chunks, session_id)
    return 0 if counts["failed"] == 0 else 1


def wait_for_session(client: ApiClient, session_id: str, progress: Callable[[float, str], None],
                     *, timeout: float = WAIT_TIMEOUT_S) -> tuple[dict[str, int], dict[str, Any]]:
    """Poll until no chunk is pending or processing (as `ingest.wait_for_session` does locally)."""
    deadline = time.monotonic() + timeout
    while True:
        detail = client.session(session_id)
        counts = detail["chunks"]
        total, settled = sum(counts.values()), counts["done"] + counts["failed"]
        if total:
            progress(settled / total, f"transcribed {settled}/{total} chunks")
        if settled == total or time.monotonic() > deadline:
            return counts, detail
        time.sleep(POLL_S)


def _live_transcript(client: ApiClient, session_id: str, fmt: str) -> str:
    """The chunk transcript, as the local command prints it, even once a final pass exists."""
    try:
        return client.transcript(session_id, fmt, "live")
    except ApiRequestError as exc:
        if exc.status != 404:
            raise
        return client.transcript(session_id, fmt)  # nothing was said: the empty live transcript


class _ChunkList:
    """The two Storage reads the CLI's timing and failure lines make, over the API's chunk list."""

    def __init__(self, chunks: list[dict[str, Any]]) -> None:
        self._chunks = [SimpleNamespace(**c) for c in chunks]

    def list_chunks(self, _session_id: str) -> list[SimpleNamespace]:
        return self._chunks

    def failed_chunks(self, _session_id: str) -> list[SimpleNamespace]:
        return [c for c in self._chunks if c.status == "failed"]


def _session_row(item: dict[str, Any]) -> SessionRow:
    return SessionRow(**{f.name: item[f.name] for f in fields(SessionRow)})


COMMANDS: dict[str, Callable[[argparse.Namespace, ApiClient], int]] = {
    "transcribe": transcribe, "sessions": sessions, "export": export, "search": search,
    "summarize": summarize, "delete": delete, "eval": evaluate,
}
"""Commands that read or write the database; `worker` and `bench` never open it."""
