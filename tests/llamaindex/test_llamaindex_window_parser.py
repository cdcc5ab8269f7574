"""`DiffEmbedWindowParser` + `DiffEmbedDocumentRetriever`: long documents by their best window in LlamaIndex."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.schema import Document, NodeRelationship, TextNode

from diffemb import DiffEmbedEncoder
from diffemb.testing.long_documents import NEEDLE, QUESTION, needle_corpus
from llamaindex_diffemb import DiffEmbedDocumentRetriever, DiffEmbedEmbedding, DiffEmbedWindowParser


@pytest.fixture(scope="module")
def encoder(minilm_encoder: DiffEmbedEncoder) -> DiffEmbedEncoder:
    return minilm_encoder.with_settings(max_length=64)  # short windows: every document has 7-10 of them


@pytest.fixture(scope="module")
def embed_model(encoder: DiffEmbedEncoder) -> DiffEmbedEmbedding:
    return DiffEmbedEmbedding(encoder=encoder)


@pytest.fixture(scope="module")
def corpus() -> dict[str, str]:
    return needle_corpus()


def documents(corpus: dict[str, str]) -> list[Document]:
    return [Document(text=text, id_=name, metadata={"topic": name}) for name, text in corpus.items()]


def core_max_sim(encoder: DiffEmbedEncoder, corpus: dict[str, str], late: bool = False) -> list[tuple[str, float]]:
    view = encoder.with_settings(chunk_aggregation="late") if late else encoder
    chunks = view.encode_document_chunks(list(corpus.values()))
    query = encoder.encode_queries([QUESTION])[0]
    scores = {name: float((c.vectors @ query).max()) for name, c in zip(corpus, chunks, strict=True)}
    return sorted(scores.items(), key=lambda item: -item[1])


def count_runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Rows per core `run` call, recorded as they happen."""
    calls: list[int] = []
    original = DiffEmbedEncoder.run

    def counted(encoder: DiffEmbedEncoder, plan: Any, show_progress: bool | None = None) -> Any:
        calls.append(len(plan.rows))
        return original(encoder, plan, show_progress)

    monkeypatch.setattr(DiffEmbedEncoder, "run", counted)
    return calls


def test_one_node_per_window_with_span_source_and_vector(
    encoder: DiffEmbedEncoder, embed_model: DiffEmbedEmbedding, corpus: dict[str, str]
) -> None:
    nodes = DiffEmbedWindowParser(embed_model).get_nodes_from_documents(documents(corpus))
    chunks = encoder.encode_document_chunks(list(corpus.values()))
    assert len(nodes) == sum(len(c) for c in chunks)
    position = 0
    for name, doc_chunks in zip(corpus, chunks, strict=True):
        for index, (span, vector) in enumerate(zip(doc_chunks.spans, doc_chunks.vectors, strict=True)):
            node = nodes[position]
            position += 1
            assert isinstance(node, TextNode)
            assert (node.start_char_idx, node.end_char_idx) == span and node.text == corpus[name][slice(*span)]
            assert node.relationships[NodeRelationship.SOURCE].node_id == name and node.ref_doc_id == name
            assert node.metadata == {"topic": name, "window_index": index}
            np.testing.assert_allclose(node.embedding, vector, atol=1e-6)
    assert "window_index" not in nodes[0].get_content(metadata_mode="embed")  # type: ignore[arg-type]


@pytest.mark.parametrize("late", [False, True])
def test_index_does_not_reembed_and_ranks_by_best_window(
    encoder: DiffEmbedEncoder,
    embed_model: DiffEmbedEmbedding,
    corpus: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    late: bool,
) -> None:
    parser = DiffEmbedWindowParser(embed_model, late=late)
    runs = count_runs(monkeypatch)
    nodes = parser.get_nodes_from_documents(documents(corpus))
    index = VectorStoreIndex(nodes, embed_model=embed_model)
    # one core call: one row per window, or (late) long rows that each give several windows
    assert len(runs) == 1 and (runs[0] < len(nodes) if late else runs[0] == len(nodes))
    retriever = DiffEmbedDocumentRetriever.from_index(index, k=len(corpus))
    hits = retriever.retrieve(QUESTION)
    assert runs[1:] == [1]  # then only the query
    expected = core_max_sim(encoder, corpus, late)
    assert [h.node.metadata["document_id"] for h in hits] == [name for name, _ in expected]
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], atol=1e-5)
    best = hits[0].node
    start, end = best.metadata["best_span"]
    needle_at = corpus["library"].index(NEEDLE)
    assert best.metadata["best_window"] == corpus["library"][start:end]
    assert start < needle_at + len(NEEDLE) and end > needle_at
    if not late:
        assert NEEDLE in best.metadata["best_window"] and best.metadata["window_index"] >= 4


def test_plain_window_vector_is_what_the_embedder_gives_its_text(
    embed_model: DiffEmbedEmbedding, corpus: dict[str, str]
) -> None:
    docs = [Document(text=text, id_=name) for name, text in corpus.items()]  # no metadata in the embed text
    nodes = DiffEmbedWindowParser(embed_model).get_nodes_from_documents(docs)
    again = embed_model.get_text_embedding_batch([n.get_content(metadata_mode="embed") for n in nodes])  # type: ignore[arg-type]
    cosines = [float(np.dot(a, n.embedding)) for a, n in zip(again, nodes, strict=True)]  # type: ignore[arg-type]
    assert min(cosines) > 0.99  # the same window, re-tokenised on its own: equal up to its edges


def test_ingestion_pipeline_and_whole_documents(embed_model: DiffEmbedEmbedding, corpus: dict[str, str]) -> None:
    pipeline = IngestionPipeline(transformations=[DiffEmbedWindowParser(embed_model)])
    nodes = pipeline.run(documents=documents(corpus))
    assert all(n.embedding is not None for n in nodes)
    index = VectorStoreIndex(nodes, embed_model=embed_model)
    index.docstore.add_documents(documents(corpus))
    retriever = DiffEmbedDocumentRetriever.from_index(index, k=2, documents=index.docstore)
    hits = retriever.retrieve(QUESTION)
    assert hits[0].node.node_id == "library" and len(hits) == 2
    assert hits[0].node.get_content() == corpus["library"] and hits[0].node.metadata["topic"] == "library"
    assert NEEDLE in hits[0].node.metadata["best_window"]


async def test_async_retrieval(embed_model: DiffEmbedEmbedding, corpus: dict[str, str]) -> None:
    nodes = await DiffEmbedWindowParser(embed_model).aget_nodes_from_documents(documents(corpus))
    retriever = DiffEmbedDocumentRetriever.from_index(VectorStoreIndex(nodes, embed_model=embed_model), k=3)
    hits = await retriever.aretrieve(QUESTION)
    assert [h.node.ref_doc_id for h in hits] == [h.node.ref_doc_id for h in retriever.retrieve(QUESTION)]
    assert len({h.node.ref_doc_id for h in hits}) == 3 and hits[0].node.ref_doc_id == "library"


def open_qdrant_index(path: Path, embed_model: DiffEmbedEmbedding, nodes: list[Any] | None) -> VectorStoreIndex:
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    store = QdrantVectorStore(client=QdrantClient(path=str(path)), collection_name="windows")
    if nodes is None:
        return VectorStoreIndex.from_vector_store(store, embed_model=embed_model)
    context = StorageContext.from_defaults(vector_store=store)
    return VectorStoreIndex(nodes, storage_context=context, embed_model=embed_model)


@pytest.mark.filterwarnings("ignore:Payload indexes have no effect in the local Qdrant:UserWarning")
def test_qdrant_on_disk_reopened_gives_the_same_ranking(
    embed_model: DiffEmbedEmbedding, corpus: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nodes = DiffEmbedWindowParser(embed_model, late=True).get_nodes_from_documents(documents(corpus))
    runs = count_runs(monkeypatch)
    built = open_qdrant_index(tmp_path / "qdrant", embed_model, nodes)
    assert runs == []  # Qdrant stored the parser's vectors; nothing was embedded again
    before = DiffEmbedDocumentRetriever.from_index(built, k=4).retrieve(QUESTION)
    built.vector_store.client.close()  # type: ignore[attr-defined]

    reopened = open_qdrant_index(tmp_path / "qdrant", embed_model, None)
    after = DiffEmbedDocumentRetriever.from_index(reopened, k=4).retrieve(QUESTION)
    assert [h.node.ref_doc_id for h in after] == [h.node.ref_doc_id for h in before]
    assert after[0].node.ref_doc_id == "library" and len(after) == 4
    assert after[0].node.metadata["best_span"] == before[0].node.metadata["best_span"]  # (lower ranks: ties)
    np.testing.assert_allclose([h.score for h in after], [h.score for h in before], atol=1e-5)
    reopened.vector_store.client.close()  # type: ignore[attr-defined]


def test_bad_input(embed_model: DiffEmbedEmbedding) -> None:
    parser = DiffEmbedWindowParser(embed_model)
    assert parser.get_nodes_from_documents([]) == []
    with pytest.raises(ValueError, match=r"document 1 \(id 'blank'\) is empty"):
        parser.get_nodes_from_documents([Document(text="fine", id_="ok"), Document(text="  ", id_="blank")])
    with pytest.raises(ValueError, match=r"document 0 \(id 'odd'\) "):
        parser.get_nodes_from_documents([Document(text="\u200b", id_="odd")])
    with pytest.raises(ValueError, match="exactly one of embed_model"):
        DiffEmbedWindowParser()
    with pytest.raises(ValueError, match="positive number"):
        DiffEmbedDocumentRetriever(VectorStoreIndex([], embed_model=embed_model).as_retriever(), k=0)


def test_cache_key_follows_the_vectors(embed_model: DiffEmbedEmbedding) -> None:
    plain, late = DiffEmbedWindowParser(embed_model), DiffEmbedWindowParser(embed_model, late=True)
    assert plain.fingerprint != late.fingerprint and plain.to_dict()["fingerprint"] == plain.fingerprint
