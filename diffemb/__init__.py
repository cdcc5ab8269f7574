"""diffemb: diffusion-language-model text embeddings for retrieval.

The public names load on first use (PEP 562), so `import diffemb` and the command line's `--help` do not pay
for torch and transformers until an encoder is actually needed.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from diffemb.chunking import DocumentChunks
    from diffemb.encoder import DiffEmbedEncoder
    from diffemb.profiles import ModelProfile, TextTemplate

__all__ = ["DiffEmbedEncoder", "DocumentChunks", "ModelProfile", "TextTemplate", "__version__"]

_HOMES = {
    "DiffEmbedEncoder": "diffemb.encoder",
    "DocumentChunks": "diffemb.chunking",
    "ModelProfile": "diffemb.profiles",
    "TextTemplate": "diffemb.profiles",
}


def _installed_version() -> str:
    """The installed distribution's version (pyproject.toml is the one place it is written)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("diffemb")
    except PackageNotFoundError:  # imported from a source tree that was never installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        globals()[name] = value = _installed_version()
        return value
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'diffemb' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
