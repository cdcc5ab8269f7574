"""Views: many settings over one loaded model (`with_settings`, the weight cache), and the public run API."""

from __future__ import annotations

import gc
import shutil
import weakref
from pathlib import Path

import numpy as np
import pytest

from diffemb import DiffEmbedEncoder
from diffemb.chunking import aggregate
from diffemb.encoder import DEFAULT
from diffemb.loading import loaded_models

DOCS = ["the cat reads a red book in the garden " * 12, "a young doctor visits the museum", "tides follow the moon"]


def _load(folder: Path, **options: object) -> DiffEmbedEncoder:
    return DiffEmbedEncoder.from_pretrained(folder, device="cpu", dtype="float32", **options)  # type: ignore[arg-type]


def test_a_view_shares_the_weights_and_changes_only_its_settings(tiny_dream_folder: Path) -> None:
    base = _load(tiny_dream_folder, max_length=32)
    view = base.with_settings(chunk_aggregation="max", query_instruction="Find the passage:")
    assert view.model is base.model and view.loaded is base.loaded
    assert view.settings.chunking.aggregation == "max" and base.settings.chunking.aggregation == "mean"
    # The view embeds as a freshly loaded encoder with the same settings would.
    fresh = _load(tiny_dream_folder, max_length=32, chunk_aggregation="max", query_instruction="Find the passage:")
    np.testing.assert_allclose(view.encode_documents(DOCS), fresh.encode_documents(DOCS), atol=1e-5)
    np.testing.assert_allclose(view.encode_queries(["red book"]), fresh.encode_queries(["red book"]), atol=1e-5)
    assert view.fingerprint == fresh.fingerprint != base.fingerprint
    # None goes back to the default.
    assert view.with_settings(query_instruction=None).profile.query_instruction == base.profile.query_instruction


@pytest.mark.parametrize("option", ["adapter", "dtype", "device", "attention", "revision", "model_kwargs"])
def test_a_setting_that_needs_a_reload_is_a_clear_error(tiny_dream_encoder: DiffEmbedEncoder, option: str) -> None:
    with pytest.raises(ValueError, match=rf"{option} decides which weights are loaded.*from_pretrained"):
        tiny_dream_encoder.with_settings(**{option: "x"})


def test_unknown_and_out_of_range_view_settings_name_the_fix(tiny_dream_encoder: DiffEmbedEncoder) -> None:
    with pytest.raises(TypeError, match=r"unknown encoder setting.*chunk_sise"):
        tiny_dream_encoder.with_settings(chunk_sise=10)
    with pytest.raises(ValueError, match="pooling must be one of 'mean', 'last', 'cls', got 'avg'"):
        tiny_dream_encoder.with_settings(pooling="avg")
    limit = tiny_dream_encoder.settings.max_positions
    with pytest.raises(ValueError, match=rf"max_length={limit + 1} is more than this model's {limit} positions"):
        tiny_dream_encoder.with_settings(max_length=limit + 1)
    with pytest.raises(ValueError, match="batch_tokens must be a positive whole number"):
        tiny_dream_encoder.with_settings(batch_tokens=0)


def test_equal_weights_are_loaded_once_and_freed_with_their_last_view(tiny_dream_folder: Path, tmp_path: Path) -> None:
    folder = tmp_path / "own-copy"  # a copy no other test's encoder holds
    shutil.copytree(tiny_dream_folder, folder)
    gc.collect()
    before = loaded_models()
    first = _load(folder, chunk_aggregation="max")
    second = _load(Path(str(folder) + "/"), query_instruction="")  # same folder, other spelling
    assert first.model is second.model and loaded_models() == before + 1
    loaded = weakref.ref(first.loaded)
    view = first.with_settings(normalize=False)
    del first, second
    gc.collect()
    assert loaded() is not None  # the view still uses it
    del view
    gc.collect()
    assert loaded() is None and loaded_models() == before


def test_shared_false_loads_a_private_copy(tiny_dream_folder: Path) -> None:
    shared = _load(tiny_dream_folder)
    private = _load(tiny_dream_folder, shared=False)
    assert private.model is not shared.model
    np.testing.assert_allclose(private.encode_documents(DOCS), shared.encode_documents(DOCS), atol=1e-6)


def test_bad_settings_fail_before_any_weight_is_read(tiny_dream_folder: Path, tmp_path: Path) -> None:
    broken = tmp_path / "dream"
    shutil.copytree(tiny_dream_folder, broken)
    for weights in broken.glob("*.safetensors"):
        weights.write_bytes(b"not a safetensors file")  # reading the weights would fail differently
    with pytest.raises(ValueError, match="pooling must be one of"):
        _load(broken, pooling="avg")
    with pytest.raises(ValueError, match="chunk_aggregation must be one of"):
        _load(broken, chunk_aggregation="sum")
    with pytest.raises(ValueError, match="max_length=999999 is more than"):
        _load(broken, max_length=999999)
    with pytest.raises(ValueError, match="chunk_overlap must be zero or"):
        _load(broken, chunk_overlap=-1)
    with pytest.raises(ValueError, match="attention must be one of"):
        _load(broken, attention="sideways")
    # And describing the checkpoint needs no weights at all.
    described = DiffEmbedEncoder.describe_pretrained(broken, device="cpu", max_length=64)
    assert described["family"] == "dream" and described["profile"]["max_length"] == 64


def test_max_length_is_checked_against_the_models_positions(minilm_folder: Path) -> None:
    with pytest.raises(ValueError, match="max_length=2000 is more than this model's 512 positions"):
        _load(minilm_folder, max_length=2000)


def test_the_instruction_rule_is_one_everywhere(tiny_dream_encoder: DiffEmbedEncoder) -> None:
    """`None` and DEFAULT mean the settings' instruction, `""` means none — in encode and in from_pretrained."""
    enc = tiny_dream_encoder
    assert enc.instruction_for("query", None) == enc.instruction_for("query", DEFAULT) == enc.profile.query_instruction
    assert enc.instruction_for("query", "") == ""
    text = ["how do plants make food"]
    np.testing.assert_allclose(enc.encode_queries(text, instruction=None), enc.encode_queries(text), atol=1e-6)
    bare = enc.with_settings(query_instruction="")
    np.testing.assert_allclose(bare.encode_queries(text), enc.encode_queries(text, instruction=""), atol=1e-6)
    np.testing.assert_allclose(bare.encode_queries(text), enc.encode_documents(text), atol=1e-6)


def test_the_run_api_gives_what_encode_gives(tiny_dream_folder: Path) -> None:
    enc = _load(tiny_dream_folder, max_length=40)
    plan = enc.plan(DOCS, "document")
    assert len(plan.chunks[0]) > 1 and len(plan.rows) == sum(len(c) for c in plan.chunks)
    per_text = enc.run(plan)
    assert [len(chunks) for chunks in per_text] == [len(c) for c in plan.chunks]
    vectors = np.stack([enc.aggregate(chunks) for chunks in per_text])
    np.testing.assert_allclose(vectors, enc.encode_documents(DOCS), atol=1e-6)
    # Window vectors with their spans: the raw run equals encode_document_chunks before normalising.
    windows = enc.encode_document_chunks(DOCS)
    assert [w.spans for w in windows] == [c.spans for c in per_text]
    assert [w.token_counts for w in windows] == [c.token_counts for c in per_text]
    manual = aggregate(per_text[0], "max", normalize=True)
    maxed = enc.with_settings(chunk_aggregation="max").encode_documents(DOCS[:1])[0]
    np.testing.assert_allclose(manual, maxed, atol=1e-5)
    # Queries are one truncated row each.
    with pytest.warns(UserWarning, match="1 of 3 queries are longer than the model window"):
        assert len(enc.plan(DOCS, "query").rows) == len(DOCS)


def test_a_text_without_tokens_is_named(minilm_encoder: DiffEmbedEncoder) -> None:
    # Zero-width and control characters alone are refused on their characters (a byte-level BPE would give them
    # tokens); combining accents alone are visible but WordPiece strips them: no token, so one meaningless vector.
    for blank in ["\u200b\u200b", "\ufeff", "\x00\x01"]:
        with pytest.raises(ValueError, match=r"texts\[1\] has only invisible characters"):
            minilm_encoder.encode_documents(["fine", blank])
    with pytest.raises(ValueError, match=r"texts\[1\] has no tokens"):
        minilm_encoder.encode_documents(["fine", "\u0301\u0302"])


def test_views_add_no_weight_memory(tiny_dream_folder: Path) -> None:
    """Every view's parameters live in the same storage: n views cost one model's weights."""
    base = _load(tiny_dream_folder)
    views = [base.with_settings(chunk_size=8 + k, normalize=bool(k % 2)) for k in range(5)]
    views.append(_load(tiny_dream_folder, query_instruction="", chunk_aggregation="max"))

    def storages(encoder: DiffEmbedEncoder) -> set[int]:
        return {p.untyped_storage().data_ptr() for p in encoder.model.parameters()}

    assert all(storages(view) == storages(base) for view in views)
    weight_bytes = sum(p.numel() * p.element_size() for p in base.model.parameters())
    distinct = set().union(*(storages(view) for view in [base, *views]))
    assert len(distinct) == len(storages(base)) and weight_bytes > 0
