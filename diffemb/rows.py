"""Model rows from tokenised texts: truncation for queries, windows for long documents, late-chunk ranges.

Every text becomes one or more rows; every row carries the token ranges to pool and, for each range, which
text and which chunk it belongs to, so that results from the sorted batch stream scatter back in order.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

from diffemb.chunking import ChunkingConfig, split_windows
from diffemb.inputs import caller_stacklevel
from diffemb.pooling import Segment
from diffemb.text import Frame, TokenizedText


@dataclass(frozen=True)
class Row:
    ids: list[int]
    segments: list[Segment]
    owners: list[tuple[int, int]]
    """(text index, chunk index) of each segment."""


@dataclass
class ChunkInfo:
    span: tuple[int, int]
    tokens: int


@dataclass
class RowPlan:
    rows: list[Row] = field(default_factory=list)
    chunks: list[list[ChunkInfo]] = field(default_factory=list)
    """Per text, its chunks in document order (one chunk for a text that fits)."""
    truncated: int = 0
    """Texts cut to their first window (queries, or documents with aggregation "first")."""
    body_tokens: list[int] = field(default_factory=list)
    """Per text, the tokens of its body (no template, instruction or specials): what `count_tokens` counts."""


def plan_rows(
    texts: Sequence[TokenizedText],
    frame: Frame,
    max_length: int,
    chunking: ChunkingConfig | None,
    exclude_instruction: bool,
) -> RowPlan:
    """Rows for `texts`; `chunking=None` (queries) or aggregation "first" truncates instead of splitting."""
    capacity = max_length - frame.overhead
    plan = RowPlan()
    if chunking is None or chunking.aggregation == "first":
        if capacity < 1:
            chunking = chunking or ChunkingConfig()
            chunking.window(capacity)  # raises the error that explains the lack of room
        size, overlap = capacity, 0
    else:
        size, overlap = chunking.window(capacity)
    pool_from = len(frame.prefix) if exclude_instruction and frame.instruction else 0
    late = chunking is not None and chunking.aggregation == "late"
    for index, text in enumerate(texts):
        plan.chunks.append([])
        plan.body_tokens.append(len(text))
        if chunking is None or chunking.aggregation == "first":
            if len(text) > capacity:
                plan.truncated += 1
            windows = [(0, min(len(text), capacity))]
        elif late:
            _plan_late(plan, index, text, frame, capacity, size, overlap)
            continue
        else:
            windows = split_windows(len(text), size, overlap)
        for start, end in windows:
            ids = frame.row(text.ids[start:end])
            chunk = len(plan.chunks[index])
            plan.rows.append(Row(ids, [(pool_from, len(ids))], [(index, chunk)]))
            plan.chunks[index].append(ChunkInfo(text.char_span(start, end), end - start))
    return plan


def _plan_late(
    plan: RowPlan, index: int, text: TokenizedText, frame: Frame, capacity: int, size: int, overlap: int
) -> None:
    """Late chunking (Günther et al., arXiv 2409.04701): one long pass per `capacity` tokens, then each
    chunk's range pooled from those contextual states. Attention costs grow with the square of the long pass."""
    body_offset = len(frame.prefix)
    for long_start, long_end in split_windows(len(text), capacity, 0):
        ids = frame.row(text.ids[long_start:long_end])
        segments: list[Segment] = []
        owners: list[tuple[int, int]] = []
        for start, end in split_windows(long_end - long_start, size, overlap):
            if start == end:  # an empty body: no window of it to pool
                continue
            segments.append((body_offset + start, body_offset + end))
            owners.append((index, len(plan.chunks[index])))
            span = text.char_span(long_start + start, long_start + end)
            plan.chunks[index].append(ChunkInfo(span, end - start))
        if not segments:  # an empty body still gets a vector: pool the framed row
            segments, owners = [(0, len(ids))], [(index, 0)]
            plan.chunks[index].append(ChunkInfo((0, 0), 0))
        plan.rows.append(Row(ids, segments, owners))


def warn_truncated(plan: RowPlan, total: int, role: str, capacity: int) -> None:
    """One warning, pointing at the caller's line, for the texts a plan cut to their first window."""
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
    warnings.warn(message, stacklevel=caller_stacklevel())
