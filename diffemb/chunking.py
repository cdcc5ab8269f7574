"""Long documents: token windows over one tokenisation, and the aggregation of window vectors.

Windows are cut from the body's token ids, so every token of a document lands in at least one window and each
window knows its character span in the original text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Aggregation = Literal["mean", "max", "first", "none", "late"]
AGGREGATIONS: tuple[str, ...] = ("mean", "max", "first", "none", "late")


@dataclass(frozen=True)
class ChunkingConfig:
    """How documents longer than the model's window are handled."""

    aggregation: Aggregation = "mean"
    size: int | None = None
    """Body tokens per window; `None` means all that fit in `max_length` after the template and instruction
    (for `late`: a quarter of that, each window pooled from the states of one long pass)."""
    overlap: int | None = None
    """Tokens shared by neighbouring windows; `None` means about 10% of the window."""

    def __post_init__(self) -> None:
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"unknown chunk_aggregation {self.aggregation!r}: use one of {', '.join(AGGREGATIONS)}")
        if self.size is not None and self.size < 1:
            raise ValueError(f"chunk_size must be a positive number of tokens, got {self.size}")
        if self.overlap is not None and self.overlap < 0:
            raise ValueError(f"chunk_overlap must be zero or more tokens, got {self.overlap}")

    def window(self, capacity: int) -> tuple[int, int]:
        """(size, overlap) in tokens for a model that fits `capacity` body tokens per row."""
        if capacity < 1:
            raise ValueError(
                f"max_length leaves no room for text after the template and instruction ({capacity} tokens): "
                "raise max_length or shorten the instruction"
            )
        default = max(1, capacity // 4) if self.aggregation == "late" else capacity
        size = min(self.size or default, capacity)
        overlap = self.overlap if self.overlap is not None else size // 10
        if overlap >= size:
            raise ValueError(f"chunk_overlap ({overlap}) must be smaller than chunk_size ({size})")
        return size, overlap


def split_windows(n_tokens: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """Token ranges `[start, end)` of width `size`, stepping by `size - overlap`, covering `0..n_tokens`.

    The last window is shifted back to end at the last token (when the text is longer than one window), so
    no window is a short tail that would carry little context.
    """
    if n_tokens <= size:
        return [(0, n_tokens)]
    stride = size - overlap
    starts = [*range(0, n_tokens - size, stride), n_tokens - size]
    return [(start, start + size) for start in starts]


@dataclass(frozen=True)
class DocumentChunks:
    """The chunk vectors of one document and the characters each chunk covers."""

    vectors: np.ndarray  # (K, D) float32
    spans: list[tuple[int, int]]
    token_counts: list[int]

    def __len__(self) -> int:
        return len(self.spans)


def aggregate(chunks: DocumentChunks, how: str, normalize: bool) -> np.ndarray:
    """One vector from a document's chunk vectors: token-weighted mean, or element-wise max."""
    vectors = chunks.vectors.astype(np.float32, copy=False)  # (K, D)
    if how == "max":
        out = vectors.max(axis=0)
    elif how in ("mean", "late"):
        weights = np.asarray(chunks.token_counts, dtype=np.float32)  # (K,)
        out = (weights[:, None] * vectors).sum(axis=0) / weights.sum()
    elif how == "first":
        out = vectors[0]
    else:
        raise ValueError(f"aggregation {how!r} does not give one vector per document")
    return l2_normalize(out) if normalize else out


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
