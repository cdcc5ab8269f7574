"""Vectors equal an independent computation: a hand-written Qwen2 forward for Dream, and sentence-transformers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from diffemb import DiffEmbedEncoder
from diffemb.testing import checkpoints


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def _rotate(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    half = x.shape[-1] // 2
    freqs = 1.0 / theta ** (torch.arange(half, dtype=torch.float64) / half)
    angles = positions[:, None].double() * freqs[None]  # (T, half)
    cos, sin = torch.cat([angles.cos()] * 2, -1).float(), torch.cat([angles.sin()] * 2, -1).float()
    rotated = torch.cat([-x[..., half:], x[..., :half]], -1)
    return x * cos + rotated * sin


def qwen2_full_attention_states(folder: Path, ids: list[int]) -> torch.Tensor:
    """Last hidden states of a Qwen2-layout checkpoint with no attention mask at all (every token sees all)."""
    config = json.loads((folder / "config.json").read_text())
    w = {k: v.float() for k, v in load_file(folder / "model.safetensors").items()}
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    dim = config["hidden_size"] // heads
    eps, theta = config["rms_norm_eps"], config["rope_theta"]
    positions = torch.arange(len(ids))
    x = w["model.embed_tokens.weight"][torch.tensor(ids)]  # (T, D)
    for layer in range(config["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        h = _rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = (h @ w[p + "self_attn.q_proj.weight"].T + w[p + "self_attn.q_proj.bias"]).view(-1, heads, dim)
        k = (h @ w[p + "self_attn.k_proj.weight"].T + w[p + "self_attn.k_proj.bias"]).view(-1, kv_heads, dim)
        v = (h @ w[p + "self_attn.v_proj.weight"].T + w[p + "self_attn.v_proj.bias"]).view(-1, kv_heads, dim)
        q, k = _rotate(q.transpose(0, 1), positions, theta), _rotate(k.transpose(0, 1), positions, theta)
        k = k.repeat_interleave(heads // kv_heads, 0)
        v = v.transpose(0, 1).repeat_interleave(heads // kv_heads, 0)
        attn = torch.softmax(q @ k.transpose(1, 2) / dim**0.5, -1) @ v  # (H, T, dim)
        x = x + attn.transpose(0, 1).reshape(len(ids), -1) @ w[p + "self_attn.o_proj.weight"].T
        h = _rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        gate = torch.nn.functional.silu(h @ w[p + "mlp.gate_proj.weight"].T)
        x = x + (gate * (h @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
    return _rms_norm(x, w["model.norm.weight"], eps)


def test_dream_matches_an_independent_full_attention_mean_pool(tiny_dream_folder: Path) -> None:
    encoder = DiffEmbedEncoder.from_pretrained(tiny_dream_folder, device="cpu", dtype="float32")
    texts = ["what is a pass key?", "The old farmer repairs the broken window near the station. " * 4, "Zürich"]
    queries = encoder.encode_queries(texts)
    documents = encoder.encode_documents(texts)
    tokenizer = encoder.backbone.tokenizer
    for i, text in enumerate(texts):
        for role, got in (("query", queries[i]), ("document", documents[i])):
            # The paper's text format, tokenised as one string, its end stripped as the reference does.
            body = f"Retrieve text based on user query: {text}" if role == "query" else text
            ids = tokenizer(f"<|im_start|>user\n{body.rstrip()}<|im_end|>", add_special_tokens=False)["input_ids"]
            expected = qwen2_full_attention_states(tiny_dream_folder, ids).mean(0)
            expected = (expected / expected.norm()).numpy()
            assert float(np.dot(got, expected)) >= 0.9999


def test_minilm_matches_sentence_transformers(minilm_folder: Path, minilm_encoder: DiffEmbedEncoder) -> None:
    from sentence_transformers import SentenceTransformer

    texts = [
        "A man is eating food.",
        "The new movie is awesome and everyone should see it at least once this summer.",
        "Ünïcode, accents and émojis 🙂 are tokenised the same way.",
        "short",
        "Python's standard library has a module for regular expressions called re. " * 5,
    ]
    reference = SentenceTransformer(str(minilm_folder), device="cpu", local_files_only=True)
    expected = reference.encode(texts, convert_to_numpy=True)
    got = minilm_encoder.encode_documents(texts)
    cosines = (got * expected).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
    assert cosines.min() >= 0.9999


@pytest.mark.parametrize(
    ("pooling", "prompts"),
    [("mean", {"query": "query: ", "document": "passage: "}), ("cls", None), ("lasttoken", {"query": "Q: "})],
)
def test_sentence_transformers_folders_embed_as_sentence_transformers(
    tmp_path: Path, pooling: str, prompts: dict[str, str] | None
) -> None:
    from sentence_transformers import SentenceTransformer

    folder = checkpoints.save_sentence_transformers_folder(tmp_path / "st", pooling=pooling, prompts=prompts)  # type: ignore[arg-type]
    reference = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    encoder = DiffEmbedEncoder.from_pretrained(folder, device="cpu")
    texts = ["the cat reads a red book", "a tired student cooks the recipe in the kitchen", "Tom"]
    np.testing.assert_allclose(encoder.encode_queries(texts), reference.encode_query(texts), atol=1e-5)
    np.testing.assert_allclose(encoder.encode_documents(texts), reference.encode_document(texts), atol=1e-5)
