"""LangChain integration of diffemb: `DiffEmbedEmbeddings` (needs `pip install "diffemb[langchain]"`)."""

from langchain_diffemb.embeddings import DiffEmbedEmbeddings

__all__ = ["DiffEmbedEmbeddings"]
