"""`DiffEmbedChunkRetriever`: long documents stored as one vector per model window, ranked by their best window.

Max-sim over window vectors is what the core measures best on long documents (`benchmarks/RESULTS.md`). The
windows come from the core (`encode_document_chunks`: the model's own token windows, plain or late-chunked), so
the user never guesses a window size, and their vectors go into the vector store as computed: nothing is
embedded twice.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.stores import BaseStore, InMemoryStore
from langchain_core.vectorstores import InMemoryVectorStore, VectorStore
from pydantic import ConfigDict, Field

from diffemb.inputs import retell_text_error
from langchain_diffemb.embeddings import DiffEmbedEmbeddings
from langchain_diffemb.window_stores import add_windows, as_similarity, check_store, search_by_vector

PARENT_KEY = "parent_id"
"""Window metadata: the id of the document the window belongs to (also `window_index`, `start`, `end`)."""

_WINDOW_IDS = uuid.UUID("5b0cbd4e-4a47-4d1c-9d43-3f0c8a7a12b1")  # namespace of the windows' uuid5 ids


def window_id(parent_id: str, index: int) -> str:
    """The store id of a document's window: a UUID (Qdrant takes no other strings), the same on every run."""
    return str(uuid.uuid5(_WINDOW_IDS, f"{parent_id}\x1f{index}"))


class DiffEmbedChunkRetriever(BaseRetriever):
    """Retrieves whole documents ranked by their best model window (max-sim), with that window's text and span.

    ```python
    retriever = DiffEmbedChunkRetriever.from_documents(docs, embeddings, k=4)            # InMemoryVectorStore
    retriever = DiffEmbedChunkRetriever.from_documents(docs, embeddings, vectorstore=qdrant_store, late=True)
    hits = retriever.invoke("who invented the pneumatic tyre?")
    hits[0].metadata["score"], hits[0].metadata["best_span"], hits[0].metadata["best_window"]
    ```

    Every document's windows are embedded in one core call and stored with their precomputed vectors in
    `vectorstore` (InMemoryVectorStore, FAISS, Qdrant; see `window_stores`); the documents themselves go to
    `docstore` under their ids. A query is embedded once; the store is searched for `fetch_k` windows (more
    when they cover fewer than `k` documents), and each document is scored by its best window.
    """

    embeddings: DiffEmbedEmbeddings
    """Embeds the windows (document side) and the queries (with the query instruction)."""
    vectorstore: VectorStore
    """Holds one entry per window: its text, vector, and metadata `parent_id`, `window_index`, `start`, `end`."""
    docstore: BaseStore[str, Document] = Field(default_factory=InMemoryStore)
    """Holds the whole documents by id; use a persistent one (e.g. `create_kv_docstore(LocalFileStore(path))`)
    with a persistent vector store."""
    late: bool = False
    """Window vectors pooled from one long pass over each document (late chunking) instead of one pass each."""
    k: int = Field(default=4, gt=0)
    """Documents returned per query."""
    fetch_k: int | None = Field(default=None, gt=0)
    """Windows fetched per search; `None`: 10 per wanted document (at least 50)."""
    search_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Passed to the store's `similarity_search_with_score_by_vector` (e.g. a `filter`)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    # -- building ---------------------------------------------------------------------------------------------

    @classmethod
    def from_documents(
        cls,
        documents: Iterable[Document],
        embeddings: DiffEmbedEmbeddings,
        vectorstore: VectorStore | None = None,
        late: bool = False,
        k: int = 4,
        *,
        ids: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> DiffEmbedChunkRetriever:
        """A retriever over `documents` (an `InMemoryVectorStore` when no `vectorstore` is given)."""
        store = vectorstore if vectorstore is not None else InMemoryVectorStore(embedding=embeddings)
        retriever = cls(embeddings=embeddings, vectorstore=store, late=late, k=k, **kwargs)
        retriever.add_documents(list(documents), ids=ids)
        return retriever

    @classmethod
    def from_texts(
        cls,
        texts: Iterable[str],
        embeddings: DiffEmbedEmbeddings,
        metadatas: Sequence[dict[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> DiffEmbedChunkRetriever:
        """`from_documents` over plain texts (with optional metadata and ids)."""
        items = list(texts)
        if metadatas is not None and len(metadatas) != len(items):
            raise ValueError(f"got {len(metadatas)} metadatas for {len(items)} texts: give one per text")
        given = metadatas if metadatas is not None else [{} for _ in items]
        documents = [Document(page_content=text, metadata=dict(meta)) for text, meta in zip(items, given, strict=True)]
        return cls.from_documents(documents, embeddings, ids=ids, **kwargs)

    def add_documents(self, documents: Sequence[Document], ids: Sequence[str] | None = None) -> list[str]:
        """Embed every document's windows in one core call and store them; returns the documents' ids.

        A document's id is `ids[i]`, else `document.id`, else a new UUID. Re-adding an id replaces that document
        and all its old windows.
        """
        check_store(self.vectorstore)
        documents = list(documents)
        if ids is not None and len(ids) != len(documents):
            raise ValueError(f"got {len(ids)} ids for {len(documents)} documents: give one per document")
        parent_ids = [_parent_id(doc, ids[i] if ids is not None else None) for i, doc in enumerate(documents)]
        if len(set(parent_ids)) != len(parent_ids):
            raise ValueError("the same document id appears twice in one call: give each document its own id")
        if not documents:
            return []
        chunks = self._embed_windows(documents, parent_ids)
        stale = [i for i, old in zip(parent_ids, self.docstore.mget(parent_ids), strict=True) if old is not None]
        if stale:
            self.delete(stale)
        texts: list[str] = []
        vectors: list[list[float]] = []
        metadatas: list[dict[str, Any]] = []
        window_ids: list[str] = []
        stored: list[tuple[str, Document]] = []
        for parent_id, doc, doc_chunks in zip(parent_ids, documents, chunks, strict=True):
            for index, (start, end) in enumerate(doc_chunks.spans):
                texts.append(doc.page_content[start:end])
                metadatas.append({PARENT_KEY: parent_id, "window_index": index, "start": start, "end": end})
                window_ids.append(window_id(parent_id, index))
            vectors.extend(doc_chunks.vectors.tolist())
            metadata = {**doc.metadata, "window_count": len(doc_chunks)}
            stored.append((parent_id, Document(page_content=doc.page_content, metadata=metadata, id=parent_id)))
        add_windows(self.vectorstore, texts, vectors, metadatas, window_ids)
        self.docstore.mset(stored)
        return parent_ids

    def delete(self, ids: Sequence[str]) -> None:
        """Remove documents and all their windows; an id that was never added is a KeyError (nothing removed)."""
        ids = list(ids)
        found = self.docstore.mget(ids)
        unknown = [i for i, doc in zip(ids, found, strict=True) if doc is None]
        if unknown:
            raise KeyError(f"no document with id {', '.join(map(repr, unknown))} in this retriever: nothing deleted")
        window_ids = [
            window_id(parent_id, index)
            for parent_id, doc in zip(ids, found, strict=True)
            for index in range(int(doc.metadata["window_count"]))  # type: ignore[union-attr]
        ]
        if window_ids:
            self.vectorstore.delete(window_ids)
        self.docstore.mdelete(ids)

    async def aadd_documents(self, documents: Sequence[Document], ids: Sequence[str] | None = None) -> list[str]:
        """`add_documents` in a worker thread, so the event loop keeps running."""
        return await asyncio.to_thread(self.add_documents, documents, ids)

    async def adelete(self, ids: Sequence[str]) -> None:
        """`delete` in a worker thread."""
        await asyncio.to_thread(self.delete, ids)

    # -- retrieving -------------------------------------------------------------------------------------------

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        vector = self.embeddings.embed_query(query)
        want = self.fetch_k or max(50, 10 * self.k)
        while True:
            hits = search_by_vector(self.vectorstore, vector, want, **self.search_kwargs)
            best = _best_windows(self.vectorstore, hits)
            if len(best) >= self.k or len(hits) < want:  # enough documents, or the store has no more windows
                break
            want *= 4
        top = sorted(best.items(), key=lambda item: -item[1][0])[: self.k]
        parents = self.docstore.mget([parent_id for parent_id, _ in top])
        results = []
        for (parent_id, (score, window)), parent in zip(top, parents, strict=True):
            if parent is None:
                raise KeyError(
                    f"the vector store has windows of document {parent_id!r} but the docstore has no such document: "
                    "open the retriever with the docstore it was built with"
                )
            span = (int(window.metadata["start"]), int(window.metadata["end"]))
            metadata = {key: v for key, v in parent.metadata.items() if key != "window_count"}
            metadata.update(score=score, best_span=span, best_window=window.page_content)
            results.append(Document(page_content=parent.page_content, metadata=metadata, id=parent_id))
        return results

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        return await asyncio.to_thread(self._get_relevant_documents, query, run_manager=run_manager.get_sync())

    def _embed_windows(self, documents: list[Document], parent_ids: list[str]) -> list[Any]:
        """One core call for all documents; a core error about `texts[i]` is reported with the document's id."""
        try:
            return self.embeddings.embed_document_chunks([d.page_content for d in documents], late=self.late)
        except (ValueError, TypeError) as error:
            retold = retell_text_error(error, lambda i: f"document {i} (id {parent_ids[i]!r})", len(documents))
            if retold is error:
                raise
            raise retold from error


def _parent_id(document: Document, given: str | None) -> str:
    parent_id = given if given is not None else document.id
    return str(parent_id) if parent_id is not None else str(uuid.uuid4())


def _best_windows(store: VectorStore, hits: list[tuple[Document, float]]) -> dict[str, tuple[float, Document]]:
    """Per document, its best-scoring window among the hits (max-sim)."""
    best: dict[str, tuple[float, Document]] = {}
    for window, raw in hits:
        parent_id = window.metadata.get(PARENT_KEY)
        if parent_id is None:
            raise ValueError(
                f"the vector store holds an entry without {PARENT_KEY!r} metadata: give DiffEmbedChunkRetriever a "
                "store of its own (or a filter in search_kwargs that selects its windows)"
            )
        score = as_similarity(store, raw)
        if parent_id not in best or score > best[parent_id][0]:
            best[str(parent_id)] = (score, window)
    return best
