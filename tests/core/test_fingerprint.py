"""The fingerprint keys vector caches on what the weights are, not on where they lie."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model

from diffemb import DiffEmbedEncoder
from diffemb.fingerprint import WHOLE_FILE_LIMIT, folder_fingerprint

TARGETS = ["q_proj", "v_proj"]


def _describe(folder: Path | str, **options: object) -> str:
    described = DiffEmbedEncoder.describe_pretrained(folder, device="cpu", dtype="float32", **options)
    return str(described["fingerprint"])


def test_copies_and_path_spellings_share_one_fingerprint(
    tiny_dream_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "elsewhere" / "dream-copy"
    shutil.copytree(tiny_dream_folder, copy)
    monkeypatch.chdir(tmp_path)
    relative = os.path.join("elsewhere", "dream-copy")
    assert _describe(tiny_dream_folder) == _describe(copy) == _describe(relative)
    loaded = DiffEmbedEncoder.from_pretrained(relative, device="cpu", dtype="float32")
    assert loaded.fingerprint == _describe(tiny_dream_folder)


def test_changed_weights_change_the_fingerprint(tiny_dream_folder: Path, tmp_path: Path) -> None:
    copy = tmp_path / "dream"
    shutil.copytree(tiny_dream_folder, copy)
    before = _describe(copy)
    weights = sorted(copy.glob("*.safetensors"))[0]
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one flipped byte in the last tensor
    weights.write_bytes(bytes(data))
    assert _describe(copy) != before


def test_an_adapter_retrained_in_place_changes_the_fingerprint(tiny_dream_folder: Path, tmp_path: Path) -> None:
    adapter = tmp_path / "adapter"
    fingerprints = []
    for seed in (0, 1):  # "train" twice into the same folder
        base = DiffEmbedEncoder.from_pretrained(tiny_dream_folder, device="cpu", dtype="float32", shared=False)
        torch.manual_seed(seed)
        config = LoraConfig(r=2, lora_alpha=4, target_modules=TARGETS, init_lora_weights=False)
        get_peft_model(base.model, config).save_pretrained(str(adapter))
        fingerprints.append(_describe(tiny_dream_folder, adapter=adapter))
    assert fingerprints[0] != fingerprints[1] != _describe(tiny_dream_folder)


def test_large_files_are_sampled_not_read_whole(tmp_path: Path) -> None:
    """A 15 GB checkpoint must fingerprint in moments: big files are hashed by size and three samples."""
    big = tmp_path / "model.safetensors"
    with big.open("wb") as handle:
        handle.truncate(WHOLE_FILE_LIMIT * 4)  # sparse: costs no disk
    first = folder_fingerprint(tmp_path)
    with big.open("r+b") as handle:
        handle.seek(WHOLE_FILE_LIMIT * 2 - 2**19)  # inside the middle sample
        handle.write(b"x")
    assert folder_fingerprint(tmp_path) != first
