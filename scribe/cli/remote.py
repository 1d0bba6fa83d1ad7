"""Reaching a running Scribe app's API, for when that app holds the database.

`main.run` tries every command on the database first; when DuckDB says another process holds
the file and the command has an API twin (`remote=` in its parser's defaults), `run()` here
finds the app at SCRIBE_API_URL (with SCRIBE_API_TOKEN), checks that the app really serves that
database, and hands the twin a connected client. The twins live beside their commands and
print through the same `printers`, so output and exit codes match. When no app can take over,
one line says what holds the database and what to do.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable, Mapping

from scribe.api_client import ApiClient, ApiRequestError, ApiUnreachableError, lock_holder
from scribe.config import Settings
from scribe.core import ChunkRow, SessionRow, database_id
from scribe.errors import ScribeError

WAIT_TIMEOUT_S = 3600.0
POLL_S = 0.3

RemoteCommand = Callable[[argparse.Namespace, ApiClient], int]
"""A command's API twin: the parsed flags and a client of the app that holds the database."""


def database_holder(exc: BaseException) -> str | None:
    """Who holds the database, when `exc` is DuckDB refusing a second process; else None."""
    return lock_holder(str(exc))


DATABASE_VARS = ("SCRIBE_DB", "SCRIBE_DATA_DIR")
"""Settings that name a database; with one of them (or --db) a command uses that database."""


def run(args: argparse.Namespace, holder: str, twin: RemoteCommand) -> int:
    settings = Settings.from_env(db_path=Path(args.db) if getattr(args, "db", None) else None)
    return run_with(args, connect(settings, holder), twin)


def run_with(args: argparse.Namespace, client: ApiClient, twin: RemoteCommand) -> int:
    try:
        return twin(args, client)
    finally:
        client.close()


def named_app(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> ApiClient | None:
    """The app SCRIBE_API_URL names, when that is set, the app answers, and the command (one with
    an API twin) was given no database of its own (--db, SCRIBE_DB, SCRIBE_DATA_DIR): it then
    runs through that app, whatever folder it was started in (one stderr line says which)."""
    if (args.remote is None or getattr(args, "db", None) or not environ.get("SCRIBE_API_URL")
            or any(environ.get(var) for var in DATABASE_VARS)):
        return None
    settings = Settings.from_env()
    client = ApiClient(settings.api_url, settings.api_token)
    try:
        served = client.health().get("database", "?")
    except ApiUnreachableError:
        client.close()
        print(f"note: no Scribe app answers at {settings.api_url} (SCRIBE_API_URL); using the database "
              f"at {settings.db.resolve()}", file=sys.stderr)
        return None
    except ApiRequestError as exc:
        client.close()
        todo = "set SCRIBE_API_TOKEN to the app's token" if exc.status in (401, 403) else "see the app's log"
        raise ScribeError(f"the Scribe app at {settings.api_url} (SCRIBE_API_URL) answered HTTP {exc.status} "
                          f"({exc}): {todo}") from None
    print(f"note: through the Scribe app at {settings.api_url} (database {served})", file=sys.stderr)
    return client


def connect(settings: Settings, holder: str) -> ApiClient:
    """The API of the app that holds `settings.db`, or a ScribeError saying what to do."""
    db, url = settings.db.resolve(), settings.api_url
    client = ApiClient(url, settings.api_token)
    try:
        health = client.health()
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
    if health.get("database_id") != database_id(db):
        client.close()
        raise ScribeError(f"{db} is in use by {holder}; the Scribe app at {url} serves another database "
                          f"({health.get('database', '?')}): "
                          "stop that process, or set SCRIBE_API_URL to the app that holds it")
    return client


# -- what several twins need ----------------------------------------------------------
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


def live_transcript(client: ApiClient, session_id: str, fmt: str) -> str:
    """The chunk transcript, as the local command prints it, even once a final pass exists."""
    try:
        return client.transcript(session_id, fmt, "live")
    except ApiRequestError as exc:
        if exc.status != 404:
            raise
        return client.transcript(session_id, fmt)  # nothing was said: the empty live transcript


def session_row(item: dict[str, Any]) -> SessionRow:
    return SessionRow(**{f.name: item[f.name] for f in fields(SessionRow)})


def chunk_rows(items: list[dict[str, Any]]) -> list[ChunkRow]:
    """The API's chunk list (it leaves out the server's file path) as rows."""
    names = [f.name for f in fields(ChunkRow)]
    return [ChunkRow(**{**{k: v for k, v in item.items() if k in names}, "audio_path": ""}) for item in items]
