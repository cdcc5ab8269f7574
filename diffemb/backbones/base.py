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
from typing import Any, TypeVar

import torch
from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
from transformers.utils import logging as transformers_logging

from diffemb.profiles import Attention, ModelProfile

ConfigT = TypeVar("ConfigT", bound=PretrainedConfig)


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


def capped_info(
    family: str, profile: ModelProfile, dimension: int, max_positions: int, folder: Path
) -> CheckpointInfo:
    """A checkpoint's description, its family's default `max_length` capped at the model's positions."""
    return CheckpointInfo(
        family=family,
        profile=profile.with_overrides(max_length=min(profile.max_length, max_positions)),
        dimension=dimension,
        max_positions=max_positions,
        weights_folder=folder,
    )


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


# Heads of pre-training checkpoints that a base-model class (what diffemb runs) legitimately leaves out: the
# causal LM head, and the masked-LM / next-sentence / replaced-token heads that encoder checkpoints on the hub
# carry (BERT `cls.*`, DistilBERT `vocab_*`, ALBERT `predictions.*` and `sop_classifier.*`, ELECTRA
# `discriminator_predictions.*` and `generator_*`, DeBERTa `lm_predictions.*` and `mask_predictions.*`, ModernBERT
# `head.*` and `decoder.*`).
PRETRAINING_HEADS: tuple[str, ...] = (
    "lm_head.", "cls.", "vocab_transform.", "vocab_layer_norm.", "vocab_projector.", "predictions.",
    "sop_classifier.", "discriminator_predictions.", "generator_", "lm_predictions.", "mask_predictions.",
    "head.", "decoder.",
)  # fmt: skip


def load_weights(
    model_class: type[PreTrainedModel],
    folder: Path,
    config: PretrainedConfig,
    options: LoadOptions,
    *,
    unused_heads: tuple[str, ...] = PRETRAINING_HEADS,
    **kwargs: Any,
) -> PreTrainedModel:
    """`model_class.from_pretrained` in eval mode with frozen weights, on the requested device and dtype.

    Loading a base model class (e.g. `Qwen2Model`) from a `*ForCausalLM` checkpoint leaves `lm_head` out:
    transformers reads safetensors lazily, so the unused head is never materialised. Every other weight of the
    checkpoint must find its place: a weight missing from the checkpoint, or one in it that the model has no
    place for (other than a name starting with one of `unused_heads`), is a ValueError, because either means the
    config does not describe the weights (a layer count, a bias, a renamed module) and the vectors would be wrong.
    """
    # A user's model_kwargs win over diffemb's choices (e.g. attn_implementation="eager").
    chosen = {"dtype": options.dtype, "attn_implementation": options.attn_implementation}
    passed = {**chosen, **kwargs, **options.model_kwargs}
    with quiet_transformers():
        loaded: Any = model_class.from_pretrained(str(folder), config=config, output_loading_info=True, **passed)
    model, info = loaded
    missing = sorted(info.get("missing_keys", []))
    if missing:
        raise ValueError(
            f"{folder} lacks {len(missing)} weights of {model_class.__name__} (e.g. {missing[0]!r}): the checkpoint "
            "is incomplete or not of the family its config.json names"
        )
    unexpected = sorted(key for key in info.get("unexpected_keys", []) if not key.startswith(unused_heads))
    if unexpected:
        shown = ", ".join(repr(key) for key in unexpected[:3]) + (", …" if len(unexpected) > 3 else "")
        raise ValueError(
            f"{folder} holds {len(unexpected)} weights that {model_class.__name__} built from its config.json has "
            f"no place for ({shown}): the config does not describe these weights (layer count, biases, module "
            "names) or the checkpoint is not of the family its config.json names; diffemb does not drop weights"
        )
    if "device_map" not in passed and "quantization_config" not in passed:
        model.to(options.device)
    model.eval()
    model.requires_grad_(False)
    return model


def rope_parameters(raw: dict[str, Any], default_theta: float) -> dict[str, Any]:
    """transformers' `rope_parameters` from a remote-code config.json: `rope_theta` (the family's upstream default
    when absent) and `rope_scaling` (legacy `type` read as `rope_type`), or the `rope_parameters` a transformers-5
    save wrote. A scaling transformers does not implement is a ValueError listing those it does."""
    given = raw.get("rope_parameters")
    if isinstance(given, dict):
        params = dict(given)
    else:
        scaling = raw.get("rope_scaling")
        if scaling is not None and not isinstance(scaling, dict):
            raise ValueError(f"config.json's rope_scaling must be an object or null, got {scaling!r}")
        params = {key: value for key, value in (scaling or {}).items() if key != "type"}
        params["rope_type"] = (scaling or {}).get("rope_type", (scaling or {}).get("type", "default"))
        theta = raw.get("rope_theta")
        params["rope_theta"] = default_theta if theta is None else float(theta)
    supported = ("default", *ROPE_INIT_FUNCTIONS)
    if params.get("rope_type", "default") not in supported:
        raise ValueError(
            f"config.json asks for rotary scaling {params.get('rope_type')!r}, which transformers does not implement "
            f"(it knows {', '.join(supported)}): fix rope_scaling or use another checkpoint"
        )
    return params


def build_config(
    config_class: Callable[..., ConfigT], fields: dict[str, Any], rope: dict[str, Any], **extra: Any
) -> ConfigT:
    """`config_class(**fields, rope_parameters=rope, **extra)`, with transformers' check of the rotary settings
    (e.g. `linear` without `factor`) raised as a ValueError that names config.json."""
    try:
        return config_class(**fields, rope_parameters=rope, **extra)
    except KeyError as error:
        raise ValueError(f"config.json's rotary settings {rope} are incomplete: {error.args[0]}") from error


def is_causal_for(attention: Attention) -> bool:
    return attention == "causal"
