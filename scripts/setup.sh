#!/usr/bin/env bash
# Install what Scribe needs into ./.venv, plus (with --system) the Debian packages
# the tests use: espeak-ng (test speech), chromium (browser tests), redis-server
# (scale-out tests), sox, pocketsphinx-testdata (real human voices for the speaker
# labels). Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--system" ]]; then
  missing=()
  for pkg in espeak-ng chromium redis-server sox pocketsphinx-testdata; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if (( ${#missing[@]} )); then
    sudo_cmd=""; [[ "$(id -u)" != 0 ]] && sudo_cmd="sudo"
    echo "installing Debian packages: ${missing[*]}" >&2
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
stamp=.venv/.requirements.sha
want="$(sha1sum requirements.txt | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  echo "$want" > "$stamp"
fi
# The speaker model ships inside resemblyzer; its dependencies (torch, librosa) are never
# installed: Scribe reads the weights file as data (scribe/speakers.py).
if ! .venv/bin/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('resemblyzer') is None)"; then
  .venv/bin/python -m pip install -q --no-deps resemblyzer==0.1.4
fi
