"""Seeded weights for the test checkpoints: every tensor drawn from a generator seeded by (seed, tensor name)."""

from __future__ import annotations

import zlib
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import PretrainedConfig, PreTrainedModel

from diffemb.testing.tiny_tokenizers import write_json


def _init_std(name: str, shape: torch.Size) -> float:
    if "embed" in name or name.endswith("wte.weight"):
        return 1.0
    if len(shape) == 2:
        return float(shape[1]) ** -0.5
    return 0.1  # biases: non-zero, so a loader that drops them changes the outputs


def seeded_state_dict(
    model_cls: type[PreTrainedModel], config: PretrainedConfig, *, seed: int = 0, dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    """Random weights for ``model_cls(config)``, each tensor seeded by ``(seed, name)``.

    Unit-variance embeddings and 1/sqrt(fan_in) projections (not HF's 0.02) make every layer change the hidden
    states visibly and keep attention far from uniform, so masking and pooling bugs show up in outputs.
    Norm scales are ones and shifts zeros, as at initialisation.
    """
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in model_cls(config).state_dict().items()}
    out: dict[str, torch.Tensor] = {}
    for name, shape in shapes.items():
        if "norm" in name.lower():
            out[name] = (torch.ones(shape) if name.endswith("weight") else torch.zeros(shape)).to(dtype)
            continue
        gen = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
        out[name] = (torch.randn(shape, generator=gen) * _init_std(name, shape)).to(dtype)
    return out


def save_safetensors(path: Path, tensors: dict[str, torch.Tensor], shards: int) -> None:
    if shards <= 1:
        save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})
        return
    names = list(tensors)
    weight_map: dict[str, str] = {}
    for k in range(shards):
        part = names[k * len(names) // shards : (k + 1) * len(names) // shards]
        fname = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        save_file({n: tensors[n] for n in part}, str(path / fname), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, fname))
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    write_json(path / "model.safetensors.index.json", {"metadata": {"total_size": total}, "weight_map": weight_map})


def save_model(
    path: Path, model_cls: type[PreTrainedModel], config: PretrainedConfig, seed: int, dtype: torch.dtype
) -> None:
    model = model_cls(config)
    model.load_state_dict(seeded_state_dict(model_cls, config, seed=seed))
    torch.nn.Module.to(model, dtype=dtype)  # the plain Module call: transformers' typed wrapper confuses mypy
    model.save_pretrained(path)
