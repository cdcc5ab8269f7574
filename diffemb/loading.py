"""From a model name and options to loaded weights, shared by every view that asks for the same weights.

`prepare` checks every option and reads only configuration files (`config.json`, an adapter's `diffemb.json`),
so bad settings fail before gigabytes of weights are read and `diffemb info` answers without weights.
`load_model` keeps one `LoadedModel` per distinct set of weights in a weak cache: two encoders that differ only
in view settings share one copy, and the copy is freed when the last encoder using it is gone.
"""

from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from diffemb.adapter_settings import ADAPTER_SETTINGS_FILE as ADAPTER_SETTINGS_FILE  # re-exported for diffemb.encoder
from diffemb.adapter_settings import read_adapter_settings
from diffemb.backbones import Backbone, CheckpointInfo, LoadOptions, describe_checkpoint, load_backbone
from diffemb.chunking import ChunkingConfig
from diffemb.device import attention_implementation, default_batch_tokens, resolve_devices, resolve_dtype
from diffemb.fingerprint import folder_fingerprint
from diffemb.hub import resolve_folder
from diffemb.lora import merge_lora
from diffemb.profiles import ModelProfile
from diffemb.quantization import check_quantization, quantize_model
from diffemb.replicas import ReplicaPool
from diffemb.settings import (
    EncoderSettings,
    apply_view_options,
    check_attention,
    check_max_length,
)


@dataclass(frozen=True)
class LoadRequest:
    """Everything that decides the loaded weights, and nothing else (this is the weight cache's key)."""

    content: str
    folder: Path
    adapter_folder: Path | None
    dtype: torch.dtype
    devices: tuple[torch.device, ...]
    attention: str | None
    model_kwargs: tuple[tuple[str, str], ...] = ()
    quantization: str | None = None
    raw_model_kwargs: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Prepared:
    """What `prepare` found: the load request, the checkpoint, and the profile its views start from."""

    request: LoadRequest
    info: CheckpointInfo
    base_profile: ModelProfile
    """The family's profile with the adapter's training-time settings applied: what `None` options restore."""


class LoadedModel:
    """One copy of a checkpoint's weights (one replica per device) and what all views of it share."""

    def __init__(self, prepared: Prepared, backbone: Backbone) -> None:
        request = prepared.request
        self.request = request
        self.info = prepared.info
        self.base_profile = prepared.base_profile
        self.backbone = backbone
        tokenizer = backbone.tokenizer
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pool = ReplicaPool.build(
            backbone.model, request.devices, pad_token_id=int(pad or 0), explicit_positions=backbone.explicit_positions
        )
        n_params = sum(p.numel() for p in backbone.model.parameters())
        self.default_batch_tokens = max(int(default_batch_tokens(request.devices[0], n_params, self.info.dimension)), 1)


def prepare(
    model_name_or_path: str | os.PathLike[str],
    *,
    adapter: str | os.PathLike[str] | None,
    revision: str | None,
    local_files_only: bool | None,
    token: str | bool | None,
    cache_dir: str | None,
    device: str | torch.device | list[str],
    dtype: str | torch.dtype,
    attention: str | None,
    model_kwargs: dict[str, Any] | None,
    quantization: str | None = None,
) -> Prepared:
    """Resolve and check everything that decides the weights, reading configuration files only."""
    attention = check_attention(attention)
    devices = tuple(resolve_devices(device))
    torch_dtype = resolve_dtype(dtype, devices[0])
    if model_kwargs is not None and not isinstance(model_kwargs, dict):
        raise TypeError(f"model_kwargs must be a dict of from_pretrained keyword arguments, got {model_kwargs!r}")
    quantization = check_quantization(quantization, devices, model_kwargs)
    folder = resolve_folder(
        model_name_or_path, revision=revision, local_files_only=local_files_only, token=token, cache_dir=cache_dir
    )
    adapter_folder = None
    trained: dict[str, Any] = {}
    content = folder_fingerprint(folder)
    if adapter is not None:
        adapter_folder = resolve_folder(adapter, local_files_only=local_files_only, token=token, cache_dir=cache_dir)
        trained = read_adapter_settings(adapter_folder)
        content = f"{content}+{folder_fingerprint(adapter_folder)}"
    if quantization is not None:  # quantised weights give (slightly) different vectors
        content = f"{content}+{quantization}"
    chosen_attention = attention or trained.pop("attention", None)
    trained.pop("attention", None)
    info = describe_checkpoint(folder, chosen_attention)
    base = replace(info.profile, **trained)
    kwargs = dict(model_kwargs or {})
    request = LoadRequest(
        content=content,
        folder=folder.resolve(),
        adapter_folder=None if adapter_folder is None else adapter_folder.resolve(),
        dtype=torch_dtype,
        devices=devices,
        attention=chosen_attention,
        model_kwargs=tuple(sorted((key, repr(value)) for key, value in kwargs.items())),
        quantization=quantization,
        raw_model_kwargs=kwargs,
    )
    return Prepared(request, info, base)


def initial_settings(
    prepared: Prepared,
    model_name_or_path: str | os.PathLike[str],
    revision: str | None,
    adapter: str | os.PathLike[str] | None,
    view_options: dict[str, Any],
) -> EncoderSettings:
    """The first view's settings: the base profile with the given view options applied and checked.
    `batch_tokens` stays a placeholder (1) unless given: its default is sized from the loaded model."""
    request = prepared.request
    first = EncoderSettings(
        model=str(model_name_or_path),
        revision=revision,
        adapter=None if adapter is None else str(adapter),
        content=request.content,
        max_positions=prepared.info.max_positions,
        profile=prepared.base_profile,
        chunking=ChunkingConfig(),
        dtype=str(request.dtype).removeprefix("torch."),
        device=",".join(str(d) for d in request.devices),
        batch_tokens=1,
    )
    check_max_length(first.profile.max_length, first.max_positions)
    given = {name: value for name, value in view_options.items() if value is not None}
    return apply_view_options(first, prepared.base_profile, 1, **given)


_CACHE: dict[LoadRequest, weakref.ref[LoadedModel]] = {}
_GUARD = threading.Lock()


def load_model(prepared: Prepared, shared: bool = True) -> LoadedModel:
    """The loaded weights for `prepared`: the live copy when one exists (and `shared`), else a new one."""
    request = prepared.request
    if not shared:
        return _load(prepared)
    with _GUARD:
        alive = _CACHE.get(request)
        loaded = alive() if alive is not None else None
        if loaded is None:
            loaded = _load(prepared)
            _CACHE[request] = weakref.ref(loaded, lambda _ref, key=request: _forget(key))  # type: ignore[misc]
        return loaded


def _forget(key: LoadRequest) -> None:
    alive = _CACHE.get(key)
    if alive is not None and alive() is None:
        _CACHE.pop(key, None)


def loaded_models() -> int:
    """How many loaded models are alive in this process (for tests and `diffemb serve`'s health)."""
    return sum(1 for ref in list(_CACHE.values()) if ref() is not None)


def _load(prepared: Prepared) -> LoadedModel:
    request = prepared.request
    options = LoadOptions(
        device=torch.device("cpu") if request.quantization else request.devices[0],  # quantised after any merge
        dtype=request.dtype,
        attn_implementation=attention_implementation(request.devices[0], request.dtype),
        attention=request.attention,  # type: ignore[arg-type]
        model_kwargs=request.raw_model_kwargs,
    )
    backbone = load_backbone(prepared.info, options)
    if request.adapter_folder is not None:
        backbone.model = merge_lora(backbone.model, request.adapter_folder, backbone.adapter_key_map)
    if request.quantization is not None:
        backbone.model = quantize_model(backbone.model, request.quantization, request.devices[0], request.dtype)
    return LoadedModel(prepared, backbone)
