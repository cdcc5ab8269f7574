"""`diffemb eval`: the command line of :func:`diffemb.evaluation.evaluate`.

    diffemb eval --model M --tasks local-passkey,local-pydocs --output results/ --compare M2 --limit 50
    python -m diffemb.evaluation --model M --tasks longembed

The main CLI registers it with ``add_eval_parser(subparsers)``; the parser's defaults carry ``run`` (and
``func``) = :func:`run_eval`. Every failure is one line on stderr and a non-zero exit code, no traceback
(``DIFFEMB_DEBUG=1`` shows it). Importing this module imports neither torch nor mteb.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from diffemb.cli.args import non_negative_int, positive_int

PROG = "diffemb eval"
_DESCRIPTION = """\
Evaluate a model (and --compare models) on retrieval tasks; print a Markdown table, write per-task JSON.

Offline tasks (nothing downloaded): local-passkey, local-needle (both kinds), local-needle-name-number,
local-needle-paraphrase (LongEmbed-style, nDCG@1, lengths 256..32768 counted with the first model's
tokenizer), local-pydocs (Debian python3.11-doc), local-manpages (Debian manpages, manpages-dev) with nDCG@10;
each with a BM25 floor. Hub suites through mteb (data from the Hugging Face hub): longembed, bright,
bright-all, followir, mteb-eng-retrieval, or any mteb task name."""


def _lengths(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"lengths must be comma-separated numbers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"lengths must be positive numbers, got {text!r}")
    return values


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    default_model = os.environ.get("DIFFEMB_MODEL_NAME")
    parser.add_argument(
        "--model", "-m", default=default_model, required=default_model is None, help="hub id or local folder"
    )
    parser.add_argument("--adapter", help="LoRA adapter (hub id or folder) merged into --model on load")
    parser.add_argument("--tasks", "-t", required=True, help="comma-separated task or suite names (see above)")
    parser.add_argument("--output", "-o", help="folder for {task}.json, results.json and results.md")
    parser.add_argument(
        "--compare", nargs="+", action="extend", default=[], metavar="MODEL", help="further models, side by side"
    )
    parser.add_argument("--limit", type=positive_int, help="documents per task (seeded subsample for real corpora)")
    parser.add_argument("--lengths", type=_lengths, help="synthetic lengths, e.g. 256,1024,4096")
    parser.add_argument(
        "--chunk-aggregation",
        default=None,
        help="document mode(s), comma-separated: first, mean, max, late, maxsim (best window), norm-mean "
        "(default: the model's, mean)",
    )
    parser.add_argument("--chunk-size", type=positive_int, help="body tokens per window of a long document")
    parser.add_argument("--chunk-overlap", type=non_negative_int, help="tokens shared by neighbouring windows")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic tasks and subsamples (default: 0)")
    parser.add_argument("--no-bm25", action="store_true", help="skip the BM25 floor")
    group = parser.add_argument_group("model loading")
    group.add_argument("--device", default="auto", help="cuda, cuda:N, mps or cpu (default: auto)")
    group.add_argument("--dtype", default="auto", help="bfloat16, float16 or float32 (default: auto per device)")
    group.add_argument("--max-length", type=positive_int, help="tokens per forward pass, template included")
    group.add_argument("--batch-tokens", type=positive_int, help="padded tokens per forward pass (speed/memory only)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar or status lines")
    parser.set_defaults(run=run_eval, func=run_eval)
    return parser


def add_eval_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``eval`` on an ``argparse`` sub-parsers object."""
    parser = subparsers.add_parser(
        "eval",
        help="evaluate models on retrieval tasks (offline tasks, LongEmbed, BRIGHT, FollowIR, MTEB)",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return configure_parser(parser)


def run_eval(args: argparse.Namespace) -> int:
    """Run an evaluation from parsed arguments; prints the table. Returns the exit status."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return _run(args)
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except Exception as err:  # one line per failure; the traceback only on request
        if os.environ.get("DIFFEMB_DEBUG"):
            raise
        from diffemb.evaluation.mteb_adapter import HubUnavailable

        known = (HubUnavailable, FileNotFoundError, ValueError, ImportError, KeyError, OSError, TypeError)
        message = _one_line(err)
        if not isinstance(err, known):
            message = f"{type(err).__name__}: {message} (set DIFFEMB_DEBUG=1 for a traceback)"
        _error(message)
        return 1


def check_task_names(tasks: str) -> None:
    """Every name is an offline task (or one length of a synthetic one), a suite or an mteb task; an unknown name
    is a ValueError listing the known ones, before any model loads (mteb lists its tasks without the hub; it is
    imported the way the hub tasks will need it)."""
    import difflib

    from diffemb.evaluation.mteb_suites import SUITES, import_mteb_auto
    from diffemb.evaluation.offline import OFFLINE_TASKS
    from diffemb.evaluation.runner import parse_task_names

    synthetic = ("local-passkey", "local-needle", "local-needle-name-number", "local-needle-paraphrase")
    mteb_names: list[str] | None = None
    for name in parse_task_names(tasks):
        family, _, tail = name.rpartition("-")
        if name in OFFLINE_TASKS or name in SUITES or (family in synthetic and tail.isdigit()):
            continue
        if not name.startswith("local-"):
            if mteb_names is None:
                try:
                    mteb_names = [task.metadata.name for task in import_mteb_auto().get_tasks()]
                except ImportError:
                    return  # without mteb the hub tasks fail later with the install command
            if name in mteb_names:
                continue
        ours = [*OFFLINE_TASKS, *SUITES]
        close = difflib.get_close_matches(name, ours + (mteb_names or []), n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(
            f"unknown task {name!r}{hint}. Known: {', '.join(ours)}, one length of a synthetic task "
            "(local-passkey-4096), or an mteb task name (`python -c \"import mteb; print(mteb.get_tasks())\"`)"
        )


def _run(args: argparse.Namespace) -> int:
    import warnings

    from diffemb.evaluation.runner import evaluate

    check_task_names(args.tasks)

    load = {"device": args.device, "dtype": args.dtype}
    for name in ("max_length", "batch_tokens"):
        if getattr(args, name, None) is not None:
            load[name] = getattr(args, name)
    with warnings.catch_warnings():
        if args.quiet:
            warnings.simplefilter("ignore")
        report = evaluate(
            args.model,
            args.tasks,
            chunk_aggregation=args.chunk_aggregation,
            limit=args.limit,
            lengths=args.lengths,
            output_dir=args.output,
            compare=args.compare,
            adapter=args.adapter,
            chunk_size=args.chunk_size,
            chunk_overlap=args.chunk_overlap,
            seed=args.seed,
            bm25=not args.no_bm25,
            show_progress=not args.quiet,
            **load,
        )
    print(report.table, end="")
    if report.output_dir is not None and not args.quiet:
        print(f"{PROG}: wrote {report.output_dir}", file=sys.stderr)
    return 0


def _one_line(error: BaseException) -> str:
    text = str(error)
    if isinstance(error, KeyError) and error.args:
        text = str(error.args[0])
    return " ".join(text.split()) or type(error).__name__


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m diffemb.evaluation ...``: the ``eval`` command on its own."""
    parser = argparse.ArgumentParser(
        prog="python -m diffemb.evaluation",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    configure_parser(parser)
    args = parser.parse_args(argv)
    return run_eval(args)
