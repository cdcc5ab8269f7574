"""`DiffEmbedChunkRetriever`: long documents found by their best window, in memory, FAISS and on-disk Qdrant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_classic.storage import LocalFileStore, create_kv_docstore
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore, VectorStore

from diffemb import DiffEmbedEncoder
from diffemb.testing.long_documents import NEEDLE, QUESTION, needle_corpus
from langchain_diffemb import DiffEmbedChunkRetriever, DiffEmbedEmbeddings


@pytest.fixture(scope="module")
def encoder(minilm_encoder: DiffEmbedEncoder) -> DiffEmbedEncoder:
    return minilm_encoder.with_settings(max_length=64)  # short windows: every document has 7-10 of them


@pytest.fixture(scope="module")
def embeddings(encoder: DiffEmbedEncoder) -> DiffEmbedEmbeddings:
    return DiffEmbedEmbeddings(encoder=encoder)


@pytest.fixture(scope="module")
def corpus() -> dict[str, str]:
    return needle_corpus()


def documents(corpus: dict[str, str]) -> list[Document]:
    return [Document(page_content=text, metadata={"topic": name}, id=name) for name, text in corpus.items()]


def core_max_sim(encoder: DiffEmbedEncoder, corpus: dict[str, str], late: bool = False) -> list[tuple[str, float]]:
    """The ranking the core's own max-sim gives: (document id, best window score), best first."""
    view = encoder.with_settings(chunk_aggregation="late") if late else encoder
    chunks = view.encode_document_chunks(list(corpus.values()))
    query = encoder.encode_queries([QUESTION])[0]
    scores = {name: float((c.vectors @ query).max()) for name, c in zip(corpus, chunks, strict=True)}
    return sorted(scores.items(), key=lambda item: -item[1])


class RunCounter:
    """Counts the core's `run` calls and the rows (windows) they embed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = self.rows = 0
        original = DiffEmbedEncoder.run

        def counted(encoder: DiffEmbedEncoder, plan: Any, show_progress: bool | None = None) -> Any:
            self.calls += 1
            self.rows += len(plan.rows)
            return original(encoder, plan, show_progress)

        monkeypatch.setattr(DiffEmbedEncoder, "run", counted)


def test_needle_document_first_with_its_window(embeddings: DiffEmbedEmbeddings, corpus: dict[str, str]) -> None:
    retriever = DiffEmbedChunkRetriever.from_documents(documents(corpus), embeddings, k=3)
    hits = retriever.invoke(QUESTION)
    assert hits[0].id == "library" and len(hits) == 3
    best = hits[0]
    start, end = best.metadata["best_span"]
    assert best.page_content == corpus["library"] and best.metadata["topic"] == "library"
    assert best.metadata["best_window"] == corpus["library"][start:end]
    assert NEEDLE in best.metadata["best_window"]
    assert start > 4 * len(corpus["library"]) // 10  # deep inside: past the first windows
    assert "window_count" not in best.metadata


def test_scores_and_ranking_are_the_cores_max_sim(
    encoder: DiffEmbedEncoder, embeddings: DiffEmbedEmbeddings, corpus: dict[str, str]
) -> None:
    for late in (False, True):
        retriever = DiffEmbedChunkRetriever.from_documents(documents(corpus), embeddings, late=late, k=len(corpus))
        hits = retriever.invoke(QUESTION)
        expected = core_max_sim(encoder, corpus, late)
        assert [hit.id for hit in hits] == [name for name, _ in expected]
        np.testing.assert_allclose([h.metadata["score"] for h in hits], [s for _, s in expected], atol=1e-5)


def test_windows_embedded_once_in_one_call(
    embeddings: DiffEmbedEmbeddings, corpus: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = RunCounter(monkeypatch)
    retriever = DiffEmbedChunkRetriever.from_documents(documents(corpus), embeddings)
    store = retriever.vectorstore
    assert isinstance(store, InMemoryVectorStore)
    assert counter.calls == 1 and counter.rows == len(store.store)  # one pass per window, nothing again
    retriever.invoke(QUESTION)
    assert counter.calls == 2 and counter.rows == len(store.store) + 1  # the query: one row


def test_late_windows_are_the_late_views_vectors(
    encoder: DiffEmbedEncoder, embeddings: DiffEmbedEmbeddings, corpus: dict[str, str]
) -> None:
    late = encoder.with_settings(chunk_aggregation="late").encode_document_chunks(list(corpus.values()))
    mine = embeddings.embed_document_chunks(list(corpus.values()), late=True)
    plain = embeddings.embed_document_chunks(list(corpus.values()))
    for a, b, c in zip(late, mine, plain, strict=True):
        np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-6)
        assert a.spans == b.spans and len(c) < len(a)  # late windows are a quarter of the window by default
    retriever = DiffEmbedChunkRetriever.from_documents(documents(corpus), embeddings, late=True, k=1)
    (hit,) = retriever.invoke(QUESTION)
    start, end = hit.metadata["best_span"]
    needle_at = corpus["library"].index(NEEDLE)
    assert hit.id == "library" and start < needle_at + len(NEEDLE) and end > needle_at  # overlaps the needle


@pytest.mark.filterwarnings("ignore:`langchain-community` is being sunset:DeprecationWarning")
def test_faiss_gives_the_same_ranking(embeddings: DiffEmbedEmbeddings, corpus: dict[str, str]) -> None:
    import faiss
    from langchain_community.docstore.in_memory import InMemoryDocstore
    from langchain_community.vectorstores import FAISS

    k = len(corpus)
    reference = DiffEmbedChunkRetriever.from_documents(documents(corpus), embeddings, k=k).invoke(QUESTION)
    for index in (faiss.IndexFlatL2(embeddings.encoder.dimension), faiss.IndexFlatIP(embeddings.encoder.dimension)):
        strategy = "EUCLIDEAN_DISTANCE" if isinstance(index, faiss.IndexFlatL2) else "MAX_INNER_PRODUCT"
        store = FAISS(embeddings, index, InMemoryDocstore(), {}, distance_strategy=strategy)
        hits = DiffEmbedChunkRetriever.from_documents(documents(corpus), embeddings, vectorstore=store, k=k).invoke(
            QUESTION
        )
        assert [h.id for h in hits] == [h.id for h in reference]
        np.testing.assert_allclose(
            [h.metadata["score"] for h in hits], [h.metadata["score"] for h in reference], atol=1e-5
        )


def open_qdrant(path: Path, embeddings: DiffEmbedEmbeddings, create: bool) -> VectorStore:
    from langchain_qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(path / "qdrant"))
    if create:
        size = embeddings.encoder.dimension
        client.create_collection(
            "windows", vectors_config=models.VectorParams(size=size, distance=models.Distance.COSINE)
        )
    return QdrantVectorStore(client=client, collection_name="windows", embedding=embeddings)


def test_qdrant_on_disk_reopened_gives_the_same_ranking(
    embeddings: DiffEmbedEmbeddings, corpus: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_qdrant(tmp_path, embeddings, create=True)
    docstore = create_kv_docstore(LocalFileStore(tmp_path / "parents"))
    built = DiffEmbedChunkRetriever.from_documents(
        documents(corpus), embeddings, vectorstore=store, docstore=docstore, k=4
    )
    before = built.invoke(QUESTION)
    store.client.close()  # type: ignore[attr-defined]

    store = open_qdrant(tmp_path, embeddings, create=False)  # (its own check embeds one dummy query)
    counter = RunCounter(monkeypatch)
    reopened = DiffEmbedChunkRetriever(
        embeddings=embeddings,
        vectorstore=store,
        docstore=create_kv_docstore(LocalFileStore(tmp_path / "parents")),
        k=4,
    )
    after = reopened.invoke(QUESTION)
    assert counter.calls == 1  # only the query: the windows came from disk
    assert [h.id for h in after] == [h.id for h in before] and after[0].id == "library"
    assert [h.metadata["best_span"] for h in after] == [h.metadata["best_span"] for h in before]
    np.testing.assert_allclose([h.metadata["score"] for h in after], [h.metadata["score"] for h in before], atol=1e-5)
    reopened.delete(["library"])
    assert "library" not in [h.id for h in reopened.invoke(QUESTION)]
    reopened.vectorstore.client.close()  # type: ignore[attr-defined]


def test_delete_and_replace(embeddings: DiffEmbedEmbeddings, corpus: dict[str, str]) -> None:
    retriever = DiffEmbedChunkRetriever.from_documents(documents(corpus), embeddings, k=len(corpus))
    store = retriever.vectorstore
    assert isinstance(store, InMemoryVectorStore)
    windows = len(store.store)
    retriever.delete(["library"])
    assert "library" not in [h.id for h in retriever.invoke(QUESTION)]
    assert len(store.store) < windows and retriever.docstore.mget(["library"]) == [None]
    with pytest.raises(KeyError, match=r"'nowhere'.*nothing deleted"):
        retriever.delete(["garden", "nowhere"])
    assert retriever.docstore.mget(["garden"])[0] is not None  # the known one stays too
    retriever.add_documents([Document(page_content="A short note about ducks.", id="garden")])
    assert len(store.store) < windows - 5  # garden's old windows went with its replacement
    assert retriever.invoke("ducks")[0].page_content == "A short note about ducks."


def test_bad_input(embeddings: DiffEmbedEmbeddings) -> None:
    retriever = DiffEmbedChunkRetriever.from_documents([], embeddings)
    assert retriever.invoke(QUESTION) == []
    docs = [Document(page_content="fine text", id="a"), Document(page_content="\u200b\u200b", id="blank")]
    with pytest.raises(ValueError, match=r"document 1 \(id 'blank'\) "):
        retriever.add_documents(docs)
    with pytest.raises(ValueError, match=r"document 1 \(id '[0-9a-f-]+'\) is empty"):
        retriever.add_documents([Document(page_content="fine"), Document(page_content="")])
    with pytest.raises(ValueError, match="same document id"):
        retriever.add_documents(docs[:1] * 2)
    assert retriever.invoke(QUESTION) == []  # nothing half-added


class EmbedsAgain(VectorStore):
    """A store whose only way in is add_texts (which would embed the windows again)."""

    def add_texts(self, texts: Any, metadatas: Any = None, **kwargs: Any) -> list[str]:
        raise AssertionError("must not be called")

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return []

    @classmethod
    def from_texts(cls, texts: Any, embedding: Any, metadatas: Any = None, **kwargs: Any) -> EmbedsAgain:
        return cls()


def test_store_without_a_vector_path_is_refused(embeddings: DiffEmbedEmbeddings) -> None:
    with pytest.raises(TypeError, match=r"EmbedsAgain cannot take precomputed vectors.*FAISS"):
        DiffEmbedChunkRetriever.from_documents([Document(page_content="x")], embeddings, vectorstore=EmbedsAgain())


async def test_async_paths(embeddings: DiffEmbedEmbeddings, corpus: dict[str, str]) -> None:
    retriever = DiffEmbedChunkRetriever(embeddings=embeddings, vectorstore=InMemoryVectorStore(embeddings), k=2)
    ids = await retriever.aadd_documents(documents(corpus))
    assert ids == list(corpus)
    hits = await retriever.ainvoke(QUESTION)
    assert [h.id for h in hits] == [h.id for h in retriever.invoke(QUESTION)] and hits[0].id == "library"
    await retriever.adelete(["library"])
    assert "library" not in [h.id for h in await retriever.ainvoke(QUESTION)]


def test_from_texts(embeddings: DiffEmbedEmbeddings, corpus: dict[str, str]) -> None:
    retriever = DiffEmbedChunkRetriever.from_texts(
        list(corpus.values()), embeddings, metadatas=[{"topic": t} for t in corpus], ids=list(corpus), k=1
    )
    (hit,) = retriever.invoke(QUESTION)
    assert hit.id == "library" and hit.metadata["topic"] == "library"
