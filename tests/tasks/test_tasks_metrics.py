"""Metrics on hand-made score matrices with values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from diffemb.tasks.base import RetrievalTask
from diffemb.tasks.metrics import (
    accuracy_at_1,
    accuracy_at_1_ranked,
    evaluate,
    ndcg_at_k,
    ndcg_at_k_ranked,
    rank,
    rankings_from_scores,
    recall_at_k,
    recall_at_k_ranked,
)


def test_perfect_ranking_scores_one() -> None:
    rel = np.eye(4, dtype=int)
    scores = np.eye(4) + 0.01
    assert ndcg_at_k(scores, rel, 1) == 1.0
    assert ndcg_at_k(scores, rel, 10) == 1.0
    assert recall_at_k(scores, rel, 1) == 1.0
    assert accuracy_at_1(scores, rel) == 1.0


def test_single_relevant_at_rank_two() -> None:
    rel = np.array([[0, 1, 0]])
    scores = np.array([[0.9, 0.5, 0.1]])
    assert ndcg_at_k(scores, rel, 10) == pytest.approx(1 / math.log2(3))
    assert ndcg_at_k(scores, rel, 1) == 0.0
    assert recall_at_k(scores, rel, 1) == 0.0
    assert recall_at_k(scores, rel, 2) == 1.0
    assert accuracy_at_1(scores, rel) == 0.0


def test_graded_ndcg_known_value() -> None:
    rel = np.array([[3, 2, 0, 1]])
    scores = np.array([[0.8, 0.7, 0.1, 0.9]])  # ranks docs 3, 0, 1, 2 -> gains 1, 3, 2, 0
    dcg = 1 + 3 / math.log2(3) + 2 / 2
    idcg = 3 + 2 / math.log2(3) + 1 / 2
    assert ndcg_at_k(scores, rel, 4) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(scores, rel, 4) == pytest.approx(0.8174935, abs=1e-6)


def test_ties_break_by_document_order() -> None:
    scores = np.zeros((2, 3))
    rel = np.array([[1, 0, 0], [0, 1, 0]])
    assert rank(scores).tolist() == [[0, 1, 2], [0, 1, 2]]
    assert ndcg_at_k(scores, rel, 1, per_query=True).tolist() == [1.0, 0.0]


def test_nan_scores_rank_last() -> None:
    scores = np.array([[np.nan, 0.1, 0.2]])
    assert rank(scores).tolist() == [[2, 1, 0]]


def test_unjudged_queries_are_left_out_of_the_mean() -> None:
    rel = np.array([[1, 0], [0, 0]])
    scores = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert ndcg_at_k(scores, rel, 10) == 1.0
    per_query = ndcg_at_k(scores, rel, 10, per_query=True)
    assert per_query[0] == 1.0 and math.isnan(per_query[1])


def test_recall_counts_fraction_of_relevant_found() -> None:
    rel = np.array([[1, 0, 1, 0]])
    scores = np.array([[0.9, 0.8, 0.1, 0.2]])
    assert recall_at_k(scores, rel, 2) == 0.5
    assert recall_at_k(scores, rel, 4) == 1.0


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError):
        ndcg_at_k(np.zeros((2, 3)), np.zeros((2, 2)))


def _task(rel: np.ndarray) -> RetrievalTask:
    q, d = rel.shape
    return RetrievalTask(
        name="toy",
        queries={f"q{i}": f"query {i}" for i in range(q)},
        corpus={f"d{j}": f"doc {j}" for j in range(d)},
        qrels={f"q{i}": {f"d{j}": int(rel[i, j]) for j in range(d) if rel[i, j]} for i in range(q)},
        metric="ndcg@10",
    )


def test_ranked_lists_agree_with_score_matrix() -> None:
    rng = np.random.default_rng(7)
    rel = rng.integers(0, 3, size=(20, 30)) * (rng.random((20, 30)) < 0.2)
    rel[0] = 0  # one unjudged query, left out by both paths
    scores = rng.random((20, 30)).round(1)  # rounding makes ties
    task = _task(rel)
    rankings = rankings_from_scores(task, scores)
    for k in (1, 5, 10):
        assert ndcg_at_k_ranked(rankings, task.qrels, k) == pytest.approx(ndcg_at_k(scores, rel, k))
        assert recall_at_k_ranked(rankings, task.qrels, k) == pytest.approx(recall_at_k(scores, rel, k))
    assert accuracy_at_1_ranked(rankings, task.qrels) == pytest.approx(accuracy_at_1(scores, rel))


def test_ranked_lists_missing_query_scores_zero_and_duplicates_ignored() -> None:
    qrels = {"a": {"x": 1}, "b": {"y": 1}}
    assert ndcg_at_k_ranked({"a": ["x"]}, qrels, 10) == 0.5
    assert ndcg_at_k_ranked({"a": ["z", "z", "x"], "b": ["y"]}, qrels, 2) == pytest.approx((1 / math.log2(3) + 1) / 2)


def test_evaluate_reports_main_metric() -> None:
    rel = np.eye(3, dtype=int)
    task = _task(rel)
    out = evaluate(task, np.eye(3))
    assert out["main"] == out["ndcg@10"] == 1.0
    with pytest.raises(ValueError):
        evaluate(task, np.eye(2))


def test_task_validates_ids_and_metric() -> None:
    with pytest.raises(ValueError):
        RetrievalTask("bad", {"q": "x"}, {"d": "y"}, {"q": {"nope": 1}})
    with pytest.raises(ValueError):
        RetrievalTask("bad", {"q": "x"}, {"d": "y"}, {"q": {"d": 1}}, metric="map")
    task = RetrievalTask("ok", {"q": "x"}, {"d": "y", "e": "z"}, {"q": {"e": 2}})
    assert task.relevance_matrix().tolist() == [[0, 2]]
