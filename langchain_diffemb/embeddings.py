"""`DiffEmbedEmbeddings`: LangChain `Embeddings` over a `DiffEmbedEncoder`. A thin wrapper: all logic is in the core."""

from __future__ import annotations

import os
from typing import Any, Literal

try:
    from langchain_core.embeddings import Embeddings
    from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator
except ImportError as error:  # pragma: no cover - exercised by a test that hides langchain_core
    raise ImportError(
        'langchain_diffemb needs langchain-core, which is not installed: pip install "diffemb[langchain]"'
    ) from error

from diffemb.chunking import DocumentChunks
from diffemb.encoder import DiffEmbedEncoder

ENV_PREFIX = "DIFFEMB_"
"""A field left out of the constructor is read from `DIFFEMB_<FIELD NAME>` (e.g. `DIFFEMB_MAX_LENGTH`) if set."""


class DiffEmbedEmbeddings(BaseModel, Embeddings):
    """Diffusion-LM (DiffEmbed) embeddings for LangChain.

    ```python
    from langchain_diffemb import DiffEmbedEmbeddings

    embeddings = DiffEmbedEmbeddings(model_name="Dream-org/Dream-v0-Instruct-7B")  # or a local folder
    embeddings = DiffEmbedEmbeddings(encoder=encoder)  # reuse an already loaded DiffEmbedEncoder
    ```

    Queries are embedded with the query instruction, documents without. Every setting left `None` keeps the
    default of the model's family profile. Settings not passed are read from `DIFFEMB_*` environment variables;
    explicit arguments win. Encoders are shared: instances with equal loading settings use one loaded model.
    Settings are fixed once built: make a new instance to change one.
    """

    # `model=` is accepted too, as langchain-huggingface's `HuggingFaceEmbeddings(model=...)` is.
    model_name: str | None = Field(default=None, alias="model")
    """Hub id or local folder of the checkpoint (alias `model`); required unless `encoder=` is given or
    `DIFFEMB_MODEL_NAME` set."""
    adapter: str | None = None
    """Hub id or local folder of a LoRA adapter (e.g. one made by `diffemb train`) merged into the model."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) of `model_name`."""
    local_files_only: bool | None = None
    """Never reach the hub, use the local cache only; `None` follows `HF_HUB_OFFLINE`."""
    query_instruction: str | None = None
    """Instruction put before every query; `None` keeps the profile's, `""` turns it off."""
    document_instruction: str | None = None
    """Instruction put before every document; `None` keeps the profile's (usually none)."""
    max_length: int | None = None
    """Tokens per forward pass (window), template and instruction included; longer documents are chunked."""
    chunk_size: int | None = None
    """Body tokens per window of a long document; `None` fills the window."""
    chunk_overlap: int | None = None
    """Tokens shared by neighbouring windows; `None` means about 10% of a window."""
    chunk_aggregation: Literal["mean", "max", "first", "late"] = "mean"
    """How the windows of a long document give its one vector (`first` keeps the first window only)."""
    normalize: bool | None = None
    """L2-normalise vectors (cosine similarity = dot product); `None` keeps the profile's."""
    attention: Literal["bidirectional", "causal"] | None = None
    """Attention mask of the backbone; `None` keeps the profile's (bidirectional for diffusion LMs)."""
    pooling: Literal["mean", "last", "cls"] | None = None
    """How token states become one vector; `None` keeps the profile's."""
    device: str = "auto"
    """Torch device (`"cuda"`, `"cuda:1"`, `"mps"`, `"cpu"`); `"auto"` picks the best available."""
    dtype: str = "auto"
    """Weights dtype (`"bfloat16"`, `"float16"`, `"float32"`); `"auto"` picks per device."""
    batch_tokens: int | None = None
    """Padded tokens per forward pass (speed/memory trade-off, vectors unchanged); `None` sizes it per device."""
    quantization: Literal["int8", "nf4"] | None = None
    """Quantised weights: `int8` on CPU (torchao) or CUDA (bitsandbytes), `nf4` on CUDA; needs `diffemb[quant]`."""
    model_kwargs: dict[str, Any] | None = None
    """Passed to transformers' `from_pretrained` (e.g. `attn_implementation`, `low_cpu_mem_usage`)."""
    show_progress: bool | None = None
    """Show a progress bar while embedding (sync calls); `None` keeps the encoder's setting (off unless set there)."""

    # Frozen: the encoder is loaded from the settings once, so changing one afterwards would silently do nothing.
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), frozen=True, populate_by_name=True)

    _encoder: DiffEmbedEncoder | None = PrivateAttr(default=None)

    def __init__(self, *, encoder: DiffEmbedEncoder | None = None, **kwargs: Any) -> None:
        """Load the encoder (weights shared with every encoder of the same model), or wrap `encoder` as it is."""
        if encoder is not None:
            if kwargs.get("local_files_only"):  # it would do nothing: the weights are loaded already
                raise ValueError("local_files_only only applies when loading: pass it with model=, not encoder=")
            kwargs = _fields_of(encoder, kwargs)
        super().__init__(**kwargs)
        self._encoder = encoder if encoder is not None else self._load()

    @model_validator(mode="before")
    @classmethod
    def _settings_from_environment(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        merged = dict(data)
        if "model" in merged:
            if "model_name" in merged:
                raise ValueError("model= and model_name= are the same setting (model is an alias): pass one of them")
            merged["model_name"] = merged.pop("model")
        for name in cls.model_fields:
            value = os.environ.get(ENV_PREFIX + name.upper())
            if name not in merged and value is not None:
                merged[name] = value
        if merged.get("model_name") is None:
            raise ValueError(
                f"model_name is required: a hub id or local folder (or set {ENV_PREFIX}MODEL_NAME, or pass encoder=)"
            )
        return merged

    def _load(self) -> DiffEmbedEncoder:
        options = self.model_dump(exclude={"model_name", "show_progress"})
        # Unset options are left out, so equal settings share one loaded model with other adapters.
        given = {name: v for name, v in options.items() if v is not None}
        return DiffEmbedEncoder.from_pretrained(str(self.model_name), **given)

    @property
    def encoder(self) -> DiffEmbedEncoder:
        """The core encoder (shared with every instance of equal loading settings)."""
        if self._encoder is None:  # built without __init__ (model_validate, model_construct)
            self._encoder = self._load()
        return self._encoder

    @property
    def cache_namespace(self) -> str:
        """Namespace for `CacheBackedEmbeddings`: changes whenever a setting changes the vectors."""
        return f"diffemb-{self.encoder.fingerprint}"

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per text (no query instruction); long texts are chunked as `chunk_aggregation` says."""
        vectors = self.encoder.encode(texts, role="document", show_progress=self.show_progress)
        return vectors.tolist()  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> list[float]:
        """The vector of one query, with the query instruction."""
        vectors = self.encoder.encode([text], role="query", show_progress=self.show_progress)
        return vectors[0].tolist()  # type: ignore[no-any-return]

    def embed_document_chunks(self, texts: list[str], late: bool | None = None) -> list[DocumentChunks]:
        """Per text, one vector per model window with its character span and token count (multi-vector,
        max-sim retrieval; `DiffEmbedChunkRetriever` builds on it). `late=True` pools the windows from one long
        pass over the text (late chunking), `False` embeds each window on its own, `None` follows
        `chunk_aggregation`. Vectors are numpy float32 rows, normalised as the profile says."""
        encoder = self.encoder
        if late is not None and late != (encoder.settings.chunking.aggregation == "late"):
            encoder = encoder.with_settings(chunk_aggregation="late" if late else "none")
        return encoder.encode_document_chunks(texts, show_progress=self.show_progress)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """`embed_documents` in a worker thread; the event loop keeps running."""
        vectors = await self.encoder.aencode_documents(texts)
        return vectors.tolist()  # type: ignore[no-any-return]

    async def aembed_query(self, text: str) -> list[float]:
        """`embed_query` in a worker thread; the event loop keeps running."""
        vectors = await self.encoder.aencode_queries([text])
        return vectors[0].tolist()  # type: ignore[no-any-return]


def _fields_of(encoder: DiffEmbedEncoder, given: dict[str, Any]) -> dict[str, Any]:
    """The field values that describe `encoder`; a given value that contradicts it is an error."""
    settings, profile, chunking = encoder.settings, encoder.settings.profile, encoder.settings.chunking
    actual: dict[str, Any] = {
        "model_name": settings.model,
        "adapter": settings.adapter,
        "revision": settings.revision,
        "query_instruction": profile.query_instruction,
        "document_instruction": profile.document_instruction,
        "max_length": profile.max_length,
        "chunk_size": chunking.size,
        "chunk_overlap": chunking.overlap,
        "chunk_aggregation": chunking.aggregation,
        "normalize": profile.normalize,
        "attention": profile.attention,
        "pooling": profile.pooling,
        "device": settings.device,
        "dtype": settings.dtype,
        "batch_tokens": settings.batch_tokens,
        "quantization": encoder.loaded.request.quantization,
        "model_kwargs": encoder.loaded.request.raw_model_kwargs or None,
    }
    clashes = sorted(name for name, value in given.items() if name in actual and value != actual[name])
    if clashes:
        raise ValueError(
            f"{', '.join(clashes)} contradict the given encoder's settings: "
            "pass them to DiffEmbedEncoder.from_pretrained instead, or use encoder.with_settings(...)"
        )
    return {"local_files_only": None, "show_progress": None, **given, **actual}
