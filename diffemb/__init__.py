"""diffemb: diffusion-language-model text embeddings for retrieval."""

from diffemb.chunking import DocumentChunks
from diffemb.encoder import DiffEmbedEncoder
from diffemb.profiles import ModelProfile, TextTemplate

__all__ = ["DiffEmbedEncoder", "DocumentChunks", "ModelProfile", "TextTemplate", "__version__"]

__version__ = "0.1.0"
