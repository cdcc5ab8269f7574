"""One forward pass over padded rows: padding, masks and position ids by hand, and equal vectors whatever the
padding side or the batch a row shares."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from diffemb import DiffEmbedEncoder
from diffemb.forward import BatchForward, pad_rows
from diffemb.rows import Row


def test_right_padding_by_hand() -> None:
    ids, mask, positions, offsets = pad_rows([[5, 6, 7], [8]], pad_token_id=0, side="right")
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert positions.tolist() == [[0, 1, 2], [0, 0, 0]]
    assert offsets == [0, 0]


def test_left_padding_numbers_positions_from_the_first_real_token() -> None:
    ids, mask, positions, offsets = pad_rows([[5, 6, 7], [8]], pad_token_id=0, side="left")
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert positions.tolist() == [[0, 1, 2], [0, 0, 0]]  # the lone token is position 0, not 2
    assert offsets == [0, 2]


class PositionEcho(torch.nn.Module):
    """A model whose state at each token is (position id, token id): pooling then shows what it was given."""

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor
    ) -> SimpleNamespace:
        return SimpleNamespace(last_hidden_state=torch.stack([position_ids, input_ids], dim=-1).float())


@pytest.mark.parametrize("side", ["right", "left"])
def test_pooled_ranges_see_real_tokens_and_their_positions(side: str) -> None:
    forward = BatchForward(PositionEcho(), torch.device("cpu"), 0, "mean", threading.Lock(), padding_side=side)
    rows = [Row([5, 6, 7, 8], [(0, 4)], [(0, 0)]), Row([9, 3], [(0, 2)], [(1, 0)]), Row([4], [(0, 1)], [(2, 0)])]
    pooled = forward(rows)
    np.testing.assert_allclose(np.concatenate(pooled), [[1.5, 6.5], [0.5, 6.0], [0.0, 4.0]])
    last = BatchForward(PositionEcho(), torch.device("cpu"), 0, "last", threading.Lock(), padding_side=side)
    np.testing.assert_allclose(np.concatenate(last(rows)), [[3.0, 8.0], [1.0, 3.0], [0.0, 4.0]])


def test_rows_with_several_ranges_get_one_vector_each_in_order() -> None:
    forward = BatchForward(PositionEcho(), torch.device("cpu"), 0, "mean", threading.Lock())
    out = forward([Row([5, 6, 7, 8], [(0, 2), (2, 4)], [(0, 0), (0, 1)]), Row([9], [(0, 1)], [(1, 0)])])
    assert [block.shape for block in out] == [(2, 2), (1, 2)]
    np.testing.assert_allclose(out[0], [[0.5, 5.5], [2.5, 7.5]])


def test_left_and_right_padding_and_batch_company_give_equal_vectors(tiny_dream_encoder: DiffEmbedEncoder) -> None:
    texts = ["the cat reads a red book in the garden every morning", "red", "a young doctor visits the museum"]
    rows = tiny_dream_encoder.plan(texts, "document").rows
    model, device = tiny_dream_encoder.model, tiny_dream_encoder.device
    right = BatchForward(model, device, 0, "mean", threading.Lock(), padding_side="right")(rows)
    left = BatchForward(model, device, 0, "mean", threading.Lock(), padding_side="left")(rows)
    alone = [BatchForward(model, device, 0, "mean", threading.Lock())([row])[0] for row in rows]
    for r, lf, a in zip(right, left, alone, strict=True):
        np.testing.assert_allclose(r, lf, atol=1e-5)
        np.testing.assert_allclose(r, a, atol=1e-5)


def test_bad_padding_choices_are_errors() -> None:
    with pytest.raises(ValueError, match="'right' or 'left'"):
        BatchForward(PositionEcho(), torch.device("cpu"), 0, "mean", threading.Lock(), padding_side="middle")
    with pytest.raises(ValueError, match="use padding_side='right'"):
        BatchForward(PositionEcho(), torch.device("cpu"), 0, "mean", threading.Lock(), "left", explicit_positions=False)
