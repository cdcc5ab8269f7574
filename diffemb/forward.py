"""One forward pass over a batch of rows: pad, mask, position ids, last hidden states, pooled segments."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Sequence

import numpy as np
import torch

from diffemb.pooling import pool
from diffemb.profiles import Pooling
from diffemb.rows import Row


def pad_rows(
    rows: Sequence[Sequence[int]], pad_token_id: int, side: str = "right"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
    """Padded ids, attention mask and position ids (B, T), and where each row's first real token sits.

    Positions count real tokens only, so left padding does not shift a text's rotary phases.
    """
    width = max((len(row) for row in rows), default=1)
    ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(rows), width), dtype=torch.long)  # (B, T)
    positions = torch.zeros((len(rows), width), dtype=torch.long)  # (B, T)
    offsets = []
    for b, row in enumerate(rows):
        n = len(row)
        start = width - n if side == "left" else 0
        ids[b, start : start + n] = torch.tensor(list(row), dtype=torch.long)
        mask[b, start : start + n] = 1
        positions[b, start : start + n] = torch.arange(n)
        offsets.append(start)
    return ids, mask, positions, offsets


class BatchForward:
    """Runs padded batches through a model under the device lock and returns each row's pooled segments."""

    def __init__(
        self,
        model: torch.nn.Module,
        device: torch.device,
        pad_token_id: int,
        pooling: Pooling,
        lock: threading.Lock,
        padding_side: str = "right",
        explicit_positions: bool = True,
    ) -> None:
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
        if padding_side == "left" and not explicit_positions:
            raise ValueError("this model numbers positions itself (absolute embeddings): use padding_side='right'")
        self.model = model
        self.device = device
        self.pad_token_id = pad_token_id
        self.pooling = pooling
        self.lock = lock
        self.padding_side = padding_side
        accepted = inspect.signature(model.forward).parameters
        self._extra: dict[str, object] = {"use_cache": False} if "use_cache" in accepted else {}
        self._takes_positions = explicit_positions and "position_ids" in accepted

    def __call__(self, rows: Sequence[Row]) -> list[np.ndarray]:
        """Per row, its pooled segments as a float32 array (n_segments, D)."""
        ids, mask, positions, offsets = pad_rows([row.ids for row in rows], self.pad_token_id, self.padding_side)
        inputs: dict[str, object] = {
            "input_ids": ids.to(self.device),
            "attention_mask": mask.to(self.device),
            **self._extra,
        }
        if self._takes_positions:
            inputs["position_ids"] = positions.to(self.device)
        with self.lock, torch.inference_mode():
            hidden = self.model(**inputs).last_hidden_state  # (B, T, D)
            pooled = pool(hidden, [row.segments for row in rows], offsets, self.pooling)  # (S, D) fp32
            flat = pooled.cpu().numpy()
        out, cursor = [], 0
        for row in rows:
            out.append(flat[cursor : cursor + len(row.segments)])
            cursor += len(row.segments)
        return out
