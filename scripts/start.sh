#!/usr/bin/env bash
# Set up (first run) and start the Scribe app: the UI and its API (/api) on one port.
# SCRIBE_ADDRESS (default 127.0.0.1: this machine only) and SCRIBE_PORT (default 8501) choose where.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m streamlit run app.py \
    --server.address "${SCRIBE_ADDRESS:-127.0.0.1}" --server.port "${SCRIBE_PORT:-8501}" "$@"
