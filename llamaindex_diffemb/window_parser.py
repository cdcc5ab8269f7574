"""`DiffEmbedWindowParser`: documents → one `TextNode` per model window, its vector already set.

The windows are the core's own (`encode_document_chunks`): the model's token windows, each node knowing its
character span in the document. Every node carries the window vector the core computed, so `VectorStoreIndex`
and `IngestionPipeline` store it as it is and embed nothing again:

- with `late=True` this is the only way: a late-chunking window is pooled from a pass over the whole document,
  and embedding the window's text alone would give a different (context-free) vector;
- for plain windows it is also the right vector. Re-embedding the node would not reproduce it: LlamaIndex embeds
  `get_content(MetadataMode.EMBED)`, which puts the document's metadata in front of the text, and the window's
  text tokenised on its own can differ from the window's tokens at its edges. It would also cost a second pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

try:
    from llama_index.core.bridge.pydantic import Field, PrivateAttr
    from llama_index.core.node_parser.interface import NodeParser
    from llama_index.core.schema import BaseNode, Document, MetadataMode, NodeRelationship, TextNode
except ImportError as err:  # pragma: no cover - exercised by a test that hides llama_index
    raise ImportError(
        'llamaindex_diffemb needs llama-index-core; install it with: pip install "diffemb[llamaindex]"'
    ) from err

from diffemb.encoder import DiffEmbedEncoder
from diffemb.inputs import retell_text_error
from llamaindex_diffemb.embedding import DiffEmbedEmbedding

WINDOW_KEY = "window_index"
"""Node metadata: the window's position in its document (0 = first)."""



class DiffEmbedWindowParser(NodeParser):
    """Splits documents into the model's own windows and sets each node's embedding to the window's vector.

    ```python
    parser = DiffEmbedWindowParser(embed_model=embed_model, late=True)
    index = VectorStoreIndex(parser.get_nodes_from_documents(docs), embed_model=embed_model)
    retriever = DiffEmbedDocumentRetriever.from_index(index, k=4)   # each document once, by its best window
    ```

    All documents of a call are embedded in one core call. Nodes get `start_char_idx`/`end_char_idx`, a SOURCE
    relationship to their document, the document's metadata and `window_index` (kept out of the text that
    LLMs and embedders see).
    """

    late: bool = Field(default=False, description="Pool windows from one long pass per document (late chunking).")
    fingerprint: str = Field(
        default="", description="Fingerprint of the encoder's vector settings (keys the ingestion cache)."
    )

    _encoder: DiffEmbedEncoder = PrivateAttr()

    def __init__(
        self,
        embed_model: DiffEmbedEmbedding | None = None,
        *,
        encoder: DiffEmbedEncoder | None = None,
        late: bool = False,
        **data: Any,
    ) -> None:
        if (embed_model is None) == (encoder is None):
            raise ValueError(
                "DiffEmbedWindowParser needs exactly one of embed_model= (a DiffEmbedEmbedding) or encoder="
            )
        base = encoder if encoder is not None else embed_model.encoder  # type: ignore[union-attr]
        if late != (base.settings.chunking.aggregation == "late"):
            base = base.with_settings(chunk_aggregation="late" if late else "none")
        super().__init__(late=late, fingerprint=base.fingerprint, **data)  # type: ignore[call-arg]
        self._encoder = base

    @classmethod
    def class_name(cls) -> str:
        return "DiffEmbedWindowParser"

    @property
    def encoder(self) -> DiffEmbedEncoder:
        """The view that computes the window vectors (plain or late windows)."""
        return self._encoder

    def _parse_nodes(self, nodes: Sequence[BaseNode], show_progress: bool = False, **kwargs: Any) -> list[BaseNode]:
        texts = [node.get_content(metadata_mode=MetadataMode.NONE) for node in nodes]
        try:
            chunks = self._encoder.encode_document_chunks(texts, show_progress=show_progress)
        except (ValueError, TypeError) as error:
            raise _naming_the_document(error, nodes) from error
        windows: list[BaseNode] = []
        for node, text, doc_chunks in zip(nodes, texts, chunks, strict=True):
            for index, ((start, end), vector) in enumerate(zip(doc_chunks.spans, doc_chunks.vectors, strict=True)):
                window = TextNode(
                    id_=self.id_func(len(windows), node),  # type: ignore[arg-type]
                    text=text[start:end],
                    embedding=vector.tolist(),
                    start_char_idx=start,
                    end_char_idx=end,
                    metadata={WINDOW_KEY: index},
                    excluded_embed_metadata_keys=[*node.excluded_embed_metadata_keys, WINDOW_KEY],
                    excluded_llm_metadata_keys=[*node.excluded_llm_metadata_keys, WINDOW_KEY],
                    metadata_template=node.metadata_template if isinstance(node, TextNode) else "{key}: {value}",
                    relationships={NodeRelationship.SOURCE: node.as_related_node_info()},
                )
                windows.append(window)
        return windows

    def _postprocess_parsed_nodes(self, nodes: list[BaseNode], parent_doc_map: dict[str, Document]) -> list[BaseNode]:
        # The base class re-finds each node's text in its document with str.find, which lands on an earlier
        # copy when a window's text repeats; the core's spans are exact, so they are put back afterwards.
        spans = [(n.start_char_idx, n.end_char_idx) if isinstance(n, TextNode) else None for n in nodes]
        nodes = super()._postprocess_parsed_nodes(nodes, parent_doc_map)
        for node, span in zip(nodes, spans, strict=True):
            if isinstance(node, TextNode) and span is not None:
                node.start_char_idx, node.end_char_idx = span
        return nodes


def _naming_the_document(error: Exception, nodes: Sequence[BaseNode]) -> Exception:
    """The core's error about `texts[i]`, told with the document's position and id."""
    return retell_text_error(error, lambda i: f"document {i} (id {nodes[i].node_id!r})", len(nodes))
