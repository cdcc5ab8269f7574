"""The resolved settings of one encoder view: defaults applied, every value checked, and their fingerprint.

An encoder is a loaded model plus one `EncoderSettings`. The settings named in `VIEW_OPTIONS` change only how
texts are framed, pooled, split and batched, so `DiffEmbedEncoder.with_settings` makes a new view over the same
weights; the options in `RELOAD_OPTIONS` change the weights themselves and need `from_pretrained`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from typing import Any, get_args

from diffemb.chunking import AGGREGATIONS, ChunkingConfig
from diffemb.profiles import Attention, ModelProfile, Pooling, TextTemplate

FINGERPRINT_VERSION = 2
"""Bumped whenever diffemb changes how vectors are computed, so old caches are not mixed with new ones."""

POOLINGS: tuple[str, ...] = get_args(Pooling)
ATTENTIONS: tuple[str, ...] = get_args(Attention)
PADDING_SIDES = ("right", "left")

VIEW_OPTIONS = (
    "query_instruction",
    "document_instruction",
    "normalize",
    "pooling",
    "template",
    "exclude_instruction",
    "max_length",
    "chunk_size",
    "chunk_overlap",
    "chunk_aggregation",
    "batch_tokens",
    "padding_side",
    "show_progress",
)
"""Options a view may change without reloading weights (`None` restores the default)."""

RELOAD_OPTIONS = (
    "model_name_or_path",
    "revision",
    "adapter",
    "dtype",
    "device",
    "attention",
    "model_kwargs",
    "quantization",
    "local_files_only",
    "token",
    "cache_dir",
)
"""Options that decide which weights are loaded, and how: changing one needs `from_pretrained`."""


@dataclass(frozen=True)
class EncoderSettings:
    """Everything that decides an encoder's vectors or speed, after defaults were applied."""

    model: str
    revision: str | None
    adapter: str | None
    content: str
    """Fingerprint of the checkpoint's (and adapter's) files: what the weights are, wherever they lie."""
    max_positions: int
    profile: ModelProfile
    chunking: ChunkingConfig
    dtype: str
    device: str
    batch_tokens: int
    padding_side: str = "right"
    show_progress: bool = False

    def vector_affecting(self) -> dict[str, Any]:
        """The settings that change vectors (not paths, device placement or batch size, which do not)."""
        return {
            "version": FINGERPRINT_VERSION,
            "content": self.content,
            "profile": asdict(self.profile),
            "chunking": asdict(self.chunking),
            "dtype": self.dtype,
        }

    def describe(self, dimension: int, family: str) -> dict[str, Any]:
        """The settings as plain data (what `diffemb info` prints)."""
        return {
            "model": self.model,
            "adapter": self.adapter,
            "family": family,
            "dimension": dimension,
            "max_positions": self.max_positions,
            "device": self.device,
            "dtype": self.dtype,
            "batch_tokens": self.batch_tokens,
            "fingerprint": self.fingerprint(),
            "profile": asdict(self.profile),
            "chunking": asdict(self.chunking),
        }

    def fingerprint(self) -> str:
        """A stable short hash of `vector_affecting()`: equal fingerprints mean interchangeable vectors."""
        blob = json.dumps(self.vector_affecting(), sort_keys=True, default=str).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()[:16]


def apply_view_options(
    settings: EncoderSettings, base: ModelProfile, default_batch_tokens: int, **options: Any
) -> EncoderSettings:
    """`settings` with the given view options applied and checked; an option given as `None` goes back to its
    default (the checkpoint's profile, its adapter's `diffemb.json`, or diffemb's default)."""
    unknown = sorted(set(options) - set(VIEW_OPTIONS))
    reload = [name for name in unknown if name in RELOAD_OPTIONS]
    if reload:
        raise ValueError(
            f"{', '.join(reload)} decides which weights are loaded and cannot change on a view: call "
            "DiffEmbedEncoder.from_pretrained(...) with the new value (a view changes only "
            f"{', '.join(VIEW_OPTIONS)})"
        )
    if unknown:
        raise TypeError(f"unknown encoder setting(s) {', '.join(unknown)}: use {', '.join(VIEW_OPTIONS)}")
    profile = _profile_with(settings.profile, base, options)
    chunking = settings.chunking
    if {"chunk_size", "chunk_overlap", "chunk_aggregation"} & set(options):
        aggregation = options.get("chunk_aggregation", chunking.aggregation) or "mean"
        chunking = ChunkingConfig(
            _choice("chunk_aggregation", aggregation, AGGREGATIONS),
            _positive("chunk_size", options.get("chunk_size", chunking.size), optional=True),
            _non_negative("chunk_overlap", options.get("chunk_overlap", chunking.overlap)),
        )
    changed: dict[str, Any] = {"profile": profile, "chunking": chunking}
    if "batch_tokens" in options:
        changed["batch_tokens"] = _positive("batch_tokens", options["batch_tokens"], optional=True) or (
            default_batch_tokens
        )
    if "padding_side" in options:
        changed["padding_side"] = _choice("padding_side", options["padding_side"] or "right", PADDING_SIDES)
    if "show_progress" in options:
        changed["show_progress"] = _boolean("show_progress", options["show_progress"] or False)
    result = replace(settings, **changed)
    check_max_length(result.profile.max_length, result.max_positions)
    return result


def _profile_with(current: ModelProfile, base: ModelProfile, options: dict[str, Any]) -> ModelProfile:
    profile = current
    if "template" in options:
        profile = replace(profile, template=_template(options["template"], base.template))
    for name in ("query_instruction", "document_instruction"):
        if name in options:
            value = options[name]
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a string ('' for none) or None, got {type(value).__name__}")
            profile = replace(profile, **{name: getattr(base, name) if value is None else value})  # type: ignore[arg-type]
    if "pooling" in options:
        profile = replace(profile, pooling=_choice("pooling", options["pooling"] or base.pooling, POOLINGS))
    for name in ("normalize", "exclude_instruction"):
        if name in options:
            value = options[name]
            chosen = getattr(base, name) if value is None else _boolean(name, value)
            profile = replace(profile, **{name: chosen})  # type: ignore[arg-type]
    if "max_length" in options:
        value = options["max_length"]
        profile = replace(profile, max_length=base.max_length if value is None else _positive("max_length", value))
    return profile


def _template(value: object, base: TextTemplate) -> TextTemplate:
    if value is None or value is True:
        return base
    if value is False:
        plain = TextTemplate(instruction_format=base.instruction_format, colon_instruction=base.colon_instruction)
        return plain
    if isinstance(value, TextTemplate):
        return value
    raise TypeError(f"template must be True, False or a TextTemplate, got {type(value).__name__}")


def check_max_length(max_length: int, max_positions: int) -> None:
    if max_length > max_positions:
        raise ValueError(
            f"max_length={max_length} is more than this model's {max_positions} positions: use at most "
            f"{max_positions} (longer documents are split into windows anyway)"
        )


def check_attention(value: object) -> Attention | None:
    if value is None:
        return None
    return _choice("attention", value, ATTENTIONS)  # type: ignore[return-value]


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> Any:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(repr(a) for a in allowed)}, got {value!r}")
    return value


def _positive(name: str, value: object, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive whole number of tokens, got {value!r}")
    return value


def _non_negative(name: str, value: object) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be zero or a positive whole number of tokens, got {value!r}")
    return value


def _boolean(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value
