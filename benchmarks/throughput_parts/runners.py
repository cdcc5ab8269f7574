"""The benchmark parts for one model (main comparison, batch_tokens sweep, tokenisation vs forward, torch
threads), collected into a `ModelResult`."""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from corpora import Corpus, build_corpus

from diffemb import DiffEmbedEncoder

from .config import SIZES, SWEEP_BUDGETS, log
from .counting import FlopModel, ForwardCounter, flop_model
from .memory import MemoryJob, gpu_peak, peak_memory
from .models import ModelSpec, body_window, load_diffemb
from .systems import DiffembSystem, System, load_system
from .timing import Rate, Timing, interleaved, matmul_rate, sync, time_once


@dataclass
class ModelResult:
    spec: ModelSpec
    flops: FlopModel
    window: int
    corpora: dict[str, Corpus]
    rates: list[Rate] = field(default_factory=list)
    timings: dict[str, dict[str, Timing]] = field(default_factory=dict)
    memory: dict[str, dict[str, float | None]] = field(default_factory=dict)
    sweep: dict[str, dict[int, Timing]] = field(default_factory=dict)
    sweep_memory: dict[str, dict[int, float | None]] = field(default_factory=dict)
    split: list[dict[str, Any]] = field(default_factory=list)
    threads: dict[int, Timing] = field(default_factory=dict)
    default_budget: int = 0
    """The batch_tokens the encoder picks on this device and model when none is given."""
    subsets: dict[str, Corpus] = field(default_factory=dict)
    """The corpora of the sweep, split and threads parts (see `sweep_subset`)."""
    loads: list[float] = field(default_factory=list)
    """1-minute load average before each corpus of the main part."""
    elapsed: dict[str, float] = field(default_factory=dict)
    """Wall seconds of each part (loading included in main)."""

    @property
    def gpu(self) -> bool:
        return self.spec.device.startswith("cuda")


def make_corpora(encoder: DiffEmbedEncoder, kinds: Sequence[str], size: dict[str, int], seed: int) -> dict[str, Corpus]:
    window = body_window(encoder)
    out = {}
    for kind in kinds:
        n = max(3, round(size["long_tokens"] / (4.5 * window))) if kind == "long" else size[kind]
        out[kind] = build_corpus(kind, encoder.backbone.tokenizer, n, window, seed=seed)
    return out


def mode(args: argparse.Namespace, spec: ModelSpec) -> str:
    return "gpu" if spec.device.startswith("cuda") else ("quick" if args.quick else "full")


def run_model(spec: ModelSpec, args: argparse.Namespace) -> ModelResult:
    size = SIZES[mode(args, spec)]
    reps = args.reps or size["reps"]
    started = time.perf_counter()
    log(f"== {spec.name}: loading diffemb")
    encoder = load_diffemb(spec)  # no batch_tokens: the encoder's default budget for this device and model
    corpora = make_corpora(encoder, args.corpora, size, args.seed)
    result = ModelResult(spec, flop_model(encoder.model), body_window(encoder), corpora)
    result.default_budget = int(encoder.settings.batch_tokens)
    result.subsets = {kind: sweep_subset(corpus, args.quick) for kind, corpus in corpora.items()}
    for kind, corpus in corpora.items():
        log(f"   corpus {kind}: {len(corpus.texts)} texts, {corpus.total_body_tokens:,} body tokens")
    parts = set(args.parts)
    if "main" in parts:
        systems = {name: load_system(spec, name, encoder) for name in args.systems}
        counters = {name: ForwardCounter(system.module) for name, system in systems.items()}
        for kind, corpus in corpora.items():
            result.loads.append(os.getloadavg()[0])
            result.rates.append(matmul_rate(spec.device))
            log(f"   matmul {result.rates[-1].wall / 1e9:.1f} GFLOP/s wall, {result.rates[-1].cpu / 1e9:.1f} per cpu-s")
            result.timings[kind] = interleaved(systems, counters, corpus, reps, spec.device)
        for counter in counters.values():
            counter.remove()
        if not args.no_memory:
            result.memory = {kind: {} for kind in corpora}
            for name, system in systems.items():
                if result.gpu:
                    values: list[float | None] = [gpu_peak(system, corpus) for corpus in corpora.values()]
                else:
                    values = peak_memory(spec, [MemoryJob(name, kind) for kind in corpora], corpora)
                for kind, value in zip(corpora, values, strict=True):
                    result.memory[kind][name] = value
                log(f"   memory {name}: {values} MiB")
        del systems, counters
        gc.collect()
    result.elapsed["main"] = time.perf_counter() - started
    for part, run, cpu_only in (
        ("sweep", run_sweep, True),
        ("split", run_split, False),
        ("threads", run_threads, True),
    ):
        if part in parts and not (cpu_only and result.gpu):
            started = time.perf_counter()
            run(result, encoder, args)
            result.elapsed[part] = time.perf_counter() - started
    log(f"== {spec.name}: " + ", ".join(f"{part} {s / 60:.1f} min" for part, s in result.elapsed.items()))
    return result


def sweep_subset(corpus: Corpus, quick: bool) -> Corpus:
    """The corpus of the parts that repeat many configurations (sweep, split, threads): in `--quick` the whole
    main corpus, otherwise its first half, at least 3 texts (same length distribution)."""
    n = len(corpus.texts) if quick else max(3, len(corpus.texts) // 2)
    return Corpus(corpus.kind, corpus.texts[:n], corpus.body_tokens[:n], corpus.window)


def run_sweep(result: ModelResult, encoder: DiffEmbedEncoder, args: argparse.Namespace) -> None:
    budgets = tuple(sorted({*SWEEP_BUDGETS["quick" if args.quick else "full"], result.default_budget}))
    reps = max(1, (args.reps or SIZES[mode(args, result.spec)]["reps"]) - 1)
    log(f"== {result.spec.name}: batch_tokens sweep {budgets}")
    systems: dict[str, System] = {str(b): DiffembSystem(encoder.with_settings(batch_tokens=b)) for b in budgets}
    counter = ForwardCounter(encoder.model)
    counters = dict.fromkeys(systems, counter)
    subsets = result.subsets
    for kind, sub in subsets.items():
        timings = interleaved(systems, counters, sub, reps, result.spec.device)
        result.sweep[kind] = {int(b): t for b, t in timings.items()}
    counter.remove()
    if not args.no_memory:
        kinds = list(subsets)
        jobs = [MemoryJob("diffemb", kind, b) for kind in kinds for b in budgets]
        values = peak_memory(result.spec, jobs, subsets)
        for job, value in zip(jobs, values, strict=True):
            result.sweep_memory.setdefault(job.kind, {})[int(job.batch_tokens or 0)] = value
        log(f"   sweep memory: {result.sweep_memory}")


def run_split(result: ModelResult, encoder: DiffEmbedEncoder, args: argparse.Namespace) -> None:
    """Tokenisation (text → planned rows) vs forward passes, and `encode_documents_iter` vs `encode_documents`."""
    log(f"== {result.spec.name}: tokenisation vs forward")
    reps = 1 if args.quick else 2
    counter = ForwardCounter(encoder.model)
    for kind in ("passages", "long"):
        if kind in result.corpora:
            texts = result.subsets[kind].texts
            result.split.append(split_one(encoder, counter, kind, texts, reps, result.spec.device))
            log(f"   {result.split[-1]}")
    counter.remove()


def split_one(
    encoder: DiffEmbedEncoder, counter: ForwardCounter, kind: str, texts: list[str], reps: int, device: str
) -> dict[str, Any]:

    small = max(4, len(texts) // 4)
    runs: dict[str, list[float]] = {k: [] for k in ("plan", "run", "encode", "iter", "iter_small")}
    waste: dict[str, float] = {}

    def timed(key: str, call: Callable[[], Any]) -> Any:
        counter.take()
        sync(device)
        start = time.perf_counter()
        out = call()
        sync(device)
        runs[key].append(time.perf_counter() - start)
        waste[key] = counter.take().waste
        return out

    for _ in range(reps):
        plan = timed("plan", lambda: encoder.plan(texts, "document"))
        timed("run", lambda plan=plan: encoder.run(plan, show_progress=False))
        timed("encode", lambda: encoder.encode_documents(texts))
        timed("iter", lambda: list(encoder.encode_documents_iter(texts)))
        timed("iter_small", lambda: list(encoder.encode_documents_iter(texts, group_size=small)))
    row: dict[str, Any] = {key: statistics.median(values) for key, values in runs.items()}
    row.update(kind=kind, texts=len(texts), small=small, waste_all=waste["encode"], waste_small=waste["iter_small"])
    return row


def run_threads(result: ModelResult, encoder: DiffEmbedEncoder, args: argparse.Namespace) -> None:
    if "passages" not in result.corpora:
        return
    log(f"== {result.spec.name}: torch threads")
    before = torch.get_num_threads()
    corpus = result.subsets["passages"]
    system = DiffembSystem(encoder)
    counter = ForwardCounter(encoder.model)
    choices = sorted({1, before, os.cpu_count() or before})
    reps = max(1, (args.reps or SIZES[mode(args, result.spec)]["reps"]) - 1)
    timings = {n: Timing() for n in choices}
    try:
        for _ in range(reps):
            for n in choices:
                torch.set_num_threads(n)
                seconds, cpu, counts = time_once(system, counter, corpus, result.spec.device)
                body = system.embedded_body_tokens(corpus)
                timings[n].add(seconds, cpu, counts, body)
                log(f"   threads {n}: {body / seconds:,.0f} corpus tok/s, {body / cpu:,.0f} per cpu-s")
    finally:
        torch.set_num_threads(before)
        counter.remove()
    result.threads = timings
