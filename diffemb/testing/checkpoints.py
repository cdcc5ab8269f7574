"""Tiny, seeded checkpoints written in the exact layouts users download from the hub.

Tests and benchmarks load these folders through the same code paths as real checkpoints, so the files mimic
the published ones (names, config fields, tokenizer files), only with small shapes. Every tensor is drawn from
a generator seeded by (seed, tensor name): the same seed always gives byte-identical files, and models that
share tensor names (LLaDA and its Llama twin) share values.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import zlib
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import load_file, save_file
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers.trainers import BpeTrainer
from transformers import (
    BertConfig,
    BertModel,
    BertTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen2Tokenizer,
)

DREAM_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|beginoftext|>", "<|mask|>"]
LLADA_SPECIAL_TOKENS = ["<|startoftext|>", "<|endoftext|>", "<|mdm_mask|>", "<|start_header_id|>",
                        "<|end_header_id|>", "<|eot_id|>"]  # fmt: skip
QWEN2_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
LLAMA_SPECIAL_TOKENS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                        "<|eot_id|>"]  # fmt: skip
# transformers' Qwen2Tokenizer splits with this regex; training with it keeps merges consistent with loading.
QWEN2_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# The recipe's OLMo → Llama block mapping, kept here so fixture tests do not depend on product code.
LLADA_TO_LLAMA = {"attn_norm": "input_layernorm", "q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj",
                  "v_proj": "self_attn.v_proj", "attn_out": "self_attn.o_proj", "ff_norm": "post_attention_layernorm",
                  "ff_proj": "mlp.gate_proj", "up_proj": "mlp.up_proj", "ff_out": "mlp.down_proj"}  # fmt: skip
_HF4 = "4.46.2"  # the transformers version stamped in the published Dream/LLaDA configs

_SUBJECTS = ["the cat", "a young doctor", "my neighbour", "the old farmer", "our teacher", "Anna", "the quick fox",
             "a tired student", "the city council", "her brother", "the robot", "Professor Müller", "the children",
             "a famous painter", "the engineer", "Tom"]  # fmt: skip
_VERBS = ["reads", "builds", "paints", "finds", "carries", "describes", "watches", "repairs", "sells", "remembers",
          "forgets", "explains", "measures", "visits", "cooks", "writes"]  # fmt: skip
_OBJECTS = ["a red book", "the long river", "three green apples", "an empty bottle", "the report", "a small boat",
            "the broken window", "the ancient map", "two letters", "the recipe", "a blue bicycle", "the theorem",
            "a café menu", "the naïve plan", "a résumé"]  # fmt: skip
_PLACES = ["in the garden", "near the station", "at the museum", "under the bridge", "in Zürich", "on the mountain",
           "by the sea", "inside the library", "at home", "in the kitchen"]  # fmt: skip
_TIMES = ["every morning", "last winter", "before dinner", "after the storm", "on Sunday", "in 1999",
          "at 7 o'clock", "twice a week", "yesterday", "during the summer"]  # fmt: skip
_FIXED = [
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.",
    "Retrieve text based on user query: what is the capital of France?",
    "Given a question, retrieve passages that answer the question.",
    "Alice's pass key is 68142. Remember it. What is Alice's pass key?",
    "user\nassistant\nsystem\nquery: passage: document: instruction:",
    "Numbers like 3.14, 2,718 and -42 appear in tables; e-mail me at bob@example.com!",
]


def corpus(n: int = 400) -> list[str]:
    """A fixed small English corpus, independent of any checkpoint seed so vocabularies never move."""
    rng = random.Random(1234)
    lines = list(_FIXED)
    while len(lines) < n:
        s, v, o = rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_OBJECTS)
        p, t = rng.choice(_PLACES), rng.choice(_TIMES)
        lines.append(
            [
                f"{s.capitalize()} {v} {o} {p} {t}.",
                f"Why does {s} say that {o} is {p}?",
                f"{t.capitalize()}, {s} {v} {o}; then {rng.choice(_SUBJECTS)} {v} it too.",
                f'"{o.capitalize()}," said {s}, "is {p}!"',
            ][rng.randrange(4)]
        )
    return lines


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", "utf-8")


def _byte_level_bpe(vocab: dict[str, int] | None = None, merges: list[tuple[str, str]] | None = None) -> Tokenizer:
    """Qwen2's pipeline: NFC, regex split, byte-level mapping without prefix space."""
    tok = Tokenizer(models.BPE() if vocab is None else models.BPE(vocab=vocab, merges=merges))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    return tok


def build_bpe_tokenizer_files(path: str | Path, special_tokens: list[str], *, vocab_size: int = 600) -> dict[str, int]:
    """Train a byte-level BPE on :func:`corpus` and write ``vocab.json`` + ``merges.txt``.

    As in Qwen2's published files, the special tokens are not in ``vocab.json``: they take the ids right after
    the BPE vocabulary, which are returned so callers can record them in ``added_tokens_decoder``.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = _byte_level_bpe()
    alphabet = pre_tokenizers.ByteLevel.alphabet()  # every byte stays encodable, so nothing is ever unknown
    trainer = BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False, initial_alphabet=alphabet)
    tok.train_from_iterator(corpus(), trainer=trainer)
    tok.model.save(str(path))
    n = tok.get_vocab_size()
    return {t: n + i for i, t in enumerate(special_tokens)}


def _bpe_tokenizer_object(special_tokens: list[str]) -> tuple[Tokenizer, dict[str, int]]:
    """The BPE of :func:`build_bpe_tokenizer_files` as one ``tokenizers`` object, specials appended."""
    with tempfile.TemporaryDirectory() as tmp:
        ids = build_bpe_tokenizer_files(tmp, special_tokens)
        vocab = json.loads((Path(tmp) / "vocab.json").read_text("utf-8"))
        lines = (Path(tmp) / "merges.txt").read_text("utf-8").splitlines()
    merges = [(a, b) for a, b in (line.split(" ") for line in lines if line and not line.startswith("#version"))]
    tok = _byte_level_bpe(vocab, merges)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special_tokens])
    return tok, ids


def _added_tokens_decoder(ids: dict[str, int]) -> dict[str, dict[str, Any]]:
    flags = {"lstrip": False, "rstrip": False, "normalized": False, "single_word": False, "special": True}
    return {str(i): {"content": t, **flags} for t, i in ids.items()}


def _padded_vocab(ids: dict[str, int], multiple: int = 64) -> int:
    # Published embeddings have more rows than the tokenizer has ids (Dream: 152064 vs 151667); mimic that.
    return -(-(max(ids.values()) + 1) // multiple) * multiple


def _init_std(name: str, shape: torch.Size) -> float:
    if "embed" in name or name.endswith("wte.weight"):
        return 1.0
    if len(shape) == 2:
        return float(shape[1]) ** -0.5
    return 0.1  # biases: non-zero, so a loader that drops them changes the outputs


def seeded_state_dict(
    model_cls: type[PreTrainedModel], config: PretrainedConfig, *, seed: int = 0, dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    """Random weights for ``model_cls(config)``, each tensor seeded by ``(seed, name)``.

    Unit-variance embeddings and 1/sqrt(fan_in) projections (not HF's 0.02) make every layer change the hidden
    states visibly and keep attention far from uniform, so masking and pooling bugs show up in outputs.
    Norm scales are ones and shifts zeros, as at initialisation.
    """
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in model_cls(config).state_dict().items()}
    out: dict[str, torch.Tensor] = {}
    for name, shape in shapes.items():
        if "norm" in name.lower():
            out[name] = (torch.ones(shape) if name.endswith("weight") else torch.zeros(shape)).to(dtype)
            continue
        gen = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
        out[name] = (torch.randn(shape, generator=gen) * _init_std(name, shape)).to(dtype)
    return out


def _save_safetensors(path: Path, tensors: dict[str, torch.Tensor], shards: int) -> None:
    if shards <= 1:
        save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})
        return
    names = list(tensors)
    weight_map: dict[str, str] = {}
    for k in range(shards):
        part = names[k * len(names) // shards : (k + 1) * len(names) // shards]
        fname = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        save_file({n: tensors[n] for n in part}, str(path / fname), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, fname))
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    _write_json(path / "model.safetensors.index.json", {"metadata": {"total_size": total}, "weight_map": weight_map})


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
    shards: int = 1,
    seed: int = 0,
    dtype: torch.dtype = torch.bfloat16,
) -> Path:
    """Dream-v0 layout: Qwen2 weights (with LM head) under ``model_type: "Dream"``, remote-code stubs,
    and a vocab.json/merges.txt tokenizer whose class is the remote ``DreamTokenizer``."""
    path = Path(path)
    ids = build_bpe_tokenizer_files(path, DREAM_SPECIAL_TOKENS)
    vocab_size, eos, mask = _padded_vocab(ids), ids["<|endoftext|>"], ids["<|mask|>"]
    qwen = Qwen2Config(
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_kv_heads,
        tie_word_embeddings=False,
    )  # fmt: skip
    _save_safetensors(path, seeded_state_dict(Qwen2ForCausalLM, qwen, seed=seed, dtype=dtype), shards)
    _write_json(path / "config.json", {
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
    _write_json(path / "generation_config.json", {"bos_token_id": ids["<|beginoftext|>"], "eos_token_id": eos,
                "pad_token_id": eos, "mask_token_id": mask, "transformers_version": _HF4})  # fmt: skip
    stubs = ["configuration_dream.py", "modeling_dream.py", "generation_utils.py", "tokenization_dream.py"]
    _write_remote_code_stubs(path, stubs)
    extra = DREAM_SPECIAL_TOKENS[1:]
    _write_json(path / "tokenizer_config.json", {
        "add_bos_token": False, "add_prefix_space": False, "added_tokens_decoder": _added_tokens_decoder(ids),
        "additional_special_tokens": extra, "auto_map": {"AutoTokenizer": ["tokenization_dream.DreamTokenizer", None]},
        "bos_token": None, "clean_up_tokenization_spaces": False, "eos_token": "<|endoftext|>", "errors": "replace",
        "mask_token": "<|mask|>", "model_max_length": 131072, "pad_token": "<|endoftext|>", "padding_side": "left",
        "split_special_tokens": False, "tokenizer_class": "DreamTokenizer", "unk_token": None,
    })  # fmt: skip
    entry = {"lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
    _write_json(path / "special_tokens_map.json", {
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
    tok, ids = _bpe_tokenizer_object(LLADA_SPECIAL_TOKENS)
    tok.save(str(path / "tokenizer.json"))
    vocab_size, eos = _padded_vocab(ids), ids["<|endoftext|>"]
    _write_json(path / "config.json", {
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
    _write_json(path / "generation_config.json", {"bos_token_id": ids["<|startoftext|>"], "eos_token_id": eos,
                "pad_token_id": eos, "transformers_version": _HF4})  # fmt: skip
    _write_remote_code_stubs(path, ["configuration_llada.py", "modeling_llada.py"])
    # Hand-written to keep the transformers-4 class name of the hub file. As published there is no pad token
    # and no BOS is added: loaders must cope with both.
    _write_json(path / "tokenizer_config.json", {
        "added_tokens_decoder": _added_tokens_decoder(ids), "bos_token": "<|startoftext|>",
        "clean_up_tokenization_spaces": False, "eos_token": "<|endoftext|>",
        "model_max_length": 1000000000000000019884624838656, "tokenizer_class": "PreTrainedTokenizerFast",
    })  # fmt: skip
    state = seeded_state_dict(LlamaForCausalLM, llada_reference_llama_config(path), seed=seed, dtype=dtype)
    _save_safetensors(path, {_llama_to_llada(n): t for n, t in state.items()}, shards)
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


def _save_model(
    path: Path, model_cls: type[PreTrainedModel], config: PretrainedConfig, seed: int, dtype: torch.dtype
) -> None:
    model = model_cls(config)
    model.load_state_dict(seeded_state_dict(model_cls, config, seed=seed))
    torch.nn.Module.to(model, dtype=dtype)  # the plain Module call: transformers' typed wrapper confuses mypy
    model.save_pretrained(path)


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
    tok, ids = _bpe_tokenizer_object(QWEN2_SPECIAL_TOKENS)
    model = json.loads(tok.to_str())["model"]
    # Without explicit ids the constructor appends the specials in its own order, not the trained one.
    decoder = {i: AddedToken(t, special=True, normalized=False) for t, i in ids.items()}
    merges: Any = [tuple(m) for m in model["merges"]]  # tokenizers needs pairs; transformers' hint says list[str]
    tokenizer = Qwen2Tokenizer(vocab=model["vocab"], merges=merges, eos_token="<|im_end|>",
                               pad_token="<|endoftext|>", added_tokens_decoder=decoder)  # fmt: skip
    tokenizer.save_pretrained(path)
    config = Qwen2Config(
        vocab_size=_padded_vocab(ids), hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_kv_heads,
        rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        tie_word_embeddings=False, bos_token_id=None, eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
    )  # fmt: skip
    _save_model(path, Qwen2ForCausalLM, config, seed, dtype)
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
    tok, ids = _bpe_tokenizer_object(LLAMA_SPECIAL_TOKENS)
    bos = "<|begin_of_text|>"
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, ids[bos])]
    )
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token="<|eot_id|>").save_pretrained(path)
    # transformers 5 writes its own class name; the hub files carry the transformers-4 one.
    tokenizer_config = json.loads((path / "tokenizer_config.json").read_text("utf-8"))
    _write_json(path / "tokenizer_config.json", {**tokenizer_config, "tokenizer_class": "PreTrainedTokenizerFast"})
    config = LlamaConfig(
        vocab_size=_padded_vocab(ids), hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_kv_heads,
        rms_norm_eps=1e-5, rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
        tie_word_embeddings=False, bos_token_id=ids[bos], eos_token_id=ids["<|eot_id|>"],
    )  # fmt: skip
    _save_model(path, LlamaForCausalLM, config, seed, dtype)
    return path


def _wordpiece_vocab() -> list[str]:
    """Specials, every corpus word, and every character alone and as a ``##`` piece, so nothing is [UNK]."""
    norm, split = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    words = sorted({w for line in corpus() for w, _ in split.pre_tokenize_str(norm.normalize_str(line))})
    chars = sorted({c for w in words for c in w} | set("abcdefghijklmnopqrstuvwxyz0123456789"))
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    return list(dict.fromkeys(specials + chars + words + [f"##{c}" for c in chars]))


def save_bert_checkpoint(
    path: str | Path,
    *,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int = 64,
    seed: int = 0,
) -> Path:
    """BERT encoder (fp32) with a lowercasing WordPiece tokenizer: ``vocab.txt`` plus what v5 saves."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = _wordpiece_vocab()
    (path / "vocab.txt").write_text("".join(f"{t}\n" for t in vocab), "utf-8")
    BertTokenizer(vocab={t: i for i, t in enumerate(vocab)}).save_pretrained(path)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=num_heads,
        intermediate_size=intermediate_size, max_position_embeddings=128, pad_token_id=0,
    )  # fmt: skip
    _save_model(path, BertModel, config, seed, torch.float32)
    return path


def save_sentence_transformers_folder(
    path: str | Path,
    *,
    pooling: Literal["mean", "cls", "lasttoken"] = "mean",
    normalize: bool = True,
    max_seq_length: int = 32,
    prompts: dict[str, str] | None = None,
    default_prompt_name: str | None = None,
    legacy_format: bool = False,
    seed: int = 0,
) -> Path:
    """A sentence-transformers folder (tiny BERT, Pooling, optional Normalize) as ``SentenceTransformer.save``
    writes it. ``legacy_format`` rewrites the module configs the way sentence-transformers 2.x wrote them
    (``pooling_mode_*_tokens`` flags, ``max_seq_length`` in ``sentence_bert_config.json``), as most hub
    embedders (e5, gte, …) still ship them."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        save_bert_checkpoint(tmp, seed=seed)
        transformer = Transformer(tmp, max_seq_length=max_seq_length)
        dim = transformer.get_embedding_dimension()
        modules: list[torch.nn.Module] = [transformer, Pooling(dim, pooling_mode=pooling)]
        if normalize:
            modules.append(Normalize())
        st = SentenceTransformer(
            modules=modules, device="cpu", prompts=prompts, default_prompt_name=default_prompt_name
        )
        st.save(str(path), create_model_card=False)  # the card alone costs ~0.3 s
    if legacy_format:
        _rewrite_as_legacy_sentence_transformers(path, pooling, normalize, max_seq_length, dim, prompts or {},
                                                 default_prompt_name)  # fmt: skip
    return path


def _rewrite_as_legacy_sentence_transformers(
    path: Path, pooling: str, normalize: bool, max_seq_length: int, dim: int, prompts: dict[str, str],
    default_prompt_name: str | None,
) -> None:  # fmt: skip
    kinds = ["Transformer", "Pooling"] + (["Normalize"] if normalize else [])
    subdirs = ["", "1_Pooling", "2_Normalize"]
    _write_json(path / "modules.json", [{"idx": i, "name": str(i), "path": subdirs[i],
                "type": f"sentence_transformers.models.{k}"} for i, k in enumerate(kinds)])  # fmt: skip
    _write_json(path / "sentence_bert_config.json", {"max_seq_length": max_seq_length, "do_lower_case": False})
    modes = {"cls": "cls_token", "mean": "mean_tokens", "max": "max_tokens", "mean_sqrt_len": "mean_sqrt_len_tokens",
             "weightedmean": "weightedmean_tokens", "lasttoken": "lasttoken"}  # fmt: skip
    flags = {f"pooling_mode_{v}": k == pooling for k, v in modes.items()}
    _write_json(path / "1_Pooling" / "config.json", {"word_embedding_dimension": dim, **flags, "include_prompt": True})
    shutil.rmtree(path / "2_Normalize", ignore_errors=True)  # old versions left it empty, so hub copies lack it
    versions = {"sentence_transformers": "2.7.0", "transformers": "4.39.3", "pytorch": "2.2.2"}
    _write_json(path / "config_sentence_transformers.json",
                {"__version__": versions, "prompts": prompts, "default_prompt_name": default_prompt_name})  # fmt: skip
    # Old folders keep the encoder's own limit in the tokenizer; only sentence_bert_config.json has max_seq_length.
    tokenizer_config = json.loads((path / "tokenizer_config.json").read_text("utf-8"))
    _write_json(path / "tokenizer_config.json", {**tokenizer_config, "model_max_length": 512})
