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

from diffemb.backbones.base import (
    Backbone,
    CheckpointInfo,
    LoadOptions,
    load_weights,
    quiet_transformers,
)
from diffemb.backbones.tokenizers import load_tokenizer
from diffemb.hub import read_config
from diffemb.profiles import ENCODER, Attention, TextTemplate

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


# RoBERTa-style models number positions from padding_idx + 1, so two rows of their table are never used.
_OFFSET_POSITIONS = frozenset({"roberta", "xlm-roberta", "camembert"})


def is_sentence_transformers_folder(folder: Path) -> bool:
    return (folder / "modules.json").is_file()


def describe_encoder(folder: Path, attention: Attention | None) -> CheckpointInfo:
    if attention == "causal":
        raise ValueError("encoder models are bidirectional; attention='causal' applies to decoder LMs only")
    raw = read_config(folder)
    positions = int(raw.get("max_position_embeddings") or ENCODER.max_length)
    if raw.get("model_type") in _OFFSET_POSITIONS:
        positions -= int(raw.get("pad_token_id") or 1) + 1
    return CheckpointInfo(
        family="encoder",
        profile=ENCODER.with_overrides(max_length=min(positions, 8192)),
        dimension=int(raw["hidden_size"]),
        max_positions=positions,
        weights_folder=folder,
    )


def load_encoder(info: CheckpointInfo, options: LoadOptions) -> Backbone:
    folder = info.weights_folder
    with quiet_transformers():
        config = AutoConfig.from_pretrained(str(folder), trust_remote_code=False)
    tokenizer = load_tokenizer(AutoTokenizer, folder, trust_remote_code=False)  # before the weights: fail fast
    model = load_weights(AutoModel, folder, config, options)  # type: ignore[arg-type]
    return Backbone(model=model, tokenizer=tokenizer, info=info, explicit_positions=False)


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


def describe_sentence_transformers(folder: Path, attention: Attention | None) -> CheckpointInfo:
    """A sentence-transformers folder: its Transformer module described as its own family, then the folder's
    pooling, `max_seq_length`, Normalize module and prompts laid over that family's defaults."""
    from diffemb.backbones import describe_plain

    modules = _read_json_list(folder / "modules.json")
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

    inner = describe_plain(transformer_dir, attention)
    document_prompt = next((prompts[k] for k in _ST_DOCUMENT_PROMPTS if k in prompts), default_prompt)
    max_length = int(st_config.get("max_seq_length") or inner.profile.max_length)
    profile = inner.profile.with_overrides(
        family="sentence-transformers",
        pooling=_pooling_mode(pooling) if pooling else "mean",
        template=TextTemplate(instruction_format="{instruction}", tokenizer_specials=True),
        max_length=min(max_length, inner.max_positions),
        normalize="Normalize" in kinds,
        exclude_instruction=not pooling.get("include_prompt", True),
    )
    # Prompts may legitimately be "" (an explicit "no prompt"), which with_overrides would not set.
    profile = replace(
        profile,
        query_instruction=prompts.get("query", default_prompt) or None,
        document_instruction=document_prompt or None,
    )
    return replace(inner, family="sentence-transformers", profile=profile)


def _read_json_list(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, list):
        raise ValueError(f"{path} is not a list of modules: is it a sentence-transformers folder?")
    return data
