"""LlamaIndex integration of diffemb: `DiffEmbedEmbedding`, and for long documents `DiffEmbedWindowParser` +
`DiffEmbedDocumentRetriever` (window vectors, documents ranked by their best window)."""

from llamaindex_diffemb.document_retriever import DiffEmbedDocumentRetriever
from llamaindex_diffemb.embedding import DiffEmbedEmbedding
from llamaindex_diffemb.window_parser import DiffEmbedWindowParser

__all__ = ["DiffEmbedDocumentRetriever", "DiffEmbedEmbedding", "DiffEmbedWindowParser"]
