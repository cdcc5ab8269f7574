"""mteb for diffemb: a `DiffEmbedEncoder` as an mteb 2.x model, diffemb's offline tasks as mteb tasks, and the hub
suites. ``pip install "diffemb[eval]"`` (tested with mteb 2.26.24); mteb is imported only when one is used.

The parts live in :mod:`diffemb.evaluation.mteb_suites` (the paper's per-task settings, suites, the hub) and
:mod:`diffemb.evaluation.mteb_model` (the model); their public names are re-exported here. This module turns
diffemb tasks into mteb tasks and runs mteb's own evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from diffemb.evaluation.mteb_model import make_mteb_model, mteb_model_class, similarity_matrix
from diffemb.evaluation.mteb_suites import (
    BRIGHT_INSTRUCTION,
    E5_INSTRUCTIONS,
    FAMILIES,
    FOLLOWIR_INSTRUCTION,
    LONGEMBED_INSTRUCTION,
    MTEB_REQUIREMENT,
    PAPER_FAMILIES,
    SUITES,
    FamilySettings,
    HubUnavailable,
    expand_hub_tasks,
    family_of,
    hub_reachable,
    import_mteb,
    import_mteb_auto,
    model_query_instruction,
    query_instruction,
    require_hub,
)
from diffemb.evaluation.scoring import MODES
from diffemb.extras import require

# -- running ---------------------------------------------------------------------------------------------------


def as_mteb_task(task: Any, name: str | None = None) -> Any:
    """A :class:`diffemb.tasks.RetrievalTask` as an in-memory mteb retrieval task (no download, no disk).

    Its main score is the task's metric (``ndcg_at_1`` or ``ndcg_at_10``); documents have no title.
    """
    import_mteb_auto()
    Dataset = require("datasets", "eval", "an in-memory mteb task").Dataset
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
    from mteb.abstasks.task_metadata import TaskMetadata

    label = name or "".join(part.capitalize() for part in task.name.replace("-", " ").split()) + "Retrieval"
    main_score = task.metric.replace("@", "_at_")
    metadata = TaskMetadata(
        type="Retrieval",
        name=label,
        main_score=main_score,
        description=f"diffemb offline task {task.name}, held in memory.",
        reference="https://github.com/embeddings-benchmark/mteb",
        dataset={"path": f"diffemb/{task.name}", "revision": "local"},
        category="t2t",
        eval_splits=["test"],
        eval_langs=["eng-Latn"],
        date=("2025-01-01", "2025-01-01"),
        dialect=["Written"],
        domains=[],
        task_subtypes=[],
        license="not specified",
        annotations_creators="derived",
        modalities=["text"],
        sample_creation="found",
        bibtex_citation="",
    )

    def load_data(self: Any, num_proc: int | None = None, **kwargs: Any) -> None:
        split = RetrievalSplitData(
            queries=Dataset.from_list([{"id": qid, "text": text} for qid, text in task.queries.items()]),
            corpus=Dataset.from_list([{"id": did, "text": text} for did, text in task.corpus.items()]),
            relevant_docs={qid: dict(rels) for qid, rels in task.qrels.items()},
            top_ranked=None,
        )
        self.dataset = {"default": {"test": split}}
        self.data_loaded = True

    cls = type(label, (AbsTaskRetrieval,), {"metadata": metadata, "load_data": load_data, "__module__": __name__})
    return cls()


def run_mteb(model: Any, tasks: Sequence[Any], *, show_progress: bool = False) -> dict[str, dict[str, Any]]:
    """Run mteb's own evaluation of ``model`` on task objects; per task its main score and every split's
    scores. No result cache (a rerun recomputes) and no CO2 tracking."""
    mteb = import_mteb_auto()
    result = mteb.evaluate(
        model,
        list(tasks),
        cache=None,
        co2_tracker=False,
        show_progress_bar=show_progress,
        raise_error=True,
    )
    out: dict[str, dict[str, Any]] = {}
    for task_result in result.task_results:
        out[task_result.task_name] = {
            "main_score": float(task_result.get_score()),
            "scores": task_result.scores,
        }
    return out


def load_hub_tasks(names: Sequence[str], *, timeout: float = 3.0) -> list[Any]:
    """mteb task objects for task or suite names; fails fast with :class:`HubUnavailable` when offline."""
    expanded = expand_hub_tasks(names)
    require_hub(expanded, timeout)
    mteb = import_mteb(offline=False)
    return list(mteb.get_tasks(tasks=expanded))


__all__ = [
    "BRIGHT_INSTRUCTION",
    "E5_INSTRUCTIONS",
    "FAMILIES",
    "FOLLOWIR_INSTRUCTION",
    "LONGEMBED_INSTRUCTION",
    "MODES",
    "MTEB_REQUIREMENT",
    "PAPER_FAMILIES",
    "SUITES",
    "FamilySettings",
    "HubUnavailable",
    "as_mteb_task",
    "expand_hub_tasks",
    "family_of",
    "hub_reachable",
    "import_mteb",
    "import_mteb_auto",
    "load_hub_tasks",
    "make_mteb_model",
    "model_query_instruction",
    "mteb_model_class",
    "query_instruction",
    "require_hub",
    "run_mteb",
    "similarity_matrix",
]
