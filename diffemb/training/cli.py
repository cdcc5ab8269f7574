"""`diffemb train`: the command line of `diffemb.training.train`.

The main CLI registers it with `add_train_parser(subparsers)`; `python -m diffemb.training ...` runs it alone.
Importing this module does not import sentence-transformers: that happens when a run starts.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from diffemb.cli.args import non_negative_int, positive_int
from diffemb.training.recipes import RECIPES

_DESCRIPTION = """\
Fine-tune an embedding model with the DiffEmbed recipe (arXiv 2505.15045): a LoRA adapter trained with
in-batch + hard-negative InfoNCE (cosine x 20). DATA is a JSONL file with one {"query", "positive",
"negatives"?, "instruction"?} object per line (or a hub dataset name where the hub is reachable). OUTPUT
receives the adapter and diffemb.json; load it with
DiffEmbedEncoder.from_pretrained(MODEL, adapter=OUTPUT). Unset hyper-parameters come from --recipe."""


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {text}")
    return value


def check_paths(args: argparse.Namespace) -> str | None:
    """What is wrong with --output or the data files, found before anything loads (None: nothing)."""
    output = Path(args.output)
    if output.exists() and not output.is_dir():
        return f"the output {output} is a file: --output names a folder for the adapter (it is created)"
    if output.parent.exists() and not output.parent.is_dir():
        return f"cannot create {output}: {output.parent} is a file"
    for name in ("data", "eval_data"):
        value = getattr(args, name)
        if value is not None and Path(value).exists() and Path(value).is_dir():
            return f"--{name.replace('_', '-')} {value} is a folder: pass a JSONL file with one pair per line"
    return None


def add_train_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `train` on an `argparse` sub-parsers object; the parser's defaults `func` and `run` are
    `run_train` (call `args.func(args)` or `args.run(args)`; it returns the exit status)."""
    parser = subparsers.add_parser(
        "train",
        help="fine-tune a LoRA adapter with the DiffEmbed contrastive recipe",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    configure_parser(parser)
    return parser


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--model", required=True, help="base checkpoint: hub id or local folder")
    parser.add_argument("--data", required=True, help="JSONL file of pairs, or a hub dataset name")
    parser.add_argument("--output", required=True, help="folder for the adapter and diffemb.json")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="long",
                        help="hyper-parameters of one task family (default: long)")  # fmt: skip
    parser.add_argument("--attention", choices=["bidirectional", "causal"],
                        help="override the family's attention (e.g. a decoder trained bidirectionally)")  # fmt: skip
    parser.add_argument("--pooling", choices=["mean", "last", "cls"], help="override the family's pooling")
    parser.add_argument("--max-steps", type=positive_int,
                        help="optimiser steps (default: one epoch, capped by the recipe)")  # fmt: skip
    parser.add_argument("--epochs", type=positive_int, help="passes over the data before the step cap")
    parser.add_argument("--batch-size", type=positive_int, help="pairs per step (in-batch negatives)")
    parser.add_argument("--lora-r", type=positive_int, help="LoRA rank")
    parser.add_argument("--lora-alpha", type=positive_int, help="LoRA alpha (scale = alpha / r; default: 2 x --lora-r)")
    parser.add_argument("--lora-dropout", type=fraction, help="dropout on the LoRA input")
    parser.add_argument("--lr", type=positive_float, help="peak learning rate")
    parser.add_argument("--warmup-steps", type=non_negative_int, help="learning-rate warm-up steps")
    parser.add_argument("--grad-accum", type=positive_int, help="gradient accumulation steps")
    parser.add_argument("--instruction", help='query instruction ("" for none; default: the recipe\'s)')
    parser.add_argument("--max-query-length", type=positive_int, help="query tokens in training, template included")
    parser.add_argument("--max-document-length", type=positive_int,
                        help="document tokens in training, template included")  # fmt: skip
    parser.add_argument("--hard-negatives", type=non_negative_int, help="hard negatives per row used in the loss")
    parser.add_argument("--eval-fraction", type=fraction, help="share of pairs held out for evaluation (0: none)")
    parser.add_argument("--eval-data", help="JSONL file of held-out pairs (instead of --eval-fraction)")
    parser.add_argument("--eval-steps", type=positive_int, help="evaluate on the held-out pairs every N steps")
    parser.add_argument("--save-steps", type=positive_int, help="write a resumable checkpoint every N steps")
    parser.add_argument("--mini-batch-size", type=positive_int, default=32,
                        help="larger batches use the cached (GradCache) loss in chunks of this size")  # fmt: skip
    parser.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=None,
                        help="recompute activations in the backward pass (default: on CUDA only)")  # fmt: skip
    parser.add_argument("--seed", type=int, help="seed of the split, the shuffling and the LoRA init")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in OUTPUT")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier run in OUTPUT")
    parser.add_argument("--keep-checkpoints", action="store_true", help="keep OUTPUT/checkpoints after success")
    parser.add_argument("--device", default="auto", help="cuda, cuda:N, mps or cpu (default: auto)")
    parser.add_argument("--dtype", default="auto", help="bfloat16, float16 or float32 (default: auto)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_train, run=run_train)  # `func` or `run`: whichever the main CLI dispatches on
    return parser


def run_train(args: argparse.Namespace) -> int:
    """Run one training from parsed arguments; prints a summary. Returns the exit status."""
    from diffemb.training.data import DataError

    problem = check_paths(args)
    if problem is not None:
        print(f"diffemb train: error: {problem}", file=sys.stderr)
        return 2
    _configure_logging()
    try:
        from diffemb.training.train import train
    except ImportError as err:
        print(f"diffemb train: error: {err}", file=sys.stderr)  # names the extra: diffemb.extras.require
        return 2
    try:
        result = train(
            args.model,
            args.data,
            args.output,
            recipe=args.recipe,
            attention=args.attention,
            pooling=args.pooling,
            max_steps=args.max_steps,
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.lr,
            lora_r=args.lora_r,
            lora_alpha=args.lora_alpha,
            lora_dropout=args.lora_dropout,
            warmup_steps=args.warmup_steps,
            gradient_accumulation_steps=args.grad_accum,
            **({} if args.instruction is None else {"instruction": args.instruction}),
            max_query_length=args.max_query_length,
            max_document_length=args.max_document_length,
            hard_negatives=args.hard_negatives,
            eval_fraction=args.eval_fraction,
            eval_data=args.eval_data,
            eval_steps=args.eval_steps,
            save_steps=args.save_steps,
            mini_batch_size=args.mini_batch_size,
            gradient_checkpointing=args.gradient_checkpointing,
            seed=args.seed,
            resume=args.resume,
            overwrite=args.overwrite,
            keep_checkpoints=args.keep_checkpoints,
            device=args.device,
            dtype=args.dtype,
            show_progress=not args.no_progress,
        )
    except (DataError, FileExistsError, FileNotFoundError) as err:
        print(f"diffemb train: error: {err}", file=sys.stderr)
        return 2
    print(summary(result))
    return 0


def summary(result: Any) -> str:
    lines = [f"adapter: {result.output} ({result.steps} steps, {result.seconds:.0f} s)"]
    if result.losses:
        lines.append(f"training loss: {result.losses[0][1]:.4f} (step {result.losses[0][0]}) -> "
                     f"{result.losses[-1][1]:.4f} (step {result.losses[-1][0]})")  # fmt: skip
    for name in ("accuracy@1", "mrr@10", "ndcg@10"):
        if name in result.metrics_after:
            before = result.metrics_before.get(name)
            start = f"{before:.4f} -> " if before is not None else ""
            lines.append(f"held-out {name}: {start}{result.metrics_after[name]:.4f}")
    return "\n".join(lines)


def _configure_logging() -> None:
    logger = logging.getLogger("diffemb.training")
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m diffemb.training ...`: the `train` command on its own."""
    parser = argparse.ArgumentParser(
        prog="python -m diffemb.training",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    configure_parser(parser)
    args = parser.parse_args(argv)
    return run_train(args)
