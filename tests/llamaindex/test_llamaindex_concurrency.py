"""Async use: work runs in worker threads, the event loop stays free, and one forward pass runs at a time."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from diffemb import DiffEmbedEncoder
from llamaindex_diffemb import DiffEmbedEmbedding


class ForwardProbe:
    """Counts forward passes of a model and the most that ever ran at once; each pass is slowed a little."""

    def __init__(self, model: object, delay: float) -> None:
        self.model, self.delay = model, delay
        self.active = self.peak = self.passes = 0
        self.guard = threading.Lock()

    def before(self, *args: object) -> None:
        with self.guard:
            self.active += 1
            self.passes += 1
            self.peak = max(self.peak, self.active)
        time.sleep(self.delay)  # widen the window in which an unlocked second pass would overlap

    def after(self, *args: object) -> None:
        with self.guard:
            self.active -= 1


@pytest.fixture
def probe(tiny_dream_encoder: DiffEmbedEncoder) -> Iterator[ForwardProbe]:
    model = tiny_dream_encoder.model
    found = ForwardProbe(model, delay=0.02)
    handles = [model.register_forward_pre_hook(found.before), model.register_forward_hook(found.after)]
    yield found
    for handle in handles:
        handle.remove()


async def test_concurrent_batches_are_correct_and_serialised(
    tiny_dream_encoder: DiffEmbedEncoder, probe: ForwardProbe
) -> None:
    texts = [[f"Request {r}, sentence {i}: diffusion models {'and tokens ' * (i % 5)}embed text." for i in range(9)]
             for r in range(8)]  # fmt: skip
    expected = [tiny_dream_encoder.encode_documents(batch) for batch in texts]
    probe.passes = 0
    embedders = [
        DiffEmbedEmbedding(encoder=tiny_dream_encoder, embed_batch_size=4),
        DiffEmbedEmbedding(encoder=tiny_dream_encoder, embed_batch_size=3, num_workers=2),
    ]
    results: list[Any] = await asyncio.gather(
        *(embedders[r % 2].aget_text_embedding_batch(batch) for r, batch in enumerate(texts)),
        *(embedders[0].aget_query_embedding(f"query {r}") for r in range(len(texts))),
    )
    for batch, vectors, want in zip(texts, results[: len(texts)], expected, strict=True):
        assert len(vectors) == len(batch)
        assert np.allclose(vectors, want, atol=1e-5)
    for r, query in enumerate(results[len(texts) :]):
        assert np.allclose(query, tiny_dream_encoder.encode_queries([f"query {r}"])[0], atol=1e-5)
    assert probe.passes >= 2 * len(texts)
    assert probe.peak == 1


async def test_embedding_does_not_block_the_event_loop(
    tiny_dream_encoder: DiffEmbedEncoder, probe: ForwardProbe
) -> None:
    probe.delay = 0.3
    embedder = DiffEmbedEmbedding(encoder=tiny_dream_encoder)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        await embedder.aget_query_embedding("is the loop still running?")
        after_query = ticks
        await embedder.aget_text_embedding("a document")
        await embedder.aget_text_embedding_batch(["one text", "another text"])
    finally:
        task.cancel()
    assert after_query >= 5
    assert ticks >= 15
