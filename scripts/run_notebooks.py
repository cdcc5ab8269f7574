"""Execute the example notebooks in place and store their outputs, so a reader on a code host sees real results.

    .venv/bin/python scripts/run_notebooks.py                 # every notebook but 05 (minutes)
    .venv/bin/python scripts/run_notebooks.py 05_diffusion_vs_autoregressive.ipynb   # real weights: `slow` extra

The test suite executes fresh copies of the same notebooks (`tests/test_notebooks.py`); this script is how the
committed outputs are made. Files a notebook writes (plots, vector stores) stay in examples/ and are git-ignored.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbclient
import nbformat

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SLOW = {"05_diffusion_vs_autoregressive.ipynb"}


def run(name: str) -> float:
    path = EXAMPLES / name
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(EXAMPLES)}}
    )
    started = time.perf_counter()
    client.execute()
    nbformat.write(notebook, path)
    return time.perf_counter() - started


def main(names: list[str]) -> int:
    chosen = names or sorted(p.name for p in EXAMPLES.glob("*.ipynb") if p.name not in SLOW)
    for name in chosen:
        print(f"{name}: {run(name):.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
