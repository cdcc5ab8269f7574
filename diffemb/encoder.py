"""`DiffEmbedEncoder`: the public encoder. Orchestration only; each step lives in its own module.

text → tokens (text.py) → rows and windows (rows.py, chunking.py) → token-budgeted batches (batching.py) →
forward pass and pooling (forward.py, pooling.py) → per-document aggregation (chunking.py).

An encoder is a view: one `LoadedModel` (weights, device replicas; loading.py) plus one `EncoderSettings`
(settings.py). `with_settings` makes another view over the same weights. The run API (`plan`, `run`,
`aggregate`, `instruction_for`) is what applications (evaluation, training, Ray, serving) build on.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from typing_extensions import Unpack

from diffemb.backbones import Backbone
from diffemb.chunking import ChunkingConfig, DocumentChunks, aggregate, l2_normalize
from diffemb.device import device_lock, release_host_memory
from diffemb.inputs import Role, check_role, check_texts, checked_groups
from diffemb.loading import ADAPTER_SETTINGS_FILE, LoadedModel, initial_settings, load_model, prepare
from diffemb.precision import CompactOptions, check_compact, compact, compact_chunks
from diffemb.profiles import Attention, ModelProfile
from diffemb.rows import Row, RowPlan, plan_rows, warn_truncated
from diffemb.settings import EncoderSettings, apply_view_options
from diffemb.text import TextTokenizer

__all__ = ["ADAPTER_SETTINGS_FILE", "DEFAULT", "DiffEmbedEncoder"]


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Any = _Default()
"""Use the role's instruction from the encoder's settings (so does `None`; `""` means no instruction)."""


class DiffEmbedEncoder:
    """Embeds queries and documents with a diffusion LM (or an AR/encoder baseline) for retrieval.

    Load with `DiffEmbedEncoder.from_pretrained(...)`; derive views with other settings from one loaded model
    with `with_settings(...)`. Vectors are float32 numpy arrays in input order; one encoder is safe to share
    between threads and frameworks (forward passes take the device's lock).
    """

    def __init__(self, loaded: LoadedModel, settings: EncoderSettings) -> None:
        self.loaded = loaded
        self.settings = settings
        self.text = TextTokenizer(loaded.backbone.tokenizer, settings.profile.template)

    @classmethod
    def from_pretrained(
        cls,
        model_name_or_path: str | os.PathLike[str],
        *,
        adapter: str | os.PathLike[str] | None = None,
        revision: str | None = None,
        local_files_only: bool | None = None,
        token: str | bool | None = None,
        cache_dir: str | None = None,
        device: str | torch.device | list[str] = "auto",
        dtype: str | torch.dtype = "auto",
        attention: Attention | None = None,
        model_kwargs: dict[str, Any] | None = None,
        quantization: str | None = None,
        shared: bool = True,
        **view_options: Any,
    ) -> DiffEmbedEncoder:
        """Load a checkpoint (hub id or local folder) and, optionally, merge a LoRA adapter into it.

        The keyword arguments above decide the weights. Every other one is a view setting (the names in
        `diffemb.settings.VIEW_OPTIONS`: `query_instruction`, `document_instruction`, `normalize`, `pooling`,
        `template`, `exclude_instruction`, `max_length`, `chunk_size`, `chunk_overlap`, `chunk_aggregation`,
        `batch_tokens`, `padding_side`, `show_progress`); `None` keeps the default of the model's family profile
        (or of the adapter's `diffemb.json`) and `query_instruction=""` turns the query instruction off.
        All settings are checked before any weight is read. Encoders whose weights would be the same share one
        loaded copy, freed when the last of them is gone; `shared=False` loads a private copy (for training,
        which changes the weights in place). `model_kwargs` go to transformers' `from_pretrained`;
        `quantization="int8"` (CPU: torchao; CUDA: bitsandbytes) or `"nf4"` (CUDA) quantises the weights after any
        adapter is merged (`diffemb.quantization`; `pip install "diffemb[quant]"`).
        """
        prepared = prepare(
            model_name_or_path,
            adapter=adapter,
            revision=revision,
            local_files_only=local_files_only,
            token=token,
            cache_dir=cache_dir,
            device=device,
            dtype=dtype,
            attention=attention,
            model_kwargs=model_kwargs,
            quantization=quantization,
        )
        checked = initial_settings(prepared, model_name_or_path, revision, adapter, view_options)
        loaded = load_model(prepared, shared=shared)  # only now are weights read
        batch_tokens = view_options.get("batch_tokens") or loaded.default_batch_tokens
        return cls(loaded, replace(checked, batch_tokens=batch_tokens))

    @classmethod
    def describe_pretrained(cls, model_name_or_path: str | os.PathLike[str], **options: Any) -> dict[str, Any]:
        """What `from_pretrained(model_name_or_path, **options)` would load, from configuration files alone
        (no weights are read): family, dimension, position limit, resolved profile, chunking, fingerprint.
        `batch_tokens` is the given one, or null when it would be sized from the loaded model."""
        load_names = ("adapter", "revision", "local_files_only", "token", "cache_dir", "device", "dtype")
        load = {name: options.pop(name) for name in load_names if name in options}
        options.pop("shared", None)
        prepared = prepare(
            model_name_or_path,
            adapter=load.get("adapter"),
            revision=load.get("revision"),
            local_files_only=load.get("local_files_only"),
            token=load.get("token"),
            cache_dir=load.get("cache_dir"),
            device=load.get("device", "auto"),
            dtype=load.get("dtype", "auto"),
            attention=options.pop("attention", None),
            model_kwargs=options.pop("model_kwargs", None),
            quantization=options.pop("quantization", None),
        )
        settings = initial_settings(prepared, model_name_or_path, load.get("revision"), load.get("adapter"), options)
        described = settings.describe(prepared.info.dimension, prepared.info.family)
        described["batch_tokens"] = options.get("batch_tokens")
        return described

    def with_settings(self, **overrides: Any) -> DiffEmbedEncoder:
        """A view over the same loaded weights that differs only in the given settings.

        Only the settings in `diffemb.settings.VIEW_OPTIONS` can change (instructions, template switches,
        pooling, normalisation, max_length within the model's positions, chunking, batch_tokens,
        padding_side, show_progress); an option given as `None` goes back to its default. Options that decide
        the weights (model, revision, adapter, dtype, device, attention, model_kwargs) raise a ValueError.
        """
        settings = apply_view_options(
            self.settings, self.loaded_profile, self.loaded.default_batch_tokens, **overrides
        )
        return DiffEmbedEncoder(self.loaded, settings)

    # -- what the encoder is -------------------------------------------------------------------------------

    @property
    def dimension(self) -> int:
        """Length of every vector, known without a forward pass."""
        return self.loaded.info.dimension

    @property
    def profile(self) -> ModelProfile:
        return self.settings.profile

    @property
    def loaded_profile(self) -> ModelProfile:
        """The profile this model's views start from (family defaults and the adapter's training settings)."""
        return self.loaded.base_profile

    @property
    def backbone(self) -> Backbone:
        return self.loaded.backbone

    @property
    def model(self) -> torch.nn.Module:
        return self.loaded.backbone.model

    @property
    def tokenizer(self) -> Any:
        return self.loaded.backbone.tokenizer

    @property
    def devices(self) -> list[torch.device]:
        return list(self.loaded.request.devices)

    @property
    def device(self) -> torch.device:
        return self.loaded.request.devices[0]

    @property
    def lock(self) -> Any:
        """The lock that serialises forward passes on this encoder's first device."""
        return device_lock(self.device)

    @property
    def show_progress(self) -> bool:
        return self.settings.show_progress

    @property
    def fingerprint(self) -> str:
        """Stable hash of every vector-affecting setting and of the weights' content: key vector caches on it."""
        return self.settings.fingerprint()

    def describe(self) -> dict[str, Any]:
        """The resolved settings as plain data (what `diffemb info` prints)."""
        return self.settings.describe(self.dimension, self.loaded.info.family)

    def count_tokens(self, text: str) -> int:
        return self.text.count_tokens(text)

    # -- encoding ------------------------------------------------------------------------------------------

    def encode_queries(
        self, texts: Iterable[str], instruction: str | None = DEFAULT, **compact: Unpack[CompactOptions]
    ) -> np.ndarray:
        return self.encode(texts, role="query", instruction=instruction, **compact)

    def encode_documents(
        self, texts: Iterable[str], instruction: str | None = DEFAULT, **compact: Unpack[CompactOptions]
    ) -> np.ndarray:
        return self.encode(texts, role="document", instruction=instruction, **compact)

    def encode(
        self,
        texts: Iterable[str],
        role: Role = "document",
        instruction: str | None = DEFAULT,
        show_progress: bool | None = None,
        **compact_options: Unpack[CompactOptions],
    ) -> np.ndarray:
        """Vectors (n, dimension) float32 in input order. Queries longer than the window are truncated with a
        warning; documents are split into windows and aggregated as `chunk_aggregation` says. `precision`,
        `truncate_dim`, `calibration`: compact vectors, as `diffemb.precision.compact` says."""
        items = check_texts(texts)
        role = check_role(role)
        check_compact(self.dimension, **compact_options)
        if not items:
            return compact(np.zeros((0, self.dimension), np.float32), self.profile.normalize, **compact_options)
        if role == "document" and self.settings.chunking.aggregation == "none":
            raise ValueError(
                "chunk_aggregation='none' gives several vectors per document: call encode_document_chunks()"
            )
        return self.vectors(self.plan(items, role, instruction), role, show_progress, **compact_options)

    def encode_document_chunks(
        self,
        texts: Iterable[str],
        instruction: str | None = DEFAULT,
        show_progress: bool | None = None,
        **compact_options: Unpack[CompactOptions],
    ) -> list[DocumentChunks]:
        """Per document, one vector per window with the window's character span and token count, for
        multi-vector (max-sim) retrieval. With `chunk_aggregation="late"` the windows are pooled from one long
        pass over the document (late chunking); otherwise each window is its own pass. Compact options: per window."""
        items = check_texts(texts)
        check_compact(self.dimension, **compact_options)
        if not items:
            return []
        plan = self.plan(items, "document", instruction, self.window_chunking())
        return self.windows(plan, show_progress, **compact_options)

    def window_chunking(self) -> ChunkingConfig:
        """The chunking `encode_document_chunks` plans with: plain windows, or late ones when the settings say."""
        chunking = self.settings.chunking
        return chunking if chunking.aggregation == "late" else replace(chunking, aggregation="none")

    def vectors(
        self, plan: RowPlan, role: Role, show_progress: bool | None = None, **compact_options: Unpack[CompactOptions]
    ) -> np.ndarray:
        """`encode`'s second half: one vector per text of a plan made with `plan(texts, role, ...)`, so a caller
        that also needs the plan (its `body_tokens`, say) tokenises only once."""
        check_compact(self.dimension, **compact_options)
        vectors = np.stack([self.aggregate(chunks, role) for chunks in self.run(plan, show_progress)])
        return compact(vectors.astype(np.float32), self.profile.normalize, **compact_options)

    def windows(
        self, plan: RowPlan, show_progress: bool | None = None, **compact_options: Unpack[CompactOptions]
    ) -> list[DocumentChunks]:
        """`encode_document_chunks`' second half, for a plan made with `chunking=self.window_chunking()`."""
        check_compact(self.dimension, **compact_options)
        per_text = self.run(plan, show_progress)
        if self.profile.normalize:
            per_text = [replace(chunks, vectors=l2_normalize(chunks.vectors)) for chunks in per_text]
        return compact_chunks(per_text, self.profile.normalize, **compact_options)

    def encode_documents_iter(
        self,
        texts: Iterable[str],
        instruction: str | None = DEFAULT,
        group_size: int = 1024,
        **compact_options: Unpack[CompactOptions],
    ) -> Iterator[np.ndarray]:
        """Yields one vector per document, in order, holding only `group_size` documents' tokens at a time.

        The next group is tokenised in a worker thread while the current one runs on the model; freed memory
        is handed back to the system between groups, so a long stream runs in flat memory. Compact vectors as in
        `encode`; int8/uint8 need `calibration` (a stream has no batch to take ranges from).
        """
        check_compact(self.dimension, stream=True, **compact_options)
        if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
            raise ValueError(f"group_size must be a positive number of documents, got {group_size!r}")
        if isinstance(texts, (str, bytes)):
            check_texts(texts)
        if self.settings.chunking.aggregation == "none":
            raise ValueError("chunk_aggregation='none' gives several vectors per document: use encode_document_chunks")
        # Not a generator itself, so that the checks above fail at the call, not at the first next().
        return self._stream_groups(checked_groups(texts, group_size), instruction, compact_options)

    def _stream_groups(
        self, groups: Iterator[list[str]], instruction: str | None, compact_options: CompactOptions
    ) -> Iterator[np.ndarray]:
        offset = 0

        def plan_next() -> tuple[RowPlan, int] | None:
            nonlocal offset
            group = next(groups, None)
            if group is None:
                return None
            start, offset = offset, offset + len(group)
            return self.plan(group, "document", instruction, index_offset=start), start

        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(plan_next)
            while (planned := pending.result()) is not None:
                pending = pool.submit(plan_next)
                results = self.run(planned[0], show_progress=False)
                del planned
                release_host_memory()
                for chunks in results:
                    yield compact(self.aggregate(chunks, "document"), self.profile.normalize, **compact_options)

    async def aencode(
        self,
        texts: Iterable[str],
        role: Role = "document",
        instruction: str | None = DEFAULT,
        **compact: Unpack[CompactOptions],
    ) -> np.ndarray:
        """`encode` in a worker thread, so an event loop keeps running; passes still take the device lock."""
        return await asyncio.to_thread(lambda: self.encode(texts, role, instruction, **compact))

    async def aencode_queries(
        self, texts: Iterable[str], instruction: str | None = DEFAULT, **compact: Unpack[CompactOptions]
    ) -> np.ndarray:
        return await self.aencode(texts, "query", instruction, **compact)

    async def aencode_documents(
        self, texts: Iterable[str], instruction: str | None = DEFAULT, **compact: Unpack[CompactOptions]
    ) -> np.ndarray:
        return await self.aencode(texts, "document", instruction, **compact)

    # -- the run API: plan rows, run them, aggregate ------------------------------------------------------

    def instruction_for(self, role: Role, instruction: str | None = DEFAULT) -> str | None:
        """The instruction a text of `role` gets: `DEFAULT` or `None` → the settings' one for that role;
        `""` → none; any other string → that string."""
        if instruction is DEFAULT or instruction is None:
            profile = self.profile
            return profile.query_instruction if role == "query" else profile.document_instruction
        if not isinstance(instruction, str):
            raise TypeError(f"instruction must be a string, None or DEFAULT, got {type(instruction).__name__}")
        return instruction

    def plan(
        self,
        texts: list[str],
        role: Role = "document",
        instruction: str | None = DEFAULT,
        chunking: ChunkingConfig | None = DEFAULT,
        *,
        index_offset: int = 0,
    ) -> RowPlan:
        """Tokenise `texts` once and cut them into model rows: queries truncated to the window, documents split
        into windows as `chunking` says (`DEFAULT`: the settings' chunking for documents, none for queries).
        A text whose body has no token (zero-width or control characters only) is a ValueError naming it
        (`texts[index_offset + i]`). Run the plan with `run`."""
        role = check_role(role)
        if chunking is DEFAULT:
            chunking = self.settings.chunking if role == "document" else None
        frame = self.text.frame(self.instruction_for(role, instruction))
        tokenized = self.text.tokenize(texts, frame.lead)
        for index, body in enumerate(tokenized):
            if not body.ids:
                raise ValueError(
                    f"texts[{index_offset + index}] has no tokens for this model (only white space, zero-width or "
                    "control characters): remove it or give it text"
                )
        profile = self.profile
        plan = plan_rows(tokenized, frame, profile.max_length, chunking, profile.exclude_instruction)
        warn_truncated(plan, len(texts), role, profile.max_length - frame.overhead)
        return plan

    def run(self, plan: RowPlan, show_progress: bool | None = None) -> list[DocumentChunks]:
        """Run a plan's rows in token-budgeted batches; per text, its window vectors (not yet normalised) with
        each window's character span and token count, in the plan's text order."""
        vectors = [np.empty((len(chunks), self.dimension), dtype=np.float32) for chunks in plan.chunks]
        for indices, results in self.run_rows(plan.rows, show_progress):
            for index, pooled in zip(indices, results, strict=True):
                for (text_index, chunk_index), vector in zip(plan.rows[index].owners, pooled, strict=True):
                    vectors[text_index][chunk_index] = vector
        return [
            DocumentChunks(vectors[i], [c.span for c in chunks], [max(c.tokens, 1) for c in chunks])
            for i, chunks in enumerate(plan.chunks)
        ]

    def run_rows(
        self, rows: Sequence[Row], show_progress: bool | None = None
    ) -> Iterator[tuple[list[int], list[np.ndarray]]]:
        """The lower half of `run`, for callers that keep their own row cache (evaluation): yields, per batch as
        it finishes, the row indices and each row's pooled segments (n_segments, dimension) float32."""
        visible = self.show_progress if show_progress is None else show_progress
        settings = self.settings
        batches = self.loaded.pool.run(rows, settings.profile.pooling, settings.padding_side, settings.batch_tokens)
        with tqdm(total=len(rows), disable=not visible, desc="diffemb", unit="row") as bar:
            for indices, results in batches:
                yield indices, results
                bar.update(len(indices))

    def aggregate(self, chunks: DocumentChunks, role: Role = "document") -> np.ndarray:
        """One vector from a text's window vectors, as the settings say (queries have one window), normalised
        when the profile normalises."""
        how = self.settings.chunking.aggregation if role == "document" else "first"
        if how == "none":
            raise ValueError("chunk_aggregation='none' keeps window vectors: use the DocumentChunks as they are")
        return aggregate(chunks, how, self.profile.normalize)
