"""Tiny, seeded checkpoints written in the exact layouts users download from the hub.

Tests and benchmarks load these folders through the same code paths as real checkpoints, so the files mimic
the published ones (names, config fields, tokenizer files), only with small shapes. Every tensor is drawn from
a generator seeded by (seed, tensor name): the same seed always gives byte-identical files, and models that
share tensor names (LLaDA and its Llama twin) share values.

Tokenizers live in `diffemb.testing.tiny_tokenizers`, seeded weights in `diffemb.testing.tiny_weights`, BERT and
sentence-transformers folders in `diffemb.testing.sentence_transformers_folders`; their public names are
re-exported here, so `from diffemb.testing import checkpoints` reaches every builder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from tokenizers import AddedToken, processors
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen2Tokenizer,
)

from diffemb.testing.sentence_transformers_folders import save_bert_checkpoint, save_sentence_transformers_folder
from diffemb.testing.tiny_tokenizers import (
    DREAM_SPECIAL_TOKENS,
    LLADA_SPECIAL_TOKENS,
    LLAMA_SPECIAL_TOKENS,
    QWEN2_SPECIAL_TOKENS,
    QWEN2_SPLIT_PATTERN,
    added_tokens_decoder,
    bpe_tokenizer_object,
    build_bpe_tokenizer_files,
    corpus,
    padded_vocab,
    write_json,
)
from diffemb.testing.tiny_weights import save_model, save_safetensors, seeded_state_dict

__all__ = [
    "DREAM_SPECIAL_TOKENS",
    "LLADA_SPECIAL_TOKENS",
    "LLADA_TO_LLAMA",
    "LLAMA_SPECIAL_TOKENS",
    "QWEN2_SPECIAL_TOKENS",
    "QWEN2_SPLIT_PATTERN",
    "build_bpe_tokenizer_files",
    "corpus",
    "llada_reference_llama_config",
    "llada_reference_llama_state_dict",
    "save_bert_checkpoint",
    "save_dream_checkpoint",
    "save_llada_checkpoint",
    "save_llama_checkpoint",
    "save_qwen2_checkpoint",
    "save_sentence_transformers_folder",
    "seeded_state_dict",
]


# The recipe's OLMo → Llama block mapping, kept here so fixture tests do not depend on product code.
LLADA_TO_LLAMA = {"attn_norm": "input_layernorm", "q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj",
                  "v_proj": "self_attn.v_proj", "attn_out": "self_attn.o_proj", "ff_norm": "post_attention_layernorm",
                  "ff_proj": "mlp.gate_proj", "up_proj": "mlp.up_proj", "ff_out": "mlp.down_proj"}  # fmt: skip


_HF4 = "4.46.2"  # the transformers version stamped in the published Dream/LLaDA configs


def _write_remote_code_stubs(path: Path, names: list[str]) -> None:
    # The hub ships remote code that fails on transformers 5; a loader that imports it must fail loudly here too.
    for name in names:
        (path / name).write_text(
            "# Stand-in for the hub checkpoint's remote code (diffemb test fixture).\n"
            f'raise ImportError("{name} must never be imported: diffemb loads this checkpoint natively")\n',
            "utf-8",
        )


def save_dream_checkpoint(
    path: str | Path,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 128,
    vocab_size: int | None = None,
    shards: int = 1,
    seed: int = 0,
    dtype: torch.dtype = torch.bfloat16,
) -> Path:
    """Dream-v0 layout: Qwen2 weights (with LM head) under ``model_type: "Dream"``, remote-code stubs,
    and a vocab.json/merges.txt tokenizer whose class is the remote ``DreamTokenizer``. ``vocab_size`` gives
    the embedding more rows than the tokenizer has ids (Dream-7B's 152064, for memory-faithful benchmarks)."""
    path = Path(path)
    ids = build_bpe_tokenizer_files(path, DREAM_SPECIAL_TOKENS)
    vocab_size = max(vocab_size or 0, padded_vocab(ids))
    eos, mask = ids["<|endoftext|>"], ids["<|mask|>"]
    qwen = Qwen2Config(
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_kv_heads,
        tie_word_embeddings=False,
    )  # fmt: skip
    save_safetensors(path, seeded_state_dict(Qwen2ForCausalLM, qwen, seed=seed, dtype=dtype), shards)
    write_json(path / "config.json", {
        "architectures": ["DreamModel"], "model_type": "Dream",
        "auto_map": {"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"},
        "attention_dropout": 0.0, "hidden_act": "silu", "initializer_range": 0.02, "hidden_size": hidden_size,
        "intermediate_size": intermediate_size, "num_hidden_layers": num_layers, "num_attention_heads": num_heads,
        "num_key_value_heads": num_kv_heads, "max_window_layers": num_layers, "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-6, "rope_scaling": None, "rope_theta": 1000000.0, "sliding_window": None,
        "use_sliding_window": False, "tie_word_embeddings": False, "torch_dtype": "bfloat16", "use_cache": True,
        "transformers_version": _HF4, "vocab_size": vocab_size, "bos_token_id": ids["<|beginoftext|>"],
        "eos_token_id": eos, "pad_token_id": eos, "mask_token_id": mask,
    })  # fmt: skip
    write_json(path / "generation_config.json", {"bos_token_id": ids["<|beginoftext|>"], "eos_token_id": eos,
                "pad_token_id": eos, "mask_token_id": mask, "transformers_version": _HF4})  # fmt: skip
    stubs = ["configuration_dream.py", "modeling_dream.py", "generation_utils.py", "tokenization_dream.py"]
    _write_remote_code_stubs(path, stubs)
    extra = DREAM_SPECIAL_TOKENS[1:]
    write_json(path / "tokenizer_config.json", {
        "add_bos_token": False, "add_prefix_space": False, "added_tokens_decoder": added_tokens_decoder(ids),
        "additional_special_tokens": extra, "auto_map": {"AutoTokenizer": ["tokenization_dream.DreamTokenizer", None]},
        "bos_token": None, "clean_up_tokenization_spaces": False, "eos_token": "<|endoftext|>", "errors": "replace",
        "mask_token": "<|mask|>", "model_max_length": 131072, "pad_token": "<|endoftext|>", "padding_side": "left",
        "split_special_tokens": False, "tokenizer_class": "DreamTokenizer", "unk_token": None,
    })  # fmt: skip
    entry = {"lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
    write_json(path / "special_tokens_map.json", {
        "additional_special_tokens": extra, "eos_token": {"content": "<|endoftext|>", **entry},
        "pad_token": {"content": "<|endoftext|>", **entry}, "mask_token": {"content": "<|mask|>", **entry},
    })  # fmt: skip
    return path


def save_llada_checkpoint(
    path: str | Path,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int | None = None,
    intermediate_size: int = 128,
    shards: int = 1,
    seed: int = 0,
    dtype: torch.dtype = torch.bfloat16,
) -> Path:
    """LLaDA-8B layout: OLMo-style weight names under ``model_type: "llada"``, a ``tokenizer.json`` tokenizer.

    The weights are those of ``seeded_state_dict(LlamaForCausalLM, llada_reference_llama_config(path))``,
    renamed; :func:`llada_reference_llama_state_dict` gives them back under Llama names.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok, ids = bpe_tokenizer_object(LLADA_SPECIAL_TOKENS)
    tok.save(str(path / "tokenizer.json"))
    vocab_size, eos = padded_vocab(ids), ids["<|endoftext|>"]
    write_json(path / "config.json", {
        "architectures": ["LLaDAModelLM"], "model_type": "llada",
        "auto_map": {"AutoConfig": "configuration_llada.LLaDAConfig", "AutoModel": "modeling_llada.LLaDAModelLM",
                     "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM"},
        "activation_type": "silu", "alibi": False, "attention_layer_norm": False, "block_type": "llama",
        "d_model": hidden_size, "n_heads": num_heads, "n_kv_heads": num_heads if num_kv_heads is None else num_kv_heads,
        "n_layers": num_layers, "mlp_hidden_size": intermediate_size, "mlp_ratio": 4, "vocab_size": vocab_size,
        "embedding_size": vocab_size, "include_bias": False, "include_qkv_bias": False, "layer_norm_type": "rms",
        "layer_norm_with_affine": True, "bias_for_layer_norm": False, "rms_norm_eps": 1e-5, "rope": True,
        "rope_full_precision": True, "rope_theta": 500000.0, "max_sequence_length": 4096, "weight_tying": False,
        "scale_logits": False, "input_emb_norm": False, "init_std": 0.02, "precision": "amp_bf16",
        "use_cache": False, "transformers_version": _HF4, "mask_token_id": ids["<|mdm_mask|>"],
        "pad_token_id": eos, "eos_token_id": eos,
    })  # fmt: skip
    write_json(path / "generation_config.json", {"bos_token_id": ids["<|startoftext|>"], "eos_token_id": eos,
                "pad_token_id": eos, "transformers_version": _HF4})  # fmt: skip
    _write_remote_code_stubs(path, ["configuration_llada.py", "modeling_llada.py"])
    # Hand-written to keep the transformers-4 class name of the hub file. As published there is no pad token
    # and no BOS is added: loaders must cope with both.
    write_json(path / "tokenizer_config.json", {
        "added_tokens_decoder": added_tokens_decoder(ids), "bos_token": "<|startoftext|>",
        "clean_up_tokenization_spaces": False, "eos_token": "<|endoftext|>",
        "model_max_length": 1000000000000000019884624838656, "tokenizer_class": "PreTrainedTokenizerFast",
    })  # fmt: skip
    state = seeded_state_dict(LlamaForCausalLM, llada_reference_llama_config(path), seed=seed, dtype=dtype)
    save_safetensors(path, {_llama_to_llada(n): t for n, t in state.items()}, shards)
    return path


def _llama_to_llada(name: str) -> str:
    fixed = {
        "lm_head.weight": "model.transformer.ff_out.weight",
        "model.embed_tokens.weight": "model.transformer.wte.weight",
        "model.norm.weight": "model.transformer.ln_f.weight",
    }
    if name in fixed:
        return fixed[name]
    _, _, layer, rest = name.split(".", 3)  # model.layers.N.<module>.weight
    olmo = {v: k for k, v in LLADA_TO_LLAMA.items()}[rest.removesuffix(".weight")]
    return f"model.transformer.blocks.{layer}.{olmo}.weight"


def llada_reference_llama_config(path: str | Path) -> LlamaConfig:
    """The ``LlamaConfig`` of the Llama model that computes what the LLaDA checkpoint at ``path`` computes."""
    c = json.loads((Path(path) / "config.json").read_text("utf-8"))
    return LlamaConfig(
        vocab_size=c["embedding_size"], hidden_size=c["d_model"], intermediate_size=c["mlp_hidden_size"],
        num_hidden_layers=c["n_layers"], num_attention_heads=c["n_heads"],
        num_key_value_heads=c["n_kv_heads"] or c["n_heads"], hidden_act="silu",
        max_position_embeddings=c["max_sequence_length"], rms_norm_eps=c["rms_norm_eps"],
        rope_parameters={"rope_type": "default", "rope_theta": c["rope_theta"]}, attention_bias=c["include_bias"],
        mlp_bias=False, tie_word_embeddings=c["weight_tying"], pad_token_id=c["pad_token_id"],
        eos_token_id=c["eos_token_id"], bos_token_id=None,
    )  # fmt: skip


def llada_reference_llama_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The LLaDA folder's tensors under ``LlamaForCausalLM`` names, in their stored dtype (for parity tests)."""
    tensors = {k: v for f in sorted(Path(path).glob("model*.safetensors")) for k, v in load_file(str(f)).items()}
    with torch.device("meta"):
        names = list(LlamaForCausalLM(llada_reference_llama_config(path)).state_dict())
    return {n: tensors[_llama_to_llada(n)] for n in names}


def save_qwen2_checkpoint(
    path: str | Path,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 128,
    seed: int = 0,
    dtype: torch.dtype = torch.bfloat16,
) -> Path:
    """Qwen2.5-Instruct-like causal decoder saved with ``save_pretrained``: EOS ``<|im_end|>``, no BOS."""
    path = Path(path)
    tok, ids = bpe_tokenizer_object(QWEN2_SPECIAL_TOKENS)
    model = json.loads(tok.to_str())["model"]
    # Without explicit ids the constructor appends the specials in its own order, not the trained one.
    decoder = {i: AddedToken(t, special=True, normalized=False) for t, i in ids.items()}
    merges: Any = [tuple(m) for m in model["merges"]]  # tokenizers needs pairs; transformers' hint says list[str]
    tokenizer = Qwen2Tokenizer(vocab=model["vocab"], merges=merges, eos_token="<|im_end|>",
                               pad_token="<|endoftext|>", added_tokens_decoder=decoder)  # fmt: skip
    tokenizer.save_pretrained(path)
    config = Qwen2Config(
        vocab_size=padded_vocab(ids), hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_kv_heads,
        rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        tie_word_embeddings=False, bos_token_id=None, eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
    )  # fmt: skip
    save_model(path, Qwen2ForCausalLM, config, seed, dtype)
    return path


def save_llama_checkpoint(
    path: str | Path,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 128,
    seed: int = 0,
    dtype: torch.dtype = torch.bfloat16,
) -> Path:
    """Llama-3-Instruct-like causal decoder: the tokenizer prepends ``<|begin_of_text|>``; no pad token."""
    path = Path(path)
    tok, ids = bpe_tokenizer_object(LLAMA_SPECIAL_TOKENS)
    bos = "<|begin_of_text|>"
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, ids[bos])]
    )
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token="<|eot_id|>").save_pretrained(path)
    # transformers 5 writes its own class name; the hub files carry the transformers-4 one.
    tokenizer_config = json.loads((path / "tokenizer_config.json").read_text("utf-8"))
    write_json(path / "tokenizer_config.json", {**tokenizer_config, "tokenizer_class": "PreTrainedTokenizerFast"})
    config = LlamaConfig(
        vocab_size=padded_vocab(ids), hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_kv_heads,
        rms_norm_eps=1e-5, rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
        tie_word_embeddings=False, bos_token_id=ids[bos], eos_token_id=ids["<|eot_id|>"],
    )  # fmt: skip
    save_model(path, LlamaForCausalLM, config, seed, dtype)
    return path
