"""Cosine and max-sim scores, and the top of a ranking: the one implementation every application scores with.

Evaluation (every document mode and the mteb model), training's held-out evaluator and `diffemb search` all
score here, so a ranking means the same thing everywhere:

- `cosine_scores(queries, documents)`: (Q, D) cosine similarities of one vector per text;
- `maxsim_scores(queries, windows)`: a document given as its window vectors scores as its best window
  (max-sim), with that window's index; `maxsim_scores_flat` takes the windows as one matrix plus offsets;
- `top_k(scores, k)`: the best k indices, ties broken by the lower index (so rankings are deterministic).

Vectors are L2-normalised here (zero vectors stay zero and score 0), so callers may pass raw or unit vectors.
Scores are float64 when any input is float64, else float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_TINY = 1e-12  # below this norm a vector counts as zero (and keeps scoring 0 instead of dividing by 0)


def _float_type(*arrays: np.ndarray) -> type[np.floating]:
    return np.float64 if any(a.dtype == np.float64 for a in arrays) else np.float32


def _matrix(vectors: object, name: str) -> np.ndarray:
    array = np.asarray(vectors)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise ValueError(f"{name} must be a vector or a (n, dimension) matrix, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    return array


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """`vectors` with every row scaled to length 1 (rows of length ~0 stay ~0), in their float type."""
    array = np.asarray(vectors)
    norms = np.linalg.norm(array, axis=-1, keepdims=True)
    out: np.ndarray = array / np.maximum(norms, _TINY)
    return out


def _check_dimensions(queries: np.ndarray, documents: np.ndarray) -> None:
    if queries.shape[1] != documents.shape[1]:
        raise ValueError(
            f"queries have dimension {queries.shape[1]} but documents {documents.shape[1]}: "
            "score vectors of one model (and one truncate_dim) against each other"
        )


def cosine_scores(queries: np.ndarray, documents: np.ndarray) -> np.ndarray:
    """(Q, D) cosine similarity of every query vector with every document vector (a 1-D input is one row)."""
    q, d = _matrix(queries, "queries"), _matrix(documents, "documents")
    _check_dimensions(q, d)
    kind = _float_type(q, d)
    result: np.ndarray = unit_rows(q.astype(kind, copy=False)) @ unit_rows(d.astype(kind, copy=False)).T
    return result


def maxsim_scores_flat(
    queries: np.ndarray, vectors: np.ndarray, offsets: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Max-sim of windows stored in one matrix: document i owns rows `offsets[i]:offsets[i + 1]` of `vectors`.

    Returns (scores, best): (Q, D) the best window's cosine per query and document, and (Q, D) that window's
    index within its document. Every document needs at least one window.
    """
    q, v = _matrix(queries, "queries"), _matrix(vectors, "window vectors")
    _check_dimensions(q, v)
    bounds = np.asarray(offsets, dtype=np.int64)
    if bounds.ndim != 1 or len(bounds) < 1 or bounds[0] != 0 or bounds[-1] != len(v):
        raise ValueError(f"offsets must run from 0 to the number of window vectors ({len(v)}), got {bounds!r}")
    counts = np.diff(bounds)
    if (counts <= 0).any():
        empty = int(np.flatnonzero(counts <= 0)[0])
        raise ValueError(f"document {empty} has no window vectors: every document needs at least one")
    if len(counts) == 0:
        return np.zeros((len(q), 0), _float_type(q, v)), np.zeros((len(q), 0), np.int64)
    starts = bounds[:-1]
    kind = _float_type(q, v)
    sims = unit_rows(q.astype(kind, copy=False)) @ unit_rows(v.astype(kind, copy=False)).T  # (Q, windows)
    scores = np.maximum.reduceat(sims, starts, axis=1)
    # The first window that reaches the maximum: positions that do not are pushed past the end.
    owner = np.repeat(np.arange(len(counts)), counts)
    positions = np.where(sims >= scores[:, owner], np.arange(len(v))[None, :], len(v))
    best = np.minimum.reduceat(positions, starts, axis=1) - starts[None, :]
    return scores, best.astype(np.int64)


def maxsim_scores(queries: np.ndarray, windows: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Max-sim of each document given as its own (K_i, dimension) window matrix; see `maxsim_scores_flat`."""
    matrices = [_matrix(w, f"windows[{i}]") for i, w in enumerate(windows)]
    for i, matrix in enumerate(matrices):
        if len(matrix) == 0:
            raise ValueError(f"windows[{i}] has no window vectors: every document needs at least one")
    q = _matrix(queries, "queries")
    if not matrices:
        return np.zeros((len(q), 0), _float_type(q)), np.zeros((len(q), 0), np.int64)
    offsets = np.concatenate([[0], np.cumsum([len(m) for m in matrices])])
    kind = _float_type(*matrices)
    return maxsim_scores_flat(q, np.concatenate([m.astype(kind, copy=False) for m in matrices]), offsets)


def top_k(scores: np.ndarray, k: int | None = None) -> np.ndarray:
    """Indices of the `k` highest scores (all when None), best first, ties by the lower index; for a (Q, D)
    matrix, per row."""
    array = np.asarray(scores)
    if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0):
        raise ValueError(f"k must be a non-negative int or None, got {k!r}")
    order = np.argsort(-array, axis=-1, kind="stable")
    return order if k is None else order[..., :k]
