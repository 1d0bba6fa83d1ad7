#!/usr/bin/env bash
# Lint and type-check the app's code (scribe/, pages/, app.py): ruff with ruff.toml, mypy with
# mypy.ini. Exits non-zero on the first tool that finds something. Expects ./.venv (setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m ruff check scribe pages app.py
.venv/bin/python -m mypy
