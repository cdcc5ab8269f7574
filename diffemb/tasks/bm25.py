"""A lexical BM25 floor row for any RetrievalTask, via the ``bm25s`` package.

An embedder that cannot beat BM25 on a task has learned nothing the bag of words did not
already know; the floor makes that visible next to every model row.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from diffemb.extras import require
from diffemb.tasks.base import RetrievalTask


def _import_bm25s() -> Any:
    return require("bm25s", "eval", "the BM25 floor (tested with bm25s==0.3.16)")


def bm25_scores(
    task: RetrievalTask,
    *,
    k1: float = 1.5,
    b: float = 0.75,
    stopwords: str | None = "en",
) -> np.ndarray:
    """BM25 (Lucene variant, bm25s defaults) scores as a (Q, D) float32 matrix.

    Rows follow ``task.query_ids`` and columns ``task.doc_ids``, as every metric expects.
    Tokenisation is bm25s's: lower-cased ``\\w\\w+`` words, English stopwords removed, no
    stemming (so the result does not depend on an optional stemmer being installed).
    """
    bm25s = _import_bm25s()
    # bm25s logs its progress through tqdm and logging; a floor row should be silent.
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    corpus_tokens = bm25s.tokenize(list(task.corpus.values()), stopwords=stopwords, show_progress=False)
    retriever = bm25s.BM25(k1=k1, b=b)
    retriever.index(corpus_tokens, show_progress=False)
    query_tokens = bm25s.tokenize(
        list(task.queries.values()), stopwords=stopwords, return_ids=False, show_progress=False
    )
    known = retriever.vocab_dict
    scores = np.zeros((len(task.queries), len(task.corpus)), dtype=np.float32)
    for i, tokens in enumerate(query_tokens):
        # A query made only of words the corpus never uses scores 0 everywhere rather than
        # tripping bm25s on an empty token list.
        tokens = [t for t in tokens if t in known]
        if tokens:
            scores[i] = retriever.get_scores(tokens)
    return scores
