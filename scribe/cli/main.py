"""The entry point: the parser built from the command groups, and how a command is run.

`COMMAND_GROUPS` is the one registration point: each module in it has `register(sub)`,
which adds its commands to the parser. A command sets `func` (the database path) and, when
it reads or writes the database, `remote` (its twin through the running app's API).
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import duckdb

from scribe.cli import bench, evaluate, memory, models, remote, sessions, speakers, transcribe, worker
from scribe.cli.common import EXIT_ERROR, end_progress_line
from scribe.errors import ScribeError

COMMAND_GROUPS = (transcribe, sessions, speakers, memory, evaluate, bench, worker, models)
"""Modules whose `register(sub)` adds their commands; a new group is a module plus a line here."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scribe", description="Scribe meeting transcription")
    parser.set_defaults(remote=None)
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except ScribeError as exc:
        end_progress_line()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except (OSError, duckdb.Error) as exc:  # a full disk, a locked or damaged database file
        end_progress_line()
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted; chunks already stored will be finished on the next start", file=sys.stderr)
        return 130


def run(args: argparse.Namespace) -> int:
    """The database first; when a running Scribe app holds it, the command's twin through its API.
    With SCRIBE_API_URL set and no database named, the app at that URL when it answers."""
    if (app := remote.named_app(args)) is not None:
        return remote.run_with(args, app, args.remote)
    try:
        return args.func(args)
    except ScribeError as exc:
        holder = remote.database_holder(exc)
        if holder is None or args.remote is None:
            raise
    return remote.run(args, holder, args.remote)


def _one_line(exc: BaseException) -> str:
    text = (getattr(exc, "strerror", None) or str(exc)).splitlines()
    filename = getattr(exc, "filename", None)
    where = f" ({filename})" if filename else ""
    return f"{text[0][:300] if text else type(exc).__name__}{where}"
