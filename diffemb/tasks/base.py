"""The retrieval-task data model shared by every builder and metric."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# LongEmbed's synthetic tasks (Passkey, Needle) are scored at these lengths, in tokens.
LONGEMBED_LENGTHS: tuple[int, ...] = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768)

METRICS: tuple[str, ...] = ("ndcg@1", "ndcg@10")


@dataclass(frozen=True)
class RetrievalTask:
    """One retrieval task: queries, a corpus and graded relevance judgements.

    Score matrices used with a task have one row per query in ``query_ids`` order and one
    column per document in ``doc_ids`` order (both are the dicts' insertion order), so a
    builder fixes the column order that tie-breaking depends on.

    ``meta`` carries build facts (family, target length in tokens, seed, per-document
    depths, ...); synthetic tasks also put the length bucket in ``name``.
    """

    name: str
    queries: dict[str, str]
    corpus: dict[str, str]
    qrels: dict[str, dict[str, int]]
    metric: str = "ndcg@10"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Checked once here so that metrics and encoders can trust ids without re-validating.
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {self.metric!r}")
        for qid, rels in self.qrels.items():
            if qid not in self.queries:
                raise ValueError(f"{self.name}: qrels name unknown query {qid!r}")
            for did in rels:
                if did not in self.corpus:
                    raise ValueError(f"{self.name}: qrels of {qid!r} name unknown doc {did!r}")

    @property
    def query_ids(self) -> list[str]:
        return list(self.queries)

    @property
    def doc_ids(self) -> list[str]:
        return list(self.corpus)

    def relevance_matrix(self) -> np.ndarray:
        """Graded relevance as a (Q, D) int array in ``query_ids`` x ``doc_ids`` order."""
        col = {did: j for j, did in enumerate(self.corpus)}
        rel = np.zeros((len(self.queries), len(self.corpus)), dtype=np.int64)
        for i, qid in enumerate(self.queries):
            for did, grade in self.qrels.get(qid, {}).items():
                rel[i, col[did]] = grade
        return rel

    def __repr__(self) -> str:
        # The default repr would print whole 32k-token documents.
        return (
            f"RetrievalTask(name={self.name!r}, queries={len(self.queries)}, "
            f"corpus={len(self.corpus)}, metric={self.metric!r})"
        )
