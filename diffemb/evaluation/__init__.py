"""Retrieval evaluation: offline tasks, the mteb integration, and the `diffemb eval` command.

    from diffemb.evaluation import evaluate
    report = evaluate("path/to/model", ["local-passkey", "local-pydocs"], chunk_aggregation=["first", "maxsim"],
                      limit=50, output_dir="results/", compare=["other/model"])
    print(report.table)

Offline tasks come from :mod:`diffemb.tasks`; document modes (``first``, ``mean``, ``max``, ``late``,
``maxsim``, ``norm-mean``) from :mod:`diffemb.evaluation.scoring`; the mteb model adapter and the hub suites
(``longembed``, ``bright``, ``followir``, ``mteb-eng-retrieval``) from :mod:`diffemb.evaluation.mteb_adapter`,
which imports mteb only when used.
"""

from __future__ import annotations

from typing import Any

from diffemb.evaluation.scoring import MODES, ModeCost, RowCache, Session, score_matrix

__all__ = [
    "MODES",
    "EvalReport",
    "ModeCost",
    "RowCache",
    "Session",
    "evaluate",
    "score_matrix",
]


def __getattr__(name: str) -> Any:
    # The runner pulls in the task builders and bm25; keep `import diffemb.evaluation` light.
    if name in ("evaluate", "EvalReport"):
        from diffemb.evaluation import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'diffemb.evaluation' has no attribute {name!r}")
