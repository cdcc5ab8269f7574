"""Batching across requests: one queue, one worker, one encoder call per pass.

Requests wait in a bounded queue (counted in texts). One worker takes everything pending, groups it by what
decides the vectors (role, instruction, single vector or window vectors), concatenates each group's texts into
ONE call of the core encoder (which sorts them by length and packs token-budgeted batches, halving the budget on
out-of-memory), and hands every request its own slice, in order. The call runs in one long-lived thread so the
event loop keeps accepting requests; those that arrive during a pass join the next one (before a pass, the
worker waits while requests are still arriving, a millisecond at a time and 10 ms at most). A full queue refuses
new requests (429 with Retry-After) instead of growing without limit.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from diffemb.chunking import DocumentChunks
from diffemb.encoder import DEFAULT, DiffEmbedEncoder
from diffemb.inputs import Role, check_texts
from diffemb.serve.metrics import ServerMetrics
from diffemb.serve.schemas import ApiError

logger = logging.getLogger("diffemb.serve")

_TEXT_INDEX = re.compile(r"\btexts\[(\d+)\]")


@dataclass(frozen=True)
class GroupKey:
    """What decides a text's vector besides the text: texts with equal keys can share one encoder call."""

    role: Role
    instruction: str | None
    chunks: bool
    dimensions: int | None = None


@dataclass
class Result:
    """One request's answer: vectors (n, d) or per-text window vectors, and the body tokens of each text."""

    vectors: np.ndarray | None
    chunks: list[DocumentChunks] | None
    tokens: list[int]


@dataclass
class _Job:
    key: GroupKey
    texts: list[str]
    future: asyncio.Future[Result]
    queued_at: float = field(default_factory=time.perf_counter)


class QueueFull(ApiError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(
            429,
            "the server's queue is full: retry after a moment",
            headers={"Retry-After": str(retry_after)},
        )


class Batcher:
    """Packs concurrent requests into shared encoder calls. Start it inside the event loop that submits."""

    def __init__(
        self,
        encoder: DiffEmbedEncoder,
        metrics: ServerMetrics,
        *,
        max_queue_texts: int,
        retry_after: int = 1,
        gather_seconds: float = 0.01,
    ) -> None:
        self.encoder = encoder
        self.metrics = metrics
        self.max_queue_texts = max_queue_texts
        self.retry_after = retry_after
        self.gather_seconds = gather_seconds
        self._pending: deque[_Job] = deque()
        self._pending_texts = 0
        self._wake = asyncio.Event()
        self._closing = False
        self._worker: asyncio.Task[None] | None = None
        # One long-lived thread for every pass: torch keeps per-thread state (its OpenMP team among it), which a
        # rotating pool of threads would rebuild and multiply.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="diffemb-pass")

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._work(), name="diffemb-batcher")

    async def close(self) -> None:
        """Refuse new work, finish everything queued, then stop the worker."""
        self._closing = True
        self._wake.set()
        if self._worker is not None:
            await self._worker
        self._thread.shutdown(wait=True)

    async def submit(self, texts: list[str], key: GroupKey) -> Result:
        """Queue `texts` and wait for their vectors. Raises QueueFull when the queue cannot take them."""
        if self._closing:
            raise ApiError(503, "the server is shutting down", headers={"Retry-After": str(self.retry_after)})
        # A request larger than the whole queue is still taken when the queue is empty, so it can never starve.
        if self._pending and self._pending_texts + len(texts) > self.max_queue_texts:
            self.metrics.rejected.inc()
            raise QueueFull(self.retry_after)
        job = _Job(key, texts, asyncio.get_running_loop().create_future())
        self._pending.append(job)
        self._pending_texts += len(texts)
        self._gauge()
        self._wake.set()
        return await job.future

    # -- the worker ----------------------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._pending:
                if self._closing:
                    return
                continue
            await self._gather()
            jobs = list(self._pending)
            self._pending.clear()
            self._pending_texts = 0
            self._gauge()
            groups: dict[GroupKey, list[_Job]] = {}
            for job in jobs:
                groups.setdefault(job.key, []).append(job)
            for key, members in groups.items():
                await self._run_group(key, members)
            self._wake.set()  # look again: requests may have arrived during the pass

    async def _gather(self) -> None:
        """Wait while requests are still arriving (a millisecond at a time, `gather_seconds` at most).

        When a pass ends, its clients' next requests arrive over the following milliseconds; starting the next
        pass on the first of them would alternate tiny and large passes. A lone request waits one millisecond.
        """
        deadline = time.perf_counter() + self.gather_seconds
        while time.perf_counter() < deadline and self._pending_texts < self.max_queue_texts:
            seen = self._pending_texts
            await asyncio.sleep(0.001)
            if self._pending_texts == seen:
                return

    async def _run_group(self, key: GroupKey, jobs: list[_Job]) -> None:
        now = time.perf_counter()
        for job in jobs:
            self.metrics.queue_seconds.observe(now - job.queued_at)
        texts = [text for job in jobs for text in job.texts]
        self.metrics.pass_texts.observe(len(texts))
        self.metrics.pass_requests.observe(len(jobs))
        try:
            result = await asyncio.get_running_loop().run_in_executor(self._thread, self._encode, key, texts)
        except (ValueError, TypeError) as err:
            if len(jobs) == 1:
                _fail(jobs[0], ApiError(400, _TEXT_INDEX.sub(r"input[\1]", str(err)), param=_param(str(err))))
                return
            # One request's text (e.g. one with no tokens) spoils the shared call: run each request alone so
            # only that request gets the error. `plan` fails before any forward pass, so little is repeated.
            for job in jobs:
                await self._run_group(key, [job])
            return
        except Exception as err:
            logger.exception("encoder call failed")
            for job in jobs:
                _fail(job, ApiError(500, f"the encoder failed: {type(err).__name__}: {err}"))
            return
        finally:
            self.metrics.pass_seconds.observe(time.perf_counter() - now)
        start = 0
        for job in jobs:
            end = start + len(job.texts)
            part = Result(
                None if result.vectors is None else result.vectors[start:end],
                None if result.chunks is None else result.chunks[start:end],
                result.tokens[start:end],
            )
            if not job.future.done():  # a client that disconnected cancelled its future
                job.future.set_result(part)
            start = end

    def _encode(self, key: GroupKey, texts: list[str]) -> Result:
        encoder = self.encoder
        instruction = DEFAULT if key.instruction is None else key.instruction
        # Plan once and run the plan: the token counts for `usage` come from the same tokenisation as the vectors.
        texts = check_texts(texts)
        if key.chunks:
            plan = encoder.plan(texts, "document", instruction, encoder.window_chunking())
            chunks = encoder.windows(plan, show_progress=False, truncate_dim=key.dimensions)
            vectors = None
        else:
            plan = encoder.plan(texts, key.role, instruction)
            vectors = encoder.vectors(plan, key.role, show_progress=False, truncate_dim=key.dimensions)
            chunks = None
        tokens = plan.body_tokens
        self.metrics.texts.labels(key.role).inc(len(texts))
        self.metrics.tokens.inc(sum(tokens))
        return Result(vectors, chunks, tokens)

    def _gauge(self) -> None:
        self.metrics.queue_texts.set(self._pending_texts)
        self.metrics.queue_requests.set(len(self._pending))


def _fail(job: _Job, error: ApiError) -> None:
    if not job.future.done():
        job.future.set_exception(error)


def _param(message: str) -> str | None:
    found = _TEXT_INDEX.search(message)
    return f"input[{found.group(1)}]" if found else None
