"""`models`: the local models, where each comes from, whether it is ready offline; `--get` one."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from scribe.config import Settings


def register(sub: Any) -> None:
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
