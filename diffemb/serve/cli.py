"""`diffemb serve`: the command line of the server.

The main CLI registers it with `add_serve_parser(subparsers, add_model_options=..., load_encoder=...)`, handing
over its own model-loading options and loader so that every encoder option of `diffemb embed` means the same here.
Importing this module imports neither FastAPI nor torch; `run_serve` checks the `serve` extra first.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from diffemb.cli.args import positive_int

API_KEY_ENV = "DIFFEMB_API_KEY"
_PURPOSE = "diffemb serve"
_AGGREGATIONS = ("mean", "max", "first", "late")

_DESCRIPTION = """\
Serve one loaded model over HTTP: POST /v1/embeddings (OpenAI-compatible: the openai client, LangChain's
OpenAIEmbeddings, LlamaIndex's OpenAILikeEmbedding), POST /v1/diffemb/embed (role, instruction, per-window
vectors with spans), GET /health, /v1/models and /metrics (Prometheus). Concurrent requests share encoder passes.
Clients ask for MODEL (or --served-model-name) for documents and MODEL:query for queries, or send
input_type="query". SIGTERM stops accepting, answers what is in flight and exits 0."""

LoadEncoder = Callable[..., Any]


def add_serve_parser(
    subparsers: Any,
    *,
    add_model_options: Callable[[argparse.ArgumentParser], None],
    load_encoder: LoadEncoder,
) -> argparse.ArgumentParser:
    """Register `serve`; `add_model_options(parser)` adds the shared model-loading options and
    `load_encoder(args, **view_options)` loads an encoder from them (both from `diffemb.cli.main`)."""
    parser = subparsers.add_parser(
        "serve",
        help="serve embeddings over HTTP (OpenAI-compatible API, batching across requests)",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    server = parser.add_argument_group("server")
    server.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    server.add_argument("--port", type=int, default=8080, help="TCP port (default: 8080)")
    server.add_argument("--served-model-name", help="the name clients send as `model` (default: --model as given)")
    server.add_argument("--api-key", help=f"require `Authorization: Bearer KEY` (default: ${API_KEY_ENV}; none)")
    server.add_argument("--max-items", type=positive_int, default=2048, help="texts per request (default: 2048)")
    server.add_argument(
        "--max-item-chars", type=positive_int, default=200_000, help="characters per text (default: 200000)"
    )
    server.add_argument(
        "--max-request-chars", type=positive_int, default=1_000_000, help="characters per request (default: 1000000)"
    )
    server.add_argument(
        "--max-queue-texts",
        type=positive_int,
        default=16_384,
        help="texts waiting for a pass before new requests get 429 (default: 16384)",
    )
    server.add_argument(
        "--shutdown-timeout",
        type=positive_int,
        default=120,
        help="seconds SIGTERM waits for requests in flight (default: 120)",
    )
    server.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    vectors = parser.add_argument_group("vectors")
    vectors.add_argument(
        "--chunk-aggregation",
        choices=_AGGREGATIONS,
        help="how the windows of a long document become one vector (default: the model's, mean)",
    )
    vectors.add_argument("--query-instruction", help="instruction for queries (default: the model's; '' for none)")
    vectors.add_argument("--document-instruction", help="instruction for documents (default: none)")
    ray = parser.add_argument_group('Ray Serve (pip install "diffemb[serve-ray]")')
    ray.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="run as a Ray Serve deployment: a local Ray, 'auto' for `ray start` on this machine, or an address",
    )
    ray.add_argument("--replicas", type=positive_int, help="fixed replicas (default: one per GPU, or 1 on CPU)")
    ray.add_argument("--min-replicas", type=int, help="with --max-replicas: Ray's autoscaling lower bound")
    ray.add_argument("--max-replicas", type=positive_int, help="autoscale up to this many replicas")
    ray.add_argument("--gpus-per-replica", type=float, help="GPUs each replica reserves (default: 1 where GPUs exist)")
    add_model_options(parser)
    parser.set_defaults(run=functools.partial(run_serve, load_encoder=load_encoder))
    return parser


def view_options(args: argparse.Namespace) -> dict[str, Any]:
    names = ("chunk_aggregation", "query_instruction", "document_instruction")
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def serve_config(args: argparse.Namespace) -> Any:
    from diffemb.serve.app import ServeConfig
    from diffemb.serve.schemas import Limits

    api_key = args.api_key if args.api_key is not None else os.environ.get(API_KEY_ENV) or None
    limits = Limits(args.max_items, args.max_item_chars, args.max_request_chars)
    return ServeConfig(
        served_model_name=args.served_model_name or args.model,
        api_key=api_key,
        limits=limits,
        max_queue_texts=args.max_queue_texts,
    )


def run_serve(args: argparse.Namespace, *, load_encoder: LoadEncoder) -> int:
    """Load the model, then serve until SIGTERM or Ctrl+C; returns the exit status."""
    from diffemb.cli.io import CliError

    if not 0 < args.port < 65536:
        raise CliError(f"--port must be between 1 and 65535, got {args.port}")
    try:
        config = serve_config(args)
    except ValueError as err:
        raise CliError(str(err)) from None
    if args.ray is not None:
        from diffemb.serve.ray_serve import run_ray_serve

        loader = functools.partial(load_encoder, args, **view_options(args))
        return run_ray_serve(loader, config, args)
    if args.replicas or args.min_replicas is not None or args.max_replicas or args.gpus_per_replica:
        raise CliError("--replicas, --min-replicas, --max-replicas and --gpus-per-replica need --ray")
    from diffemb.extras import require

    uvicorn = require("uvicorn", "serve", _PURPOSE)
    from diffemb.serve.app import create_app

    encoder = load_encoder(args, **view_options(args))  # load before binding: a bad model fails at once
    app = create_app(encoder, config)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            timeout_graceful_shutdown=args.shutdown_timeout,
            access_log=args.log_level == "debug",
        )
    )
    # uvicorn re-raises the SIGTERM it caught once it has shut down gracefully; a handler of our own turns that
    # into a normal return, so a graceful stop exits 0 (as process managers expect).
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        server.run()
    except SystemExit:  # uvicorn exits when it cannot bind; say why in the CLI's one-line form instead
        server.started = False
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not server.started:
        raise CliError(f"the server did not start on {args.host}:{args.port} (is the port in use?)")
    print(f"diffemb: server on {args.host}:{args.port} stopped", file=sys.stderr, flush=True)
    return 0
