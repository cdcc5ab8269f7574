"""Ranking metrics: nDCG@k, recall@k and accuracy@1 from a score matrix or ranked lists.

Conventions, chosen to match trec_eval / pytrec_eval as used by MTEB and LongEmbed:

* linear gain (``rel / log2(rank + 1)``), ideal DCG from all judged documents of the query;
* only queries with at least one relevant (grade > 0) document are averaged;
* ties are broken by document order (column order), so results are deterministic; NaN
  scores rank last.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from diffemb.tasks.base import RetrievalTask


def rank(scores: np.ndarray) -> np.ndarray:
    """Column indices of each row, best score first, ties in column order."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be (queries, docs), got shape {scores.shape}")
    # Negating turns ascending stable sort into descending-with-stable-ties; NaN -> -inf
    # keeps a broken score from winning.
    keyed = np.where(np.isnan(scores), np.inf, -scores)
    return np.argsort(keyed, axis=1, kind="stable")


def _check(scores: np.ndarray, relevance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores)
    relevance = np.asarray(relevance, dtype=np.float64)
    if scores.shape != relevance.shape:
        raise ValueError(f"scores {scores.shape} and relevance {relevance.shape} differ")
    return scores, relevance


def _ranked_gains(scores: np.ndarray, relevance: np.ndarray, k: int) -> np.ndarray:
    order = rank(scores)[:, :k]
    return np.take_along_axis(relevance, order, axis=1)


def _reduce(values: np.ndarray, judged: np.ndarray | np.bool_, per_query: bool) -> float | np.ndarray:
    judged = np.asarray(judged, dtype=bool)
    if per_query:
        return np.where(judged, values, np.nan)
    if not judged.any():
        return float("nan")
    return float(values[judged].mean())


def _dcg(gains: np.ndarray) -> np.ndarray:
    discounts = 1.0 / np.log2(np.arange(gains.shape[1]) + 2.0)
    return (gains * discounts).sum(axis=1)


def _ndcg_from_gains(ranked: np.ndarray, all_gains: np.ndarray, k: int) -> np.ndarray:
    ideal = -np.sort(-all_gains, axis=1)[:, :k]
    idcg = _dcg(ideal)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(idcg > 0, _dcg(ranked) / np.where(idcg > 0, idcg, 1.0), 0.0)


def ndcg_at_k(scores: np.ndarray, relevance: np.ndarray, k: int = 10, *, per_query: bool = False) -> float | np.ndarray:
    """Mean nDCG@k of a (Q, D) score matrix against (Q, D) graded relevance.

    With ``per_query`` the per-query values come back, NaN for unjudged queries.
    """
    scores, relevance = _check(scores, relevance)
    # Negative grades (some qrels mark "judged non-relevant" that way) count as zero gain.
    gains = np.clip(relevance, 0, None)
    values = _ndcg_from_gains(_ranked_gains(scores, gains, k), gains, k)
    return _reduce(values, (relevance > 0).any(axis=1), per_query)


def recall_at_k(
    scores: np.ndarray, relevance: np.ndarray, k: int = 10, *, per_query: bool = False
) -> float | np.ndarray:
    """Fraction of each query's relevant documents found in its top k."""
    scores, relevance = _check(scores, relevance)
    positive = relevance > 0
    hits = _ranked_gains(scores, positive.astype(np.float64), k).sum(axis=1)
    n_rel = positive.sum(axis=1)
    values = hits / np.maximum(n_rel, 1)
    return _reduce(values, n_rel > 0, per_query)


def accuracy_at_1(scores: np.ndarray, relevance: np.ndarray, *, per_query: bool = False) -> float | np.ndarray:
    """Whether the top-ranked document is relevant."""
    scores, relevance = _check(scores, relevance)
    top = _ranked_gains(scores, relevance, 1)[:, 0]
    return _reduce((top > 0).astype(np.float64), (relevance > 0).any(axis=1), per_query)


# --- ranked lists -------------------------------------------------------------------------
# A run given as {query_id: [doc_id, best first]} may be truncated; a judged query missing
# from the run scores 0, since leaving it out would flatter an incomplete run.


def _gains_from_rankings(
    rankings: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]], k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    qids = [q for q, rels in qrels.items() if any(g > 0 for g in rels.values())]
    width = max([len(r) for r in qrels.values()] + [k, 1])
    ranked = np.zeros((len(qids), k))
    judged = np.zeros((len(qids), width))
    n_rel = np.zeros(len(qids))
    for i, qid in enumerate(qids):
        rels = qrels[qid]
        # dict.fromkeys keeps the first occurrence of a doc listed twice, in order.
        top = list(dict.fromkeys(rankings.get(qid, ())))[:k]
        ranked[i, : len(top)] = [max(rels.get(d, 0), 0) for d in top]
        grades = sorted((max(g, 0) for g in rels.values()), reverse=True)
        judged[i, : len(grades)] = grades
        n_rel[i] = sum(g > 0 for g in rels.values())
    return ranked, judged, n_rel


def ndcg_at_k_ranked(
    rankings: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]], k: int = 10
) -> float:
    """Mean nDCG@k of ranked doc-id lists; duplicates after the first are ignored."""
    ranked, judged, _ = _gains_from_rankings(rankings, qrels, k)
    if len(ranked) == 0:
        return float("nan")
    return float(_ndcg_from_gains(ranked, judged, k).mean())


def recall_at_k_ranked(
    rankings: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]], k: int = 10
) -> float:
    ranked, _, n_rel = _gains_from_rankings(rankings, qrels, k)
    if len(ranked) == 0:
        return float("nan")
    return float(((ranked > 0).sum(axis=1) / n_rel).mean())


def accuracy_at_1_ranked(rankings: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]]) -> float:
    ranked, _, _ = _gains_from_rankings(rankings, qrels, 1)
    if len(ranked) == 0:
        return float("nan")
    return float((ranked[:, 0] > 0).mean())


def rankings_from_scores(task: RetrievalTask, scores: np.ndarray, k: int | None = None) -> dict:
    """Turn a task's (Q, D) score matrix into ``{query_id: [doc_id, ...]}``, best first."""
    order = rank(scores)
    doc_ids = task.doc_ids
    cut = order.shape[1] if k is None else k
    return {qid: [doc_ids[j] for j in order[i, :cut]] for i, qid in enumerate(task.query_ids)}


def evaluate(task: RetrievalTask, scores: np.ndarray) -> dict[str, float]:
    """The task's main metric under ``"main"`` plus nDCG@{1,10}, recall@{10,100}, acc@1."""
    scores = np.asarray(scores)
    expected = (len(task.queries), len(task.corpus))
    if scores.shape != expected:
        raise ValueError(f"{task.name}: scores shape {scores.shape}, expected {expected}")
    rel = task.relevance_matrix()
    out = {
        "ndcg@1": ndcg_at_k(scores, rel, 1),
        "ndcg@10": ndcg_at_k(scores, rel, 10),
        "recall@10": recall_at_k(scores, rel, 10),
        "recall@100": recall_at_k(scores, rel, 100),
        "acc@1": accuracy_at_1(scores, rel),
    }
    out["main"] = out[task.metric]
    return {key: float(v) for key, v in out.items()}
