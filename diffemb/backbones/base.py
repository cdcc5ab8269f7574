"""What every loader returns, and the one place that calls `from_pretrained` for model weights.

A family module has two halves: `describe_*` reads only `config.json` (and a sentence-transformers folder's
small JSON files) and says what the checkpoint is — family defaults, vector size, position limit — so that
settings are checked and `diffemb info` answers before any weight is read; `load_*` then builds the model.
"""

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
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    """Passed through to transformers' `from_pretrained` (e.g. `quantization_config`, `low_cpu_mem_usage`)."""


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint folder is, read from its configuration files alone (no weights)."""

    family: str
    profile: ModelProfile
    dimension: int
    max_positions: int
    """The most tokens one row may hold (the model's position table, less any offset it reserves)."""
    weights_folder: Path
    """The folder holding the transformers checkpoint (a sentence-transformers folder's Transformer module)."""


@dataclass
class Backbone:
    """A loaded model ready to return last hidden states, with its tokenizer and what the checkpoint is."""

    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    info: CheckpointInfo
    explicit_positions: bool = True
    """Whether diffemb passes position ids (rotary decoders: so left padding cannot shift them). Encoders with
    learned absolute positions (RoBERTa counts from padding_idx + 1) number their own."""
    adapter_key_map: Callable[[str], str] = field(default=lambda key: key)
    """Renames weight names of an adapter trained on the checkpoint's own layout to this model's names."""

    @property
    def profile(self) -> ModelProfile:
        return self.info.profile

    @property
    def dimension(self) -> int:
        return self.info.dimension


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
    passed = {**kwargs, **options.model_kwargs}
    with quiet_transformers():
        loaded: Any = model_class.from_pretrained(
            str(folder),
            config=config,
            dtype=options.dtype,
            attn_implementation=options.attn_implementation,
            output_loading_info=True,
            **passed,
        )
    model, info = loaded
    missing = sorted(info.get("missing_keys", []))
    if missing:
        raise ValueError(
            f"{folder} lacks {len(missing)} weights of {model_class.__name__} (e.g. {missing[0]!r}): the checkpoint "
            "is incomplete or not of the family its config.json names"
        )
    if "device_map" not in passed and "quantization_config" not in passed:
        model.to(options.device)
    model.eval()
    model.requires_grad_(False)
    return model


def is_causal_for(attention: Attention) -> bool:
    return attention == "causal"
