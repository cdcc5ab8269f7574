"""Contract of `DiffEmbedEmbedding`: vectors equal the core encoder's, fields, serialisation, missing extra."""

from __future__ import annotations

import importlib
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
from llama_index.core.base.embeddings.base import BaseEmbedding

from diffemb import DiffEmbedEncoder
from llamaindex_diffemb import DiffEmbedEmbedding

TEXTS = [
    "Diffusion language models denoise masked tokens in parallel.",
    "A short one.",
    "Bidirectional attention lets every token see the whole sentence, which suits embeddings well.",
    "Paris is the capital of France.",
    "Mean pooling averages the hidden states of the text tokens.",
]
QUERY = "which models denoise masked tokens?"

VECTOR_FIELDS = (
    "model_name", "adapter", "revision", "query_instruction", "text_instruction", "max_length", "chunk_size",
    "chunk_overlap", "chunk_aggregation", "normalize", "pooling", "attention", "exclude_instruction", "device",
    "dtype", "batch_tokens", "fingerprint",
)  # fmt: skip


@pytest.fixture
def embedder(tiny_dream_encoder: DiffEmbedEncoder) -> DiffEmbedEmbedding:
    return DiffEmbedEmbedding(encoder=tiny_dream_encoder)


def close(a: object, b: object) -> bool:
    return np.allclose(np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32), atol=1e-5)


def count_core_calls(monkeypatch: pytest.MonkeyPatch, encoder: DiffEmbedEncoder) -> list[str]:
    calls: list[str] = []
    original = encoder.encode

    def counting(texts, role="document", *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(role)
        return original(texts, role, *args, **kwargs)

    monkeypatch.setattr(encoder, "encode", counting)
    return calls


def test_is_a_llamaindex_embedding_with_hashable_fields(embedder: DiffEmbedEmbedding) -> None:
    assert isinstance(embedder, BaseEmbedding)
    assert DiffEmbedEmbedding.class_name() == "DiffEmbedEmbedding"
    assert embedder.embed_batch_size >= 256
    fields = DiffEmbedEmbedding.model_fields
    for name in VECTOR_FIELDS:
        assert fields[name].description, name
    dumped = embedder.to_dict()
    assert dumped["class_name"] == "DiffEmbedEmbedding"
    assert set(VECTOR_FIELDS) <= set(dumped)


def test_fields_reflect_a_shared_encoder(tiny_dream_encoder: DiffEmbedEncoder, tiny_dream_folder: Path) -> None:
    embedder = DiffEmbedEmbedding(encoder=tiny_dream_encoder)
    assert embedder.encoder is tiny_dream_encoder
    assert embedder.model_name == str(tiny_dream_folder)
    assert embedder.max_length == 64
    assert embedder.query_instruction == tiny_dream_encoder.profile.query_instruction
    assert embedder.text_instruction is None
    assert (embedder.device, embedder.dtype, embedder.chunk_aggregation) == ("cpu", "float32", "mean")
    assert embedder.fingerprint == tiny_dream_encoder.fingerprint
    with pytest.raises(ValueError, match="max_length"):
        DiffEmbedEmbedding(encoder=tiny_dream_encoder, max_length=32)
    with pytest.raises(ValueError, match="model_name"):
        DiffEmbedEmbedding()


def test_sync_vectors_match_the_core(
    embedder: DiffEmbedEmbedding, tiny_dream_encoder: DiffEmbedEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_core_calls(monkeypatch, tiny_dream_encoder)
    query = embedder.get_query_embedding(QUERY)
    assert calls == ["query"]
    assert close(query, tiny_dream_encoder.encode_queries([QUERY])[0])
    # Queries get the query instruction, texts do not.
    assert not close(query, tiny_dream_encoder.encode_documents([QUERY])[0])
    assert close(embedder.get_text_embedding(TEXTS[0]), tiny_dream_encoder.encode_documents([TEXTS[0]])[0])
    calls.clear()
    batch = embedder.get_text_embedding_batch(TEXTS, show_progress=True)
    assert calls == ["document"]  # the whole batch in one core call
    assert all(isinstance(value, float) for value in batch[0])
    assert close(batch, tiny_dream_encoder.encode_documents(TEXTS))


async def test_async_vectors_match_the_core(embedder: DiffEmbedEmbedding, tiny_dream_encoder: DiffEmbedEncoder) -> None:
    assert close(await embedder.aget_query_embedding(QUERY), tiny_dream_encoder.encode_queries([QUERY])[0])
    assert close(await embedder.aget_text_embedding(TEXTS[2]), tiny_dream_encoder.encode_documents([TEXTS[2]])[0])
    batch = await embedder.aget_text_embedding_batch(TEXTS, show_progress=True)
    assert close(batch, tiny_dream_encoder.encode_documents(TEXTS))


def test_round_trip_reuses_the_loaded_model(embedder: DiffEmbedEmbedding, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = embedder.get_text_embedding_batch(TEXTS)

    def no_reload(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("from_dict reloaded the model")

    monkeypatch.setattr(DiffEmbedEncoder, "from_pretrained", no_reload)
    for copy in (DiffEmbedEmbedding.from_dict(embedder.to_dict()), DiffEmbedEmbedding.from_json(embedder.to_json())):
        assert copy.encoder is embedder.encoder
        assert copy.to_dict() == embedder.to_dict()
        assert close(copy.get_text_embedding_batch(TEXTS), expected)


def test_round_trip_in_a_fresh_process_loads_an_equivalent_encoder(embedder: DiffEmbedEmbedding) -> None:
    # Without the fingerprint the saved fields alone must rebuild the encoder (as a new process would).
    data = {key: value for key, value in embedder.to_dict().items() if key != "fingerprint"}
    fresh = DiffEmbedEmbedding.from_dict(data)
    assert fresh.encoder is not embedder.encoder
    assert fresh.fingerprint == embedder.fingerprint
    assert close(fresh.get_query_embedding(QUERY), embedder.get_query_embedding(QUERY))
    assert close(fresh.get_text_embedding_batch(TEXTS), embedder.get_text_embedding_batch(TEXTS))


def test_changed_settings_give_a_different_embedder(embedder: DiffEmbedEmbedding) -> None:
    other = DiffEmbedEmbedding.from_dict(embedder.to_dict(), document_instruction="Represent the passage:")
    assert other.text_instruction == "Represent the passage:"
    assert other.fingerprint != embedder.fingerprint
    assert not close(other.get_text_embedding(TEXTS[0]), embedder.get_text_embedding(TEXTS[0]))


def test_several_vectors_per_text_are_refused(tiny_dream_folder: Path) -> None:
    with pytest.raises(ValueError, match=r"none.*use DiffEmbedWindowParser"):
        DiffEmbedEmbedding(model_name=str(tiny_dream_folder), device="cpu", chunk_aggregation="none")


def test_missing_llama_index_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in sys.modules if name == "llama_index" or name.startswith("llama_index.")]:
        monkeypatch.setitem(sys.modules, name, None)
    for name in [name for name in sys.modules if name.startswith("llamaindex_diffemb")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ImportError, match=r'pip install "diffemb\[llamaindex\]"'):
        importlib.import_module("llamaindex_diffemb")


def test_pickling_keeps_the_settings_not_the_weights(embedder: DiffEmbedEmbedding) -> None:
    blob = pickle.dumps(embedder)
    assert len(blob) < 10_000  # no tensors inside
    copy = pickle.loads(blob)
    assert copy.encoder is embedder.encoder  # found again in this process, not reloaded
    assert embedder.encoder is not None  # the original keeps its encoder
    assert close(copy.get_query_embedding(QUERY), embedder.get_query_embedding(QUERY))
