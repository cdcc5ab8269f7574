"""Putting core-computed window vectors into LangChain vector stores, and reading their scores back as cosine.

LangChain's `VectorStore` interface has no method that takes precomputed vectors: `add_texts`/`add_documents`
embed the texts again. Re-embedding a window's text would not give the window's vector anyway (a late-chunking
window is pooled from a pass over its whole document), so each supported store is written through its own
public add-with-vectors path:

| store | path |
|---|---|
| any store with `add_embeddings(text_embeddings, metadatas, ids)` (FAISS, ...) | that method |
| `langchain_core` `InMemoryVectorStore` | its public `store` dict, in the layout its own `add_documents` writes |
| `langchain_qdrant` `QdrantVectorStore` (dense mode) | `client.upsert` of points laid out as its `add_texts` does |

Any other store is refused with an error that lists these; nothing is silently re-embedded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore, VectorStore

SUPPORTED = (
    "InMemoryVectorStore, langchain_qdrant.QdrantVectorStore (dense mode), or a store with "
    "add_embeddings(text_embeddings, metadatas, ids) such as langchain_community's FAISS"
)


def add_windows(
    store: VectorStore,
    texts: Sequence[str],
    vectors: Sequence[list[float]],
    metadatas: Sequence[dict[str, Any]],
    ids: Sequence[str],
) -> None:
    """Store each window's text with its precomputed vector, metadata and id, without embedding anything."""
    if not texts:
        return
    if isinstance(store, InMemoryVectorStore):
        for window_id, text, vector, metadata in zip(ids, texts, vectors, metadatas, strict=True):
            store.store[window_id] = {"id": window_id, "vector": vector, "text": text, "metadata": metadata}
    elif _is_qdrant(store):
        _add_to_qdrant(store, texts, vectors, metadatas, ids)
    elif callable(getattr(store, "add_embeddings", None)):
        store.add_embeddings(  # type: ignore[attr-defined]
            list(zip(texts, vectors, strict=True)), metadatas=list(metadatas), ids=list(ids)
        )
    else:
        raise TypeError(
            f"{type(store).__name__} cannot take precomputed vectors (its add_texts would embed the window "
            f"texts again, and late-chunking windows cannot be re-embedded at all): use {SUPPORTED}"
        )


def search_by_vector(store: VectorStore, vector: list[float], k: int, **kwargs: Any) -> list[tuple[Document, float]]:
    """The `k` windows nearest to `vector`, with the store's raw scores (see `as_similarity`)."""
    search = getattr(store, "similarity_search_with_score_by_vector", None)
    if not callable(search):
        raise TypeError(f"{type(store).__name__} has no similarity_search_with_score_by_vector: use {SUPPORTED}")
    return search(vector, k=k, **kwargs)  # type: ignore[no-any-return]


def check_store(store: VectorStore) -> None:
    """Refuse a store that `add_windows` cannot write or search by vector with scores, before anything is embedded."""
    if _is_qdrant(store):
        mode = str(getattr(store, "retrieval_mode", "dense")).lower()
        if "dense" not in mode:
            raise ValueError(f"QdrantVectorStore in {mode} mode needs sparse vectors: use RetrievalMode.DENSE")
    elif not isinstance(store, InMemoryVectorStore) and not callable(getattr(store, "add_embeddings", None)):
        raise TypeError(f"{type(store).__name__} cannot take precomputed vectors: use {SUPPORTED}")
    if not callable(getattr(store, "similarity_search_with_score_by_vector", None)):
        raise TypeError(f"{type(store).__name__} cannot be searched by vector with scores: use {SUPPORTED}")


def as_similarity(store: VectorStore, raw: float) -> float:
    """The store's search score as a similarity where higher is better (cosine for unit vectors).

    FAISS's default index reports squared L2 distance; for unit vectors that is 2 - 2 cos. Qdrant's Euclid
    distance is the plain L2 distance. Other stores report a similarity already.
    """
    strategy = str(getattr(store, "distance_strategy", "") or getattr(store, "distance", "")).upper()
    if strategy.endswith("EUCLIDEAN_DISTANCE"):  # FAISS IndexFlatL2: squared distance
        return 1.0 - float(raw) / 2.0
    if strategy.endswith("EUCLID"):  # Qdrant: distance, not squared
        return 1.0 - float(raw) ** 2 / 2.0
    return float(raw)


def _is_qdrant(store: VectorStore) -> bool:
    return type(store).__module__.startswith("langchain_qdrant") and hasattr(store, "client")


def _add_to_qdrant(
    store: Any,
    texts: Sequence[str],
    vectors: Sequence[list[float]],
    metadatas: Sequence[dict[str, Any]],
    ids: Sequence[str],
) -> None:
    from qdrant_client import models

    points = [
        models.PointStruct(
            id=window_id,
            vector={store.vector_name: vector},
            payload={store.content_payload_key: text, store.metadata_payload_key: metadata},
        )
        for window_id, text, vector, metadata in zip(ids, texts, vectors, metadatas, strict=True)
    ]
    for start in range(0, len(points), 256):
        store.client.upsert(collection_name=store.collection_name, points=points[start : start + 256])
