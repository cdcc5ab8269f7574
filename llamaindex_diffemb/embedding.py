"""`DiffEmbedEmbedding`: a LlamaIndex `BaseEmbedding` over a diffemb encoder.

Thin on purpose: batching, length sorting, chunk pooling, instructions and the device lock live in
`DiffEmbedEncoder`. This class only exposes the encoder's resolved settings as pydantic fields (so LlamaIndex's
ingestion cache and `to_dict` see everything that changes vectors) and maps LlamaIndex's calls onto the core's.
"""

from __future__ import annotations

import copy
import warnings
import weakref
from typing import Any

try:
    from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
    from llama_index.core.bridge.pydantic import ConfigDict, Field, PrivateAttr
except ImportError as err:  # pragma: no cover - exercised by a test that hides llama_index
    raise ImportError(
        'llamaindex_diffemb needs llama-index-core; install it with: pip install "diffemb[llamaindex]"'
    ) from err

from diffemb.encoder import DiffEmbedEncoder
from diffemb.inputs import check_texts

# Fields that are `DiffEmbedEncoder.from_pretrained` options (`text_instruction` is its `document_instruction`).
_LOAD_FIELDS = (
    "model_name", "adapter", "revision", "query_instruction", "text_instruction", "max_length", "chunk_size",
    "chunk_overlap", "chunk_aggregation", "normalize", "pooling", "attention", "exclude_instruction", "device",
    "dtype", "batch_tokens", "padding_side", "quantization", "model_kwargs",
)  # fmt: skip

# Encoders behind live embedders, by their resolved fields: `from_dict(to_dict())` finds the same encoder even
# when it was passed in with `encoder=` (so these options were never seen) and loads nothing.
_LIVE: weakref.WeakValueDictionary[tuple[Any, ...], DiffEmbedEncoder] = weakref.WeakValueDictionary()


def _key(values: dict[str, Any]) -> tuple[Any, ...]:
    return (values.get("fingerprint"), *((name, repr(values.get(name))) for name in _LOAD_FIELDS))


def _resolved(encoder: DiffEmbedEncoder) -> dict[str, Any]:
    """The encoder's settings, spelled as this class's fields."""
    settings, profile, chunking = encoder.settings, encoder.settings.profile, encoder.settings.chunking
    return {
        "model_name": settings.model,
        "adapter": settings.adapter,
        "revision": settings.revision,
        "query_instruction": profile.query_instruction,
        "text_instruction": profile.document_instruction,
        "max_length": profile.max_length,
        "chunk_size": chunking.size,
        "chunk_overlap": chunking.overlap,
        "chunk_aggregation": chunking.aggregation,
        "normalize": profile.normalize,
        "pooling": profile.pooling,
        "attention": profile.attention,
        "exclude_instruction": profile.exclude_instruction,
        "device": settings.device,
        "dtype": settings.dtype,
        "batch_tokens": settings.batch_tokens,
        "padding_side": settings.padding_side,
        "quantization": encoder.loaded.request.quantization,
        "model_kwargs": encoder.loaded.request.raw_model_kwargs or None,
        "fingerprint": encoder.fingerprint,
    }


def _load(data: dict[str, Any]) -> DiffEmbedEncoder:
    if not data.get("model_name"):
        raise ValueError("DiffEmbedEmbedding needs model_name= (a hub id or local folder) or encoder=")
    if data.get("fingerprint") and (live := _LIVE.get(_key(data))) is not None:
        return live
    options = {name: data.get(name) for name in (*_LOAD_FIELDS, "local_files_only")}
    options["document_instruction"] = options.pop("text_instruction")
    options["cache_dir"] = data.get("cache_folder")
    model = options.pop("model_name")
    given = {name: value for name, value in options.items() if value is not None}
    encoder = DiffEmbedEncoder.from_pretrained(str(model), **given)
    if data.get("fingerprint") not in (None, encoder.fingerprint):
        warnings.warn(
            f"the saved embedder's fingerprint {data['fingerprint']} differs from the loaded encoder's "
            f"{encoder.fingerprint}: its vectors will not match the saved ones (custom template?)",
            stacklevel=4,
        )
    return encoder


class DiffEmbedEmbedding(BaseEmbedding):
    """DiffEmbed (diffusion-LM) embeddings for LlamaIndex: `Settings.embed_model = DiffEmbedEmbedding(model_name=...)`.

    Queries get the query instruction, texts (documents) the text instruction; `None` means the model family's
    default, `""` none. Long texts are split into windows and pooled as `chunk_aggregation` says. Pass
    `encoder=` to share an already loaded `DiffEmbedEncoder`; the fields then show its settings. After loading,
    every field holds the resolved value and `fingerprint` hashes all vector-affecting settings.
    """

    model_name: str = Field(default="", description="Hub id or local folder of the checkpoint.")
    adapter: str | None = Field(default=None, description="LoRA adapter (hub id or folder) merged into the model.")
    revision: str | None = Field(default=None, description="Hub revision (branch, tag or commit) of the model.")
    query_instruction: str | None = Field(
        default=None, description="Instruction before queries; None: the family default, '': none."
    )
    text_instruction: str | None = Field(
        default=None, description="Instruction before texts/documents (core `document_instruction`); '': none."
    )
    max_length: int | None = Field(default=None, description="Tokens per model window, template included.")
    chunk_size: int | None = Field(default=None, description="Body tokens per window of a long text; None: all.")
    chunk_overlap: int | None = Field(default=None, description="Tokens shared by neighbouring windows.")
    chunk_aggregation: str | None = Field(
        default=None, description="How window vectors become one: 'mean', 'max', 'first' or 'late'."
    )
    normalize: bool | None = Field(default=None, description="L2-normalise the vectors.")
    pooling: str | None = Field(default=None, description="Token pooling: 'mean', 'last' or 'cls'.")
    attention: str | None = Field(default=None, description="'bidirectional' or 'causal' attention.")
    exclude_instruction: bool | None = Field(default=None, description="Leave instruction tokens out of pooling.")
    device: str | None = Field(default=None, description="'cpu', 'cuda', 'cuda:N', 'mps'; None: auto.")
    dtype: str | None = Field(default=None, description="'float32', 'bfloat16' or 'float16'; None: auto.")
    batch_tokens: int | None = Field(default=None, description="Padded tokens per forward pass.")
    padding_side: str | None = Field(default=None, description="'right' or 'left' padding inside a batch.")
    quantization: str | None = Field(
        default=None, description="Quantised weights: 'int8' (CPU or CUDA) or 'nf4' (CUDA); needs diffemb[quant]."
    )
    model_kwargs: dict[str, Any] | None = Field(
        default=None, description="Passed to transformers' from_pretrained (e.g. attn_implementation)."
    )
    local_files_only: bool | None = Field(default=None, description="Never reach the hub; use cached files.")
    cache_folder: str | None = Field(
        default=None, description="Folder of the hub download cache (`cache_dir`); None: the Hugging Face default."
    )
    trust_remote_code: bool = Field(
        default=False,
        description="Accepted for HuggingFaceEmbedding users; must stay False: diffemb never runs a checkpoint's code.",
    )
    fingerprint: str | None = Field(
        default=None, description="Hash of every vector-affecting setting of the loaded encoder (set on load)."
    )
    embed_batch_size: int = Field(
        default=512, gt=0, le=2048, description="Texts per core call; the core sorts and budgets them itself."
    )

    # An unknown keyword (a typo, or an option of another embedding class) is an error, never silently dropped.
    model_config = ConfigDict(extra="forbid")

    _encoder: DiffEmbedEncoder = PrivateAttr()

    def __init__(self, model_name: str | None = None, *, encoder: DiffEmbedEncoder | None = None, **data: Any):
        if model_name is not None:
            data["model_name"] = str(model_name)
        if data.get("trust_remote_code"):
            raise ValueError(
                "trust_remote_code=True is not supported: diffemb never runs a checkpoint's own Python code. Dream "
                "and LLaDA run on transformers' built-in Qwen2/Llama classes with bidirectional attention, so no "
                "remote code is needed; leave trust_remote_code out (or False)"
            )
        if encoder is not None and (unused := [n for n in ("cache_folder", "local_files_only") if data.get(n)]):
            raise ValueError(f"{', '.join(unused)} only apply when loading: pass them with model_name=, not encoder=")
        if "document_instruction" in data:
            data["text_instruction"] = data.pop("document_instruction")
        if "none" in (data.get("chunk_aggregation"), encoder and encoder.settings.chunking.aggregation):
            raise ValueError(
                "chunk_aggregation='none' gives several vectors per text and an embed model returns one: for one "
                "vector per window use DiffEmbedWindowParser (and DiffEmbedDocumentRetriever for max-sim)"
            )
        shared, encoder = encoder is not None, encoder or _load(data)
        resolved = _resolved(encoder)
        clash = [n for n in _LOAD_FIELDS if data.get(n) is not None and str(data[n]) != str(resolved[n])]
        if shared and clash:  # (a fresh load resolves "auto" and the like; no clash then)
            raise ValueError(f"{', '.join(clash)} differ from the settings of the encoder= given")
        super().__init__(**{**data, **resolved})
        self._encoder = encoder
        _LIVE[_key(resolved)] = encoder

    @classmethod
    def class_name(cls) -> str:
        return "DiffEmbedEmbedding"

    @classmethod
    def from_dict(cls, data: dict[str, Any], **kwargs: Any) -> DiffEmbedEmbedding:  # type: ignore[override]
        data = dict(data)
        if set(kwargs) & {*_LOAD_FIELDS, "document_instruction"}:
            data.pop("fingerprint", None)  # overridden settings: the saved fingerprint no longer applies
        return super().from_dict(data, **kwargs)

    def __getstate__(self) -> dict[str, Any]:
        """Pickles the fields only (LlamaIndex's worker processes); unpickling finds or loads the encoder again."""
        clone = copy.copy(self)  # its own private dict, so this embedder keeps its encoder
        del clone.__pydantic_private__["_encoder"]  # type: ignore[index,union-attr]
        return super(DiffEmbedEmbedding, clone).__getstate__()

    @property
    def encoder(self) -> DiffEmbedEncoder:
        """The loaded core encoder (share it with other frameworks through `encoder=`)."""
        return self._encoder

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._encoder.encode_queries([query])[0].tolist()

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return (await self._encoder.aencode_queries([query]))[0].tolist()

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._encoder.encode_documents(texts).tolist()

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._aget_text_embeddings([text]))[0]

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return (await self._encoder.aencode_documents(texts)).tolist()

    # LlamaIndex cuts `texts` into batches of `embed_batch_size`, so the core's "texts[i]" counts from the start of
    # a batch; after a failure the whole list is checked again, so the error names the caller's index.
    def get_text_embedding_batch(self, texts: list[str], show_progress: bool = False, **kwargs: Any) -> list[Embedding]:
        try:
            return super().get_text_embedding_batch(texts, show_progress, **kwargs)
        except (TypeError, ValueError):
            if (named := self._caller_error(texts)) is None:
                raise
            raise named from None

    async def aget_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[Embedding]:
        try:
            return await super().aget_text_embedding_batch(texts, show_progress, **kwargs)
        except (TypeError, ValueError):
            if (named := self._caller_error(texts)) is None:
                raise
            raise named from None

    def _caller_error(self, texts: list[str]) -> Exception | None:
        """The first bad text's error, by its index in the caller's list (None if every text is fine)."""
        try:
            self._encoder.plan(check_texts(texts))
        except (TypeError, ValueError) as error:
            return error
        return None
