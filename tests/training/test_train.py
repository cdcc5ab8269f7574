"""`diffemb train` on a tiny Dream checkpoint: generated colour facts, a few dozen LoRA steps, offline.

One module-scoped training run feeds most tests: the loss falls, only the adapter is written, it loads (and
merges) through `DiffEmbedEncoder` and both framework adapters, and held-out retrieval beats the untrained
model. Torch runs on one thread here: for a 64-wide model, thread hand-offs on busy cores cost more than they
save.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from diffemb import DiffEmbedEncoder
from diffemb.training import DataError, load_pairs, read_jsonl
from diffemb.training.data import split_pairs, to_dataset
from diffemb.training.recipes import RECIPES, get_recipe

pytest.importorskip("sentence_transformers")
pytest.importorskip("datasets")
pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")

from diffemb.training.cli import add_train_parser, run_train  # noqa: E402
from diffemb.training.cli import main as cli_main  # noqa: E402
from diffemb.training.model import DiffEmbedModule  # noqa: E402
from diffemb.training.train import TrainResult, retrieval_metrics, target_modules_for, train  # noqa: E402

ADJECTIVES = ["red", "old", "tiny", "happy", "quick", "blue", "green", "sad", "tall", "quiet", "brave", "young"]
NOUNS = ["cat", "doctor", "farmer", "teacher", "fox", "student", "robot", "painter", "engineer", "bridge", "river",
         "map"]  # fmt: skip
COLOURS = ["yellow", "purple", "orange", "white", "black", "pink", "brown", "grey"]
FAST = {"device": "cpu", "dtype": "float32", "show_progress": False}


def colour_facts(seed: int = 0) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(train, held-out) rows: "what colour is the tall fox?" → "The tall fox is painted grey."; held-out
    rows name adjective-noun pairs never seen in training (every word is)."""
    rng = random.Random(seed)
    rows = []
    for adjective in ADJECTIVES:
        for noun in NOUNS:
            colour = rng.choice(COLOURS)
            rows.append({"query": f"what colour is the {adjective} {noun}?",
                         "positive": f"The {adjective} {noun} is painted {colour}."})  # fmt: skip
    rng.shuffle(rows)
    return rows[36:], rows[:36]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(tiny_dream_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    train_rows, held_rows = colour_facts()
    out = tmp_path_factory.mktemp("trained") / "adapter"
    return train(
        tiny_dream_folder, train_rows, out, eval_data=held_rows, max_steps=30, batch_size=16, learning_rate=2e-3,
        lora_r=8, lora_alpha=16, eval_steps=10, **FAST,
    )  # fmt: skip


def _accuracy(encoder: DiffEmbedEncoder, rows: list[dict[str, str]]) -> float:
    queries = encoder.encode_queries([row["query"] for row in rows])
    documents = encoder.encode_documents([row["positive"] for row in rows])
    return retrieval_metrics(queries @ documents.T, np.arange(len(rows)))["accuracy@1"]


# -- the training module embeds as the encoder does ----------------------------------------------------------

TEXTS = ["what colour is the tall fox?", "The cat reads a red book in the garden every morning.", "x"]


@pytest.mark.parametrize("family", ["dream", "bert"])
def test_module_vectors_equal_the_encoders(family: str, tiny_dream_folder: Path, tiny_bert_folder: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from sentence_transformers import SentenceTransformer

    folder = tiny_dream_folder if family == "dream" else tiny_bert_folder
    encoder = DiffEmbedEncoder.from_pretrained(folder, device="cpu", dtype="float32")
    expected_q, expected_d = encoder.encode_queries(TEXTS), encoder.encode_documents(TEXTS)
    targets = target_modules_for(encoder.model)
    assert targets == (["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
                       if family == "dream" else ["query", "key", "value", "dense"])  # fmt: skip
    # Wrapped for training (LoRA B starts at zero), as `train` runs it.
    peft_model = get_peft_model(encoder.model, LoraConfig(r=4, lora_alpha=8, target_modules=targets))
    module = DiffEmbedModule(encoder, model=peft_model)
    profile = encoder.profile
    st = SentenceTransformer(modules=[module], device="cpu",
                             prompts={"query": profile.query_instruction or "", "document": ""})  # fmt: skip
    got_q, got_d = st.encode_query(TEXTS), st.encode_document(TEXTS)
    assert np.min(np.sum(got_q * expected_q, axis=1)) >= 0.9999
    assert np.min(np.sum(got_d * expected_d, axis=1)) >= 0.9999
    # Per-row instructions frame each query as encode(..., instruction=...) does.
    features = module.preprocess(TEXTS[:2], role="query", instructions=["Find the sentence:", None])
    with torch.no_grad():
        vectors = module(features)["sentence_embedding"].numpy()
    assert np.dot(vectors[0], encoder.encode_queries(TEXTS[:1], instruction="Find the sentence:")[0]) >= 0.9999
    assert np.dot(vectors[1], expected_q[1]) >= 0.9999


# -- data ----------------------------------------------------------------------------------------------------


def test_bad_rows_are_reported_by_line_number(tmp_path: Path) -> None:
    lines = [
        '{"query": "q1", "positive": "p1", "negatives": ["n1"]}',
        '{"query": "q2"}',
        "",
        '{"query": "", "positive": "p3"}',
        '{"query": "q4", "positive": 4}',
        "not json",
        '{"query": "q6", "positive": "p6", "negatives": "n6"}',
        '["q7", "p7"]',
        '{"query": "q8", "positive": "p8", "negatives": ["ok", ""], "instruction": 3}',
        '{"query": "q9", "positive": "p9", "negative": "n9"}',
        '{"query": "q10", "positive": "p10", "instruction": "Find it:"}',
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(lines) + "\n", "utf-8")
    with pytest.raises(DataError) as caught:
        read_jsonl(path)
    message = str(caught.value)
    assert "9 bad row(s)" in message
    for expected in [
        "line 2: missing 'positive'",
        "line 4: 'query' is empty",
        "line 5: 'positive' must be a string, got a number",
        "line 6: not valid JSON",
        "line 7: 'negatives' must be a list of strings, got a string",
        "line 8: expected a JSON object",
        "line 9: 'negatives'[1] is empty",
        "line 9: 'instruction' must be a string or null, got a number",
        "line 10: 'negative' is not a field",
    ]:
        assert expected in message
    assert "line 1:" not in message and "line 11:" not in message and "line 3:" not in message
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(lines[i] for i in (0, 10)) + "\n", "utf-8")
    pairs = read_jsonl(good)
    assert [(p.query, p.negatives, p.instruction, p.where) for p in pairs] == [
        ("q1", ("n1",), None, "line 1"),
        ("q10", (), "Find it:", "line 2"),
    ]


def test_hub_name_offline_fails_fast_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError, match=r"hub is offline") as caught:
        load_pairs("samaya-ai/msmarco-w-instructions")
    assert "\n" not in str(caught.value)
    with pytest.raises(DataError, match="no such file"):
        load_pairs("missing/pairs.jsonl")


def test_split_keeps_shared_texts_together_and_layout_tops_up_negatives() -> None:
    rows = [{"query": f"q{i}", "positive": f"p{i // 2}", "negatives": [f"n{i}"] * (i % 2)} for i in range(20)]
    pairs = load_pairs(rows)
    train_pairs, held = split_pairs(pairs, 0.2, seed=1)
    assert len(held) == 4 and len(train_pairs) == 16
    assert not {p.positive for p in held} & {p.positive for p in train_pairs}
    dataset, layout = to_dataset(train_pairs, hard_negatives=3, seed=0)
    assert dataset.column_names == ["query", "positive", "negative_1", "instruction"]
    assert layout == {"negatives_per_row": 1, "negatives_cut": 0, "negatives_filled": 8}
    assert all(row["negative_1"] != row["positive"] for row in dataset)


def test_recipes_hold_the_papers_numbers() -> None:
    assert set(RECIPES) == {"long", "reasoning", "instructions"}
    long, instructions = get_recipe("long"), get_recipe("instructions")
    assert (long.lora_r, long.lora_alpha, long.lora_dropout, long.loss_scale) == (16, 32, 0.05, 20.0)
    assert (instructions.lora_r, instructions.lora_alpha) == (32, 64)
    assert (instructions.max_query_length, instructions.max_document_length) == (304, 196)
    assert long.max_query_length == long.max_document_length == 4096
    assert long.sources["lora_r"] == "paper" and long.sources["learning_rate"] == "authors-config"
    assert long.with_overrides(lora_r=4).sources["lora_r"] == "user"
    with pytest.raises(ValueError, match="unknown recipe"):
        get_recipe("tiny")


# -- one training run ----------------------------------------------------------------------------------------


def test_loss_falls_and_held_out_retrieval_improves(trained: TrainResult) -> None:
    losses = [loss for _, loss in trained.losses]
    assert trained.steps == 30 and len(losses) >= 5
    assert np.mean(losses[-2:]) < 0.6 * np.mean(losses[:2])
    assert trained.metrics_after["accuracy@1"] > trained.metrics_before["accuracy@1"] + 0.2
    assert [entry["step"] for entry in trained.evaluations] == [10, 20, 30]


def test_only_the_adapter_is_saved(trained: TrainResult, tiny_dream_folder: Path) -> None:
    out = trained.output
    assert sorted(p.name for p in out.iterdir()) == ["adapter_config.json", "adapter_model.safetensors",
                                                    "diffemb.json"]  # fmt: skip
    names = list(load_file(out / "adapter_model.safetensors"))
    assert names and all(n.startswith("base_model.model.layers.") and ".lora_" in n for n in names)
    config = json.loads((out / "adapter_config.json").read_text("utf-8"))
    assert (
        config["r"] == 8 and config["lora_alpha"] == 16 and config["base_model_name_or_path"] == str(tiny_dream_folder)
    )
    settings = json.loads((out / "diffemb.json").read_text("utf-8"))
    assert settings["base_model"] == str(tiny_dream_folder) and settings["recipe"] == "long"
    assert settings["hyperparameters"]["learning_rate"] == 2e-3
    assert settings["hyperparameters"]["sources"]["learning_rate"] == "user"
    assert settings["hyperparameters"]["sources"]["lora_dropout"] == "paper"
    assert settings["encoder"] == {
        "attention": "bidirectional", "pooling": "mean", "max_length": 4096,
        "query_instruction": "Retrieve text based on user query:", "document_instruction": "",
        "exclude_instruction": False, "normalize": True,
    }  # fmt: skip
    assert settings["metrics"]["after"] == trained.metrics_after


def test_adapter_loads_merges_and_beats_the_untrained_model(trained: TrainResult, tiny_dream_folder: Path) -> None:
    _, held_rows = colour_facts()
    base = DiffEmbedEncoder.from_pretrained(tiny_dream_folder, device="cpu", dtype="float32")
    tuned = DiffEmbedEncoder.from_pretrained(tiny_dream_folder, adapter=trained.output, device="cpu", dtype="float32")
    assert not any("lora" in name for name, _ in tuned.model.named_parameters())
    accuracy = _accuracy(tuned, held_rows)
    # Merging the LoRA changes the weights at float32 rounding, which can reorder one near-tied pair on another
    # machine: the held-out accuracy must agree to within one query.
    assert accuracy == pytest.approx(trained.metrics_after["accuracy@1"], abs=1 / len(held_rows) + 1e-6)
    assert accuracy > _accuracy(base, held_rows) + 0.2


def test_adapter_loads_in_both_framework_adapters(trained: TrainResult, tiny_dream_folder: Path) -> None:
    langchain = pytest.importorskip("langchain_diffemb")
    llamaindex = pytest.importorskip("llamaindex_diffemb")
    tuned = DiffEmbedEncoder.from_pretrained(tiny_dream_folder, adapter=trained.output, device="cpu", dtype="float32")
    expected = tuned.encode_queries(["what colour is the tall fox?"])[0]
    options = {"model_name": str(tiny_dream_folder), "adapter": str(trained.output), "device": "cpu",
               "dtype": "float32"}  # fmt: skip
    lc = langchain.DiffEmbedEmbeddings(**options).embed_query("what colour is the tall fox?")
    li = llamaindex.DiffEmbedEmbedding(**options).get_query_embedding("what colour is the tall fox?")
    np.testing.assert_allclose(lc, expected, atol=1e-5)
    np.testing.assert_allclose(li, expected, atol=1e-5)


# -- the command line, checkpoints and resuming --------------------------------------------------------------


def test_cli_trains_keeps_checkpoints_and_resumes(
    tiny_dream_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train_rows, _ = colour_facts()
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in train_rows[:48]), "utf-8")
    out = tmp_path / "adapter"
    common = ["--model", str(tiny_dream_folder), "--data", str(data), "--output", str(out), "--batch-size", "8",
              "--lora-r", "4", "--lora-alpha", "8", "--eval-fraction", "0", "--device", "cpu", "--dtype", "float32",
              "--no-progress", "--save-steps", "2"]  # fmt: skip
    assert cli_main([*common, "--max-steps", "2", "--keep-checkpoints"]) == 0
    assert (out / "checkpoints" / "checkpoint-2" / "adapter_model.safetensors").is_file()
    assert "adapter:" in capsys.readouterr().out
    assert cli_main([*common, "--max-steps", "3"]) == 2  # an earlier run is never overwritten by accident
    assert "--resume" in capsys.readouterr().err
    # Resumed with mini-batches of 4 under the batch of 8: the cached (GradCache) loss.
    assert cli_main([*common, "--max-steps", "3", "--resume", "--mini-batch-size", "4"]) == 0
    settings = json.loads((out / "diffemb.json").read_text("utf-8"))
    assert settings["steps"] == 3 and [entry["step"] for entry in settings["losses"]] == [1, 2, 3]
    assert settings["hyperparameters"]["loss"] == "CachedMultipleNegativesRankingLoss"
    assert not (out / "checkpoints").exists()
    DiffEmbedEncoder.from_pretrained(tiny_dream_folder, adapter=out, device="cpu", dtype="float32")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q"}\n', "utf-8")
    assert cli_main(["--model", str(tiny_dream_folder), "--data", str(bad), "--output", str(tmp_path / "x")]) == 2
    assert "line 1: missing 'positive'" in capsys.readouterr().err


@pytest.mark.parametrize("attention", [None, "bidirectional"])
def test_decoder_trains_with_the_attention_asked_for_and_loads_that_way(
    attention: str | None, tiny_qwen2_folder: Path, tmp_path: Path
) -> None:
    """The paper's baseline pair: one AR decoder trained causal + last token, and bidirectional + mean."""
    train_rows, _ = colour_facts()
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in train_rows[:16]), "utf-8")
    out = tmp_path / "adapter"
    flags = [] if attention is None else ["--attention", attention]
    assert cli_main(["--model", str(tiny_qwen2_folder), "--data", str(data), "--output", str(out), "--batch-size",
                     "8", "--max-steps", "1", "--lora-r", "4", "--eval-fraction", "0", "--device", "cpu", "--dtype",
                     "float32", "--no-progress", *flags]) == 0  # fmt: skip
    expected = ("bidirectional", "mean") if attention else ("causal", "last")
    recorded = json.loads((out / "diffemb.json").read_text("utf-8"))["encoder"]
    assert (recorded["attention"], recorded["pooling"]) == expected
    loaded = DiffEmbedEncoder.from_pretrained(tiny_qwen2_folder, adapter=out, device="cpu", dtype="float32")
    assert (loaded.profile.attention, loaded.profile.pooling) == expected
    assert loaded.model.config.is_causal is (attention is None)


def test_train_registers_on_the_main_cli() -> None:
    parser = argparse.ArgumentParser(prog="diffemb")
    add_train_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", "--model", "m", "--data", "d.jsonl", "--output", "o", "--recipe",
                              "instructions", "--lora-r", "8", "--resume"])  # fmt: skip
    assert args.run is run_train and args.func is run_train
    assert (args.recipe, args.lora_r, args.lora_alpha, args.resume, args.instruction) == ("instructions", 8, None, True,
                                                                                          None)  # fmt: skip
