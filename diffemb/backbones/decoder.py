"""Autoregressive decoders (qwen2, llama, mistral, gemma, …): the baselines a diffusion embedder is measured against.

Causal with EOS and last-token pooling by default (the usual AR embedder), or `attention="bidirectional"` with
mean pooling: the paper's LLM2Vec-style baseline, made with the public `config.is_causal = False` switch.
"""

from __future__ import annotations

from pathlib import Path

from transformers import AutoConfig, AutoModel, AutoTokenizer, PretrainedConfig

from diffemb.backbones.base import (
    Backbone,
    CheckpointInfo,
    LoadOptions,
    capped_info,
    is_causal_for,
    load_weights,
    quiet_transformers,
)
from diffemb.backbones.tokenizers import load_tokenizer
from diffemb.profiles import DECODER_BIDIRECTIONAL, DECODER_CAUSAL, Attention


def _config(folder: Path) -> PretrainedConfig:
    with quiet_transformers():
        return AutoConfig.from_pretrained(str(folder), trust_remote_code=False)


def describe_decoder(folder: Path, attention: Attention | None) -> CheckpointInfo:
    profile = DECODER_BIDIRECTIONAL if attention == "bidirectional" else DECODER_CAUSAL
    text_config = _config(folder).get_text_config()
    positions = int(getattr(text_config, "max_position_embeddings", None) or profile.max_length)
    return capped_info("decoder", profile, int(text_config.hidden_size), positions, folder)


def load_decoder(info: CheckpointInfo, options: LoadOptions) -> Backbone:
    folder = info.weights_folder
    config = _config(folder)
    config.is_causal = is_causal_for(info.profile.attention)
    config.get_text_config().is_causal = config.is_causal
    tokenizer = load_tokenizer(AutoTokenizer, folder, trust_remote_code=False)  # before the weights: fail fast
    model = load_weights(AutoModel, folder, config, options)  # type: ignore[arg-type]
    return Backbone(model=model, tokenizer=tokenizer, info=info)
