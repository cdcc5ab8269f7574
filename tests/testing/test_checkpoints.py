"""The tiny checkpoints load the way their published counterparts do, and are deterministic."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path
from typing import Any, Literal

import pytest
import torch
from safetensors.torch import load_file
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaForCausalLM,
    LlamaModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen2Model,
    Qwen2Tokenizer,
)

from diffemb.testing import checkpoints


def _tensors(folder: Path) -> dict[str, torch.Tensor]:
    return {k: v for f in sorted(folder.glob("model*.safetensors")) for k, v in load_file(str(f)).items()}


def _qwen2_config_from_dream(folder: Path) -> Qwen2Config:
    c = json.loads((folder / "config.json").read_text())
    keys = ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "rms_norm_eps", "max_position_embeddings", "tie_word_embeddings",
            "pad_token_id", "bos_token_id", "eos_token_id"]  # fmt: skip
    return Qwen2Config(
        **{k: c[k] for k in keys}, rope_parameters={"rope_type": "default", "rope_theta": c["rope_theta"]}
    )


@pytest.fixture(scope="module")
def dream(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return checkpoints.save_dream_checkpoint(tmp_path_factory.mktemp("dream"))


@pytest.fixture(scope="module")
def llada(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return checkpoints.save_llada_checkpoint(tmp_path_factory.mktemp("llada"))


def test_bpe_files_are_deterministic_and_specials_follow_the_vocab(tmp_path: Path) -> None:
    ids = checkpoints.build_bpe_tokenizer_files(tmp_path / "a", ["<|x|>", "<|y|>"])
    checkpoints.build_bpe_tokenizer_files(tmp_path / "b", ["<|x|>", "<|y|>"])
    vocab = json.loads((tmp_path / "a" / "vocab.json").read_text())
    assert 400 <= len(vocab) <= 1000
    assert ids == {"<|x|>": len(vocab), "<|y|>": len(vocab) + 1}
    for name in ("vocab.json", "merges.txt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_dream_layout_matches_the_hub(dream: Path) -> None:
    config = json.loads((dream / "config.json").read_text())
    assert config["model_type"] == "Dream" and config["architectures"] == ["DreamModel"]
    tokenizer_config = json.loads((dream / "tokenizer_config.json").read_text())
    added = {e["content"]: int(i) for i, e in tokenizer_config["added_tokens_decoder"].items()}
    assert set(added) == set(checkpoints.DREAM_SPECIAL_TOKENS)
    assert config["mask_token_id"] == added["<|mask|>"] and config["vocab_size"] > max(added.values())
    assert tokenizer_config["tokenizer_class"] == "DreamTokenizer" and tokenizer_config["padding_side"] == "left"
    assert {"generation_config.json", "special_tokens_map.json", "vocab.json", "merges.txt"} <= {
        p.name for p in dream.iterdir()
    }
    for stub in ("configuration_dream.py", "modeling_dream.py", "generation_utils.py", "tokenization_dream.py"):
        with pytest.raises(ImportError, match="must never be imported"):
            runpy.run_path(str(dream / stub))


def test_dream_weights_load_into_qwen2_without_missing_keys(dream: Path) -> None:
    loaded: Any = Qwen2Model.from_pretrained(dream, config=_qwen2_config_from_dream(dream), output_loading_info=True)
    model, info = loaded
    assert not info["missing_keys"]
    assert all("lm_head" in k for k in info["unexpected_keys"])
    stored = load_file(str(dream / "model.safetensors"))
    torch.testing.assert_close(model.embed_tokens.weight.float(), stored["model.embed_tokens.weight"].float())
    assert torch.equal(stored["model.norm.weight"], torch.ones_like(stored["model.norm.weight"]))
    assert stored["model.layers.0.self_attn.q_proj.bias"].abs().sum() > 0
    # The weights are large enough that tokens stay distinct and context changes states.
    model.float().eval()
    ids = Qwen2Tokenizer.from_pretrained(dream)("the cat reads a red book in the garden").input_ids
    with torch.inference_mode():
        states = model(input_ids=torch.tensor([ids])).last_hidden_state[0]
    cos = torch.nn.functional.cosine_similarity(states[:, None], states[None], dim=-1)
    assert cos[~torch.eye(len(ids), dtype=torch.bool)].abs().mean() < 0.5


# AutoTokenizer reads config.json, whose `rope_scaling: null` (as on the hub) transformers 5 deprecates.
@pytest.mark.filterwarnings("ignore:`rope_scaling` is deprecated:FutureWarning")
def test_dream_tokenizer_loads_as_qwen2_without_remote_code(dream: Path) -> None:
    tokenizer = Qwen2Tokenizer.from_pretrained(dream)
    added = json.loads((dream / "tokenizer_config.json").read_text())["added_tokens_decoder"]
    for i, entry in added.items():
        assert tokenizer(entry["content"], add_special_tokens=True).input_ids == [int(i)]
    text = "<|im_start|>user\nHello café<|im_end|>"
    ids = tokenizer(text).input_ids
    assert [ids[0], ids[-1]] == tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    assert tokenizer.decode(ids) == text
    assert tokenizer("cafe\u0301").input_ids == tokenizer("caf\u00e9").input_ids  # NFC
    assert tokenizer.pad_token == "<|endoftext|>" and tokenizer.padding_side == "left" and tokenizer.bos_token is None
    assert type(AutoTokenizer.from_pretrained(dream, tokenizer_type="qwen2")) is Qwen2Tokenizer
    with pytest.raises(ValueError, match="custom code"):
        AutoTokenizer.from_pretrained(dream, trust_remote_code=False)
    loaded = {getattr(m, "__file__", None) or "" for m in list(sys.modules.values())}
    assert not any(f.startswith(str(dream)) for f in loaded)


def test_sharded_and_single_file_hold_the_same_tensors(dream: Path, tmp_path: Path) -> None:
    sharded = checkpoints.save_dream_checkpoint(tmp_path, shards=3)
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    assert sorted(set(index["weight_map"].values())) == [f"model-0000{k}-of-00003.safetensors" for k in (1, 2, 3)]
    one, many = _tensors(dream), _tensors(sharded)
    assert set(one) == set(many) == set(index["weight_map"])
    assert all(torch.equal(one[k], many[k]) for k in one)
    assert index["metadata"]["total_size"] == sum(t.numel() * t.element_size() for t in one.values())


@pytest.mark.parametrize("builder", ["save_dream_checkpoint", "save_llada_checkpoint", "save_qwen2_checkpoint"])
def test_same_seed_same_bytes_other_seed_other_weights(builder: str, tmp_path: Path) -> None:
    build = getattr(checkpoints, builder)
    a, b, c = build(tmp_path / "a"), build(tmp_path / "b"), build(tmp_path / "c", seed=1)
    for f in sorted(a.iterdir()):
        if f.is_file():
            assert f.read_bytes() == (b / f.name).read_bytes(), f.name
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()


def test_llada_weights_are_the_reference_llama_renamed(llada: Path) -> None:
    config = json.loads((llada / "config.json").read_text())
    assert config["model_type"] == "llada" and config["n_kv_heads"] == config["n_heads"]
    names = set(load_file(str(llada / "model.safetensors")))
    assert "model.transformer.ff_out.weight" in names and "model.transformer.blocks.1.ff_proj.weight" in names
    assert all(n.startswith("model.transformer.") for n in names)
    llama_config = checkpoints.llada_reference_llama_config(llada)
    reference = checkpoints.llada_reference_llama_state_dict(llada)
    expected = checkpoints.seeded_state_dict(LlamaForCausalLM, llama_config, seed=0, dtype=torch.bfloat16)
    assert set(reference) == set(expected) and len(reference) == len(names)
    assert all(torch.equal(reference[k], expected[k]) for k in expected)
    stored = load_file(str(llada / "model.safetensors"))
    pairs = {"blocks.0.attn_out": "layers.0.self_attn.o_proj", "blocks.1.ff_out": "layers.1.mlp.down_proj",
             "blocks.0.ff_proj": "layers.0.mlp.gate_proj", "wte": "embed_tokens"}  # fmt: skip
    for olmo, llama in pairs.items():
        assert torch.equal(stored[f"model.transformer.{olmo}.weight"], reference[f"model.{llama}.weight"])
    model = LlamaModel(llama_config)
    bare = {k.removeprefix("model."): v for k, v in reference.items() if k != "lm_head.weight"}
    model.load_state_dict(bare, strict=True)


def test_llada_tokenizer(llada: Path) -> None:
    tokenizer = PreTrainedTokenizerFast.from_pretrained(llada)
    mask_id = json.loads((llada / "config.json").read_text())["mask_token_id"]
    assert tokenizer("<|mdm_mask|>").input_ids == [mask_id]  # no BOS is added
    assert tokenizer.bos_token == "<|startoftext|>" and tokenizer.pad_token is None
    assert type(AutoTokenizer.from_pretrained(llada, trust_remote_code=False)) is type(tokenizer)


def test_ar_decoders_load_with_auto_classes(tmp_path: Path) -> None:
    qwen = checkpoints.save_qwen2_checkpoint(tmp_path / "qwen2")
    assert isinstance(AutoModelForCausalLM.from_pretrained(qwen), Qwen2ForCausalLM)
    tokenizer = AutoTokenizer.from_pretrained(qwen)
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer("<|im_start|>hi").input_ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>")
    llama = checkpoints.save_llama_checkpoint(tmp_path / "llama")
    assert isinstance(AutoModelForCausalLM.from_pretrained(llama), LlamaForCausalLM)
    tokenizer = AutoTokenizer.from_pretrained(llama)
    ids = tokenizer("hello there").input_ids
    assert ids[0] == tokenizer.bos_token_id and tokenizer.bos_token == "<|begin_of_text|>"
    assert tokenizer.eos_token == "<|eot_id|>" and tokenizer.pad_token is None


def test_bert_loads_with_auto_classes(tmp_path: Path) -> None:
    folder = checkpoints.save_bert_checkpoint(tmp_path)
    assert (folder / "vocab.txt").is_file()
    model = AutoModel.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    batch = tokenizer(["The café is in Zürich.", "Unseen wordz"], padding=True, return_tensors="pt")
    assert tokenizer.unk_token_id not in batch.input_ids.tolist()[0] + batch.input_ids.tolist()[1]
    assert batch.input_ids[0, 0] == tokenizer.cls_token_id
    assert model(**batch).last_hidden_state.shape[-1] == model.config.hidden_size


@pytest.mark.parametrize(("pooling", "legacy"), [("mean", False), ("cls", False), ("lasttoken", True), ("mean", True)])
def test_sentence_transformers_folder_loads(
    pooling: Literal["mean", "cls", "lasttoken"], legacy: bool, tmp_path: Path
) -> None:
    from sentence_transformers import SentenceTransformer

    prompts = {"query": "query: ", "document": "passage: "}
    folder = checkpoints.save_sentence_transformers_folder(
        tmp_path,
        pooling=pooling,
        prompts=prompts,
        default_prompt_name="query",
        legacy_format=legacy,  # type: ignore[arg-type]
    )
    for name in (
        "modules.json",
        "1_Pooling/config.json",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
    ):
        assert (folder / name).is_file()
    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    assert model.max_seq_length == 32 and model.prompts == prompts and model.default_prompt_name == "query"
    vectors = model.encode(["a red book", "the long river " * 40], convert_to_tensor=True)
    torch.testing.assert_close(vectors.norm(dim=-1), torch.ones(2))
    assert not torch.allclose(vectors[0], vectors[1])
