"""Running planned batches on one model replica per device (data parallel on several GPUs).

Replicas are made once per encoder. Each replica pulls batches from a shared queue, so a fast device simply
takes more of them; each has its own out-of-memory backoff, since devices may differ in free memory.
"""

from __future__ import annotations

import copy
import queue
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from diffemb.batching import BudgetedRunner, plan_batches
from diffemb.device import device_lock, free_cached_memory
from diffemb.forward import BatchForward
from diffemb.rows import Row

Done = tuple[list[int], list[np.ndarray]]


def replicate(model: torch.nn.Module, devices: Sequence[torch.device]) -> list[torch.nn.Module]:
    """The model on `devices[0]` (as loaded) plus a copy on each further device."""
    return [model] + [copy.deepcopy(model).to(device) for device in devices[1:]]


class ReplicaPool:
    """Forward passes over the rows of one call, spread over the replicas, results yielded as they finish."""

    def __init__(self, forwards: Sequence[BatchForward], budget: int) -> None:
        self.forwards = list(forwards)
        self.budget = budget

    @classmethod
    def build(
        cls, model: torch.nn.Module, devices: Sequence[torch.device], budget: int, **forward_options: object
    ) -> ReplicaPool:
        forwards = [
            BatchForward(replica, device, lock=device_lock(device), **forward_options)  # type: ignore[arg-type]
            for replica, device in zip(replicate(model, devices), devices, strict=True)
        ]
        return cls(forwards, budget)

    def run(self, rows: Sequence[Row]) -> Iterator[Done]:
        lengths = [len(row.ids) for row in rows]
        batches = plan_batches(lengths, self.budget)
        runners = [self._runner(forward, rows) for forward in self.forwards]
        if len(runners) == 1:
            for batch in batches:
                yield from runners[0].run_batch(batch, lengths)
            return
        yield from self._run_parallel(runners, batches, lengths)

    def _runner(self, forward: BatchForward, rows: Sequence[Row]) -> BudgetedRunner[np.ndarray]:
        return BudgetedRunner(
            forward=lambda indices: forward([rows[i] for i in indices]),
            budget=self.budget,
            on_oom=lambda: free_cached_memory(forward.device),
        )

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
