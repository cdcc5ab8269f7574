"""Dream (Dream-org/Dream-v0-*-7B): a Qwen2.5-shaped network trained as a diffusion LM.

Its checkpoint names the remote-code class `DreamModel`, which does not import on transformers 5, but the
weights carry `Qwen2ForCausalLM`'s names. So the config's Qwen2 fields build a stock `Qwen2Model` with
`is_causal = False`, and the tokenizer (Qwen2's byte-level BPE, shipped as vocab.json + merges.txt under the
remote class name `DreamTokenizer`) is loaded with the stock `Qwen2Tokenizer`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import Qwen2Config, Qwen2Model, Qwen2Tokenizer

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
from diffemb.profiles import DREAM, Attention

_QWEN2_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "hidden_act",
    "max_position_embeddings",
    "rms_norm_eps",
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
)


# What the upstream `DreamConfig` assumes when config.json leaves a field out (Dream-org's configuration_dream.py).
DREAM_ROPE_THETA = 10000.0


def qwen2_config_from_dream(raw: dict[str, Any]) -> Qwen2Config:
    """The stock `Qwen2Config` that computes what Dream's config.json describes (q, k, v biases included, as in
    every Qwen2 attention); a field Qwen2 cannot honour is a ValueError rather than a silently different model."""
    if raw.get("use_sliding_window"):
        raise ValueError(
            "this Dream config.json sets use_sliding_window: true; diffemb runs full bidirectional attention "
            "only (the published Dream checkpoints have it off): set it to false or use another checkpoint"
        )
    fields = {key: raw[key] for key in _QWEN2_FIELDS if key in raw and raw[key] is not None}
    rope = rope_parameters(raw, DREAM_ROPE_THETA)
    config = build_config(Qwen2Config, fields, rope, tie_word_embeddings=False, use_sliding_window=False)
    config.architectures = ["Qwen2ForCausalLM"]
    return config


def describe_dream(folder: Path, attention: Attention | None) -> CheckpointInfo:
    raw = read_config(folder)
    profile = DREAM.with_overrides(attention=attention)
    positions = int(raw.get("max_position_embeddings") or profile.max_length)
    return capped_info("dream", profile, int(raw["hidden_size"]), positions, folder)


def load_dream(info: CheckpointInfo, options: LoadOptions) -> Backbone:
    folder = info.weights_folder
    config = qwen2_config_from_dream(read_config(folder))
    config.is_causal = is_causal_for(info.profile.attention)
    tokenizer = load_tokenizer(Qwen2Tokenizer, folder)  # before the weights: a damaged file fails fast
    model = load_weights(Qwen2Model, folder, config, options, unused_heads=("lm_head.",))
    return Backbone(model=model, tokenizer=tokenizer, info=info)
