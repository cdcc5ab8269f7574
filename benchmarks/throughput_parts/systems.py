"""The systems compared: diffemb, sentence-transformers, LlamaIndex and a plain transformers loop, each
behind `encode(corpus)` on the same model, and how each one is loaded."""

from __future__ import annotations

import contextlib
import copy
import json
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from corpora import Corpus

from diffemb import DiffEmbedEncoder

from .config import LLAMAINDEX_BATCH, LOOP_BATCH, ST_BATCH
from .models import ModelSpec, body_window, load_diffemb


class System:
    name: str
    module: torch.nn.Module
    """The transformers model whose forward passes are counted."""

    def encode(self, corpus: Corpus) -> Any:
        raise NotImplementedError

    def embedded_body_tokens(self, corpus: Corpus) -> int:
        """Body tokens of `corpus` (no template, no special tokens) that this system's vectors cover: the
        numerator of its corpus tokens/second. Every text in full, unless the system truncates it."""
        raise NotImplementedError

    def encode_texts(self, texts: list[str]) -> Any:
        return self.encode(Corpus("passages", texts))


class DiffembSystem(System):
    name = "diffemb"

    def __init__(self, encoder: DiffEmbedEncoder) -> None:
        self.encoder = encoder
        self.module = encoder.model

    def encode(self, corpus: Corpus) -> np.ndarray:
        if corpus.kind == "queries":
            return self.encoder.encode_queries(corpus.texts, instruction="")
        return self.encoder.encode_documents(corpus.texts)

    def embedded_body_tokens(self, corpus: Corpus) -> int:
        if corpus.kind == "queries":  # queries longer than the window are truncated; documents are windowed
            return truncated_body(corpus, body_window(self.encoder))
        return corpus.total_body_tokens


def truncated_body(corpus: Corpus, capacity: int) -> int:
    """Body tokens left when every text is cut to `capacity` body tokens."""
    return sum(min(n, capacity) for n in corpus.body_tokens)


def peer_body_tokens(corpus: Corpus, tokenizer: Any, max_length: int) -> int:
    """Body tokens a peer embeds: it truncates each text to `max_length` tokens, special tokens included."""
    return truncated_body(corpus, int(max_length) - int(tokenizer.num_special_tokens_to_add(pair=False)))


class SentenceTransformersSystem(System):
    name = "sentence-transformers"

    def __init__(self, model: Any) -> None:
        self.model = model
        self.module = model[0].auto_model

    def encode(self, corpus: Corpus) -> np.ndarray:
        return self.model.encode(corpus.texts, batch_size=ST_BATCH, show_progress_bar=False)

    def embedded_body_tokens(self, corpus: Corpus) -> int:
        return peer_body_tokens(corpus, self.model.tokenizer, self.model.max_seq_length)


class LlamaIndexSystem(System):
    name = "llamaindex"

    def __init__(self, embedding: Any) -> None:
        self.embedding = embedding
        self.module = embedding._model[0].auto_model

    def encode(self, corpus: Corpus) -> np.ndarray:
        return np.asarray(self.embedding.get_text_embedding_batch(corpus.texts), dtype=np.float32)

    def embedded_body_tokens(self, corpus: Corpus) -> int:
        model = self.embedding._model  # the SentenceTransformer it wraps, max_seq_length set from max_length
        return peer_body_tokens(corpus, model.tokenizer, model.max_seq_length)


class LoopSystem(System):
    """Batches of `batch` texts; `order="input"` is the plain loop, `"length"` sorts all texts by character
    length first (sentence-transformers' `encode`), and `group` splits the input into calls of `group` texts
    first (LlamaIndex's `get_text_embedding_batch`, each call an `encode`)."""

    def __init__(
        self, name: str, model: torch.nn.Module, tokenizer: Any, max_length: int, batch: int,
        order: str = "input", group: int | None = None,
    ) -> None:  # fmt: skip
        self.name = name
        self.module = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch = batch
        self.order = order
        self.group = group
        self.device = next(model.parameters()).device

    def encode(self, corpus: Corpus) -> np.ndarray:
        texts = corpus.texts
        groups = [texts[i : i + self.group] for i in range(0, len(texts), self.group)] if self.group else [texts]
        return np.concatenate([self._call(group) for group in groups])

    def embedded_body_tokens(self, corpus: Corpus) -> int:
        return peer_body_tokens(corpus, self.tokenizer, self.max_length)

    def _call(self, texts: list[str]) -> np.ndarray:
        order = list(range(len(texts)))
        if self.order == "length":
            order = sorted(order, key=lambda i: -len(texts[i]))
        out = np.empty((len(texts), self.module.config.hidden_size), dtype=np.float32)  # type: ignore[union-attr]
        for start in range(0, len(order), self.batch):
            index = order[start : start + self.batch]
            inputs = self.tokenizer(
                [texts[i] for i in index], padding=True, truncation=True, max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)  # fmt: skip
            with torch.inference_mode():
                hidden = self.module(**inputs).last_hidden_state  # (B, T, D)
                mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
                pooled = (hidden * mask).sum(dim=1).float() / mask.sum(dim=1).float()  # (B, D)
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
            out[index] = pooled.cpu().numpy()
        return out


def load_system(spec: ModelSpec, name: str, encoder: DiffEmbedEncoder | None = None) -> System:
    """One system on `spec`'s model. Emulated peers (no `peer_path`) reuse `encoder`'s module and tokenizer."""
    if name == "diffemb":
        return DiffembSystem(encoder or load_diffemb(spec))
    if spec.peer_path is None:
        encoder = encoder or load_diffemb(spec)
        # A copy: a padded, truncating `tokenizer(...)` call leaves padding and truncation switched on in the
        # shared fast-tokenizer backend, which diffemb's own tokenisation would then inherit.
        tokenizer = copy.deepcopy(encoder.backbone.tokenizer)
        tokenizer.padding_side = "right"
        length = int(spec.max_length or encoder.profile.max_length)
        model = encoder.model
        if name == "sentence-transformers":
            return LoopSystem(name, model, tokenizer, length, ST_BATCH, order="length")
        if name == "llamaindex":
            return LoopSystem(name, model, tokenizer, length, LLAMAINDEX_BATCH, order="length", group=LLAMAINDEX_BATCH)
        return LoopSystem(name, model, tokenizer, length, LOOP_BATCH)
    with warnings.catch_warnings(), quiet_logs():
        warnings.simplefilter("ignore")
        if name == "sentence-transformers":
            return SentenceTransformersSystem(load_sentence_transformer(spec))
        if name == "llamaindex":
            return LlamaIndexSystem(load_llamaindex(spec))
        if name == "transformers-loop":
            from transformers import AutoModel, AutoTokenizer

            model = AutoModel.from_pretrained(spec.peer_path).to(spec.device).eval()
            tokenizer = AutoTokenizer.from_pretrained(spec.peer_path)
            tokenizer.padding_side = "right"
            return LoopSystem(name, model, tokenizer, peer_max_length(spec), LOOP_BATCH)
    raise ValueError(f"unknown system {name!r}")


def peer_max_length(spec: ModelSpec) -> int:
    if spec.max_length is not None:
        return spec.max_length
    st_config = Path(spec.peer_path or "") / "sentence_bert_config.json"
    if st_config.is_file():
        return int(json.loads(st_config.read_text())["max_seq_length"])
    return 512


def load_sentence_transformer(spec: ModelSpec) -> Any:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    assert spec.peer_path is not None
    if (Path(spec.peer_path) / "modules.json").is_file():
        return SentenceTransformer(spec.peer_path, device=spec.device)
    transformer = Transformer(spec.peer_path, max_seq_length=spec.max_length)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    return SentenceTransformer(modules=[transformer, pooling], device=spec.device)


def load_llamaindex(spec: ModelSpec) -> Any:
    try:
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    except ImportError as error:  # pragma: no cover - the benchmark installs it; say what to do otherwise
        raise SystemExit("pip install llama-index-embeddings-huggingface (0.8.0 was measured)") from error
    return HuggingFaceEmbedding(
        model_name=spec.peer_path, device=spec.device, max_length=spec.max_length, cache_folder=tempfile.gettempdir()
    )


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    import logging

    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    st_logger = logging.getLogger("sentence_transformers")
    st_level = st_logger.level
    st_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        st_logger.setLevel(st_level)
