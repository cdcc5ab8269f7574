"""Backbone loaders, chosen from a checkpoint folder's `config.json`.

Each family module reads its published layout and builds a stock transformers model with public APIs only
(`from_pretrained`, `config.is_causal`, `key_mapping`): no remote code, no subclassed private classes.
"""

from __future__ import annotations

from pathlib import Path

from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

from diffemb.backbones.base import Backbone, LoadOptions
from diffemb.backbones.decoder import load_decoder
from diffemb.backbones.dream import load_dream
from diffemb.backbones.encoder_models import (
    ENCODER_MODEL_TYPES,
    is_sentence_transformers_folder,
    load_encoder,
    load_sentence_transformers,
)
from diffemb.backbones.llada import load_llada
from diffemb.hub import read_config

__all__ = ["SUPPORTED_FAMILIES", "Backbone", "LoadOptions", "family_of", "load_backbone"]

SUPPORTED_FAMILIES = (
    "Dream (model_type 'Dream'), LLaDA ('llada'), decoder LMs that transformers knows (qwen2, llama, mistral, "
    "gemma, …), encoders (" + ", ".join(sorted(ENCODER_MODEL_TYPES)) + ") and sentence-transformers folders"
)


def family_of(folder: Path) -> str:
    """The loader family of a checkpoint folder, or a ValueError that lists what is supported."""
    if is_sentence_transformers_folder(folder):
        return "sentence-transformers"
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


def load_backbone(folder: Path, options: LoadOptions) -> Backbone:
    family = family_of(folder)
    loaders = {
        "sentence-transformers": load_sentence_transformers,
        "dream": load_dream,
        "llada": load_llada,
        "encoder": load_encoder,
        "decoder": load_decoder,
    }
    return loaders[family](folder, options)
