"""Tiny BERT encoders and sentence-transformers folders, in the layouts hub embedders ship."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Literal

import torch
from transformers import BertConfig, BertModel, BertTokenizer

from diffemb.testing.tiny_tokenizers import wordpiece_vocab, write_json
from diffemb.testing.tiny_weights import save_model


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
    vocab = wordpiece_vocab()
    (path / "vocab.txt").write_text("".join(f"{t}\n" for t in vocab), "utf-8")
    BertTokenizer(vocab={t: i for i, t in enumerate(vocab)}).save_pretrained(path)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=num_heads,
        intermediate_size=intermediate_size, max_position_embeddings=128, pad_token_id=0,
    )  # fmt: skip
    save_model(path, BertModel, config, seed, torch.float32)
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
    write_json(path / "modules.json", [{"idx": i, "name": str(i), "path": subdirs[i],
                "type": f"sentence_transformers.models.{k}"} for i, k in enumerate(kinds)])  # fmt: skip
    write_json(path / "sentence_bert_config.json", {"max_seq_length": max_seq_length, "do_lower_case": False})
    modes = {"cls": "cls_token", "mean": "mean_tokens", "max": "max_tokens", "mean_sqrt_len": "mean_sqrt_len_tokens",
             "weightedmean": "weightedmean_tokens", "lasttoken": "lasttoken"}  # fmt: skip
    flags = {f"pooling_mode_{v}": k == pooling for k, v in modes.items()}
    write_json(path / "1_Pooling" / "config.json", {"word_embedding_dimension": dim, **flags, "include_prompt": True})
    shutil.rmtree(path / "2_Normalize", ignore_errors=True)  # old versions left it empty, so hub copies lack it
    versions = {"sentence_transformers": "2.7.0", "transformers": "4.39.3", "pytorch": "2.2.2"}
    write_json(path / "config_sentence_transformers.json",
                {"__version__": versions, "prompts": prompts, "default_prompt_name": default_prompt_name})  # fmt: skip
    # Old folders keep the encoder's own limit in the tokenizer; only sentence_bert_config.json has max_seq_length.
    tokenizer_config = json.loads((path / "tokenizer_config.json").read_text("utf-8"))
    write_json(path / "tokenizer_config.json", {**tokenizer_config, "model_max_length": 512})
