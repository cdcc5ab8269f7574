"""A PEFT LoRA adapter made in the test changes the vectors, loads from a folder and merges."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file, save_file

from diffemb import DiffEmbedEncoder

TEXTS = ["the cat reads a red book", "a young doctor visits the museum on Sunday"]
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _adapter(folder: Path, out: Path) -> tuple[Path, np.ndarray]:
    """Save a random (non-zero) LoRA adapter for the Dream backbone and return its expected vectors."""
    base = DiffEmbedEncoder.from_pretrained(folder, device="cpu", dtype="float32", shared=False)
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.05, target_modules=TARGETS, init_lora_weights=False)
    peft_model = get_peft_model(base.model, config)
    peft_model.save_pretrained(str(out))
    merged = peft_model.merge_and_unload()
    expected = base.encode_documents(TEXTS)
    del merged
    return out, expected


def test_adapter_changes_vectors_and_merges(tiny_dream_folder: Path, tmp_path: Path) -> None:
    base = DiffEmbedEncoder.from_pretrained(tiny_dream_folder, device="cpu", dtype="float32")
    adapter, expected = _adapter(tiny_dream_folder, tmp_path / "adapter")
    tuned = DiffEmbedEncoder.from_pretrained(tiny_dream_folder, adapter=adapter, device="cpu", dtype="float32")
    vectors = tuned.encode_documents(TEXTS)
    assert not np.allclose(vectors, base.encode_documents(TEXTS), atol=1e-3)
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    assert not any("lora" in name for name, _ in tuned.model.named_parameters())
    assert tuned.fingerprint != base.fingerprint


def test_adapter_trained_on_the_remote_dream_class_loads(tiny_dream_folder: Path, tmp_path: Path) -> None:
    """An adapter saved from Dream's own `DreamModel` names its weights with an extra `model.` prefix."""
    adapter, expected = _adapter(tiny_dream_folder, tmp_path / "adapter")
    weights = load_file(adapter / "adapter_model.safetensors")
    renamed = {k.replace("base_model.model.", "base_model.model.model.", 1): v for k, v in weights.items()}
    save_file(renamed, adapter / "adapter_model.safetensors")
    tuned = DiffEmbedEncoder.from_pretrained(tiny_dream_folder, adapter=adapter, device="cpu", dtype="float32")
    np.testing.assert_allclose(tuned.encode_documents(TEXTS), expected, atol=1e-5)


def test_adapter_for_another_model_fails_loudly(
    tiny_dream_folder: Path, tiny_bert_folder: Path, tmp_path: Path
) -> None:
    adapter, _ = _adapter(tiny_dream_folder, tmp_path / "adapter")
    with pytest.raises(Exception, match=r"adapter|target|module"):
        DiffEmbedEncoder.from_pretrained(tiny_bert_folder, adapter=adapter, device="cpu")
