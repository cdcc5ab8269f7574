"""Pooling token states over explicit ranges: hand-computed means, last and first tokens, several ranges per row
(late chunking), left padding, and memory that grows with the batch's tokens, not with its rows squared."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.overrides import TorchFunctionMode

from diffemb.pooling import pool


def _states() -> torch.Tensor:
    """(2, 4, 2) states whose values say where they sit: row b, position t holds [10*b + t, -(10*b + t)]."""
    values = torch.tensor([[10.0 * b + t for t in range(4)] for b in range(2)])  # (2, 4)
    return torch.stack([values, -values], dim=-1)  # (2, 4, 2)


def test_mean_is_the_average_of_each_range_in_row_order() -> None:
    pooled = pool(_states(), [[(0, 3)], [(1, 4)]], [0, 0], "mean")
    expected = torch.tensor([[1.0, -1.0], [12.0, -12.0]])  # mean(0,1,2) and mean(11,12,13)
    torch.testing.assert_close(pooled, expected)
    assert pooled.dtype == torch.float32


def test_last_and_cls_read_the_ends_of_each_range() -> None:
    segments = [[(0, 3)], [(1, 4)]]
    torch.testing.assert_close(pool(_states(), segments, [0, 0], "last"), torch.tensor([[2.0, -2.0], [13.0, -13.0]]))
    torch.testing.assert_close(pool(_states(), segments, [0, 0], "cls"), torch.tensor([[0.0, -0.0], [11.0, -11.0]]))


def test_left_padding_offsets_shift_every_range() -> None:
    """Row 0 holds 2 real tokens after 2 pads (offset 2): its range (0, 2) is padded positions 2 and 3."""
    states = _states()
    segments = [[(0, 2)], [(0, 4)]]
    torch.testing.assert_close(pool(states, segments, [2, 0], "mean"), torch.tensor([[2.5, -2.5], [11.5, -11.5]]))
    torch.testing.assert_close(pool(states, segments, [2, 0], "last"), torch.tensor([[3.0, -3.0], [13.0, -13.0]]))
    torch.testing.assert_close(pool(states, segments, [2, 0], "cls"), torch.tensor([[2.0, -2.0], [10.0, -10.0]]))


def test_several_ranges_per_row_come_out_flat_in_order() -> None:
    """Late chunking: row 0 gives three (overlapping) ranges, row 1 one; the output is their means in order."""
    segments = [[(0, 2), (1, 3), (2, 4)], [(0, 4)]]
    pooled = pool(_states(), segments, [0, 0], "mean")
    expected = torch.tensor([[0.5, -0.5], [1.5, -1.5], [2.5, -2.5], [11.5, -11.5]])
    torch.testing.assert_close(pooled, expected)


def test_half_precision_states_are_pooled_in_float32() -> None:
    """1024 bf16 states of 1 + 1/128: a bf16 running sum would lose the small part; fp32 keeps it."""
    states = torch.full((1, 1024, 1), 1 + 1 / 128, dtype=torch.bfloat16)
    pooled = pool(states, [[(0, 1024)]], [0], "mean")
    assert pooled.dtype == torch.float32
    assert pooled.item() == pytest.approx(1 + 1 / 128, abs=1e-6)


def test_an_unknown_method_is_an_error_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="'mean', 'last' or 'cls'"):
        pool(_states(), [[(0, 1)], [(0, 1)]], [0, 0], "max")  # type: ignore[arg-type]


class LargestTensor(TorchFunctionMode):
    """Records the element count of the largest tensor any torch call returns while active."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for item in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(item, torch.Tensor):
                self.largest = max(self.largest, item.numel())
        return out


@pytest.mark.parametrize("per_row", [1, 3])
def test_pooling_memory_is_linear_in_the_batch(per_row: int) -> None:
    """512 short rows: no temporary may exceed the batch's own states (B·T·D) times the ranges per row. Laying
    segments out over all rows (B, S, T) and (B, S, D), as pooling once did, made 512 x 512 x D elements."""
    rows, length, width = 512, 6, 8
    states = torch.randn(rows, length, width)
    segments = [[(k, k + 2) for k in range(per_row)] for _ in range(rows)]
    with LargestTensor() as watch:
        pooled = pool(states, segments, [0] * rows, "mean")
    assert pooled.shape == (rows * per_row, width)
    assert watch.largest <= per_row * states.numel()
    torch.testing.assert_close(pooled[:per_row], torch.stack([states[0, k : k + 2].mean(0) for k in range(per_row)]))
