"""Retrieval evaluation: offline tasks, the mteb integration, and the `diffemb eval` command.

    from diffemb.evaluation import evaluate
    report = evaluate("path/to/model", ["local-passkey", "local-pydocs"], chunk_aggregation=["first", "maxsim"],
                      limit=50, output_dir="results/", compare=["other/model"])
    print(report.table)

Offline tasks come from :mod:`diffemb.tasks`; document modes (``first``, ``mean``, ``max``, ``late``,
``maxsim``, ``norm-mean``) from :mod:`diffemb.evaluation.scoring`; the mteb model adapter and the hub suites
(``longembed``, ``bright``, ``followir``, ``mteb-eng-retrieval``) from :mod:`diffemb.evaluation.mteb_adapter`,
which imports mteb only when used. Attributes load lazily, so ``diffemb.evaluation.cli`` stays cheap to import.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MODES": "diffemb.evaluation.scoring",
    "ModeCost": "diffemb.evaluation.scoring",
    "RowCache": "diffemb.evaluation.scoring",
    "Session": "diffemb.evaluation.scoring",
    "score_matrix": "diffemb.evaluation.scoring",
    "EvalReport": "diffemb.evaluation.runner",
    "evaluate": "diffemb.evaluation.runner",
    "add_eval_parser": "diffemb.evaluation.cli",
    "run_eval": "diffemb.evaluation.cli",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'diffemb.evaluation' has no attribute {name!r}")
