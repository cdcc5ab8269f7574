"""Counting what reaches the model: rows, padded and real tokens of every forward pass, and the useful FLOPs."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Counts:
    calls: int = 0
    rows: int = 0
    padded: int = 0
    real: int = 0
    squares: int = 0
    """Sum over rows of (real length)^2, for the attention FLOPs."""

    @property
    def waste(self) -> float:
        return (self.padded - self.real) / self.real if self.real else 0.0


class ForwardCounter:
    """Counts rows, padded and real tokens of every batch that reaches the model.

    It wraps the instance's `forward` rather than registering a hook, because sentence-transformers 6 calls
    `model.forward(...)` directly, which bypasses module hooks. `functools.wraps` keeps the signature visible
    to callers that inspect it (diffemb looks for `position_ids` and `use_cache`).
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.counts = Counts()
        self.model = model
        original = model.forward
        self._had_own = "forward" in vars(model)

        @functools.wraps(original)
        def counted(*args: Any, **kwargs: Any) -> Any:
            self._count(args, kwargs)
            return original(*args, **kwargs)

        model.forward = counted  # type: ignore[method-assign]
        self._original = original

    def _count(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        mask = kwargs.get("attention_mask")
        rows, width = ids.shape
        lengths = mask.sum(dim=1) if mask is not None else torch.full((rows,), width)
        self.counts.calls += 1
        self.counts.rows += rows
        self.counts.padded += rows * width
        self.counts.real += int(lengths.sum())
        self.counts.squares += int((lengths.long() ** 2).sum())

    def take(self) -> Counts:
        counts, self.counts = self.counts, Counts()
        return counts

    def remove(self) -> None:
        if self._had_own:
            self.model.forward = self._original  # type: ignore[method-assign]
        else:
            del self.model.forward


@dataclass
class FlopModel:
    linear_params: int
    layers: int
    hidden: int

    def flops(self, counts: Counts) -> float:
        """Useful FLOPs: 2 x block linear weights per real token, plus 4 x layers x hidden x n per token of an
        n-token row (QK^T and AV). Padding, norms, activations and softmax are not counted."""
        return 2.0 * self.linear_params * counts.real + 4.0 * self.layers * self.hidden * counts.squares


def flop_model(model: torch.nn.Module) -> FlopModel:
    linear = sum(
        m.weight.numel()
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and "pooler" not in name and "lm_head" not in name
    )
    config = model.config  # type: ignore[union-attr]
    return FlopModel(int(linear), int(config.num_hidden_layers), int(config.hidden_size))
