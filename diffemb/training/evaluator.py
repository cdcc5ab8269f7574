"""Held-out retrieval during training: the `DiffEmbedEncoder` itself embeds, diffemb.similarity scores."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from diffemb.extras import require

require("sentence_transformers", "train", "training's held-out evaluator")

from sentence_transformers.base.evaluation.evaluator import BaseEvaluator  # noqa: E402

from diffemb.encoder import DEFAULT, DiffEmbedEncoder  # noqa: E402
from diffemb.similarity import cosine_scores  # noqa: E402
from diffemb.training.data import Pair  # noqa: E402

logger = logging.getLogger(__name__)


class HeldOutEvaluator(BaseEvaluator):  # type: ignore[misc]
    """Retrieval over held-out pairs, embedded by the `DiffEmbedEncoder` itself (the LoRA, still unmerged, is
    live in its backbone): each query against every held-out positive and negative.

    Metrics: accuracy@1, MRR@10 and nDCG@10 (one relevant document per query); the primary one is accuracy@1.
    """

    def __init__(self, encoder: DiffEmbedEncoder, pairs: Sequence[Pair], name: str = "heldout") -> None:
        super().__init__()
        self.encoder = encoder
        self.name = name
        self.primary_metric = "accuracy@1"
        self.queries = [pair.query for pair in pairs]
        self.instructions = [pair.instruction for pair in pairs]
        corpus: dict[str, int] = {}
        for pair in pairs:
            for text in (pair.positive, *pair.negatives):
                corpus.setdefault(text, len(corpus))
        self.corpus = list(corpus)
        self.relevant = np.array([corpus[pair.positive] for pair in pairs])

    def scores(self) -> np.ndarray:
        """(queries, corpus) cosine similarities under the encoder's current weights."""
        encoder = self.encoder
        queries = np.zeros((len(self.queries), encoder.dimension), dtype=np.float32)
        for instruction in dict.fromkeys(self.instructions):
            rows = [i for i, value in enumerate(self.instructions) if value == instruction]
            chosen = DEFAULT if instruction is None else instruction
            vectors = encoder.encode([self.queries[i] for i in rows], role="query", instruction=chosen)
            queries[rows] = vectors
        documents = encoder.encode_documents(self.corpus)
        return cosine_scores(queries, documents)

    def compute(self) -> dict[str, float]:
        model = self.encoder.model
        was_training = model.training
        model.eval()
        try:
            scores = self.scores()
        finally:
            model.train(was_training)
        return retrieval_metrics(scores, self.relevant)

    def __call__(self, model: Any = None, output_path: str | None = None, epoch: int = -1, steps: int = -1) -> dict:
        metrics = self.compute()
        logger.info("held-out retrieval at step %d: %s", steps, metrics)
        return self.prefix_name_to_metrics(metrics, self.name)


def retrieval_metrics(scores: np.ndarray, relevant: np.ndarray) -> dict[str, float]:
    """accuracy@1, MRR@10 and nDCG@10 for one relevant document per query (ties count against the query)."""
    own = scores[np.arange(len(relevant)), relevant][:, None]
    rank = (scores > own).sum(axis=1) + (scores == own).sum(axis=1)  # 1-based, pessimistic on ties
    within = rank <= 10
    return {
        "accuracy@1": float((rank == 1).mean()),
        "mrr@10": float(np.where(within, 1.0 / rank, 0.0).mean()),
        "ndcg@10": float(np.where(within, 1.0 / np.log2(rank + 1), 0.0).mean()),
    }
