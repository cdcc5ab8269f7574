"""The benchmarked models: where each one's checkpoint is (built once when it is random) and how diffemb
loads it."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffemb import DiffEmbedEncoder
from diffemb.testing.offline_assets import default_cache_dir, minilm_path

from .config import DREAM7B_SHAPE, DREAM7B_TINY_SHAPE, QWEN2_MAX_LENGTH, QWEN2_SHAPE, log


@dataclass
class ModelSpec:
    name: str
    diffemb_path: str
    """Folder diffemb loads."""
    peer_path: str | None
    """Folder sentence-transformers, LlamaIndex and AutoModel load; None: peers are emulated on the same module."""
    max_length: int | None
    """diffemb's `max_length` override and the peers' truncation length (None: the model's own)."""
    device: str
    description: str


def prepare_qwen2(device: str) -> ModelSpec:
    """A Qwen2-shaped Dream-layout checkpoint with seeded random weights, and the same weights as a plain
    `Qwen2Model` folder (`is_causal: false`) that sentence-transformers and AutoModel load. Built once."""
    shape = QWEN2_SHAPE
    root = default_cache_dir() / "bench" / f"qwen2-h{shape['hidden_size']}-l{shape['num_layers']}-v1"
    if not (root / "hf" / "config.json").is_file():
        from diffemb.testing.checkpoints import save_dream_checkpoint

        log(f"building the Qwen2-shaped benchmark model in {root}")
        root.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix="qwen2-bench-", dir=root.parent))
        save_dream_checkpoint(stage / "dream", seed=0, **shape)
        encoder = DiffEmbedEncoder.from_pretrained(stage / "dream", device="cpu", dtype="float32")
        encoder.model.save_pretrained(stage / "hf")
        tokenizer = encoder.backbone.tokenizer
        tokenizer.padding_side = "right"
        tokenizer.save_pretrained(stage / "hf")
        shutil.rmtree(root, ignore_errors=True)
        stage.rename(root)
    hidden, layers, ffn, heads = (shape[k] for k in ("hidden_size", "num_layers", "intermediate_size", "num_heads"))
    return ModelSpec(
        name="qwen2",
        diffemb_path=str(root / "dream"),
        peer_path=str(root / "hf"),
        max_length=QWEN2_MAX_LENGTH,
        device=device,
        description=(
            f"Qwen2-shaped bidirectional model, random weights, Dream layout (hidden {hidden}, {layers} layers, "
            f"FFN {ffn}, {heads} heads, 2 KV heads; the fixture's 600-token BPE), max_length {QWEN2_MAX_LENGTH}"
        ),
    )


def prepare_dream_shaped(name: str, device: str) -> ModelSpec:
    """A Dream-layout checkpoint shaped like Dream-7B (``dream7b``) or a tiny stand-in (``dream7b-tiny``), with
    seeded random weights, written once into the cache and loaded like any checkpoint (the fixture's BPE as
    tokenizer; the embedding keeps Dream-7B's 152064 rows, so memory matches the real model's)."""
    shape = DREAM7B_SHAPE if name == "dream7b" else DREAM7B_TINY_SHAPE
    root = default_cache_dir() / "bench" / f"{name}-h{shape['hidden_size']}-l{shape['num_hidden_layers']}-v1"
    if not (root / "config.json").is_file():
        from diffemb.testing.checkpoints import save_dream_checkpoint

        log(f"building the {name} benchmark checkpoint in {root} (once)")
        root.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f"{name}-bench-", dir=root.parent))
        save_dream_checkpoint(
            stage, seed=0, hidden_size=shape["hidden_size"], num_layers=shape["num_hidden_layers"],
            num_heads=shape["num_attention_heads"], num_kv_heads=shape["num_key_value_heads"],
            intermediate_size=shape["intermediate_size"], vocab_size=shape["vocab_size"],
            shards=8 if name == "dream7b" else 1,
        )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)
        stage.rename(root)
    return ModelSpec(
        name, str(root), None, 4096, device,
        "Dream-7B-shaped Dream-layout checkpoint (hidden {hidden_size}, {num_hidden_layers} layers, FFN "
        "{intermediate_size}, {num_attention_heads}/{num_key_value_heads} heads), seeded random weights, bf16 (fp32 "
        "on CPU), max_length 4096; tokenizer: the fixture BPE".format(**shape),
    )  # fmt: skip


def prepare_model(name: str, device: str) -> ModelSpec:
    if name == "minilm":
        path = str(minilm_path())
        return ModelSpec("minilm", path, path, None, device, "all-MiniLM-L6-v2 (real weights), max_seq_length 256")
    if name == "qwen2":
        return prepare_qwen2(device)
    if name in ("dream7b", "dream7b-tiny"):
        return prepare_dream_shaped(name, device)
    raise ValueError(f"unknown model {name!r}: use minilm, qwen2 or dream7b")


def load_diffemb(spec: ModelSpec, batch_tokens: int | None = None) -> DiffEmbedEncoder:
    options: dict[str, Any] = {"device": spec.device, "batch_tokens": batch_tokens}
    if spec.max_length is not None:
        options["max_length"] = spec.max_length
    return DiffEmbedEncoder.from_pretrained(spec.diffemb_path, **options)


def body_window(encoder: DiffEmbedEncoder) -> int:
    """Body tokens of one document window (model window less the template)."""
    return int(encoder.profile.max_length - encoder.text.frame(None).overhead)
