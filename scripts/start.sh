#!/usr/bin/env bash
# Set up (first run) and start the Scribe app: the UI and its API (/api) on one port.
# SCRIBE_ADDRESS (default 127.0.0.1: this machine only) and SCRIBE_PORT (default 8501) choose where.
# A team reaching the server by name sets SCRIBE_PUBLIC_URL to that address: the app answers only
# IP addresses, localhost, the bind address and that name (DNS rebinding), and shows that URL.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
address="${SCRIBE_ADDRESS:-127.0.0.1}"
shown="${SCRIBE_PUBLIC_URL:-}"
shown="${shown#*://}"
shown="${shown%%/*}"
shown="${shown%:*}"
if [[ -z "$shown" ]]; then
    case "$address" in 0.0.0.0|::) shown=localhost ;; *) shown="$address" ;; esac
fi
exec .venv/bin/python -m streamlit run app.py \
    --server.address "$address" --server.port "${SCRIBE_PORT:-8501}" --browser.serverAddress "$shown" "$@"
