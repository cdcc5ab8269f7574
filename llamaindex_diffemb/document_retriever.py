"""`DiffEmbedDocumentRetriever`: window hits collapsed into documents, each scored by its best window (max-sim)."""

from __future__ import annotations

from typing import Any

try:
    from llama_index.core.base.base_retriever import BaseRetriever
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
    from llama_index.core.storage.docstore.types import BaseDocumentStore
except ImportError as err:  # pragma: no cover - exercised by a test that hides llama_index
    raise ImportError(
        'llamaindex_diffemb needs llama-index-core; install it with: pip install "diffemb[llamaindex]"'
    ) from err


class DiffEmbedDocumentRetriever(BaseRetriever):
    """Wraps a retriever over window nodes (e.g. `index.as_retriever()` over `DiffEmbedWindowParser` nodes) and
    returns each document once, ranked by its best window's score.

    Without `documents`, a hit is the document's best window node; with `documents` (a docstore holding the
    source documents, e.g. `index.docstore` after `index.docstore.add_documents(docs)`), a hit is the whole
    document. Either way the node's metadata gains `document_id`, `best_span` (start, end in the document),
    `best_window` (its text) and `window_index`. The wrapped retriever is asked for `fetch_k` windows (and
    more, when they cover fewer than `k` documents and it has `similarity_top_k`).
    """

    def __init__(
        self,
        retriever: BaseRetriever,
        k: int = 4,
        fetch_k: int | None = None,
        documents: BaseDocumentStore | None = None,
        **kwargs: Any,
    ) -> None:
        if k < 1:
            raise ValueError(f"k must be a positive number of documents, got {k}")
        self.retriever = retriever
        self.k = k
        self.fetch_k = fetch_k or max(50, 10 * k)
        self.documents = documents
        super().__init__(**kwargs)

    @classmethod
    def from_index(
        cls, index: Any, k: int = 4, fetch_k: int | None = None, **kwargs: Any
    ) -> DiffEmbedDocumentRetriever:
        """Over a `VectorStoreIndex` of window nodes (its own retriever, asked for `fetch_k` windows)."""
        fetch = fetch_k or max(50, 10 * k)
        return cls(index.as_retriever(similarity_top_k=fetch), k=k, fetch_k=fetch, **kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self._collapse(self._windows(query_bundle))

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self._collapse(await self._awindows(query_bundle))

    def _windows(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        want = self.fetch_k
        while True:
            hits = self._ask(query_bundle, want)
            if not self._need_more(hits, want):
                return hits
            want *= 4

    async def _awindows(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        want = self.fetch_k
        while True:
            self._set_top_k(want)
            hits = await self.retriever.aretrieve(query_bundle)
            if not self._need_more(hits, want):
                return hits
            want *= 4

    def _ask(self, query_bundle: QueryBundle, want: int) -> list[NodeWithScore]:
        self._set_top_k(want)
        return self.retriever.retrieve(query_bundle)

    def _set_top_k(self, want: int) -> None:
        if hasattr(self.retriever, "similarity_top_k"):
            self.retriever.similarity_top_k = want

    def _need_more(self, hits: list[NodeWithScore], want: int) -> bool:
        adjustable = hasattr(self.retriever, "similarity_top_k")
        return adjustable and len(hits) >= want and len({_document_id(h) for h in hits}) < self.k

    def _collapse(self, hits: list[NodeWithScore]) -> list[NodeWithScore]:
        best: dict[str, NodeWithScore] = {}
        for hit in hits:
            document_id = _document_id(hit)
            if document_id not in best or (hit.score or 0.0) > (best[document_id].score or 0.0):
                best[document_id] = hit
        top = sorted(best.items(), key=lambda item: -(item[1].score or 0.0))[: self.k]
        return [self._as_document_hit(document_id, hit) for document_id, hit in top]

    def _as_document_hit(self, document_id: str, hit: NodeWithScore) -> NodeWithScore:
        window = hit.node
        span = (window.start_char_idx, window.end_char_idx) if isinstance(window, TextNode) else (None, None)
        found = {
            "document_id": document_id,
            "best_span": span,
            "best_window": window.get_content(),
            "window_index": window.metadata.get("window_index"),
        }
        if self.documents is None:
            node = window.model_copy(update={"metadata": {**window.metadata, **found}})
            return NodeWithScore(node=node, score=hit.score)
        document = self.documents.get_document(document_id, raise_error=False)
        if document is None:
            raise KeyError(
                f"document {document_id!r} has windows in the index but is not in the given docstore: "
                "add the source documents to it (docstore.add_documents(docs))"
            )
        metadata = {**document.metadata, **found}
        whole = TextNode(id_=document_id, text=document.get_content(), metadata=metadata)
        return NodeWithScore(node=whole, score=hit.score)


def _document_id(hit: NodeWithScore) -> str:
    """The id of the document a window came from (its SOURCE relationship); a node without one is its own."""
    return hit.node.ref_doc_id or hit.node.node_id
