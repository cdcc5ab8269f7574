"""The BM25 floor: shape, order and that it solves the lexical Passkey task."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from diffemb.tasks.base import RetrievalTask
from diffemb.tasks.bm25 import bm25_scores
from diffemb.tasks.metrics import evaluate
from diffemb.tasks.passkey import build_passkey


def test_scores_follow_query_and_doc_order() -> None:
    task = RetrievalTask(
        name="toy",
        queries={"a": "purple elephants", "b": "quantum chromodynamics", "c": "the of and"},
        corpus={"x": "a note on quantum chromodynamics", "y": "purple elephants dance", "z": "bread"},
        qrels={"a": {"y": 1}, "b": {"x": 1}},
    )
    scores = bm25_scores(task)
    assert scores.shape == (3, 3) and scores.dtype == np.float32
    assert scores[0].argmax() == 1 and scores[1].argmax() == 0
    assert not scores[2].any()  # stopwords only: no signal, no crash


def test_bm25_solves_passkey() -> None:
    [task] = build_passkey(lengths=[256])
    assert evaluate(task, bm25_scores(task))["ndcg@1"] >= 0.95


def test_missing_bm25s_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "bm25s", None)
    task = RetrievalTask("toy", {"q": "x"}, {"d": "x"}, {"q": {"d": 1}})
    with pytest.raises(ImportError, match=r'pip install "diffemb\[eval\]"'):
        bm25_scores(task)
