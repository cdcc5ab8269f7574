"""diffemb.similarity: the one cosine / max-sim / top-k every application ranks with."""

from __future__ import annotations

import numpy as np
import pytest

from diffemb.similarity import cosine_scores, maxsim_scores, maxsim_scores_flat, top_k, unit_rows


def _random(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_cosine_is_the_angle_whatever_the_lengths() -> None:
    queries, documents = _random((3, 8), 0), _random((5, 8), 1)
    scores = cosine_scores(queries * 7.0, documents * 0.01)
    expected = np.array(
        [[q @ d / (np.linalg.norm(q) * np.linalg.norm(d)) for d in documents] for q in queries], dtype=np.float64
    )
    assert scores.shape == (3, 5)
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    assert scores.dtype == np.float32  # float32 in, float32 out; float64 in, float64 out
    assert cosine_scores(queries.astype(np.float64), documents).dtype == np.float64


def test_a_zero_vector_scores_zero_instead_of_nan() -> None:
    scores = cosine_scores(np.zeros((1, 4), np.float32), _random((2, 4), 2))
    assert np.isfinite(scores).all() and (scores == 0).all()
    assert np.allclose(np.linalg.norm(unit_rows(_random((4, 6), 3)), axis=1), 1.0, atol=1e-6)


def test_maxsim_is_the_best_window_and_says_which() -> None:
    queries = _random((4, 16), 4)
    windows = [_random((3, 16), 5), _random((1, 16), 6), _random((6, 16), 7)]
    scores, best = maxsim_scores(queries, windows)
    assert scores.shape == best.shape == (4, 3)
    for d, matrix in enumerate(windows):
        per_window = cosine_scores(queries, matrix)
        np.testing.assert_allclose(scores[:, d], per_window.max(axis=1), atol=1e-6)
        np.testing.assert_array_equal(best[:, d], per_window.argmax(axis=1))


def test_maxsim_of_one_window_per_document_is_cosine() -> None:
    queries, documents = _random((2, 8), 8), _random((5, 8), 9)
    scores, best = maxsim_scores(queries, [row[None, :] for row in documents])
    np.testing.assert_allclose(scores, cosine_scores(queries, documents), atol=1e-6)
    assert (best == 0).all()


def test_tied_windows_point_at_the_first() -> None:
    window = _random((1, 8), 10)
    scores, best = maxsim_scores(window, [np.concatenate([window * 0.5, window, window * 3.0])])
    assert scores[0, 0] == pytest.approx(1.0, abs=1e-6)
    assert best[0, 0] == 0


def test_flat_layout_matches_the_per_document_one() -> None:
    queries = _random((3, 8), 11)
    windows = [_random((2, 8), 12), _random((4, 8), 13)]
    flat = maxsim_scores_flat(queries, np.concatenate(windows), [0, 2, 6])
    per_document = maxsim_scores(queries, windows)
    np.testing.assert_allclose(flat[0], per_document[0], atol=1e-7)
    np.testing.assert_array_equal(flat[1], per_document[1])


def test_a_document_without_windows_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match=r"windows\[1\] has no window vectors"):
        maxsim_scores(_random((1, 4), 14), [_random((2, 4), 15), np.zeros((0, 4), np.float32)])
    with pytest.raises(ValueError, match="document 0 has no window vectors"):
        maxsim_scores_flat(_random((1, 4), 16), _random((2, 4), 17), [0, 0, 2])
    with pytest.raises(ValueError, match="offsets must run from 0"):
        maxsim_scores_flat(_random((1, 4), 16), _random((2, 4), 17), [0, 3])


def test_mismatched_dimensions_are_an_error() -> None:
    with pytest.raises(ValueError, match="dimension 4 but documents 5"):
        cosine_scores(_random((1, 4), 18), _random((2, 5), 19))


def test_top_k_is_best_first_with_ties_by_index() -> None:
    scores = np.array([0.1, 0.9, 0.5, 0.9, -1.0])
    assert top_k(scores, 3).tolist() == [1, 3, 2]
    assert top_k(scores).tolist() == [1, 3, 2, 0, 4]
    assert top_k(scores, 10).tolist() == [1, 3, 2, 0, 4]
    assert top_k(np.array([[0.0, 1.0], [1.0, 0.0]]), 1).tolist() == [[1], [0]]
    with pytest.raises(ValueError, match="k must be a non-negative int"):
        top_k(scores, -1)
