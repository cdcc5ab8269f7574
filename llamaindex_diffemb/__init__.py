"""LlamaIndex integration of diffemb: `from llamaindex_diffemb import DiffEmbedEmbedding`."""

from llamaindex_diffemb.embedding import DiffEmbedEmbedding

__all__ = ["DiffEmbedEmbedding"]
