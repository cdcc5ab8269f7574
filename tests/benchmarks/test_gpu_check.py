"""`benchmarks/gpu_check.py --smoke`: the GPU check's code paths run on the CPU with a tiny shape.

The real run needs a CUDA card (see the script); this keeps its code working between runs on one.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module
    spec.loader.exec_module(module)
    return module


def test_smoke_runs_every_step_and_writes_one_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "gpu.md"
    assert _load_script().main(["--smoke", "--output", str(output)]) == 0
    table = [line.split(" | ") for line in output.read_text().splitlines() if line.startswith("| ")]
    rows = {cells[0].removeprefix("| "): cells[1] for cells in table[2:]}
    assert not [name for name in rows if name.endswith("(failed)")]
    for name in ("matmul rate", "sdpa 32 tokens", "sdpa 128 MFU", "int8 weights", "nf4 on CPU"):
        assert name in rows
    assert float(rows["oom backoff: min cosine to small-budget vectors"]) >= 0.999
    # The peer (sentence-transformers on the same weights, mean pooling, no template) gives diffemb's vectors.
    assert float(rows["sentence-transformers min cosine to diffemb"]) >= 0.999
    assert "| measurement | value | note |" in capsys.readouterr().out
