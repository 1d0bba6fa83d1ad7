#!/usr/bin/env bash
# Set up (first run) and start the Scribe app on http://localhost:8501
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m streamlit run app.py "$@"
