#!/usr/bin/env bash
# Set up (first run) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --system
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
