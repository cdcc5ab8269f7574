"""LLaDA (GSAI-ML/LLaDA-8B-*): a LLaMA-shaped diffusion LM with OLMo-style weight names.

The weights are renamed onto a stock `LlamaModel` (with `is_causal = False`) through `from_pretrained`'s public
`key_mapping`. Unlike LLaDA's own code, padding is masked, so a text's vector does not depend on its batch.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer, LlamaConfig, LlamaModel

from diffemb.backbones.base import (
    Backbone,
    CheckpointInfo,
    LoadOptions,
    build_config,
    capped_info,
    is_causal_for,
    load_weights,
    rope_parameters,
)
from diffemb.backbones.tokenizers import load_tokenizer
from diffemb.hub import read_config
from diffemb.profiles import LLADA, Attention

# OLMo block names → LLaMA names (the mapping in LLaDA's model card; ff_proj carries the SiLU gate).
_BLOCK_RENAMES = {
    "attn_norm": "input_layernorm",
    "ff_norm": "post_attention_layernorm",
    "q_proj": "self_attn.q_proj",
    "k_proj": "self_attn.k_proj",
    "v_proj": "self_attn.v_proj",
    "attn_out": "self_attn.o_proj",
    "ff_proj": "mlp.gate_proj",
    "up_proj": "mlp.up_proj",
    "ff_out": "mlp.down_proj",
}
KEY_MAPPING = {
    r"^model\.transformer\.wte\.": "embed_tokens.",
    r"^model\.transformer\.ln_f\.": "norm.",
    **{rf"^model\.transformer\.blocks\.(\d+)\.{old}\.": rf"layers.\1.{new}." for old, new in _BLOCK_RENAMES.items()},
}


def rename_llada_key(key: str) -> str:
    """A LLaDA weight name (possibly with a PEFT prefix) as the `LlamaModel` name."""
    for pattern, replacement in KEY_MAPPING.items():
        bare = pattern.lstrip("^")
        renamed, count = re.subn(bare, replacement, key)
        if count:
            return renamed
    return key


# What LLaDA's upstream `ModelConfig` (OLMo's) assumes when config.json leaves a field out.
LLADA_ROPE_THETA = 10000.0
LLADA_MLP_RATIO = 4
# Settings of LLaDA's own code that a stock LlamaModel does not compute; the published checkpoints have them so.
_LLAMA_SHAPED = {
    "block_type": ("llama",),
    "activation_type": ("silu",),
    "layer_norm_type": ("rms",),
    "alibi": (False, None),
    "rope": (True, None),
    "attention_layer_norm": (False, None),
    "clip_qkv": (None,),
    "input_emb_norm": (False, None),
}


def llama_config_from_llada(raw: dict[str, Any]) -> LlamaConfig:
    """The stock `LlamaConfig` that computes what LLaDA's config.json describes, or a ValueError naming the field
    a LlamaModel cannot honour (it would give other vectors than LLaDA's own code)."""
    for name, allowed in _LLAMA_SHAPED.items():
        if name in raw and raw[name] not in allowed:
            raise ValueError(
                f"this LLaDA config.json sets {name}: {raw[name]!r}, which diffemb's LLaMA-shaped runner does not "
                f"compute (it supports {' or '.join(repr(a) for a in allowed if a is not None)}): the checkpoint "
                "is not a LLaDA-8B-style model"
            )
    bias = bool(raw.get("include_bias", False))
    if raw.get("include_qkv_bias") and not bias:
        # LlamaConfig.attention_bias puts a bias on q, k, v and o alike; LLaDA's include_qkv_bias is q, k, v only.
        raise ValueError(
            "this LLaDA config.json sets include_qkv_bias: true without include_bias; a LlamaModel has biases on "
            "all four attention projections or none: the checkpoint cannot be run by diffemb"
        )
    heads = raw["n_heads"]
    d_model = raw["d_model"]
    mlp_hidden = raw.get("mlp_hidden_size") or raw.get("mlp_ratio", LLADA_MLP_RATIO) * d_model
    fields = {
        "vocab_size": raw.get("embedding_size") or raw["vocab_size"],
        "hidden_size": d_model,
        "intermediate_size": mlp_hidden,
        "num_hidden_layers": raw["n_layers"],
        "num_attention_heads": heads,
        "num_key_value_heads": raw.get("n_kv_heads") or heads,
        "max_position_embeddings": raw.get("max_sequence_length") or 4096,
        "rms_norm_eps": raw.get("rms_norm_eps") or 1e-5,
        "attention_bias": bias,
        "mlp_bias": bias,
        "tie_word_embeddings": False,
        "pad_token_id": raw.get("pad_token_id"),
        "bos_token_id": raw.get("bos_token_id"),
        "eos_token_id": raw.get("eos_token_id"),
    }
    config = build_config(LlamaConfig, fields, rope_parameters(raw, LLADA_ROPE_THETA))
    config.architectures = ["LlamaModel"]
    return config


def describe_llada(folder: Path, attention: Attention | None) -> CheckpointInfo:
    raw = read_config(folder)
    profile = LLADA.with_overrides(attention=attention)
    positions = int(raw.get("max_sequence_length") or profile.max_length)
    return capped_info("llada", profile, int(raw["d_model"]), positions, folder)


def load_llada(info: CheckpointInfo, options: LoadOptions) -> Backbone:
    folder = info.weights_folder
    config = llama_config_from_llada(read_config(folder))
    config.is_causal = is_causal_for(info.profile.attention)
    tokenizer = load_tokenizer(AutoTokenizer, folder, trust_remote_code=False)  # before the weights: fail fast
    # LLaDA's output projection (model.transformer.ff_out) is its LM head, which LlamaModel leaves out.
    model = load_weights(
        LlamaModel, folder, config, options, key_mapping=KEY_MAPPING, unused_heads=("model.transformer.ff_out.",)
    )
    return Backbone(model=model, tokenizer=tokenizer, info=info, adapter_key_map=rename_llada_key)
