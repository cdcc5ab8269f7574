#!/usr/bin/env bash
# The whole test suite from a fresh clone: sets up .venv, then runs pytest (slow tests excluded).
# `bash scripts/test.sh --slow` runs only the slow tests (real GGUF weights, long runs).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--slow" ]; then
  shift
  bash scripts/setup.sh slow
  exec .venv/bin/python -m pytest -m slow "$@"
fi
bash scripts/setup.sh test
exec .venv/bin/python -m pytest "$@"
