"""What every command shares: settings from flags, the database, argument types, stderr lines.

Nothing here prints a result (that is `printers`) or knows a command.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Callable

from scribe import backends
from scribe.config import Settings
from scribe.errors import ScribeError
from scribe.runtime import Runtime, configure_logging
from scribe.storage import Storage, check_expected_speakers

EXIT_ERROR = 2
MAX_LIMIT = 100_000
"""Largest --limit; with --page it keeps every offset far inside DuckDB's integers."""
MAX_PAGE = 1_000_000


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the environment, with the command's --backend, --model, --db, --chunk-seconds."""
    backend = getattr(args, "backend", None)
    model = getattr(args, "model", None)
    db = Path(args.db) if getattr(args, "db", None) else None
    overrides: dict[str, Any] = {
        "backend": backend,
        "db_path": db,
        # Chunk audio goes beside the database it belongs to, not to ./data/audio,
        # unless SCRIBE_DATA_DIR says where.
        **({"data_dir": db.parent} if db is not None and not os.environ.get("SCRIBE_DATA_DIR") else {}),
        "chunk_seconds": getattr(args, "chunk_seconds", None),
    }
    settings = Settings.from_env(**overrides)
    if model:
        settings = settings.with_changes(**backends.model_changes(settings.backend, model))
    return settings


def quiet_logging(settings: Settings) -> None:
    """A command's stderr is for its own lines: the library logs warnings only, unless asked for more."""
    configure_logging(settings.log_level if settings.log_level != "INFO" else "WARNING")


def add_db_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="DuckDB file (default: SCRIBE_DB or <data>/scribe.duckdb)")


def open_storage(args: argparse.Namespace) -> tuple[Settings, Storage]:
    """The database, after marking sessions a dead process left `recording` as
    interrupted (this process holds the file, so no live process is recording them)."""
    settings = settings_from(args)
    if not settings.db.exists():  # reading commands never create an empty database by accident
        raise ScribeError(f"no Scribe database at {settings.db.resolve()}: point --db, SCRIBE_DB or "
                          "SCRIBE_DATA_DIR at the app's data, or SCRIBE_API_URL at the running app")
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


def print_recovery(runtime: Runtime) -> None:
    for line in runtime.recovery.lines() if runtime.recovery else []:
        print(f"note: {line}", file=sys.stderr)


# -- argument types -------------------------------------------------------------
def speaker_count(raw: str) -> int:
    """`auto` is 0 (estimate the count); otherwise 1..MAX_EXPECTED_SPEAKERS voices."""
    if raw.strip().lower() == "auto":
        return 0
    try:
        return check_expected_speakers(int(raw)) or 0
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of speakers or auto, not {raw!r}") from None
    except ScribeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def speaker_id(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ScribeError(f"a speaker id is a number (see `speakers SESSION`), not {raw!r}") from None


# -- output files -----------------------------------------------------------------
def check_output_path(output: str | None) -> None:
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


def write_output(text: str, output: str | None) -> None:
    if output:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ScribeError(f"cannot write {output}: {exc.strerror or exc}") from None
    else:
        sys.stdout.write(text)


# -- the progress line ------------------------------------------------------------
_progress_open = [False]
"""True while a progress line is drawn without its newline."""


def end_progress_line() -> None:
    """Messages start on their own line, not after a half-drawn progress line."""
    if _progress_open[0]:
        print(file=sys.stderr)
        _progress_open[0] = False


def stderr_progress(stage: str) -> Callable[[float, str], None]:
    """A one-line progress display that redraws only when the whole percent changes."""
    last = [-1]

    def report(fraction: float, message: str) -> None:
        percent = int(fraction * 100)
        if percent != last[0]:
            last[0] = percent
            _progress_open[0] = True
            print(f"\r{stage}: {percent:3d}%  {message:<40}", end="", file=sys.stderr, flush=True)
    return report


def close_progress_line() -> None:
    """End the progress line with a newline, drawn or not (the summarize command's output)."""
    print(file=sys.stderr)
    _progress_open[0] = False
