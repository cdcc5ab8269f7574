"""Each published checkpoint layout loads through `from_pretrained`, with the right family and attention."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import LlamaModel, PretrainedConfig, Qwen2Model

from diffemb import DiffEmbedEncoder
from diffemb.backbones.dream import qwen2_config_from_dream
from diffemb.backbones.llada import llama_config_from_llada
from diffemb.testing import checkpoints

TEXTS = ["what is a pass key?", "the grass is green and the sky is blue " * 6, "short", "Zürich in 1999"]


def _load(folder: Path, **kw: object) -> DiffEmbedEncoder:
    return DiffEmbedEncoder.from_pretrained(folder, device="cpu", dtype="float32", **kw)  # type: ignore[arg-type]


def test_dream_loads_as_bidirectional_qwen2_without_lm_head_or_remote_code(tiny_dream_folder: Path) -> None:
    encoder = _load(tiny_dream_folder)
    assert isinstance(encoder.model, Qwen2Model)
    assert encoder.model.config.is_causal is False
    assert not any("lm_head" in name for name, _ in encoder.model.named_parameters())
    remote = {"configuration_dream", "modeling_dream", "tokenization_dream", "generation_utils"}
    assert not any(name.rsplit(".", 1)[-1] in remote for name in sys.modules)
    assert encoder.profile.family == "dream" and encoder.profile.pooling == "mean"
    assert encoder.dimension == 64


def test_dream_tokenizer_keeps_special_tokens(tiny_dream_folder: Path) -> None:
    tokenizer = _load(tiny_dream_folder).backbone.tokenizer
    config = json.loads((tiny_dream_folder / "tokenizer_config.json").read_text())
    by_name = {entry["content"]: int(i) for i, entry in config["added_tokens_decoder"].items()}
    for token in ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|mask|>"):
        assert tokenizer(token, add_special_tokens=False)["input_ids"] == [by_name[token]]
    assert tokenizer.pad_token == "<|endoftext|>"
    # No BOS/EOS is added to Dream rows.
    assert (
        tokenizer("hello", add_special_tokens=True)["input_ids"]
        == tokenizer("hello", add_special_tokens=False)["input_ids"]
    )


def test_sharded_dream_equals_single_file(tiny_dream_folder: Path, tiny_dream_sharded_folder: Path) -> None:
    assert (tiny_dream_sharded_folder / "model.safetensors.index.json").is_file()
    one = _load(tiny_dream_folder).encode_documents(TEXTS)
    sharded = _load(tiny_dream_sharded_folder).encode_documents(TEXTS)
    np.testing.assert_allclose(one, sharded, atol=1e-6)


def test_llada_weights_are_renamed_onto_llama(tiny_llada_folder: Path) -> None:
    encoder = _load(tiny_llada_folder)
    assert isinstance(encoder.model, LlamaModel)
    assert encoder.model.config.is_causal is False
    reference = checkpoints.llada_reference_llama_state_dict(tiny_llada_folder)
    loaded = encoder.model.state_dict()
    for name, tensor in reference.items():
        bare = name.removeprefix("model.")
        if bare in loaded:
            torch.testing.assert_close(loaded[bare].float(), tensor.float())
    assert {n.removeprefix("model.") for n in reference if not n.startswith("lm_head")} <= set(loaded)


@pytest.mark.parametrize("fixture", ["tiny_qwen2_folder", "tiny_llama_folder"])
def test_decoders_are_causal_last_token_or_bidirectional_mean(fixture: str, request: pytest.FixtureRequest) -> None:
    folder = request.getfixturevalue(fixture)
    causal = _load(folder)
    assert causal.profile.attention == "causal" and causal.profile.pooling == "last"
    assert causal.model.config.is_causal is True
    bidirectional = _load(folder, attention="bidirectional")
    assert bidirectional.profile.pooling == "mean" and bidirectional.model.config.is_causal is False


def test_bert_encoder_loads(tiny_bert_folder: Path) -> None:
    encoder = _load(tiny_bert_folder)
    assert encoder.profile.family == "encoder" and encoder.profile.attention == "bidirectional"
    assert encoder.encode_documents(TEXTS).shape == (4, encoder.dimension)


def _first_token_state(encoder: DiffEmbedEncoder, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        out = encoder.model(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long))
    return out.last_hidden_state[0, 0]


@pytest.mark.parametrize(
    ("fixture", "attention", "sees_future"),
    [
        ("tiny_dream_folder", None, True),
        ("tiny_llada_folder", None, True),
        ("tiny_qwen2_folder", "bidirectional", True),
        ("tiny_qwen2_folder", "causal", False),
        ("tiny_dream_folder", "causal", False),
        ("tiny_llama_folder", "causal", False),
    ],
)
def test_changing_the_last_token_reaches_the_first_only_when_bidirectional(
    fixture: str, attention: str | None, sees_future: bool, request: pytest.FixtureRequest
) -> None:
    encoder = _load(request.getfixturevalue(fixture), attention=attention)
    ids = encoder.text.tokenize(["the cat reads a red book in the garden"])[0].ids
    changed = [*ids[:-1], ids[-2]]
    differs = not torch.allclose(_first_token_state(encoder, ids), _first_token_state(encoder, changed))
    assert differs is sees_future


def test_unknown_model_type_lists_supported_families(tiny_bert_folder: Path, tmp_path: Path) -> None:
    folder = tmp_path / "odd"
    shutil.copytree(tiny_bert_folder, folder)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "quantum-lstm"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"unknown model_type 'quantum-lstm'.*Dream.*LLaDA.*bert"):
        _load(folder)


def test_incomplete_checkpoint_is_an_error(tiny_dream_folder: Path, tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    shutil.copytree(tiny_dream_folder, folder)
    weights = load_file(folder / "model.safetensors")
    del weights["model.norm.weight"]
    from safetensors.torch import save_file

    save_file(weights, folder / "model.safetensors")
    with pytest.raises(ValueError, match="lacks 1 weights"):
        _load(folder)


def test_missing_folder_and_uncached_hub_id_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _load(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="local hub cache"):
        DiffEmbedEncoder.from_pretrained("nobody/no-such-model", local_files_only=True, cache_dir=str(tmp_path))


def test_hub_id_resolves_from_the_local_hub_cache(tiny_dream_folder: Path, tmp_path: Path) -> None:
    """A hub id with `local_files_only` loads from a hub cache laid out as huggingface_hub writes it."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--Dream-org--Dream-tiny"
    shutil.copytree(tiny_dream_folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    encoder = DiffEmbedEncoder.from_pretrained(
        "Dream-org/Dream-tiny", local_files_only=True, cache_dir=str(tmp_path), device="cpu", dtype="float32"
    )
    direct = _load(tiny_dream_folder)
    np.testing.assert_allclose(encoder.encode_documents(TEXTS), direct.encode_documents(TEXTS), atol=1e-6)
    assert encoder.settings.model == "Dream-org/Dream-tiny"


# -- config fidelity: what LLaDA's and Dream's upstream config classes assume, or a clear error ---------------

LLADA_RAW = {"d_model": 64, "n_heads": 4, "n_layers": 2, "vocab_size": 128, "mlp_hidden_size": None, "mlp_ratio": 4}
DREAM_RAW = {"hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 128,
             "num_hidden_layers": 2, "vocab_size": 128}  # fmt: skip


def _rope(config: PretrainedConfig) -> dict[str, object]:
    return dict(config.rope_parameters or {})


def test_absent_rope_theta_and_mlp_size_follow_the_upstream_config_classes() -> None:
    llada = llama_config_from_llada(LLADA_RAW)
    assert _rope(llada)["rope_theta"] == 10000.0
    assert llada.intermediate_size == 4 * 64  # mlp_hidden_size null → mlp_ratio × d_model
    assert _rope(qwen2_config_from_dream(DREAM_RAW))["rope_theta"] == 10000.0
    assert _rope(llama_config_from_llada({**LLADA_RAW, "rope_theta": 500000.0}))["rope_theta"] == 500000.0


def test_rope_scaling_is_honoured_or_rejected_by_name() -> None:
    scaled = qwen2_config_from_dream({**DREAM_RAW, "rope_scaling": {"type": "linear", "factor": 2.0}})
    assert _rope(scaled) == {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}
    llada = llama_config_from_llada({**LLADA_RAW, "rope_scaling": {"rope_type": "dynamic", "factor": 4.0}})
    assert _rope(llada)["rope_type"] == "dynamic" and _rope(llada)["factor"] == 4.0
    with pytest.raises(ValueError, match=r"rotary scaling 'spiral'.*linear"):
        qwen2_config_from_dream({**DREAM_RAW, "rope_scaling": {"type": "spiral", "factor": 2.0}})
    with pytest.raises(ValueError, match=r"incomplete.*factor"):
        llama_config_from_llada({**LLADA_RAW, "rope_scaling": {"type": "linear"}})


def test_llada_biases_are_honoured_or_rejected() -> None:
    both = llama_config_from_llada({**LLADA_RAW, "include_bias": True, "include_qkv_bias": True})
    assert both.attention_bias is True and both.mlp_bias is True
    with pytest.raises(ValueError, match="include_qkv_bias"):
        llama_config_from_llada({**LLADA_RAW, "include_bias": False, "include_qkv_bias": True})


@pytest.mark.parametrize(("field", "value"), [("input_emb_norm", True), ("alibi", True), ("block_type", "sequential")])
def test_llada_settings_a_llama_cannot_compute_are_errors(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"sets {field}: {value!r}"):
        llama_config_from_llada({**LLADA_RAW, field: value})


def test_dream_sliding_window_is_rejected() -> None:
    with pytest.raises(ValueError, match="use_sliding_window"):
        qwen2_config_from_dream({**DREAM_RAW, "use_sliding_window": True})


def _edited_copy(source: Path, target: Path, **config: object) -> Path:
    shutil.copytree(source, target)
    raw = json.loads((target / "config.json").read_text())
    raw.update(config)
    (target / "config.json").write_text(json.dumps({k: v for k, v in raw.items() if v is not None}))
    return target


def test_a_dream_config_without_rope_theta_embeds_with_theta_10000(tiny_dream_folder: Path, tmp_path: Path) -> None:
    absent = _edited_copy(tiny_dream_folder, tmp_path / "absent", rope_theta=None)
    written = _edited_copy(tiny_dream_folder, tmp_path / "written", rope_theta=10000.0)
    vectors = _load(absent).encode_documents(TEXTS)
    np.testing.assert_allclose(vectors, _load(written).encode_documents(TEXTS), atol=1e-6)
    assert not np.allclose(vectors, _load(tiny_dream_folder).encode_documents(TEXTS), atol=1e-3)


def test_weights_the_model_has_no_place_for_are_an_error(tiny_dream_folder: Path, tmp_path: Path) -> None:
    """A config.json that says one layer for a two-layer checkpoint would silently drop layer 1."""
    fewer = _edited_copy(tiny_dream_folder, tmp_path / "fewer", num_hidden_layers=1)
    with pytest.raises(ValueError, match=r"holds \d+ weights that Qwen2Model .* no place for \('model\.layers\.1\."):
        _load(fewer)


def test_llada_checkpoint_with_a_stray_tensor_is_an_error(tiny_llada_folder: Path, tmp_path: Path) -> None:
    folder = tmp_path / "stray"
    shutil.copytree(tiny_llada_folder, folder)
    weights = load_file(folder / "model.safetensors")
    weights["model.transformer.blocks.0.q_norm.weight"] = torch.ones(4)
    from safetensors.torch import save_file

    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match="q_norm"):
        _load(folder)
