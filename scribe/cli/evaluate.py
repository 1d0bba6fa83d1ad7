"""`eval`: the chunking lab on the command line (its API twin stores the runs through the app)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

from scribe import backends
from scribe.api_client import ApiClient
from scribe.chunking import POLICY_HELP, POLICY_NAMES, parse_policy
from scribe.cli.common import add_db_flag, end_progress_line, quiet_logging, settings_from, stderr_progress
from scribe.cli.printers import runs_table
from scribe.config import Settings
from scribe.errors import ScribeError


def register(sub: Any) -> None:
    p = sub.add_parser("eval", help="score chunking policies on a recording against a reference")
    p.add_argument("audio", help="audio file, or 'demo' for the built-in demo recording")
    p.add_argument("--reference", help="reference transcript (text file); not needed for 'demo'")
    p.add_argument("--policy", action="append", dest="policies", metavar="POLICY",
                   help="; ".join(POLICY_HELP[name] for name in POLICY_NAMES) + "; repeat for several "
                        "(default: whole, fixed:15, pause:15)")
    p.add_argument("--backend", choices=backends.names())
    p.add_argument("--model", help="Whisper model name or folder (local), or Gemini model")
    p.add_argument("--json", action="store_true", help='print {"runs": [...]} as JSON')
    p.add_argument("--no-save", action="store_true", help="do not store the runs in DuckDB")
    add_db_flag(p)
    p.set_defaults(func=cmd_eval, remote=eval_through_api)


def cmd_eval(args: argparse.Namespace) -> int:
    from scribe.storage import Storage

    return eval_command(args, open_results=lambda settings: Storage(settings.db))


def eval_through_api(args: argparse.Namespace, client: ApiClient) -> int:
    """The same run; only the results go to the app (`POST /api/lab/runs`)."""
    return eval_command(args, open_results=lambda _settings: client)


def eval_command(args: argparse.Namespace, open_results: Callable[[Settings], Any]) -> int:
    """`eval`, storing the runs in what `open_results` gives (anything with save_lab_run, close)."""
    from scribe import lab
    from scribe.transcribers import make_transcriber

    audio, reference = _eval_inputs(args)
    settings = settings_from(args)
    quiet_logging(settings)
    policies = args.policies or list(lab.DEFAULT_POLICIES)
    for spec in policies:
        parse_policy(spec)  # a typo fails before the model loads
    results = None if args.no_save else open_results(settings)  # a held database fails before it too
    try:
        transcriber = make_transcriber(settings)
        runs = lab.run_eval(audio, reference, policies, transcriber=transcriber, results=results,
                            label=Path(audio).name, progress=stderr_progress("evaluating"),
                            context_seconds=settings.noisy_context_seconds)
    finally:
        if results is not None:
            results.close()
    end_progress_line()
    print(lab.runs_json(runs) if args.json else runs_table(runs))
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
