"""Backbone loaders, chosen from a checkpoint folder's `config.json`.

Each family module reads its published layout and builds a stock transformers model with public APIs only
(`from_pretrained`, `config.is_causal`, `key_mapping`): no remote code, no subclassed private classes.
`describe_checkpoint` answers what a folder is from its configuration files alone; `load_backbone` then reads
the weights.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

from diffemb.backbones.base import Backbone, CheckpointInfo, LoadOptions
from diffemb.backbones.decoder import describe_decoder, load_decoder
from diffemb.backbones.dream import describe_dream, load_dream
from diffemb.backbones.encoder_models import (
    ENCODER_MODEL_TYPES,
    describe_encoder,
    describe_sentence_transformers,
    is_sentence_transformers_folder,
    load_encoder,
)
from diffemb.backbones.llada import describe_llada, load_llada
from diffemb.hub import read_config
from diffemb.profiles import Attention

__all__ = [
    "SUPPORTED_FAMILIES",
    "Backbone",
    "CheckpointInfo",
    "LoadOptions",
    "describe_checkpoint",
    "describe_plain",
    "family_of",
    "load_backbone",
]

SUPPORTED_FAMILIES = (
    "Dream (model_type 'Dream'), LLaDA ('llada'), decoder LMs that transformers knows (qwen2, llama, mistral, "
    "gemma, …), encoders (" + ", ".join(sorted(ENCODER_MODEL_TYPES)) + ") and sentence-transformers folders"
)

_DESCRIBE: dict[str, Callable[[Path, Attention | None], CheckpointInfo]] = {
    "dream": describe_dream,
    "llada": describe_llada,
    "encoder": describe_encoder,
    "decoder": describe_decoder,
}
_LOAD: dict[str, Callable[[CheckpointInfo, LoadOptions], Backbone]] = {
    "dream": load_dream,
    "llada": load_llada,
    "encoder": load_encoder,
    "decoder": load_decoder,
}


def plain_family_of(folder: Path) -> str:
    """The family of a transformers checkpoint folder from its `config.json` `model_type`."""
    model_type = str(read_config(folder).get("model_type", ""))
    if model_type.lower() == "dream":
        return "dream"
    if model_type.lower() == "llada":
        return "llada"
    if model_type in ENCODER_MODEL_TYPES:
        return "encoder"
    if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return "decoder"
    raise ValueError(
        f"unknown model_type {model_type or '(none)'!r} in {folder / 'config.json'}: diffemb supports "
        f"{SUPPORTED_FAMILIES}"
    )


def family_of(folder: Path) -> str:
    """The loader family of a checkpoint folder, or a ValueError that lists what is supported."""
    return "sentence-transformers" if is_sentence_transformers_folder(folder) else plain_family_of(folder)


def describe_plain(folder: Path, attention: Attention | None) -> CheckpointInfo:
    """`describe_checkpoint` for a transformers checkpoint folder (not a sentence-transformers one)."""
    return _DESCRIBE[plain_family_of(folder)](folder, attention)


def describe_checkpoint(folder: Path, attention: Attention | None = None) -> CheckpointInfo:
    """What `folder` holds, read from its configuration files without loading any weight."""
    if is_sentence_transformers_folder(folder):
        return describe_sentence_transformers(folder, attention)
    return describe_plain(folder, attention)


def load_backbone(info: CheckpointInfo, options: LoadOptions) -> Backbone:
    """The weights of a described checkpoint, loaded as its family says."""
    return _LOAD[plain_family_of(info.weights_folder)](info, options)
