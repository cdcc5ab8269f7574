"""What every loader returns, and the one place that calls `from_pretrained` for model weights."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as transformers_logging

from diffemb.profiles import Attention, ModelProfile


@dataclass(frozen=True)
class LoadOptions:
    device: torch.device
    dtype: torch.dtype
    attn_implementation: str
    attention: Attention | None = None
    """Override of the family's attention; it must be known at load time because it sets `config.is_causal`."""


@dataclass
class Backbone:
    """A loaded model ready to return last hidden states, with its tokenizer and family defaults."""

    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    profile: ModelProfile
    dimension: int
    explicit_positions: bool = True
    """Whether diffemb passes position ids (rotary decoders: so left padding cannot shift them). Encoders with
    learned absolute positions (RoBERTa counts from padding_idx + 1) number their own."""
    adapter_key_map: Callable[[str], str] = field(default=lambda key: key)
    """Renames weight names of an adapter trained on the checkpoint's own layout to this model's names."""


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' loading chatter (weight progress bars, the expected "lm_head UNEXPECTED" report,
    config-type notes); what matters (missing weights) is checked by diffemb and raised as an error."""
    verbosity = transformers_logging.get_verbosity()
    bars = transformers_logging.is_progress_bar_enabled()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(verbosity)
        if bars:
            transformers_logging.enable_progress_bar()


def load_weights(
    model_class: type[PreTrainedModel],
    folder: Path,
    config: PretrainedConfig,
    options: LoadOptions,
    **kwargs: Any,
) -> PreTrainedModel:
    """`model_class.from_pretrained` in eval mode with frozen weights, on the requested device and dtype.

    Loading a base model class (e.g. `Qwen2Model`) from a `*ForCausalLM` checkpoint leaves `lm_head` out:
    transformers reads safetensors lazily, so the unused head is never materialised.
    """
    with quiet_transformers():
        loaded: Any = model_class.from_pretrained(
            str(folder),
            config=config,
            dtype=options.dtype,
            attn_implementation=options.attn_implementation,
            output_loading_info=True,
            **kwargs,
        )
    model, info = loaded
    missing = sorted(info.get("missing_keys", []))
    if missing:
        raise ValueError(
            f"{folder} lacks {len(missing)} weights of {model_class.__name__} (e.g. {missing[0]!r}): the checkpoint "
            "is incomplete or not of the family its config.json names"
        )
    model.to(options.device)
    model.eval()
    model.requires_grad_(False)
    return model


def is_causal_for(attention: Attention) -> bool:
    return attention == "causal"
