"""`CacheBackedEmbeddings` keyed by `cache_namespace`: repeated texts come from the cache; settings never mix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_classic.embeddings import CacheBackedEmbeddings
from langchain_core.stores import InMemoryByteStore

from langchain_diffemb import DiffEmbedEmbeddings

TINY: dict[str, Any] = {"device": "cpu", "dtype": "float32"}


def counting(embeddings: DiffEmbedEmbeddings, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the texts the encoder is asked to embed."""
    seen: list[int] = []
    encode = embeddings.encoder.encode

    def counted(texts: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(len(list(texts)))
        return encode(texts, *args, **kwargs)

    monkeypatch.setattr(embeddings.encoder, "encode", counted)
    return seen


def test_second_call_is_served_from_the_cache(tiny_dream_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    embeddings = DiffEmbedEmbeddings(model_name=str(tiny_dream_folder), max_length=64, **TINY)
    calls = counting(embeddings, monkeypatch)
    cached = CacheBackedEmbeddings.from_bytes_store(
        embeddings,
        InMemoryByteStore(),
        namespace=embeddings.cache_namespace,
        key_encoder="sha256",
        query_embedding_cache=True,
    )
    texts = ["the cat sat on the mat", "interest rates rose again", "tides follow the moon"]
    first = cached.embed_documents(texts)
    assert calls == [3]
    assert cached.embed_documents(texts) == first and calls == [3]
    assert cached.embed_documents([*texts, "a new text"])[:3] == first and calls == [3, 1]
    query = cached.embed_query("where do cats sit")
    assert cached.embed_query("where do cats sit") == query and calls == [3, 1, 1]
    assert first == embeddings.embed_documents(texts)


async def test_async_calls_share_the_cache(tiny_dream_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    embeddings = DiffEmbedEmbeddings(model_name=str(tiny_dream_folder), max_length=64, **TINY)
    store = InMemoryByteStore()
    cached = CacheBackedEmbeddings.from_bytes_store(
        embeddings, store, namespace=embeddings.cache_namespace, key_encoder="sha256"
    )
    first = await cached.aembed_documents(["one text", "two texts"])
    calls = counting(embeddings, monkeypatch)
    assert cached.embed_documents(["one text", "two texts"]) == first and calls == []


def test_different_settings_never_share_cache_entries(tiny_dream_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = str(tiny_dream_folder)
    base = DiffEmbedEmbeddings(model_name=folder, max_length=64, **TINY)
    same = DiffEmbedEmbeddings(model_name=folder, max_length=64, batch_tokens=256, **TINY)  # speed only
    shorter = DiffEmbedEmbeddings(model_name=folder, max_length=32, **TINY)
    other_instruction = DiffEmbedEmbeddings(model_name=folder, max_length=64, document_instruction="Passage:", **TINY)
    assert same.cache_namespace == base.cache_namespace
    namespaces = {e.cache_namespace for e in (base, shorter, other_instruction)}
    assert len(namespaces) == 3 and all(n.startswith("diffemb-") for n in namespaces)

    store = InMemoryByteStore()
    text = ["the same document, embedded under two settings"]
    base_vectors = CacheBackedEmbeddings.from_bytes_store(
        base, store, namespace=base.cache_namespace, key_encoder="sha256"
    )
    other_vectors = CacheBackedEmbeddings.from_bytes_store(
        other_instruction, store, namespace=other_instruction.cache_namespace, key_encoder="sha256"
    )
    first = base_vectors.embed_documents(text)
    calls = counting(other_instruction, monkeypatch)
    second = other_vectors.embed_documents(text)
    assert calls == [1] and second != first and len(list(store.yield_keys())) == 2
