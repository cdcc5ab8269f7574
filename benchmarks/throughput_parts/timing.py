"""Timing: the dense matmul rate, and each system timed on a corpus in rotating order, in wall and CPU time."""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass, field

import torch
from corpora import Corpus

from .config import log
from .counting import Counts, ForwardCounter
from .systems import System


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@dataclass
class Rate:
    """A dense matmul's FLOPs per wall second and per CPU second of this process (all its threads)."""

    wall: float
    cpu: float


def matmul_rate(device: str, size: int = 2048, repeats: int = 7) -> Rate:
    """Median rate of a dense size x size matmul: fp32 on CPU, bf16 on a GPU."""
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    inner = 20 if device.startswith("cuda") else 1
    torch.mm(a, b)
    sync(device)
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(inner):
            torch.mm(a, b)
        sync(device)
        wall.append(2.0 * size**3 * inner / (time.perf_counter() - start))
        cpu.append(2.0 * size**3 * inner / max(time.process_time() - start_cpu, 1e-9))
    return Rate(statistics.median(wall), statistics.median(cpu))


@dataclass
class Timing:
    """Repeated runs of one system on one corpus.

    Rates are corpus tokens per second: `body`, the corpus's body tokens that the system's vectors cover (no
    template, no special tokens), over the run's time. On a corpus no system truncates, every system has the
    same numerator, so a ratio of two rates is the inverse ratio of their times. `counts.real` (tokens fed,
    template included) is the work done at the model's forward, which MFU is computed on.
    """

    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    """CPU time of the whole process (every thread) during each run: robust to other load on the machine."""
    counts: Counts = field(default_factory=Counts)
    body: int = 0

    def rate(self, cpu: bool = False) -> float:
        """Corpus tokens per second: wall clock, or per CPU-second of the process (`cpu`); median run."""
        return self.body / statistics.median(self.cpu_seconds if cpu else self.seconds)

    def spread(self) -> str:
        if len(self.seconds) < 2:
            return ""
        rates = [self.body / s for s in self.seconds]
        return f"{min(rates):,.0f}-{max(rates):,.0f}"

    def add(self, seconds: float, cpu_seconds: float, counts: Counts, body: int) -> None:
        self.seconds.append(seconds)
        self.cpu_seconds.append(cpu_seconds)
        self.counts = counts
        self.body = body


def time_once(system: System, counter: ForwardCounter, corpus: Corpus, device: str) -> tuple[float, float, Counts]:
    counter.take()
    gc.collect()
    sync(device)
    start, start_cpu = time.perf_counter(), time.process_time()
    system.encode(corpus)
    sync(device)
    return time.perf_counter() - start, time.process_time() - start_cpu, counter.take()


def interleaved(
    systems: dict[str, System], counters: dict[str, ForwardCounter], corpus: Corpus, reps: int, device: str
) -> dict[str, Timing]:
    """Each system timed `reps` times, in an order that rotates each repetition (drift hits all alike)."""
    names = list(systems)
    for name in names:  # warm-up: kernels, thread pools, lazy imports
        systems[name].encode(Corpus(corpus.kind, corpus.texts[:4]))
    timings = {name: Timing() for name in names}
    for rep in range(reps):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            seconds, cpu, counts = time_once(systems[name], counters[name], corpus, device)
            body = systems[name].embedded_body_tokens(corpus)
            timings[name].add(seconds, cpu, counts, body)
            log(
                f"  {corpus.kind:8s} {name:22s} {body / seconds:8,.0f} corpus tok/s {body / cpu:8,.0f} "
                f"per cpu-s ({seconds:.2f} s, {cpu:.2f} cpu-s; {counts.real:,} tokens fed)"
            )
    return timings
