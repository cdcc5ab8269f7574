"""Peak memory of pooling: segments laid out per row (B, R, T), as diffemb pools now, against the layout over all
rows (B, S, T) that it used before issue 14 (kept below as `quadratic_pool`, the "before" reference).

    python benchmarks/pooling_memory.py            # pool() alone and encode_queries on all-MiniLM-L6-v2
    python benchmarks/pooling_memory.py --quick    # fewer budgets

Each measurement runs in a fresh subprocess: set up, reset the peak RSS (VmHWM), run, report the peak RSS above
the RSS just before the call (on CPU, freed blocks are not always returned to the system, so this is what the
process really needed). On a machine with CUDA, `--device cuda` reports `torch.cuda.max_memory_allocated`
above the allocation before the call instead.

- pool: `pool(hidden, one segment per row, mean)` on random (B, T=3, D=384) states: B one-word rows.
- encode: `encoder.encode_queries(1,365 one-word queries)` with all-MiniLM-L6-v2 at a `batch_tokens` budget,
  the encoder's pooling replaced by the quadratic one for "before".

Writes `benchmarks/results/pooling_memory.md` and prints it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "pooling_memory.md"
QUERIES = 1365
WIDTH = 384  # all-MiniLM-L6-v2


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def quadratic_pool(
    hidden: torch.Tensor, segments: Sequence[Sequence[tuple[int, int]]], offsets: Sequence[int], method: str
) -> torch.Tensor:
    """diffemb's mean pooling before issue 14: every segment's weights scattered into a (B, S, T) matrix, S the
    segments of the whole batch, then one (B, S, D) batched matmul summed over rows."""
    batch, length, _ = hidden.shape
    if method != "mean":
        from diffemb.pooling import pool

        return pool(hidden, segments, offsets, method)  # type: ignore[arg-type]
    device = hidden.device
    rows = [row for row, ranges in enumerate(segments) for _ in ranges]
    starts = torch.tensor([offsets[r] + s for r, ranges in enumerate(segments) for s, _ in ranges], device=device)
    ends = torch.tensor([offsets[r] + e for r, ranges in enumerate(segments) for _, e in ranges], device=device)
    positions = torch.arange(length, device=device)
    weights = ((positions >= starts[:, None]) & (positions < ends[:, None])).float()  # (S, T)
    weights = weights / weights.sum(dim=1, keepdim=True)
    per_row = torch.zeros(batch, len(rows), length, device=device)  # (B, S, T)
    per_row[torch.tensor(rows, device=device), torch.arange(len(rows), device=device)] = weights
    return torch.bmm(per_row, hidden.float()).sum(dim=0)  # (B, S, D) → (S, D)


def one_word_queries(n: int, seed: int = 0) -> list[str]:
    sys.path.insert(0, str(HERE))
    from corpora import sentence

    rng = random.Random(f"pooling:{seed}")
    words: list[str] = []
    while len(words) < n:
        words.extend(re.findall(r"[A-Za-z]+", sentence(rng)))
    return words[:n]


class Meter:
    """Peak memory above the start, from the CUDA allocator or from the process's peak RSS."""

    def __init__(self, device: str) -> None:
        self.device = device

    def start(self) -> None:
        gc.collect()
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.base = _status_kb("VmRSS") * 1024

    def peak_mib(self) -> float:
        if self.device == "cuda":
            torch.cuda.synchronize()
            return (torch.cuda.max_memory_allocated() - self.base) / 2**20
        return (_status_kb("VmHWM") * 1024 - self.base) / 2**20


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def child(kind: str, layout: str, size: int, device: str) -> None:
    from diffemb import pooling

    pool_fn: Any = quadratic_pool if layout == "before" else pooling.pool
    meter = Meter(device)
    if kind == "pool":
        hidden = torch.randn(size, 3, WIDTH, device=device)
        segments, offsets = [[(0, 3)] for _ in range(size)], [0] * size
        pool_fn(hidden[:2], segments[:2], offsets[:2], "mean")  # warm up
        meter.start()
        start = time.perf_counter()
        pool_fn(hidden, segments, offsets, "mean")
        extra: dict[str, Any] = {"rows": size}
    else:
        import diffemb.forward
        from diffemb import DiffEmbedEncoder
        from diffemb.testing.offline_assets import minilm_path

        diffemb.forward.pool = pool_fn  # type: ignore[attr-defined]
        encoder = DiffEmbedEncoder.from_pretrained(minilm_path(), device=device, batch_tokens=size)
        queries = one_word_queries(QUERIES)
        encoder.encode_queries(queries[:4])  # warm up
        plan = encoder.plan(queries, "query")
        lengths = [len(row.ids) for row in plan.rows]
        from diffemb.batching import plan_batches

        batches = plan_batches(lengths, size)
        meter.start()
        start = time.perf_counter()
        encoder.encode_queries(queries)
        extra = {"rows": len(lengths), "batches": len(batches), "widest_batch": max(len(b) for b in batches),
                 "tokens": sum(lengths)}  # fmt: skip
    seconds = time.perf_counter() - start
    print("RESULT " + json.dumps({"kind": kind, "layout": layout, "size": size, "peak_mib": meter.peak_mib(),
                                  "seconds": seconds, "device": device, **extra}), flush=True)  # fmt: skip


def run(kind: str, layout: str, size: int, device: str) -> dict[str, Any] | None:
    args = [sys.executable, __file__, "--child", kind, layout, str(size), "--device", device]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[7:])
            return result
    log(f"{kind} {layout} {size} failed: {done.stderr[-2000:]}")
    return None


def report(rows: list[dict[str, Any]], argv: list[str], device: str) -> str:
    what = "CUDA max_memory_allocated" if device == "cuda" else "peak RSS (VmHWM)"
    lines = [
        "# Pooling memory: per-row layout (B, R, T) vs the old all-segments layout (B, S, T)",
        "",
        f"Generated by `python benchmarks/pooling_memory.py{' ' if argv else ''}{' '.join(argv)}` on "
        f"{time.strftime('%Y-%m-%d %H:%M')}, device {device}, torch {torch.__version__}; load average (1 min) at "
        f"the end {os.getloadavg()[0]:.1f}. MiB = {what} above the value just before the call, one fresh process "
        "per row. before = the quadratic layout diffemb used until issue 14; after = `diffemb.pooling.pool`.",
        "",
        "## `pool` alone: B one-word rows, states (B, 3, 384) fp32 (the states themselves are allocated before)",
        "",
        "| rows B | before MiB | after MiB | before / after |",
        "|---:|---:|---:|---:|",
    ]
    pairs: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    for row in rows:
        pairs.setdefault((row["kind"], row["size"]), {})[row["layout"]] = row
    for (kind, size), got in sorted(pairs.items()):
        if kind == "pool" and len(got) == 2:
            b, a = got["before"]["peak_mib"], got["after"]["peak_mib"]
            lines.append(f"| {size:,} | {b:,.1f} | {a:,.1f} | {b / max(a, 0.1):,.0f}x |")
    lines += [
        "",
        f"## `encode_queries` of {QUERIES:,} one-word queries, all-MiniLM-L6-v2",
        "",
        "| batch_tokens | batches (widest, rows) | before MiB | after MiB | before / after |",
        "|---:|---|---:|---:|---:|",
    ]
    for (kind, size), got in sorted(pairs.items()):
        if kind == "encode" and len(got) == 2:
            b, a = got["before"]["peak_mib"], got["after"]["peak_mib"]
            shape = f"{got['after']['batches']} ({got['after']['widest_batch']})"
            lines.append(f"| {size:,} | {shape} | {b:,.1f} | {a:,.1f} | {b / max(a, 0.1):,.1f}x |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="budgets 256 and 4096 only")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]), args.device)
        return
    budgets = [256, 4096] if args.quick else [256, 1024, 4096, 8192]
    jobs = [("pool", n) for n in (256, 682, 1365)] + [("encode", b) for b in budgets]
    rows = []
    for kind, size in jobs:
        for layout in ("before", "after"):
            row = run(kind, layout, size, args.device)
            if row is not None:
                log(f"{kind} {size} {layout}: {row['peak_mib']:.1f} MiB")
                rows.append(row)
    text = report(rows, argv, args.device)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
