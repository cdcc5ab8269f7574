"""`DiffEmbedEncoder`: the public encoder. Orchestration only; each step lives in its own module.

text → tokens (text.py) → rows and windows (rows.py, chunking.py) → token-budgeted batches (batching.py) →
forward pass and pooling (forward.py, pooling.py) → per-document aggregation (chunking.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from diffemb.backbones import Backbone, LoadOptions, load_backbone
from diffemb.chunking import ChunkingConfig, DocumentChunks, aggregate, l2_normalize
from diffemb.device import (
    attention_implementation,
    default_batch_tokens,
    device_lock,
    resolve_devices,
    resolve_dtype,
)
from diffemb.hub import resolve_folder
from diffemb.inputs import Role, check_role, check_text, check_texts
from diffemb.lora import merge_lora
from diffemb.profiles import Attention, ModelProfile, Pooling, TextTemplate
from diffemb.replicas import ReplicaPool
from diffemb.rows import RowPlan, plan_rows
from diffemb.settings import EncoderSettings
from diffemb.text import TextTokenizer, TokenizedText

ADAPTER_SETTINGS_FILE = "diffemb.json"
"""Written by `diffemb train` beside an adapter: the encoder settings it was trained with."""


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Any = _Default()
"""Use the role's instruction from the encoder's settings."""


class DiffEmbedEncoder:
    """Embeds queries and documents with a diffusion LM (or an AR/encoder baseline) for retrieval.

    Load with `DiffEmbedEncoder.from_pretrained(...)`. Vectors are float32 numpy arrays in input order; one
    encoder is safe to share between threads and frameworks (forward passes take the device's lock).
    """

    def __init__(self, backbone: Backbone, settings: EncoderSettings, show_progress: bool = False) -> None:
        self.backbone = backbone
        self.settings = settings
        self.show_progress = show_progress
        self.devices = [torch.device(name) for name in settings.device.split(",")]
        self.device = self.devices[0]
        self.text = TextTokenizer(backbone.tokenizer, settings.profile.template)
        self.lock = device_lock(self.device)
        tokenizer = backbone.tokenizer
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self._replicas = ReplicaPool.build(
            backbone.model,
            self.devices,
            settings.batch_tokens,
            pad_token_id=int(pad or 0),
            pooling=settings.profile.pooling,
            padding_side=settings.padding_side,
            explicit_positions=backbone.explicit_positions,
        )

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
        max_length: int | None = None,
        query_instruction: str | None = None,
        document_instruction: str | None = None,
        normalize: bool | None = None,
        attention: Attention | None = None,
        pooling: Pooling | None = None,
        template: bool | TextTemplate | None = None,
        exclude_instruction: bool | None = None,
        batch_tokens: int | None = None,
        chunk_size: int | None = None,
        chunk_overlap: int | None = None,
        chunk_aggregation: str = "mean",
        padding_side: str = "right",
        show_progress: bool = False,
    ) -> DiffEmbedEncoder:
        """Load a checkpoint (hub id or local folder) and, optionally, merge a LoRA adapter into it.

        Every `None` keeps the default of the model's family profile (see `diffemb.profiles`); an empty
        `query_instruction=""` turns the query instruction off. `template=False` feeds raw text.
        """
        if attention not in (None, "bidirectional", "causal"):
            raise ValueError(f"attention must be 'bidirectional' or 'causal', got {attention!r}")
        chunking = ChunkingConfig(chunk_aggregation, chunk_size, chunk_overlap)  # type: ignore[arg-type]
        folder = resolve_folder(
            model_name_or_path, revision=revision, local_files_only=local_files_only, token=token, cache_dir=cache_dir
        )
        adapter_folder = None
        trained: dict[str, Any] = {}
        if adapter is not None:
            adapter_folder = resolve_folder(
                adapter, local_files_only=local_files_only, token=token, cache_dir=cache_dir
            )
            trained = _read_adapter_settings(adapter_folder)
        devices = resolve_devices(device)
        torch_device = devices[0]
        torch_dtype = resolve_dtype(dtype, torch_device)
        options = LoadOptions(
            device=torch_device,
            dtype=torch_dtype,
            attn_implementation=attention_implementation(torch_device, torch_dtype),
            attention=attention or trained.get("attention"),
        )
        backbone = load_backbone(folder, options)
        if adapter_folder is not None:
            backbone.model = merge_lora(backbone.model, adapter_folder, backbone.adapter_key_map)
        profile = backbone.profile.with_overrides(**{k: v for k, v in trained.items() if k != "attention"})
        if template is False:
            plain = TextTemplate(instruction_format=profile.template.instruction_format)
            profile = replace(profile, template=replace(plain, colon_instruction=profile.template.colon_instruction))
        elif isinstance(template, TextTemplate):
            profile = replace(profile, template=template)
        profile = profile.with_overrides(
            max_length=max_length,
            normalize=normalize,
            pooling=pooling,
            exclude_instruction=exclude_instruction,
            query_instruction=query_instruction,
            document_instruction=document_instruction,
        )
        n_params = sum(p.numel() for p in backbone.model.parameters())
        budget = batch_tokens or default_batch_tokens(torch_device, n_params, backbone.dimension)
        settings = EncoderSettings(
            model=str(model_name_or_path),
            revision=revision,
            adapter=None if adapter is None else str(adapter),
            profile=profile,
            chunking=chunking,
            dtype=str(torch_dtype).removeprefix("torch."),
            device=",".join(str(d) for d in devices),
            batch_tokens=max(int(budget), 1),
            padding_side=padding_side,
        )
        return cls(backbone, settings, show_progress=show_progress)

    # -- what the encoder is -------------------------------------------------------------------------------

    @property
    def dimension(self) -> int:
        """Length of every vector, known without a forward pass."""
        return self.backbone.dimension

    @property
    def profile(self) -> Any:
        return self.settings.profile

    @property
    def model(self) -> torch.nn.Module:
        return self.backbone.model

    @property
    def fingerprint(self) -> str:
        """Stable hash of every vector-affecting setting: use it to key caches of vectors."""
        return self.settings.fingerprint()

    def describe(self) -> dict[str, Any]:
        """The resolved settings as plain data (what `diffemb info` prints)."""
        return {
            "model": self.settings.model,
            "family": self.profile.family,
            "dimension": self.dimension,
            "device": self.settings.device,
            "dtype": self.settings.dtype,
            "batch_tokens": self.settings.batch_tokens,
            "fingerprint": self.fingerprint,
            "profile": asdict(self.profile),
            "chunking": asdict(self.settings.chunking),
        }

    def count_tokens(self, text: str) -> int:
        return self.text.count_tokens(text)

    # -- encoding ------------------------------------------------------------------------------------------

    def encode_queries(self, texts: Iterable[str], instruction: str | None = DEFAULT) -> np.ndarray:
        return self.encode(texts, role="query", instruction=instruction)

    def encode_documents(self, texts: Iterable[str], instruction: str | None = DEFAULT) -> np.ndarray:
        return self.encode(texts, role="document", instruction=instruction)

    def encode(
        self,
        texts: Iterable[str],
        role: Role = "document",
        instruction: str | None = DEFAULT,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        """Vectors (n, dimension) float32 in input order. Queries longer than the window are truncated with a
        warning; documents are split into windows and aggregated as `chunk_aggregation` says."""
        items = check_texts(texts)
        role = check_role(role)
        if not items:
            return np.zeros((0, self.dimension), dtype=np.float32)
        chunking = self.settings.chunking if role == "document" else None
        if chunking is not None and chunking.aggregation == "none":
            raise ValueError(
                "chunk_aggregation='none' gives several vectors per document: call encode_document_chunks()"
            )
        how = chunking.aggregation if chunking is not None else "first"
        per_text = self._encode_chunks(items, role, instruction, chunking, show_progress)
        normalize = self.profile.normalize
        return np.stack([aggregate(chunks, how, normalize) for chunks in per_text]).astype(np.float32)

    def encode_document_chunks(
        self, texts: Iterable[str], instruction: str | None = DEFAULT, show_progress: bool | None = None
    ) -> list[DocumentChunks]:
        """Per document, one vector per window with the window's character span, for multi-vector retrieval."""
        items = check_texts(texts)
        if not items:
            return []
        chunking = self.settings.chunking
        if chunking.aggregation != "late":
            chunking = replace(chunking, aggregation="none")
        per_text = self._encode_chunks(items, "document", instruction, chunking, show_progress)
        if self.profile.normalize:
            per_text = [replace(chunks, vectors=l2_normalize(chunks.vectors)) for chunks in per_text]
        return per_text

    def encode_documents_iter(
        self, texts: Iterable[str], instruction: str | None = DEFAULT, group_size: int = 1024
    ) -> Iterator[np.ndarray]:
        """Yields one vector per document, in order, holding only `group_size` documents' tokens at a time.

        The next group is tokenised in a worker thread while the current one runs on the model.
        """
        if isinstance(texts, (str, bytes)):
            check_texts(texts)
        groups = _groups(texts, group_size)
        chunking = self.settings.chunking
        how = chunking.aggregation
        if how == "none":
            raise ValueError("chunk_aggregation='none' gives several vectors per document: use encode_document_chunks")

        def plan_next() -> RowPlan | None:
            group = next(groups, None)
            return None if group is None else self._plan(group, "document", instruction, chunking)

        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(plan_next)
            while (plan := pending.result()) is not None:
                pending = pool.submit(plan_next)
                for chunks in self._run(plan, show_progress=False):
                    yield aggregate(chunks, how, self.profile.normalize)

    async def aencode(
        self, texts: Iterable[str], role: Role = "document", instruction: str | None = DEFAULT
    ) -> np.ndarray:
        """`encode` in a worker thread, so an event loop keeps running; passes still take the device lock."""
        return await asyncio.to_thread(self.encode, texts, role, instruction)

    async def aencode_queries(self, texts: Iterable[str], instruction: str | None = DEFAULT) -> np.ndarray:
        return await self.aencode(texts, "query", instruction)

    async def aencode_documents(self, texts: Iterable[str], instruction: str | None = DEFAULT) -> np.ndarray:
        return await self.aencode(texts, "document", instruction)

    # -- internals -----------------------------------------------------------------------------------------

    def _instruction_for(self, role: Role, instruction: str | None) -> str | None:
        if instruction is DEFAULT:
            profile = self.profile
            return profile.query_instruction if role == "query" else profile.document_instruction
        return instruction

    def _encode_chunks(
        self,
        texts: list[str],
        role: Role,
        instruction: str | None,
        chunking: ChunkingConfig | None,
        show_progress: bool | None,
    ) -> list[DocumentChunks]:
        return self._run(self._plan(texts, role, instruction, chunking), show_progress)

    def _plan(self, texts: list[str], role: Role, instruction: str | None, chunking: ChunkingConfig | None) -> RowPlan:
        frame = self.text.frame(self._instruction_for(role, instruction))
        tokenized: list[TokenizedText] = self.text.tokenize(texts, frame.lead)
        profile = self.profile
        plan = plan_rows(tokenized, frame, profile.max_length, chunking, profile.exclude_instruction)
        _warn_truncated(plan, len(texts), role, profile.max_length - frame.overhead)
        return plan

    def _run(self, plan: RowPlan, show_progress: bool | None) -> list[DocumentChunks]:
        vectors = [np.empty((len(chunks), self.dimension), dtype=np.float32) for chunks in plan.chunks]
        visible = self.show_progress if show_progress is None else show_progress
        with tqdm(total=len(plan.rows), disable=not visible, desc="diffemb", unit="row") as bar:
            for indices, results in self._replicas.run(plan.rows):
                for index, pooled in zip(indices, results, strict=True):
                    for (text_index, chunk_index), vector in zip(plan.rows[index].owners, pooled, strict=True):
                        vectors[text_index][chunk_index] = vector
                bar.update(len(indices))
        return [
            DocumentChunks(vectors[i], [c.span for c in chunks], [max(c.tokens, 1) for c in chunks])
            for i, chunks in enumerate(plan.chunks)
        ]


def _warn_truncated(plan: RowPlan, total: int, role: Role, capacity: int) -> None:
    if not plan.truncated:
        return
    if role == "query":
        message = (
            f"{plan.truncated} of {total} queries are longer than the model window ({capacity} text tokens) and "
            "were truncated; raise max_length if the model allows it (documents are split into windows instead)"
        )
    else:
        message = (
            f"{plan.truncated} of {total} documents are longer than the model window ({capacity} text tokens) and "
            "were cut to their first window (chunk_aggregation='first'); use 'mean' or 'max' to embed all of them"
        )
    warnings.warn(message, stacklevel=5)


def _read_adapter_settings(folder: Path) -> dict[str, Any]:
    path = folder / ADAPTER_SETTINGS_FILE
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8") as handle:
        saved: dict[str, Any] = json.load(handle)
    known = {field.name for field in fields(ModelProfile)} | {"attention"}
    settings = dict(saved.get("encoder", {}))
    unknown = sorted(set(settings) - known)
    if unknown:
        warnings.warn(f"{path} has settings this diffemb does not know and ignores: {unknown}", stacklevel=4)
    if isinstance(settings.get("template"), dict):
        settings["template"] = TextTemplate(**settings["template"])
    return {key: value for key, value in settings.items() if key in known}


def _groups(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    group: list[str] = []
    for index, text in enumerate(texts):
        group.append(check_text(text, index))
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group
