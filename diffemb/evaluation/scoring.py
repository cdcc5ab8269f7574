"""Score matrices of one encoder on one retrieval task, for every way of handling long documents.

Document modes:

``first``, ``mean``, ``max``, ``late``
    the encoder's own ``chunk_aggregation`` (one vector per document, cosine against the query);
``maxsim``
    ``encode_document_chunks`` and the best cosine over a document's window vectors (multi-vector);
``norm-mean``
    the token-weighted mean of the *L2-normalised* window vectors (``mean`` averages them raw), for the
    long-document benchmark.

``mean``, ``max``, ``maxsim`` and ``norm-mean`` are different reductions of the same windows, and ``first``'s
single window is the first of them when the window size is the default, so :class:`Session` plans every mode
through the encoder and runs each distinct model row once (a :class:`RowCache` keyed by the row's token ids and
pooling ranges). A row's vector does not depend on its batch mates in diffemb, so sharing changes no score
beyond float rounding; :class:`ModeCost` reports both what a mode costs alone (``tokens``) and what was
actually run for it (``tokens_run``).

All ordering is deterministic: rows run in plan order (length-sorted by the encoder), scores are float64, and
ties in ranking are broken by document order (``diffemb.tasks.metrics``).
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from diffemb.chunking import ChunkingConfig, DocumentChunks, aggregate, l2_normalize
from diffemb.encoder import DEFAULT
from diffemb.similarity import cosine_scores, maxsim_scores

SINGLE_VECTOR_MODES: tuple[str, ...] = ("first", "mean", "max", "late")
MULTI_VECTOR_MODES: tuple[str, ...] = ("maxsim", "norm-mean")
MODES: tuple[str, ...] = SINGLE_VECTOR_MODES + MULTI_VECTOR_MODES
# The encoder aggregation whose row plan each mode reduces ("none": one row per window).
_PLAN_OF: dict[str, str] = {
    "first": "first",
    "mean": "none",
    "max": "none",
    "maxsim": "none",
    "norm-mean": "none",
    "late": "late",
}


def check_modes(modes: Sequence[str]) -> list[str]:
    """The modes, validated and de-duplicated in order; an unknown one raises ``ValueError``."""
    out: list[str] = []
    for mode in modes:
        mode = mode.strip()
        if mode not in MODES:
            raise ValueError(f"unknown document mode {mode!r}: use one of {', '.join(MODES)}")
        if mode not in out:
            out.append(mode)
    if not out:
        raise ValueError("no document mode given")
    return out


@dataclass
class ModeCost:
    """What scoring one text set in one mode cost. ``rows``/``tokens`` count every model row (template
    tokens included) the mode needs on its own; ``rows_run``/``tokens_run``/``seconds`` what ran for it here,
    after rows shared with earlier modes or duplicated inside the set came from the cache."""

    rows: int = 0
    tokens: int = 0
    rows_run: int = 0
    tokens_run: int = 0
    seconds: float = 0.0
    truncated: int = 0

    def add(self, other: ModeCost) -> None:
        self.rows += other.rows
        self.tokens += other.tokens
        self.rows_run += other.rows_run
        self.tokens_run += other.tokens_run
        self.seconds += other.seconds
        self.truncated += other.truncated

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["seconds"] = round(self.seconds, 3)
        return out


class RowCache:
    """Pooled vectors of model rows, keyed by a hash of the row's token ids and pooling ranges.

    Valid for one encoder (one model, one dtype); :class:`Session` owns one per encoder.
    """

    def __init__(self) -> None:
        self._store: dict[bytes, np.ndarray] = {}

    @staticmethod
    def key(ids: Sequence[int], segments: Sequence[tuple[int, int]]) -> bytes:
        digest = hashlib.blake2b(np.asarray(ids, dtype=np.int64).tobytes(), digest_size=20)
        digest.update(np.asarray(segments, dtype=np.int64).tobytes())
        return digest.digest()

    def get(self, key: bytes) -> np.ndarray | None:
        return self._store.get(key)

    def put(self, key: bytes, vectors: np.ndarray) -> None:
        self._store[key] = vectors

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> None:
        self._store.clear()


@dataclass
class Session:
    """One encoder plus its row cache; turns texts into raw window vectors for any chunking plan.

    ``chunk_size``/``chunk_overlap`` override the encoder's own window (``None`` keeps it).
    """

    encoder: Any
    chunk_size: int | None = None
    chunk_overlap: int | None = None
    show_progress: bool = False
    cache: RowCache = field(default_factory=RowCache)

    def __post_init__(self) -> None:
        from diffemb.encoder import DiffEmbedEncoder

        if not isinstance(self.encoder, DiffEmbedEncoder):
            raise TypeError(f"diffemb.evaluation needs a DiffEmbedEncoder, got {type(self.encoder).__name__}")

    @property
    def normalize(self) -> bool:
        return bool(self.encoder.profile.normalize)

    def chunking(self, aggregation: str) -> ChunkingConfig:
        base = self.encoder.settings.chunking
        size = self.chunk_size if self.chunk_size is not None else base.size
        overlap = self.chunk_overlap if self.chunk_overlap is not None else base.overlap
        return ChunkingConfig(aggregation, size, overlap)  # type: ignore[arg-type]

    def window(self, aggregation: str = "none", role: str = "document") -> tuple[int, int]:
        """(size, overlap) in tokens of the windows a plan uses (the whole capacity for ``first``)."""
        frame = self.encoder.text.frame(self.encoder.instruction_for(role, DEFAULT))
        capacity = self.encoder.profile.max_length - frame.overhead
        if aggregation == "first":
            return capacity, 0
        return self.chunking(aggregation).window(capacity)

    def chunks(
        self, texts: Sequence[str], role: str, aggregation: str | None, instruction: Any = DEFAULT
    ) -> tuple[list[DocumentChunks], ModeCost]:
        """Raw (not normalised) window vectors per text, as the encoder pools them, and what it cost.

        ``aggregation=None`` plans texts as queries (truncated to one window). ``instruction`` as in
        ``DiffEmbedEncoder.encode``: ``DEFAULT`` is the role's own, ``None`` or ``""`` none.
        """
        encoder = self.encoder
        chunking = None if aggregation is None else self.chunking(aggregation)
        with warnings.catch_warnings():
            # Truncation is counted in the cost instead of warned about once per task and mode.
            warnings.simplefilter("ignore")
            plan = encoder.plan(list(texts), role, instruction, chunking)
        cost = ModeCost(rows=len(plan.rows), tokens=sum(len(row.ids) for row in plan.rows), truncated=plan.truncated)
        keys = [RowCache.key(row.ids, row.segments) for row in plan.rows]
        todo: dict[bytes, int] = {}
        for index, key in enumerate(keys):
            if self.cache.get(key) is None and key not in todo:
                todo[key] = index
        started = time.perf_counter()
        if todo:
            run_keys = list(todo)
            rows = [plan.rows[i] for i in todo.values()]
            cost.rows_run = len(rows)
            cost.tokens_run = sum(len(row.ids) for row in rows)
            for indices, results in encoder.run_rows(rows, show_progress=self.show_progress):
                for index, pooled in zip(indices, results, strict=True):
                    self.cache.put(run_keys[index], np.asarray(pooled, dtype=np.float32))
        cost.seconds = time.perf_counter() - started
        dim = encoder.dimension
        vectors = [np.empty((len(chunks), dim), dtype=np.float32) for chunks in plan.chunks]
        for row, key in zip(plan.rows, keys, strict=True):
            pooled = self.cache.get(key)
            assert pooled is not None
            for (text_index, chunk_index), vector in zip(row.owners, pooled, strict=True):
                vectors[text_index][chunk_index] = vector
        out = [
            DocumentChunks(vectors[i], [c.span for c in chunks], [max(c.tokens, 1) for c in chunks])
            for i, chunks in enumerate(plan.chunks)
        ]
        return out, cost

    def queries(self, texts: Sequence[str], instruction: Any = DEFAULT) -> tuple[np.ndarray, ModeCost]:
        """Query vectors, L2-normalised for cosine scoring."""
        chunks, cost = self.chunks(texts, "query", None, instruction)
        vectors = np.stack([aggregate(c, "first", self.normalize) for c in chunks])
        return l2_normalize(vectors), cost

    def documents(
        self, texts: Sequence[str], mode: str, instruction: Any = DEFAULT
    ) -> tuple[list[DocumentChunks] | np.ndarray, ModeCost]:
        """Per mode: an (n, dim) matrix of unit document vectors (single-vector modes) or, for the
        multi-vector modes, each document's unit window vectors."""
        chunks, cost = self.chunks(texts, "document", _PLAN_OF[mode], instruction)
        if mode in SINGLE_VECTOR_MODES:
            how = "first" if mode == "first" else ("mean" if mode == "late" else mode)
            vectors = np.stack([aggregate(c, how, self.normalize) for c in chunks])
            return l2_normalize(vectors), cost
        return [replace(c, vectors=l2_normalize(c.vectors)) for c in chunks], cost


def score_matrix(queries: np.ndarray, documents: np.ndarray | list[DocumentChunks], mode: str) -> np.ndarray:
    """(Q, D) float64 cosine scores for query vectors against one mode's document representation."""
    q = np.asarray(queries, dtype=np.float64)
    if mode in SINGLE_VECTOR_MODES:
        return cosine_scores(q, np.asarray(documents, dtype=np.float64))
    chunks = documents
    assert isinstance(chunks, list)
    if mode == "norm-mean":
        return cosine_scores(q, token_weighted_means(chunks))
    if mode == "maxsim":
        return maxsim_scores(q, [c.vectors for c in chunks])[0]
    raise ValueError(f"unknown document mode {mode!r}")


def token_weighted_means(chunks: Sequence[DocumentChunks]) -> np.ndarray:
    """(D, dim) float64: each document's window vectors averaged with their token counts as weights (the
    ``norm-mean`` representation, before normalisation)."""
    means = [
        (np.asarray(c.token_counts, dtype=np.float64)[:, None] * c.vectors.astype(np.float64)).sum(0)
        / float(np.sum(c.token_counts))
        for c in chunks
    ]
    return np.stack(means) if means else np.zeros((0, 0))
