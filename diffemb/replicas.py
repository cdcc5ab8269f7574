"""Running planned batches on one model replica per device (data parallel on several GPUs).

Replicas are made once per loaded model and shared by all its views. Each replica pulls batches from a shared
queue, so a fast device simply takes more of them; each has its own out-of-memory backoff, since devices may
differ in free memory, and a budget lowered by an out-of-memory error stays lowered for later calls.
"""

from __future__ import annotations

import copy
import queue
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from diffemb.batching import BudgetedRunner, plan_batches
from diffemb.device import device_lock, free_cached_memory
from diffemb.forward import BatchForward
from diffemb.profiles import Pooling
from diffemb.rows import Row

Done = tuple[list[int], list[np.ndarray]]


def replicate(model: torch.nn.Module, devices: Sequence[torch.device]) -> list[torch.nn.Module]:
    """The model on `devices[0]` (as loaded) plus a copy on each further device."""
    return [model] + [copy.deepcopy(model).to(device) for device in devices[1:]]


class ReplicaPool:
    """The model replicas of one loaded model; `run` spreads one call's rows over them."""

    def __init__(
        self, models: Sequence[torch.nn.Module], devices: Sequence[torch.device], pad_token_id: int,
        explicit_positions: bool,
    ) -> None:
        self.models = list(models)
        self.devices = list(devices)
        self.pad_token_id = pad_token_id
        self.explicit_positions = explicit_positions
        self.budget_caps: dict[str, int] = {}
        """Per device, the largest budget known to fit (set when an out-of-memory error lowered it)."""
        self._caps_guard = threading.Lock()

    @classmethod
    def build(
        cls, model: torch.nn.Module, devices: Sequence[torch.device], pad_token_id: int, explicit_positions: bool
    ) -> ReplicaPool:
        return cls(replicate(model, devices), devices, pad_token_id, explicit_positions)

    def forwards(self, pooling: Pooling, padding_side: str) -> list[BatchForward]:
        return [
            BatchForward(
                model,
                device,
                pad_token_id=self.pad_token_id,
                pooling=pooling,
                lock=device_lock(device),
                padding_side=padding_side,
                explicit_positions=self.explicit_positions,
            )
            for model, device in zip(self.models, self.devices, strict=True)
        ]

    def budget_for(self, device: torch.device, requested: int) -> int:
        return min(requested, self.budget_caps.get(str(device), requested))

    def run(self, rows: Sequence[Row], pooling: Pooling, padding_side: str, budget: int) -> Iterator[Done]:
        """(row indices, pooled segments per row) per batch, as batches finish."""
        lengths = [len(row.ids) for row in rows]
        forwards = self.forwards(pooling, padding_side)
        runners = [self._runner(forward, rows, budget) for forward in forwards]
        batches = plan_batches(lengths, min(runner.budget for runner in runners))
        try:
            if len(runners) == 1:
                for batch in batches:
                    yield from runners[0].run_batch(batch, lengths)
            else:
                yield from self._run_parallel(runners, batches, lengths)
        finally:
            self._remember(forwards, runners, budget)

    def _runner(self, forward: BatchForward, rows: Sequence[Row], budget: int) -> BudgetedRunner[np.ndarray]:
        return BudgetedRunner(
            forward=lambda indices: forward([rows[i] for i in indices]),
            budget=self.budget_for(forward.device, budget),
            on_oom=lambda: free_cached_memory(forward.device),
        )

    def _remember(self, forwards: list[BatchForward], runners: list[BudgetedRunner[np.ndarray]], asked: int) -> None:
        with self._caps_guard:
            for forward, runner in zip(forwards, runners, strict=True):
                if runner.budget < asked:
                    key = str(forward.device)
                    self.budget_caps[key] = min(self.budget_caps.get(key, runner.budget), runner.budget)

    def _run_parallel(
        self, runners: list[BudgetedRunner[np.ndarray]], batches: list[list[int]], lengths: list[int]
    ) -> Iterator[Done]:
        work: queue.SimpleQueue[list[int]] = queue.SimpleQueue()
        for batch in batches:
            work.put(batch)
        done: queue.SimpleQueue[Done] = queue.SimpleQueue()

        def drain(runner: BudgetedRunner[np.ndarray]) -> None:
            while True:
                try:
                    batch = work.get_nowait()
                except queue.Empty:
                    return
                for item in runner.run_batch(batch, lengths):
                    done.put(item)

        remaining = len(lengths)
        with ThreadPoolExecutor(max_workers=len(runners), thread_name_prefix="diffemb-replica") as pool:
            futures: list[Future[None]] = [pool.submit(drain, runner) for runner in runners]
            while remaining:
                try:
                    item = done.get(timeout=0.05)
                except queue.Empty:
                    failed = [f.exception() for f in futures if f.done() and f.exception() is not None]
                    if failed:
                        raise failed[0] from None  # type: ignore[misc]
                    continue
                remaining -= len(item[0])
                yield item
