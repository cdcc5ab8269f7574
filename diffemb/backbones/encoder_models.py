"""Bidirectional encoders (BERT family) and sentence-transformers folders.

A sentence-transformers folder (one with `modules.json`) is read for what decides its vectors: the pooling
mode and whether prompts are pooled, `max_seq_length`, the Normalize module and the saved prompts. The model
then runs through diffemb's own batching, so it embeds exactly as sentence-transformers would, only faster.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from transformers import AutoConfig, AutoModel, AutoTokenizer

from diffemb.backbones.base import Backbone, LoadOptions, load_weights, quiet_transformers
from diffemb.hub import read_config
from diffemb.profiles import ENCODER, TextTemplate

ENCODER_MODEL_TYPES = frozenset(
    {
        "bert",
        "roberta",
        "xlm-roberta",
        "modernbert",
        "distilbert",
        "electra",
        "deberta",
        "deberta-v2",
        "mpnet",
        "camembert",
        "albert",
    }
)

_ST_POOLING = {"mean": "mean", "cls": "cls", "lasttoken": "last"}
_ST_DOCUMENT_PROMPTS = ("document", "passage", "corpus")


def is_sentence_transformers_folder(folder: Path) -> bool:
    return (folder / "modules.json").is_file()


def load_encoder(folder: Path, options: LoadOptions) -> Backbone:
    if options.attention == "causal":
        raise ValueError("encoder models are bidirectional; attention='causal' applies to decoder LMs only")
    config = AutoConfig.from_pretrained(str(folder), trust_remote_code=False)
    model = load_weights(AutoModel, folder, config, options)  # type: ignore[arg-type]
    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
    window = min(int(getattr(config, "max_position_embeddings", 512)), 8192)
    profile = ENCODER.with_overrides(max_length=window)
    return Backbone(
        model=model,
        tokenizer=tokenizer,
        profile=profile,
        dimension=int(config.hidden_size),
        explicit_positions=False,
    )


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


def _pooling_mode(config: dict[str, Any]) -> str:
    """The pooling mode from either the sentence-transformers 6 key or the older `pooling_mode_*` flags."""
    mode = config.get("pooling_mode")
    if mode is None:
        legacy = [key[len("pooling_mode_") :] for key, on in config.items() if key.startswith("pooling_mode_") and on]
        mode = legacy[0] if len(legacy) == 1 else legacy
    if isinstance(mode, list):
        mode = mode[0] if len(mode) == 1 else "+".join(mode)
    names = {"cls_token": "cls", "mean_tokens": "mean", "max_tokens": "max", "lasttoken": "lasttoken"}
    mode = names.get(str(mode), str(mode))
    if mode not in _ST_POOLING:
        raise ValueError(
            f"sentence-transformers pooling mode {mode!r} is not supported by diffemb (supported: "
            f"{', '.join(_ST_POOLING)}); load this model with sentence-transformers itself"
        )
    return _ST_POOLING[mode]


def load_sentence_transformers(folder: Path, options: LoadOptions) -> Backbone:
    with (folder / "modules.json").open(encoding="utf-8") as handle:
        modules = json.load(handle)
    kinds = {str(module["type"]).rsplit(".", 1)[-1]: module for module in modules}
    unsupported = set(kinds) - {"Transformer", "Pooling", "Normalize"}
    if "Transformer" not in kinds or unsupported:
        raise ValueError(
            f"{folder / 'modules.json'} has modules {sorted(kinds)}; diffemb reads Transformer, Pooling and "
            "Normalize folders only: load this model with sentence-transformers itself"
        )
    transformer_dir = folder / kinds["Transformer"].get("path", "")
    pooling = _read_json(folder / kinds["Pooling"]["path"] / "config.json") if "Pooling" in kinds else {}
    st_config = _read_json(transformer_dir / "sentence_bert_config.json")
    settings = _read_json(folder / "config_sentence_transformers.json")
    prompts: dict[str, str] = settings.get("prompts") or {}
    default_prompt = prompts.get(settings.get("default_prompt_name") or "")

    model_type = str(read_config(transformer_dir).get("model_type", ""))
    if model_type in ENCODER_MODEL_TYPES:
        backbone = load_encoder(transformer_dir, options)
    else:
        from diffemb.backbones.decoder import load_decoder

        backbone = load_decoder(transformer_dir, options)
    document_prompt = next((prompts[k] for k in _ST_DOCUMENT_PROMPTS if k in prompts), default_prompt)
    backbone.profile = backbone.profile.with_overrides(
        family="sentence-transformers",
        pooling=_pooling_mode(pooling) if pooling else "mean",
        template=TextTemplate(instruction_format="{instruction}", tokenizer_specials=True),
        max_length=int(st_config.get("max_seq_length") or backbone.profile.max_length),
        normalize="Normalize" in kinds,
        exclude_instruction=not pooling.get("include_prompt", True),
    )
    # Prompts may legitimately be "" (an explicit "no prompt"), which with_overrides would not set.
    backbone.profile = replace(
        backbone.profile,
        query_instruction=prompts.get("query", default_prompt) or None,
        document_instruction=document_prompt or None,
    )
    return backbone
