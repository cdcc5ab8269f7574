"""Document modes of diffemb.evaluation against the encoder's public API, and reproducibility of evaluate()."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diffemb import DiffEmbedEncoder
from diffemb.evaluation import RowCache, Session, evaluate, score_matrix
from diffemb.tasks import RetrievalTask
from diffemb.testing import checkpoints

pytestmark = pytest.mark.filterwarnings("ignore:.*longer than the model window:UserWarning")


def _with_aggregation(encoder: DiffEmbedEncoder, how: str) -> DiffEmbedEncoder:
    return encoder.with_settings(chunk_aggregation=how)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    lines = checkpoints.corpus(120)
    # Documents from one line to several 64-token windows, so every mode has something to aggregate.
    return [
        " ".join(lines[i : i + k]) for i, k in zip(range(0, 100, 10), [1, 2, 3, 5, 8, 13, 1, 4, 9, 20], strict=True)
    ]


@pytest.mark.parametrize("mode", ["first", "mean", "max", "late"])
def test_single_vector_modes_equal_the_encoders_own(tiny_dream_encoder, texts, mode):
    session = Session(tiny_dream_encoder)
    ours, cost = session.documents(texts, mode)
    theirs = _with_aggregation(tiny_dream_encoder, mode).encode_documents(texts)
    theirs = theirs / np.linalg.norm(theirs, axis=1, keepdims=True)
    np.testing.assert_allclose(ours, theirs, atol=2e-6)
    assert cost.rows >= len(texts) and cost.tokens > 0
    if mode == "first":
        assert cost.truncated > 0


def test_maxsim_is_the_best_window_of_encode_document_chunks(tiny_dream_encoder, texts):
    session = Session(tiny_dream_encoder)
    queries, _ = session.queries(texts[:3])
    ours, _ = session.documents(texts, "maxsim")
    chunks = tiny_dream_encoder.encode_document_chunks(texts)
    for mine, theirs in zip(ours, chunks, strict=True):
        assert mine.spans == theirs.spans
        unit = theirs.vectors / np.linalg.norm(theirs.vectors, axis=1, keepdims=True)
        np.testing.assert_allclose(mine.vectors, unit, atol=2e-6)
    expected = np.array([[float((c.vectors @ q).max()) for c in ours] for q in queries])
    # The expectation is built in float32 and the scores in float64: agreement to float32's precision.
    np.testing.assert_allclose(score_matrix(queries, ours, "maxsim"), expected, atol=1e-6)
    direct = tiny_dream_encoder.encode_queries(texts[:3])
    np.testing.assert_allclose(queries, direct / np.linalg.norm(direct, axis=1, keepdims=True), atol=2e-6)


def test_shared_rows_run_once(tiny_dream_encoder, texts):
    session = Session(tiny_dream_encoder, cache=RowCache())
    _, mean_cost = session.documents(texts, "mean")
    _, max_cost = session.documents(texts, "max")
    _, first_cost = session.documents(texts, "first")
    assert mean_cost.rows_run == mean_cost.rows > len(texts)
    assert max_cost.rows_run == 0 and max_cost.tokens == mean_cost.tokens
    # `first` is the first window of every document: already in the cache.
    assert first_cost.rows_run == 0 and first_cost.rows == len(texts)


def test_evaluate_is_reproducible_and_writes_json(tiny_dream_encoder, texts, tmp_path):
    task = RetrievalTask(
        name="tiny",
        queries={f"q{i}": t.split(".")[0] for i, t in enumerate(texts[:5])},
        corpus={f"d{i}": t for i, t in enumerate(texts)},
        qrels={f"q{i}": {f"d{i}": 1} for i in range(5)},
    )
    from diffemb.evaluation import offline

    first = offline.run_task(Session(tiny_dream_encoder), task, ["mean", "maxsim"]).as_dict()
    second = offline.run_task(Session(tiny_dream_encoder), task, ["maxsim", "mean"]).as_dict()
    for mode in ("mean", "maxsim"):
        assert first["modes"][mode]["metrics"] == second["modes"][mode]["metrics"]

    report = evaluate(
        tiny_dream_encoder,
        ["local-passkey-256"],
        chunk_aggregation="first,maxsim",
        limit=4,
        output_dir=tmp_path / "a",
        show_progress=False,
    )
    again = evaluate(
        tiny_dream_encoder,
        ["local-passkey-256"],
        chunk_aggregation="first,maxsim",
        limit=4,
        output_dir=tmp_path / "b",
        show_progress=False,
    )
    assert report.results["tasks"] == again.results["tasks"]
    saved = json.loads((tmp_path / "a" / "local-passkey-256.json").read_text())
    assert saved["sizes"]["documents"] == 4 and saved["sizes"]["queries"] == 4
    label = next(iter(saved["models"]))
    assert saved["models"][label]["fingerprint"] == tiny_dream_encoder.fingerprint
    assert set(saved["models"][label]["modes"]) == {"first", "maxsim"}
    assert "bm25" in saved and saved["timings"]
    assert saved["settings"]["modes"] == ["first", "maxsim"]
    assert (tmp_path / "a" / "results.md").read_text().count("|") > 10


def test_unknown_mode_and_task_are_rejected(tiny_dream_encoder):
    with pytest.raises(ValueError, match="unknown document mode"):
        evaluate(tiny_dream_encoder, ["local-passkey-256"], chunk_aggregation="median", show_progress=False)
    with pytest.raises(ValueError, match="unknown offline task"):
        evaluate(tiny_dream_encoder, ["local-nothing"], show_progress=False)
