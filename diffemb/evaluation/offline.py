"""The offline tasks of :mod:`diffemb.tasks`, resolved by name and scored per document mode, plus BM25.

Task names (``--tasks``):

``local-passkey``, ``local-needle`` (both needle kinds), ``local-needle-name-number``,
``local-needle-paraphrase``, ``local-pydocs``, ``local-manpages``, and one length of a synthetic task
(``local-passkey-4096``, ``local-needle-paraphrase-256``).

``limit`` caps the documents of every task: the real tasks keep a seeded subsample of ``limit`` pairs (the
builders' own ``limit``); the synthetic ones build ``limit`` documents and ``min(limit, 50)`` queries per
length. Synthetic lengths are counted with the first model's tokenizer, so every compared model sees the
same texts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from diffemb.evaluation.scoring import ModeCost, Session, check_modes, score_matrix
from diffemb.tasks import (
    LONGEMBED_LENGTHS,
    RetrievalTask,
    bm25_scores,
    build_manpages,
    build_needle,
    build_passkey,
    build_pydocs,
)
from diffemb.tasks import evaluate as task_metrics

SYNTHETIC_QUERIES = 50
SYNTHETIC_DOCS = 100
OFFLINE_TASKS: tuple[str, ...] = (
    "local-passkey",
    "local-needle",
    "local-needle-name-number",
    "local-needle-paraphrase",
    "local-pydocs",
    "local-manpages",
)
_NEEDLE_KINDS: dict[str, tuple[str, ...]] = {"local-needle": ("name-number", "paraphrase")}
_NEEDLE_KINDS.update({f"local-needle-{k}": (k,) for k in ("name-number", "paraphrase")})


def is_offline_task(name: str) -> bool:
    """Offline tasks are the ``local-*`` ones; everything else is an mteb task or suite."""
    return name.startswith("local-")


def build_offline_tasks(
    name: str,
    *,
    count_tokens: Callable[[str], int] | None = None,
    lengths: Sequence[int] | None = None,
    limit: int | None = None,
    n_queries: int | None = None,
    n_docs: int | None = None,
    seed: int = 0,
) -> list[RetrievalTask]:
    """The tasks one name stands for (one per length for the synthetic families).

    A missing Debian package or data package raises the builders' ``FileNotFoundError``, whose message
    names the install command.
    """
    family, _, tail = name.rpartition("-")
    if family and tail.isdigit() and (family == "local-passkey" or family in _NEEDLE_KINDS):
        name, lengths = family, [int(tail)]
    if name in ("local-pydocs", "local-manpages"):
        builder = build_pydocs if name == "local-pydocs" else build_manpages
        task = builder(limit=limit, seed=seed) if limit is not None else builder(seed=seed)
        return [task]
    docs = n_docs or (min(limit, SYNTHETIC_DOCS) if limit else SYNTHETIC_DOCS)
    queries = n_queries or min(SYNTHETIC_QUERIES, docs)
    chosen = list(lengths or LONGEMBED_LENGTHS)
    if name == "local-passkey":
        return build_passkey(chosen, n_queries=queries, n_docs=docs, seed=seed, count_tokens=count_tokens)
    if name in _NEEDLE_KINDS:
        out: list[RetrievalTask] = []
        for kind in _NEEDLE_KINDS[name]:
            out += build_needle(kind, chosen, n_queries=queries, n_docs=docs, seed=seed, count_tokens=count_tokens)
        return out
    known = ", ".join(OFFLINE_TASKS)
    raise ValueError(f"unknown offline task {name!r}: use one of {known} or one length like local-passkey-4096")


def task_sizes(task: RetrievalTask, count_tokens: Callable[[str], int] | None = None) -> dict[str, Any]:
    """Queries, documents and document lengths (tokens by ``count_tokens``, else characters)."""
    sizes: dict[str, Any] = {"queries": len(task.queries), "documents": len(task.corpus)}
    for key in ("length", "kind", "family", "seed", "limit", "pairs_before_limit"):
        if key in task.meta:
            sizes[key] = task.meta[key]
    if "doc_tokens" in task.meta:
        counts = np.asarray(list(task.meta["doc_tokens"].values()))
        unit = "tokens"
    elif count_tokens is not None:
        counts = np.asarray([count_tokens(text) for text in task.corpus.values()])
        unit = "tokens"
    else:
        counts = np.asarray([len(text) for text in task.corpus.values()])
        unit = "chars"
    sizes[f"doc_{unit}"] = {
        "mean": round(float(counts.mean()), 1),
        "median": float(np.median(counts)),
        "max": int(counts.max()),
        "total": int(counts.sum()),
    }
    return sizes


@dataclass
class ModeResult:
    metrics: dict[str, float]
    cost: ModeCost


@dataclass
class TaskRun:
    """One model on one task: metrics and cost per document mode, and the query pass."""

    task: str
    metric: str
    modes: dict[str, ModeResult] = field(default_factory=dict)
    query_cost: ModeCost = field(default_factory=ModeCost)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "metric": self.metric,
            "modes": {
                mode: {"metrics": _rounded(r.metrics), "cost": r.cost.as_dict()} for mode, r in self.modes.items()
            },
            "query_cost": self.query_cost.as_dict(),
            "seconds": round(self.seconds, 3),
        }


def run_task(session: Session, task: RetrievalTask, modes: Sequence[str], *, query_instruction: Any = None) -> TaskRun:
    """Score ``task`` in every mode with one session (window rows shared between modes)."""
    started = time.perf_counter()
    run = TaskRun(task.name, task.metric)
    queries, run.query_cost = session.queries(list(task.queries.values()), query_instruction)
    docs = list(task.corpus.values())
    for mode in check_modes(modes):
        documents, cost = session.documents(docs, mode)
        run.modes[mode] = ModeResult(task_metrics(task, score_matrix(queries, documents, mode)), cost)
    run.seconds = time.perf_counter() - started
    return run


def bm25_metrics(task: RetrievalTask) -> dict[str, float]:
    """The lexical floor: BM25 (bm25s, Lucene variant) metrics of the task."""
    return task_metrics(task, bm25_scores(task).astype(np.float64))


def _rounded(metrics: dict[str, float]) -> dict[str, float]:
    return {key: round(value, 6) for key, value in metrics.items()}
