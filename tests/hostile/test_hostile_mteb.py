"""Issue 17 item 3: the mteb adapter gives a model no query instruction it did not ask for, and `""` means none.

A sentence-transformers model without prompts used to get "Retrieve text based on user query:" before every
query, scoring below mteb's own wrapper of the same model, and `instructions={task: ""}` could not turn it off.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("mteb")

from diffemb.evaluation import mteb_adapter
from diffemb.tasks import RetrievalTask

QUERIES = {
    "q1": "how do bees tell each other where flowers are?",
    "q2": "why does iron turn red and flaky?",
    "q3": "what pulls the sea up and down twice a day?",
    "q4": "how do bats find insects in the dark?",
}
DOCS = {
    "bees": "Honey bees dance inside the hive to show the others the way to the flowers.",
    "rust": "Iron rusts when oxygen and water react with it, forming a flaky reddish oxide.",
    "tides": "Ocean tides are caused mostly by the moon's gravity pulling on the water.",
    "bats": "Bats hunt by echolocation, listening to the echoes of their own calls.",
    "bread": "Sourdough rises because wild yeast ferments the dough slowly.",
    "glass": "Glass is made by melting sand with soda ash and lime.",
}
RELEVANT = {"q1": "bees", "q2": "rust", "q3": "tides", "q4": "bats"}


@pytest.fixture(scope="module")
def task() -> RetrievalTask:
    return RetrievalTask(
        name="hostile-mteb-instruction",
        queries=QUERIES,
        corpus=DOCS,
        qrels={q: {d: 1} for q, d in RELEVANT.items()},
        metric="ndcg@10",
    )


def _main_score(model, task: RetrievalTask, name: str) -> float:
    (result,) = mteb_adapter.run_mteb(model, [mteb_adapter.as_mteb_task(task, name=name)]).values()
    return float(result["main_score"])


def test_model_without_prompts_gets_no_instruction_and_scores_as_mtebs_own_wrapper(minilm_encoder, minilm_folder, task):
    from mteb.models.sentence_transformer_wrapper import SentenceTransformerEncoderWrapper
    from mteb.types import PromptType
    from sentence_transformers import SentenceTransformer

    model = mteb_adapter.make_mteb_model(minilm_encoder)
    assert model.settings_for("HostileDefault")["query_instruction"] == ""
    sentence_transformer = SentenceTransformer(str(minilm_folder), device="cpu")
    # The query vectors mteb gets from diffemb are the ones sentence-transformers itself makes (no prefix).
    texts = list(QUERIES.values())
    metadata = SimpleNamespace(name="HostileDefault", prompt=None)
    ours_vectors = model.encode(
        [{"text": texts}], task_metadata=metadata, hf_split="test", hf_subset="default", prompt_type=PromptType.query
    )
    theirs_vectors = sentence_transformer.encode_query(texts, convert_to_numpy=True)
    assert np.abs(ours_vectors - theirs_vectors).max() < 1e-5
    # And mteb's own loop scores both the same.
    ours = _main_score(model, task, "HostileDefault")
    theirs = _main_score(SentenceTransformerEncoderWrapper(sentence_transformer), task, "HostileOwn")
    assert ours == pytest.approx(theirs, abs=1e-6)


def test_empty_instruction_means_none_and_a_given_one_is_used(minilm_encoder, tiny_dream_encoder):
    name = "LEMBPasskeyRetrieval"
    dream = mteb_adapter.make_mteb_model(tiny_dream_encoder, instructions={name: ""})
    assert dream.settings_for(name)["query_instruction"] == ""
    assert dream.settings_for("LEMBNeedleRetrieval")["query_instruction"] == mteb_adapter.LONGEMBED_INSTRUCTION
    minilm = mteb_adapter.make_mteb_model(minilm_encoder, instructions={name: "query: ", "Other": None})
    assert minilm.settings_for(name)["query_instruction"] == "query: "
    assert minilm.settings_for("Other")["query_instruction"] == ""  # None: the model's own policy
    with pytest.raises(TypeError, match=r"instructions\['X'\] must be a string"):
        mteb_adapter.make_mteb_model(minilm_encoder, instructions={"X": 3})


def test_empty_instruction_changes_the_query_vectors_of_a_model_with_one(tiny_dream_encoder, task):
    """`""` really reaches the encoder: Dream's queries without the paper's instruction are other vectors."""
    name = "LEMBPasskeyRetrieval"
    plain = mteb_adapter.make_mteb_model(tiny_dream_encoder, instructions={name: ""})
    default = mteb_adapter.make_mteb_model(tiny_dream_encoder)
    session = plain.session(64)
    texts = list(QUERIES.values())
    without, _ = session.queries(texts, plain.settings_for(name)["query_instruction"])
    with_paper, _ = session.queries(texts, default.settings_for(name)["query_instruction"])
    expected = tiny_dream_encoder.with_settings(max_length=64).encode_queries(texts, instruction="")
    assert abs(without - expected).max() < 1e-5
    assert abs(without - with_paper).max() > 1e-3
