"""PEFT LoRA adapters, merged into the backbone at load time.

An adapter may have been trained on the checkpoint's own class (e.g. Dream's remote `DreamModel`, whose weight
names start with `model.`) or on the stock class that diffemb builds (`Qwen2Model`, no prefix). Rather than
trusting PEFT's prefix handling, adapter weight names are matched to the injected LoRA modules by their
trailing path and every LoRA weight must be found, so a mismatched adapter fails loudly instead of silently
leaving the base model unchanged.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import torch


def merge_lora(
    model: torch.nn.Module,
    adapter_folder: Path,
    key_map: Callable[[str], str] = lambda key: key,
) -> torch.nn.Module:
    """The model with the adapter's LoRA deltas merged into its weights (no PEFT wrapper left behind)."""
    from peft import LoraConfig, PeftConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
    from peft.utils import load_peft_weights

    config = PeftConfig.from_pretrained(str(adapter_folder))
    if not isinstance(config, LoraConfig):
        raise ValueError(f"{adapter_folder} holds a {type(config).__name__}; diffemb merges LoRA adapters only")
    config.inference_mode = True
    config.base_model_name_or_path = None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)  # transformers' is_gradient_checkpointing notice
        peft_model = get_peft_model(model, config)  # type: ignore[arg-type]
    expected = set(get_peft_model_state_dict(peft_model))
    loaded = load_peft_weights(str(adapter_folder), device=str(next(model.parameters()).device))
    renamed = {_match(key_map(key), expected, adapter_folder): value for key, value in loaded.items()}
    missing = expected - set(renamed)
    if missing:
        raise ValueError(f"adapter {adapter_folder} lacks {len(missing)} LoRA weights, e.g. {sorted(missing)[0]}")
    set_peft_model_state_dict(peft_model, renamed)
    merged = peft_model.merge_and_unload()
    merged.eval()
    merged.requires_grad_(False)
    return merged


def _match(key: str, expected: set[str], folder: Path) -> str:
    """The expected LoRA weight name that `key` names, comparing from the module path's end."""
    if key in expected:
        return key
    parts = key.split(".")
    for start in range(len(parts)):
        tail = ".".join(parts[start:])
        hits = [name for name in expected if name == tail or name.endswith("." + tail)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            break
    raise ValueError(f"adapter {folder} has weight {key!r} that matches no module of this model")
