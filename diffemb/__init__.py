"""diffemb: diffusion-language-model text embeddings for retrieval.

The public names load on first use (PEP 562), so `import diffemb` and the command line's `--help` do not pay
for torch and transformers until an encoder is actually needed.
"""

from __future__ import annotations

import logging
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from diffemb.chunking import DocumentChunks
    from diffemb.encoder import DiffEmbedEncoder
    from diffemb.profiles import ModelProfile, TextTemplate

__all__ = ["DiffEmbedEncoder", "DocumentChunks", "ModelProfile", "TextTemplate", "__version__"]


class _KnownImportNoise(logging.Filter):
    """Drops two import-time warnings that say nothing to a diffemb user: torchao 0.18 (the `quant` extra's CPU
    int8 path) fails to load compiled kernels it ships for other torch/Python builds and logs each one, and
    torch logs a deprecation for the Enums torchao registers. transformers imports torchao whenever it is
    installed, so without this every model load would start with four alarming lines. The int8 path does not
    use those kernels (`benchmarks/results/quantization.md`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not (message.startswith("Failed to load") or "is an Enum subclass and is now natively" in message)


for _name in ("torchao", "torch.utils._pytree"):
    logging.getLogger(_name).addFilter(_KnownImportNoise())

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
