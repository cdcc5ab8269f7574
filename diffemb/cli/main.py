"""The `diffemb` command line: embed files of texts, search a folder of documents, show a model's profile.

    diffemb embed --model M texts.jsonl --output vectors.parquet
    diffemb search --model M --docs examples/docs "how do bees tell each other where flowers are?"
    diffemb info M

Every input problem is reported as one line (`diffemb: error: ...`) with a non-zero exit code before any model
loads; outputs are written to a temp file beside the target and renamed into place, so a failure leaves nothing
half-written. File handling lives in `diffemb.cli.io`; torch is imported only once a model is needed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
import warnings
from pathlib import Path
from typing import Any, NoReturn

from diffemb.cli.args import non_negative_int, positive_int
from diffemb.cli.io import (
    CliError,
    check_output,
    check_window_output,
    document_ids,
    name_text_error,
    read_records,
    write_vectors,
    write_window_vectors,
)
from diffemb.cli.search import DESCRIPTION as SEARCH_DESCRIPTION
from diffemb.cli.search import add_search_arguments
from diffemb.cli.search import run_search as search_command

PROG = "diffemb"
MODEL_ENV = "DIFFEMB_MODEL_NAME"
DEBUG_ENV = "DIFFEMB_DEBUG"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors in the same `diffemb: error: ...` form as every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message} (see `{self.prog} --help`)\n")


def _add_model_options(parser: argparse.ArgumentParser, *, positional: bool = False) -> None:
    if positional:
        parser.add_argument("model", help="hub id or local checkpoint folder")
    else:
        default = os.environ.get(MODEL_ENV)
        parser.add_argument(
            "--model",
            "-m",
            default=default,
            required=default is None,
            help=f"hub id or local checkpoint folder (default: ${MODEL_ENV})",
        )
    group = parser.add_argument_group("model loading")
    group.add_argument("--adapter", help="LoRA adapter (hub id or folder) merged into the model on load")
    devices = "cuda, cuda:N, mps, cpu or a list like cuda:0,cuda:1 (default: auto)"
    group.add_argument("--device", default="auto", help=devices)
    group.add_argument("--dtype", default="auto", help="bfloat16, float16 or float32 (default: auto per device)")
    group.add_argument("--max-length", type=positive_int, help="tokens per forward pass, template included")
    group.add_argument("--batch-tokens", type=positive_int, help="padded tokens per forward pass (speed/memory only)")
    group.add_argument("--chunk-size", type=positive_int, help="body tokens per window of a long document")
    group.add_argument("--chunk-overlap", type=non_negative_int, help="tokens shared by neighbouring windows")
    group.add_argument(
        "--quantization",
        choices=["int8", "nf4"],
        help="quantised weights: int8 (CPU or CUDA) or nf4 (CUDA), after any adapter merge (diffemb[quant])",
    )
    group.add_argument(
        "--model-kwargs",
        type=_json_object,
        metavar="JSON",
        help='keyword arguments for transformers\' from_pretrained, e.g. \'{"attn_implementation": "eager"}\'',
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Text embeddings from diffusion language models, for retrieval.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    embed = commands.add_parser(
        "embed",
        help="embed every text of a .txt/.jsonl/.parquet file",
        description="Embed one text per line of a .txt file, the text field of each .jsonl record, or a column "
        "of a .parquet file. Writes .npy (the matrix), .jsonl or .parquet (every input field plus 'embedding').",
    )
    embed.add_argument("input", type=Path, help="a .txt, .jsonl or .parquet file")
    embed.add_argument("--output", "-o", type=Path, help="a .npy, .jsonl or .parquet file (default: INPUT as .npy)")
    embed.add_argument("--text-field", help="field (or column) of .jsonl/.parquet holding the text (default: text)")
    embed.add_argument(
        "--role",
        choices=["query", "document"],
        default="document",
        help="query: with the model's query instruction, truncated to one window; document (default): chunked",
    )
    embed.add_argument("--instruction", help="instruction put before every text (default: the role's; '' for none)")
    embed.add_argument(
        "--chunk-aggregation",
        choices=["mean", "max", "first", "late"],
        default="mean",
        help="how the windows of a long document become one vector (default: mean)",
    )
    embed.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="run on Ray Data (Parquet in and out): a local Ray, 'auto' for `ray start` on this machine, or an "
        'address such as ray://head:10001 (pip install "diffemb[ray]")',
    )
    embed.add_argument(
        "--id-field",
        help="a field of unique ids: with --ray, checked to come out exactly once; with --chunks, each window's "
        "document_id (default: the text's 0-based position)",
    )
    embed.add_argument(
        "--chunks",
        action="store_true",
        help="one row per model window (document_id, window_index, start, end, token_count, embedding) in .jsonl "
        "or .parquet, for multi-vector (max-sim) retrieval; --chunk-aggregation late pools them from one long pass",
    )
    embed.add_argument(
        "--precision",
        choices=["float32", "float16", "int8", "uint8", "binary", "ubinary"],
        default="float32",
        help="compact vectors: int8/uint8 ranges from this file's own vectors; binary/ubinary are packed bits "
        "(8 dimensions per byte)",
    )
    embed.add_argument("--truncate-dim", type=positive_int, help="keep the first N dimensions (re-normalised)")
    embed.add_argument("--quiet", "-q", action="store_true", help="no progress bar or status lines")
    _add_model_options(embed)
    embed.set_defaults(run=run_embed)

    search = commands.add_parser(
        "search", help="rank the documents of a folder or file for a query", description=SEARCH_DESCRIPTION
    )
    add_search_arguments(search)
    _add_model_options(search)
    search.set_defaults(run=run_search)

    info = commands.add_parser(
        "info", help="print a model's resolved profile as JSON", description="Load a model and print its profile."
    )
    _add_model_options(info, positional=True)
    info.set_defaults(run=run_info, quiet=True)
    _add_optional_commands(commands)
    return parser


def _add_optional_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Commands whose modules live in their own packages (training, evaluation)."""
    from diffemb.evaluation.cli import add_eval_parser
    from diffemb.serve.cli import add_serve_parser
    from diffemb.training.cli import add_train_parser

    add_train_parser(commands)
    add_eval_parser(commands)
    add_serve_parser(commands, add_model_options=_add_model_options, load_encoder=_load_encoder)


# -- commands ---------------------------------------------------------------------------------------------------


def run_embed(args: argparse.Namespace) -> int:
    if args.text_field is not None and args.input.suffix.lower() == ".txt":
        raise CliError(f"--text-field does not apply to {args.input}: a .txt file has one text per line")
    args.text_field = args.text_field or "text"
    if args.ray is not None and args.chunks and args.id_field is None:
        raise CliError("--chunks with --ray needs --id-field: a column of unique ids naming each window's document")
    if args.ray is not None:
        return _run_embed_on_ray(args)
    if args.chunks:
        return _run_embed_chunks(args)
    records = read_records(args.input, args.text_field)
    output: Path = args.output or args.input.with_suffix(".npy")
    check_output(output, args.input)
    encoder = _load_encoder(args, chunk_aggregation=args.chunk_aggregation)
    try:
        vectors = encoder.encode(
            records.texts,
            role=args.role,
            instruction=_instruction(args),
            show_progress=not args.quiet,
            precision=args.precision,
            truncate_dim=args.truncate_dim,
        )
    except ValueError as err:  # "texts[i] has no tokens ...": name the line or row of the file instead
        raise name_text_error(err, lambda i: f"{records.label(i)} of {records.path}") from err
    write_vectors(output, vectors, records, args.text_field)
    _status(args, f"wrote {vectors.shape[0]} {args.precision} vectors of {vectors.shape[1]} values to {output}")
    return 0


def _run_embed_chunks(args: argparse.Namespace) -> int:
    """`embed --chunks`: every window's vector with its document id, position and character span."""
    if args.role == "query":
        raise CliError("--chunks embeds documents window by window: leave out --role query (queries are one window)")
    output: Path = args.output or args.input.with_name(args.input.stem + "-windows.parquet")
    check_window_output(output, args.input)
    records = read_records(args.input, args.text_field)
    ids = document_ids(records, args.id_field)
    late = args.chunk_aggregation == "late"  # other aggregations do not apply: each window keeps its own vector
    encoder = _load_encoder(args, chunk_aggregation="late" if late else "none")
    try:
        chunks = encoder.encode_document_chunks(
            records.texts,
            _instruction(args),
            show_progress=not args.quiet,
            precision=args.precision,
            truncate_dim=args.truncate_dim,
        )
    except ValueError as err:
        raise name_text_error(err, lambda i: f"{records.label(i)} of {records.path}") from err
    rows = write_window_vectors(output, ids, chunks)
    _status(args, f"wrote {rows} window vectors of {len(ids)} documents to {output}")
    return 0


def _run_embed_on_ray(args: argparse.Namespace) -> int:
    is_uri = re.match(r"^[a-z][a-z0-9+.-]+:/", str(args.input)) is not None
    if is_uri and args.output is None:
        raise CliError("--ray with a URI input needs --output (a folder or prefix the workers can write)")
    if not is_uri and args.input.suffix.lower() != ".parquet" and not args.input.is_dir():
        raise CliError(f"--ray reads Parquet: {args.input} is not a .parquet file or folder")
    if args.precision in ("int8", "uint8"):
        raise CliError(
            f"--precision {args.precision} takes its ranges from the whole file, which --ray does not see at once: "
            "use float16, binary or ubinary, or diffemb.ray.embed_dataset(..., calibration=sample_vectors)"
        )
    from diffemb.ray import run_ray_embed

    names = ("adapter", "max_length", "batch_tokens", "chunk_size", "chunk_overlap")
    options = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    output = args.output or args.input.with_name(args.input.stem + "-embedded.parquet")
    done = run_ray_embed(
        args.input,
        output,
        args.model,
        address=None if args.ray == "local" else args.ray,
        role=args.role,
        instruction=_instruction(args),
        text_column=args.text_field,
        id_column=args.id_field,
        quiet=args.quiet,
        device=args.device,
        dtype=args.dtype,
        chunk_aggregation=args.chunk_aggregation,
        chunks=args.chunks,
        precision=args.precision,
        truncate_dim=args.truncate_dim,
        **options,
    )
    _status(args, f"wrote {done.get('rows')} rows to {output} on Ray ({done.get('rows_per_second', 0):.1f} rows/s)")
    return 0


def run_search(args: argparse.Namespace) -> int:
    return search_command(args, lambda: _load_encoder(args), lambda message: _status(args, message))


def run_info(args: argparse.Namespace) -> int:
    # From config.json and the adapter's diffemb.json alone: no weights are read (15 GB for Dream-7B).
    from diffemb.encoder import DiffEmbedEncoder

    model, options = _encoder_options(args)
    print(json.dumps(DiffEmbedEncoder.describe_pretrained(model, **options), indent=2, default=str))
    return 0


# -- helpers ----------------------------------------------------------------------------------------------------


def _instruction(args: argparse.Namespace) -> Any:
    from diffemb.encoder import DEFAULT

    return DEFAULT if args.instruction is None else args.instruction


def _load_encoder(args: argparse.Namespace, **extra: Any) -> Any:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from diffemb.encoder import DiffEmbedEncoder

    model, options = _encoder_options(args)
    return DiffEmbedEncoder.from_pretrained(model, **options, **extra)


def _encoder_options(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The model and the `from_pretrained` options given on the command line (the model-loading group)."""
    names = ("adapter", "max_length", "batch_tokens", "chunk_size", "chunk_overlap", "quantization", "model_kwargs")
    options = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    model = str(Path(args.model).expanduser()) if Path(args.model).expanduser().exists() else args.model
    return model, {"device": args.device, "dtype": args.dtype, **options}


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON ({err.msg}): {text!r}") from err
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object of keyword arguments, got {text!r}")
    return value


def _status(args: argparse.Namespace, message: str) -> None:
    if not getattr(args, "quiet", False):
        print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _show_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
    print(f"{PROG}: warning: {' '.join(str(message).split())}", file=sys.stderr, flush=True)


def _version() -> str:
    import diffemb

    return str(diffemb.__version__)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `diffemb` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    previous = warnings.showwarning
    warnings.showwarning = _show_warning
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous_sigterm = signal.signal(signal.SIGTERM, _terminate) if on_main_thread else None
    try:
        return _run(args)
    finally:
        warnings.showwarning = previous
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous_sigterm)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so the same clean-up runs (temp files removed); exit code 143 (128 + 15)."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated


def _run(args: argparse.Namespace) -> int:
    debug = bool(os.environ.get(DEBUG_ENV))
    try:
        return int(args.run(args))
    except CliError as err:
        _error(str(err))
    except KeyboardInterrupt as err:
        terminated = isinstance(err, Terminated)
        _error("terminated" if terminated else "interrupted")
        return 143 if terminated else 130
    except BrokenPipeError:
        # The reader went away (`diffemb search ... | head`): not an error worth a message.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (OSError, ValueError, TypeError, ImportError) as err:
        if debug:
            raise
        _error(_one_line(err))
    except Exception as err:
        if debug:
            raise
        _error(f"{type(err).__name__}: {_one_line(err)} (set {DEBUG_ENV}=1 for a traceback)")
    return 1


if __name__ == "__main__":
    sys.exit(main())
