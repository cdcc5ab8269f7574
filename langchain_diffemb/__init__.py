"""LangChain integration of diffemb: `DiffEmbedEmbeddings`, and `DiffEmbedChunkRetriever` for long documents
(needs `pip install "diffemb[langchain]"`)."""

from langchain_diffemb.embeddings import DiffEmbedEmbeddings
from langchain_diffemb.retriever import DiffEmbedChunkRetriever

__all__ = ["DiffEmbedChunkRetriever", "DiffEmbedEmbeddings"]
