"""`diffemb train`: the DiffEmbed contrastive LoRA recipe (arXiv 2505.15045) on sentence-transformers' trainer.

`recipes` and `data` import without the training extra; `train`, `DiffEmbedModule` and friends need
`pip install "diffemb[train]"` (sentence-transformers, datasets, accelerate) and are imported on first use.
"""

from __future__ import annotations

from typing import Any

from diffemb.training.data import DataError, Pair, load_pairs, read_jsonl
from diffemb.training.recipes import RECIPES, Recipe, get_recipe

__all__ = [
    "RECIPES",
    "DataError",
    "DiffEmbedModule",
    "Pair",
    "Recipe",
    "TrainResult",
    "get_recipe",
    "load_pairs",
    "read_jsonl",
    "train",
]

_LAZY = {
    "train": "diffemb.training.train",
    "TrainResult": "diffemb.training.train",
    "DiffEmbedModule": "diffemb.training.model",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        try:
            module = import_module(_LAZY[name])
        except ImportError as err:
            extra = 'pip install "diffemb[train]"'
            raise ImportError(f"diffemb.training.{name} needs the training extra: {extra}") from err
        value = getattr(module, name)
        globals()[name] = value  # `train` names both a module and its function: the package offers the function
        return value
    raise AttributeError(f"module 'diffemb.training' has no attribute {name!r}")
