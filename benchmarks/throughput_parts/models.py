"""The benchmarked models: where each one's checkpoint is (built once when it is random) and how diffemb
loads it."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from diffemb import DiffEmbedEncoder
from diffemb.testing.offline_assets import default_cache_dir, minilm_path

from .config import DREAM7B_SHAPE, DREAM7B_TINY_SHAPE, QWEN2_MAX_LENGTH, QWEN2_SHAPE, log


@dataclass
class ModelSpec:
    name: str
    diffemb_path: str | None
    """Folder diffemb loads (None: the encoder is built in memory, see `build_dream7b`)."""
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


def prepare_model(name: str, device: str) -> ModelSpec:
    if name == "minilm":
        path = str(minilm_path())
        return ModelSpec("minilm", path, path, None, device, "all-MiniLM-L6-v2 (real weights), max_seq_length 256")
    if name == "qwen2":
        return prepare_qwen2(device)
    if name in ("dream7b", "dream7b-tiny"):
        shape = DREAM7B_SHAPE if name == "dream7b" else DREAM7B_TINY_SHAPE
        return ModelSpec(
            name, None, None, 4096, device,
            "Dream-7B-shaped Qwen2Model (hidden {hidden_size}, {num_hidden_layers} layers, FFN {intermediate_size}, "
            "{num_attention_heads}/{num_key_value_heads} heads), random weights, bf16 (fp32 on CPU), max_length 4096; "
            "tokenizer: the fixture BPE".format(**shape),
        )  # fmt: skip
    raise ValueError(f"unknown model {name!r}: use minilm, qwen2 or dream7b")


def build_dream7b(spec: ModelSpec, batch_tokens: int | None = None) -> DiffEmbedEncoder:
    """A Dream-7B-shaped encoder with random weights, made directly on the device (no checkpoint on disk)."""
    from transformers import Qwen2Config, Qwen2Model, Qwen2Tokenizer

    from diffemb.backbones.base import Backbone
    from diffemb.chunking import ChunkingConfig
    from diffemb.device import attention_implementation, default_batch_tokens, resolve_dtype
    from diffemb.profiles import DREAM
    from diffemb.settings import EncoderSettings

    device = torch.device(spec.device)
    dtype = resolve_dtype("auto", device)
    shape = DREAM7B_SHAPE if spec.name == "dream7b" else DREAM7B_TINY_SHAPE
    config = Qwen2Config(
        **shape, max_position_embeddings=131072, rms_norm_eps=1e-6, tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, use_sliding_window=False,
    )  # fmt: skip
    config.is_causal = False
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2Model._from_config(
            config, dtype=dtype, attn_implementation=attention_implementation(device, dtype)
        )
    model.eval().requires_grad_(False)
    tokenizer = Qwen2Tokenizer.from_pretrained(prepare_qwen2("cpu").peer_path)
    backbone = Backbone(model=model, tokenizer=tokenizer, profile=DREAM, dimension=config.hidden_size)
    n_params = sum(p.numel() for p in model.parameters())
    budget = batch_tokens or default_batch_tokens(device, n_params, config.hidden_size)
    settings = EncoderSettings(
        model=spec.name, revision=None, adapter=None, profile=DREAM, chunking=ChunkingConfig(),
        dtype=str(dtype).removeprefix("torch."), device=str(device), batch_tokens=int(budget), padding_side="right",
    )  # fmt: skip
    return DiffEmbedEncoder(backbone, settings)


def load_diffemb(spec: ModelSpec, batch_tokens: int | None = None) -> DiffEmbedEncoder:
    if spec.diffemb_path is None:
        return build_dream7b(spec, batch_tokens)
    options: dict[str, Any] = {"device": spec.device, "batch_tokens": batch_tokens}
    if spec.max_length is not None:
        options["max_length"] = spec.max_length
    return DiffEmbedEncoder.from_pretrained(spec.diffemb_path, **options)


def body_window(encoder: DiffEmbedEncoder) -> int:
    """Body tokens of one document window (model window less the template)."""
    return int(encoder.profile.max_length - encoder.text.frame(None).overhead)
