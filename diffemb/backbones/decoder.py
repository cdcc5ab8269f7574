"""Autoregressive decoders (qwen2, llama, mistral, gemma, …): the baselines a diffusion embedder is measured against.

Causal with EOS and last-token pooling by default (the usual AR embedder), or `attention="bidirectional"` with
mean pooling: the paper's LLM2Vec-style baseline, made with the public `config.is_causal = False` switch.
"""

from __future__ import annotations

from pathlib import Path

from transformers import AutoConfig, AutoModel, AutoTokenizer

from diffemb.backbones.base import Backbone, LoadOptions, is_causal_for, load_weights, quiet_transformers
from diffemb.profiles import DECODER_BIDIRECTIONAL, DECODER_CAUSAL


def load_decoder(folder: Path, options: LoadOptions) -> Backbone:
    profile = DECODER_BIDIRECTIONAL if options.attention == "bidirectional" else DECODER_CAUSAL
    config = AutoConfig.from_pretrained(str(folder), trust_remote_code=False)
    config.is_causal = is_causal_for(profile.attention)
    text_config = config.get_text_config()
    text_config.is_causal = config.is_causal
    model = load_weights(AutoModel, folder, config, options)  # type: ignore[arg-type]
    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
    window = getattr(text_config, "max_position_embeddings", None) or profile.max_length
    profile = profile.with_overrides(max_length=min(profile.max_length, int(window)))
    return Backbone(model=model, tokenizer=tokenizer, profile=profile, dimension=int(text_config.hidden_size))
