"""Pooling token states into vectors, over explicit token ranges of each row, in fp32.

Pooling by ranges rather than by the attention mask is what lets one mechanism serve plain rows, rows whose
instruction is left out of the mean, and late chunking (several ranges pooled from one row).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from diffemb.profiles import Pooling

Segment = tuple[int, int]
"""A token range `[start, end)` of one row, in the row's own (unpadded) positions."""


def pool(
    hidden: torch.Tensor,  # (B, T, D) last hidden states of a padded batch
    segments: Sequence[Sequence[Segment]],  # per row, the ranges to pool
    offsets: Sequence[int],  # per row, where its first real token sits in the padded batch (left padding)
    method: Pooling,
) -> torch.Tensor:  # (S, D) float32, the segments of all rows in order
    batch, length, _ = hidden.shape
    rows = [row for row, ranges in enumerate(segments) for _ in ranges]
    starts = [offsets[row] + start for row, ranges in enumerate(segments) for start, _ in ranges]
    ends = [offsets[row] + end for row, ranges in enumerate(segments) for _, end in ranges]
    device = hidden.device
    row_index = torch.tensor(rows, device=device)  # (S,)
    if method == "last":
        return hidden[row_index, torch.tensor(ends, device=device) - 1].float()  # (S, D)
    if method == "cls":
        return hidden[row_index, torch.tensor(starts, device=device)].float()  # (S, D)
    if method != "mean":
        raise ValueError(f"unknown pooling {method!r}: use 'mean', 'last' or 'cls'")
    # Segments are laid out per row as (B, R, T) weights, R the most segments any row has (1, or a few for late
    # chunking), so memory grows linearly with the batch's tokens, not with its rows squared.
    per_row = max(len(ranges) for ranges in segments)
    slot = [k for ranges in segments for k in range(len(ranges))]
    positions = torch.arange(length, device=device)  # (T,)
    start_t = torch.tensor(starts, device=device)[:, None]  # (S, 1)
    end_t = torch.tensor(ends, device=device)[:, None]  # (S, 1)
    weights = ((positions >= start_t) & (positions < end_t)).float()  # (S, T)
    weights = weights / weights.sum(dim=1, keepdim=True).clamp(min=1.0)
    laid_out = torch.zeros(batch, per_row, length, device=device)  # (B, R, T)
    slot_t = torch.tensor(slot, device=device)  # (S,)
    laid_out[row_index, slot_t] = weights
    pooled = torch.bmm(laid_out, hidden.float())  # (B, R, D)
    return pooled[row_index, slot_t]  # (S, D)
