"""Resident memory of `encode_documents_iter` (streaming) over a growing corpus, with and without handing freed
heap back to the system between groups, beside `encode_documents` (one call).

    python benchmarks/stream_memory.py                 # 10k and 50k short documents: iter before/after the trim
    python benchmarks/stream_memory.py --modes iter,iter-no-trim,encode --sizes 1000,10000,50000
    python benchmarks/stream_memory.py --quick         # 2k and 10k
    python benchmarks/stream_memory.py --parallel 2    # run two child processes at a time (RSS is not time)

Each (mode, size) runs in a fresh subprocess: load all-MiniLM-L6-v2, warm up on two documents, reset the peak
RSS (VmHWM), then embed. Reported: peak RSS above the RSS just before the call, RSS at the end, and the drift:
RSS after the last group minus RSS after the first tenth of the stream (what keeps growing once the working set
is in place; flat memory means a drift near zero whatever the corpus size).

- iter: `for vector in encoder.encode_documents_iter(generator)`: documents generated lazily, each vector
  consumed (added to a checksum) and dropped, as a pipeline writing to a vector store would. The encoder calls
  `diffemb.device.release_host_memory()` (glibc `malloc_trim`) between groups.
- iter-no-trim: the same with that call replaced by a no-op (the "before" of issue 14 item 7).
- encode: `encoder.encode_documents(texts)` on a list built before the baseline (the texts are not counted);
  the returned (n, 384) float32 array is n x 1.5 KiB ("output").

Writes `benchmarks/results/stream_memory.md` and prints it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "stream_memory.md"
SENTENCE_WORDS = (4, 10)
MODES = ("iter", "iter-no-trim", "encode")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def documents(n: int, seed: int = 0) -> Iterator[str]:
    """`n` short documents (one sentence of 4-10 words), generated lazily and reproducibly."""
    import random

    sys.path.insert(0, str(HERE))
    from corpora import sentence

    rng = random.Random(f"stream:{seed}")
    for _ in range(n):
        words = sentence(rng).split()
        yield " ".join(words[: rng.randint(*SENTENCE_WORDS)])


def child(mode: str, n: int) -> None:
    import numpy as np
    import torch

    import diffemb.encoder
    from diffemb import DiffEmbedEncoder
    from diffemb.testing.offline_assets import minilm_path

    if mode == "iter-no-trim":
        diffemb.encoder.release_host_memory = lambda: None  # type: ignore[attr-defined]
    encoder = DiffEmbedEncoder.from_pretrained(minilm_path(), device="cpu")
    encoder.encode_documents(list(documents(2, seed=1)))
    texts = list(documents(n)) if mode == "encode" else None
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    baseline = _status_kb("VmRSS")
    start = time.perf_counter()
    checksum = 0.0
    samples: list[tuple[int, float]] = []  # (documents done, RSS above baseline in MiB), once per 1,000
    if mode.startswith("iter"):
        for done, vector in enumerate(encoder.encode_documents_iter(documents(n)), start=1):
            checksum += float(vector[0])
            if done % 1000 == 0 or done == n:
                samples.append((done, (_status_kb("VmRSS") - baseline) / 1024))
    else:
        vectors = encoder.encode_documents(texts or [])
        checksum = float(vectors[:, 0].sum())
    seconds = time.perf_counter() - start
    peak = _status_kb("VmHWM")
    after = _status_kb("VmRSS")
    early = next((mb for done, mb in samples if done >= n // 10), None)
    print("RESULT " + json.dumps({
        "mode": mode, "n": n, "baseline_mb": baseline / 1024, "peak_mb": (peak - baseline) / 1024,
        "after_mb": (after - baseline) / 1024, "drift_mb": None if early is None else samples[-1][1] - early,
        "samples": samples, "seconds": seconds, "checksum": checksum, "threads": torch.get_num_threads(),
        "dimension": encoder.dimension, "numpy": np.__version__,
    }), flush=True)  # fmt: skip


def run(mode: str, n: int) -> dict[str, Any] | None:
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(n)], capture_output=True, text=True, check=False
    )
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[7:])
            return result
    log(f"{mode} {n} failed: {done.stderr[-2000:]}")
    return None


def _curve(samples: list[list[float]], points: int = 6) -> str:
    """A few (documents, MiB) samples spread over the stream, for the table."""
    if not samples:
        return "-"
    step = max(1, len(samples) // points)
    chosen = [*samples[step - 1 :: step][: points - 1], samples[-1]]
    return ", ".join(f"{int(done / 1000)}k: {mb:.0f}" for done, mb in dict.fromkeys(map(tuple, chosen)))


def report(rows: list[dict[str, Any]], argv: list[str], parallel: int) -> str:
    lines = [
        "# Streaming memory: `encode_documents_iter` with and without the trim, beside `encode_documents` "
        "(all-MiniLM-L6-v2, CPU)",
        "",
        f"Generated by `python benchmarks/stream_memory.py{' ' if argv else ''}{' '.join(argv)}` on "
        f"{time.strftime('%Y-%m-%d %H:%M')}; {parallel} child process(es) at a time; load average (1 min) at the "
        f"end {os.getloadavg()[0]:.1f} (times are contended; RSS is not).",
        "",
        f"Documents: one generated sentence of {SENTENCE_WORDS[0]}-{SENTENCE_WORDS[1]} words each (about 8-16 "
        "tokens with [CLS]/[SEP]), group_size 1024. All MiB are RSS above the RSS just before the call, in a "
        "fresh process per row. iter: freed heap handed back (malloc_trim) between groups; iter-no-trim: the "
        "same stream without it (before). Drift = RSS at the end minus RSS after the first tenth of the "
        "documents. encode returns all vectors (output = n x 384 x 4 bytes, part of its peak by necessity).",
        "",
        "| documents | mode | peak MiB | end MiB | drift MiB | RSS along the stream (docs: MiB) | seconds | docs/s |",
        "|---:|---|---:|---:|---:|---|---:|---:|",
    ]
    for row in rows:
        drift = "-" if row.get("drift_mb") is None else f"{row['drift_mb']:+,.1f}"
        lines.append(
            f"| {row['n']:,} | {row['mode']} | {row['peak_mb']:,.1f} | {row['after_mb']:,.1f} | {drift} | "
            f"{_curve(row.get('samples') or [])} | {row['seconds']:.0f} | {row['n'] / row['seconds']:,.0f} |"
        )
    lines.append("")
    by_size: dict[int, dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_size.setdefault(row["n"], {})[row["mode"]] = row
    for n, modes in by_size.items():
        if "iter" in modes and "iter-no-trim" in modes:
            before, after = modes["iter-no-trim"], modes["iter"]
            lines.append(
                f"- {n:,} documents: peak {before['peak_mb']:,.1f} → {after['peak_mb']:,.1f} MiB "
                f"({after['peak_mb'] / before['peak_mb']:.2f}x), at the end {before['after_mb']:,.1f} → "
                f"{after['after_mb']:,.1f} MiB."
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2k and 10k documents")
    parser.add_argument("--sizes", help="comma-separated document counts (default 10000,50000)")
    parser.add_argument("--modes", default="iter-no-trim,iter", help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--parallel", type=int, default=1, help="child processes at a time")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    modes = args.modes.split(",")
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"unknown modes {unknown}: use {', '.join(MODES)}")
    sizes = [int(s) for s in (args.sizes or ("2000,10000" if args.quick else "10000,50000")).split(",")]
    jobs = [(mode, n) for n in sizes for mode in modes]

    def one(job: tuple[str, int]) -> dict[str, Any] | None:
        log(f"{job[0]} {job[1]:,} documents")
        row = run(*job)
        if row is not None:
            peak, end = row["peak_mb"], row["after_mb"]
            log(f"  {job[0]} {job[1]:,}: peak {peak:.1f} MiB, end {end:.1f}, {row['seconds']:.0f} s")
        return row

    with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
        rows = [row for row in pool.map(one, jobs) if row is not None]
    text = report(rows, argv, args.parallel)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
