"""Quantised weights: int8 runs on the CPU with vectors that agree with full precision; what cannot run says so."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model

from diffemb import DiffEmbedEncoder
from diffemb.quantization import weight_bytes

TEXTS = ["the cat reads a red book", "a young doctor visits the museum on Sunday", "old farmer repairs window"]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_int8_on_cpu_agrees_with_full_precision(tiny_dream_folder: Path) -> None:
    full = DiffEmbedEncoder.from_pretrained(tiny_dream_folder, device="cpu", dtype="float32")
    int8 = DiffEmbedEncoder.from_pretrained(tiny_dream_folder, device="cpu", dtype="float32", quantization="int8")
    assert int8.model is not full.model  # a different set of weights, cached under its own key
    assert _cosines(int8.encode_documents(TEXTS), full.encode_documents(TEXTS)).min() > 0.99
    assert weight_bytes(int8.model) < 0.7 * weight_bytes(full.model)
    assert int8.fingerprint != full.fingerprint  # cached vectors of one are not served for the other
    assert int8.with_settings(max_length=32).model is int8.model


def test_a_lora_adapter_is_merged_before_quantising(tiny_dream_folder: Path, tmp_path: Path) -> None:
    base = DiffEmbedEncoder.from_pretrained(tiny_dream_folder, device="cpu", dtype="float32", shared=False)
    torch.manual_seed(0)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    config = LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=False)
    get_peft_model(base.model, config).save_pretrained(str(tmp_path / "adapter"))
    options = {"adapter": tmp_path / "adapter", "device": "cpu", "dtype": "float32"}
    tuned = DiffEmbedEncoder.from_pretrained(tiny_dream_folder, **options).encode_documents(TEXTS)  # type: ignore[arg-type]
    tuned_int8 = DiffEmbedEncoder.from_pretrained(tiny_dream_folder, quantization="int8", **options)  # type: ignore[arg-type]
    untuned_int8 = DiffEmbedEncoder.from_pretrained(tiny_dream_folder, device="cpu", quantization="int8")
    assert _cosines(tuned_int8.encode_documents(TEXTS), tuned).min() > 0.99
    assert not any("lora" in name for name, _ in tuned_int8.model.named_parameters())
    assert (
        _cosines(untuned_int8.encode_documents(TEXTS), tuned).min()
        < _cosines(tuned_int8.encode_documents(TEXTS), tuned).min()
    )


def test_what_cannot_run_is_a_clear_error(tiny_dream_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="'nf4' needs a CUDA GPU"):
        DiffEmbedEncoder.from_pretrained(tiny_dream_folder, device="cpu", quantization="nf4")
    with pytest.raises(ValueError, match="quantization must be one of 'int8', 'nf4'"):
        DiffEmbedEncoder.from_pretrained(tiny_dream_folder, device="cpu", quantization="int4")
    with pytest.raises(ValueError, match="give one"):
        DiffEmbedEncoder.from_pretrained(
            tiny_dream_folder, device="cpu", quantization="int8", model_kwargs={"quantization_config": {}}
        )
    monkeypatch.setitem(sys.modules, "torchao.quantization", None)  # as if torchao were not installed
    with pytest.raises(ImportError, match=r'pip install "diffemb\[quant\]"'):
        DiffEmbedEncoder.from_pretrained(tiny_dream_folder, device="cpu", quantization="int8")


def test_model_kwargs_reach_transformers(tiny_dream_folder: Path) -> None:
    encoder = DiffEmbedEncoder.from_pretrained(
        tiny_dream_folder, device="cpu", dtype="float32", model_kwargs={"attn_implementation": "eager"}, shared=False
    )
    config: Any = encoder.model.config
    assert config._attn_implementation == "eager"
