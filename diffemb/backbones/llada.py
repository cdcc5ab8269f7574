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
    is_causal_for,
    load_weights,
    quiet_transformers,
)
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


def llama_config_from_llada(raw: dict[str, Any]) -> LlamaConfig:
    heads = raw["n_heads"]
    config = LlamaConfig(
        vocab_size=raw.get("embedding_size") or raw["vocab_size"],
        hidden_size=raw["d_model"],
        intermediate_size=raw["mlp_hidden_size"],
        num_hidden_layers=raw["n_layers"],
        num_attention_heads=heads,
        num_key_value_heads=raw.get("n_kv_heads") or heads,
        max_position_embeddings=raw.get("max_sequence_length", 4096),
        rms_norm_eps=raw.get("rms_norm_eps", 1e-5),
        rope_parameters={"rope_type": "default", "rope_theta": raw.get("rope_theta", 500000.0)},
        attention_bias=bool(raw.get("include_bias", False)),
        mlp_bias=bool(raw.get("include_bias", False)),
        tie_word_embeddings=False,
        pad_token_id=raw.get("pad_token_id"),
        bos_token_id=raw.get("bos_token_id"),
        eos_token_id=raw.get("eos_token_id"),
    )
    config.architectures = ["LlamaModel"]
    return config


def describe_llada(folder: Path, attention: Attention | None) -> CheckpointInfo:
    raw = read_config(folder)
    profile = LLADA.with_overrides(attention=attention)
    positions = int(raw.get("max_sequence_length") or profile.max_length)
    return CheckpointInfo(
        family="llada",
        profile=profile.with_overrides(max_length=min(profile.max_length, positions)),
        dimension=int(raw["d_model"]),
        max_positions=positions,
        weights_folder=folder,
    )


def load_llada(info: CheckpointInfo, options: LoadOptions) -> Backbone:
    folder = info.weights_folder
    config = llama_config_from_llada(read_config(folder))
    config.is_causal = is_causal_for(info.profile.attention)
    model = load_weights(LlamaModel, folder, config, options, key_mapping=KEY_MAPPING)
    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
    return Backbone(model=model, tokenizer=tokenizer, info=info, adapter_key_map=rename_llada_key)
