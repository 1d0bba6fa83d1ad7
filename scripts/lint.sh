#!/usr/bin/env bash
# Lint the app's code and its tests (scribe/, pages/, app.py, tests/) with ruff and ruff.toml, and
# type-check the app's code with mypy and mypy.ini. Exits non-zero on the first tool that finds
# something. Expects ./.venv (setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m ruff check scribe pages app.py tests
.venv/bin/python -m mypy
