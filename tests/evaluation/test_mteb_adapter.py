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
    assert settings["query_instruction"] == "Retrieve text based on user query:"
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
