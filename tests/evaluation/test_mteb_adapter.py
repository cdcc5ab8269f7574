"""The mteb adapter through mteb's own evaluation loop, on an in-memory task: same nDCG@10 as diffemb's metrics."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mteb")

from diffemb.evaluation import mteb_adapter
from diffemb.tasks import RetrievalTask, ndcg_at_k

DOCS = {
    "bees": "Honey bees tell each other where flowers are with a waggle dance inside the hive.",
    "tea": "Green tea is brewed with water below boiling so that the leaves do not turn bitter.",
    "rust": "Iron rusts when oxygen and water react with it, forming a flaky reddish oxide.",
    "volcano": "A volcano erupts when pressure from molten rock and gas beneath the crust is released.",
    "chess": "In chess, castling moves the king two squares toward a rook, which jumps over it.",
    "bread": "Sourdough bread rises because wild yeast and lactic bacteria ferment the dough slowly.",
    "tides": "Ocean tides are caused mostly by the moon's gravity pulling on the water of the earth.",
    "bats": "Bats find insects in the dark by echolocation, listening to the echoes of their calls.",
    "glass": "Glass is made by melting sand with soda ash and lime, then cooling it quickly.",
    "sleep": "Adults need seven to nine hours of sleep for memory and mood to stay healthy.",
    "comets": "A comet's tail points away from the sun because solar wind pushes its gas and dust.",
    "cheese": "Cheese is made by curdling milk with rennet and pressing the curds to drain the whey.",
}
QUERIES = {
    "q1": "how do bees communicate the location of food?",
    "q2": "why does metal corrode in the rain?",
    "q3": "what makes the sea level go up and down every day?",
    "q4": "how do animals hunt at night using sound?",
    "q5": "what is the special king move in chess?",
    "q6": "why do comets have tails?",
}
RELEVANT = {"q1": "bees", "q2": "rust", "q3": "tides", "q4": "bats", "q5": "chess", "q6": "comets"}


@pytest.fixture(scope="module")
def small_task() -> RetrievalTask:
    return RetrievalTask(
        name="local-adapter-check",
        queries=QUERIES,
        corpus=DOCS,
        qrels={q: {d: 1} for q, d in RELEVANT.items()},
        metric="ndcg@10",
    )


def test_adapter_scores_equal_direct_diffemb_scores(minilm_encoder, small_task):
    model = mteb_adapter.make_mteb_model(minilm_encoder, mode="mean")
    mteb_task = mteb_adapter.as_mteb_task(small_task)
    results = mteb_adapter.run_mteb(model, [mteb_task])
    (name,) = results
    via_mteb = results[name]["main_score"]

    # The same vectors computed straight from the encoder, scored by diffemb.tasks.metrics.
    settings = model.settings_for(name)
    assert settings["query_instruction"] == ""  # MiniLM has no prompts: mteb's own wrapper adds none either
    queries = minilm_encoder.encode_queries(list(QUERIES.values()), instruction=settings["query_instruction"])
    documents = minilm_encoder.encode_documents(list(DOCS.values()), instruction="")
    scores = queries.astype(np.float64) @ documents.astype(np.float64).T
    direct = ndcg_at_k(scores, small_task.relevance_matrix(), 10)
    assert via_mteb == pytest.approx(direct, abs=1e-5)
    assert direct > 0.8  # MiniLM finds these easily; a broken role or instruction would not

    # mteb saw queries as queries and documents as documents.
    roles = {call["role"] for call in model.calls}
    assert roles == {"query", "document"}
    meta = model.mteb_model_meta
    assert meta.embed_dim == minilm_encoder.dimension
    assert meta.name and meta.revision


def test_maxsim_mode_through_mteb(minilm_encoder, small_task):
    model = mteb_adapter.make_mteb_model(minilm_encoder, mode="maxsim")
    results = mteb_adapter.run_mteb(model, [mteb_adapter.as_mteb_task(small_task, name="AdapterMaxSim")])
    # Every document fits one window here, so max-sim over windows is plain cosine.
    plain = mteb_adapter.run_mteb(
        mteb_adapter.make_mteb_model(minilm_encoder, mode="mean"),
        [mteb_adapter.as_mteb_task(small_task, name="AdapterMean")],
    )
    assert results["AdapterMaxSim"]["main_score"] == pytest.approx(plain["AdapterMean"]["main_score"], abs=1e-6)


def test_instruction_policy_follows_the_model(tiny_dream_encoder, minilm_encoder):
    """Dream (a family the paper covers) gets the paper's task table; a view with its own instruction keeps it;
    a model without one gets none; `""` turns it off for a task."""
    dream = mteb_adapter.make_mteb_model(tiny_dream_encoder)
    assert dream.settings_for("BrightLeetcodeRetrieval")["query_instruction"] == mteb_adapter.BRIGHT_INSTRUCTION
    assert dream.settings_for("SciFact")["query_instruction"] == mteb_adapter.E5_INSTRUCTIONS["SciFact"]
    own = mteb_adapter.make_mteb_model(tiny_dream_encoder.with_settings(query_instruction="Find the fact."))
    assert own.settings_for("SciFact")["query_instruction"] == "Find the fact."
    off = mteb_adapter.make_mteb_model(tiny_dream_encoder.with_settings(query_instruction=""))
    assert off.settings_for("SciFact")["query_instruction"] == ""
    prompted = mteb_adapter.make_mteb_model(minilm_encoder.with_settings(query_instruction="query:"))
    assert prompted.settings_for("SciFact")["query_instruction"] == "query:"
    assert mteb_adapter.make_mteb_model(minilm_encoder).settings_for("SciFact")["query_instruction"] == ""


def test_per_task_max_length_is_a_view_of_the_same_weights(tiny_dream_encoder):
    long_view = tiny_dream_encoder.with_settings(max_length=4096)
    model = mteb_adapter.make_mteb_model(long_view)
    followir = model.settings_for("Core17InstructionRetrieval")
    assert (followir["query_max_length"], followir["document_max_length"]) == (304, 196)  # the paper's FollowIR
    session = model.session(followir["document_max_length"])
    assert session.encoder.profile.max_length == 196
    assert session.encoder.model is tiny_dream_encoder.model
    assert model.session(10**6).encoder is long_view  # capped at the model's own limit: no new view


def test_similarity_of_padded_windows_is_the_best_real_window():
    """mteb gets max-sim documents as NaN-padded (n, K, dim) arrays; the padding never scores."""
    from diffemb.similarity import maxsim_scores

    rng = np.random.default_rng(0)
    queries = rng.standard_normal((3, 8))
    windows = [rng.standard_normal((k, 8)) for k in (1, 3, 2)]
    padded = np.full((3, 3, 8), np.nan)
    for i, w in enumerate(windows):
        padded[i, : len(w)] = w
    expected, _ = maxsim_scores(queries, windows)
    np.testing.assert_allclose(mteb_adapter.similarity_matrix(queries[:, None, :], padded), expected, atol=1e-12)
    np.testing.assert_allclose(mteb_adapter.similarity_matrix(queries, padded), expected, atol=1e-12)
