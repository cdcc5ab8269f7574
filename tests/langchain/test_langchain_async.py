"""Concurrent async calls: the event loop keeps running, results match the sync ones, one forward pass at a time."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffemb import DiffEmbedEncoder
from langchain_diffemb import DiffEmbedEmbeddings


class PassCounter:
    """Forward hooks on the model counting passes in flight; each pass is slowed so overlaps would show."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.guard = threading.Lock()
        self.running = self.most = self.passes = 0
        self.handles = [model.register_forward_pre_hook(self.enter), model.register_forward_hook(self.leave)]

    def enter(self, *_: Any) -> None:
        with self.guard:
            self.running += 1
            self.passes += 1
            self.most = max(self.most, self.running)
        time.sleep(0.002)

    def leave(self, *_: Any) -> None:
        with self.guard:
            self.running -= 1

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


async def test_fifty_concurrent_queries(tiny_dream_folder: Path) -> None:
    encoder = DiffEmbedEncoder.from_pretrained(tiny_dream_folder, device="cpu", dtype="float32", max_length=64)
    embeddings = DiffEmbedEmbeddings(encoder=encoder)
    distinct = [f"question number {i} about topic {i % 3}" for i in range(10)]
    queries = [distinct[i % 10] for i in range(50)]
    sync = {q: embeddings.embed_query(q) for q in distinct}

    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    counter = PassCounter(encoder.model)
    try:
        ticking = asyncio.create_task(ticker())
        results = await asyncio.gather(*(embeddings.aembed_query(q) for q in queries))
        documents = await embeddings.aembed_documents(distinct[:5])
        done.set()
        await ticking
    finally:
        counter.remove()

    np.testing.assert_allclose(results, [sync[q] for q in queries], rtol=0, atol=1e-6)
    assert all(type(x) is float for x in results[0])
    np.testing.assert_allclose(documents, embeddings.embed_documents(distinct[:5]), rtol=0, atol=1e-6)
    assert counter.passes >= 50
    assert counter.most == 1, f"{counter.most} forward passes ran at once"
    assert ticks >= 10, f"the event loop ticked only {ticks} times during 50 queries"
