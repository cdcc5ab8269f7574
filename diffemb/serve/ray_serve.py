"""`diffemb serve --ray`: the same FastAPI application as a Ray Serve deployment, for more than one machine.

Each replica builds the application of `diffemb.serve.app` (its own encoder, batcher and metrics) through
`serve.ingress`; Ray's proxy spreads requests over replicas. Replicas: one per GPU of the cluster by default,
a fixed number (`--replicas`), or Ray's autoscaling between `--min-replicas` and `--max-replicas` on the number
of requests in flight. Needs `pip install "diffemb[serve-ray]"`.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from diffemb.extras import require

_PURPOSE = "diffemb serve --ray"
APP_NAME = "diffemb"
MAX_ONGOING_REQUESTS = 256
"""Requests one replica holds at once: enough for its batcher to pack full passes (Ray's default is 5)."""
TARGET_ONGOING_REQUESTS = 64
"""Autoscaling adds a replica when the replicas hold more than this many requests each on average."""


def deployment_options(
    *,
    gpus: float,
    replicas: int | None = None,
    min_replicas: int | None = None,
    max_replicas: int | None = None,
    gpus_per_replica: float | None = None,
    shutdown_timeout: float = 120.0,
) -> dict[str, Any]:
    """Options for `serve.deployment`: replicas per GPU (or fixed, or autoscaled) and what each one reserves."""
    per_replica = gpus_per_replica if gpus_per_replica is not None else (1.0 if gpus >= 1 else 0.0)
    actor: dict[str, Any] = {"num_gpus": per_replica} if per_replica > 0 else {"num_cpus": 1}
    options: dict[str, Any] = {
        "ray_actor_options": actor,
        "max_ongoing_requests": MAX_ONGOING_REQUESTS,
        "graceful_shutdown_timeout_s": shutdown_timeout,
        "health_check_timeout_s": 60.0,
    }
    if max_replicas is not None:
        if replicas is not None:
            raise ValueError("give either a fixed number of replicas or --min-replicas/--max-replicas, not both")
        low = 1 if min_replicas is None else min_replicas
        if not 0 <= low <= max_replicas:
            raise ValueError(f"--min-replicas ({low}) must be between 0 and --max-replicas ({max_replicas})")
        options["autoscaling_config"] = {
            "min_replicas": low,
            "max_replicas": max_replicas,
            "target_ongoing_requests": TARGET_ONGOING_REQUESTS,
        }
    elif min_replicas is not None:
        raise ValueError("--min-replicas needs --max-replicas (Ray's autoscaling bounds)")
    else:
        per_gpu = int(gpus // per_replica) if per_replica > 0 else 1
        options["num_replicas"] = replicas if replicas is not None else max(1, per_gpu)
    return options


def build_deployment(load_encoder: Callable[[], Any], config: Any, options: dict[str, Any]) -> Any:
    """A Ray Serve deployment whose replicas each run `create_app(load_encoder, config)` (`.bind()` it)."""
    serve = require("ray.serve", "serve-ray", _PURPOSE)

    def build_app() -> Any:  # runs on each replica: loads the model there, not on the driver
        from diffemb.serve.app import create_app

        return create_app(load_encoder, config)

    return serve.deployment(name="DiffEmbedServer", **options)(serve.ingress(build_app)())


def run_ray_serve(load_encoder: Callable[[], Any], config: Any, args: argparse.Namespace) -> int:
    """Connect to (or start) Ray, deploy, serve HTTP on `args.host:args.port` until SIGTERM or Ctrl+C."""
    ray = require("ray", "serve-ray", _PURPOSE)
    serve = require("ray.serve", "serve-ray", _PURPOSE)
    if not ray.is_initialized():
        ray.init(address=None if args.ray == "local" else args.ray, include_dashboard=False)
    # Installed before deploying, over the handler Ray's core sets in `ray.init` (which aborts the process): a
    # SIGTERM that arrives while `serve.run` is still waiting for replicas must also end in a clean shutdown.
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        gpus = float(ray.cluster_resources().get("GPU", 0))
        options = deployment_options(
            gpus=gpus,
            replicas=args.replicas,
            min_replicas=args.min_replicas,
            max_replicas=args.max_replicas,
            gpus_per_replica=args.gpus_per_replica,
            shutdown_timeout=args.shutdown_timeout,
        )
        serve.start(http_options={"host": args.host, "port": args.port})
        serve.run(build_deployment(load_encoder, config, options).bind(), name=APP_NAME, route_prefix="/")
        print(f"diffemb: Ray Serve on {args.host}:{args.port}", file=sys.stderr, flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        serve.shutdown()  # replicas drain their requests (graceful_shutdown_timeout_s) before they exit
    finally:
        signal.signal(signal.SIGTERM, previous)
        ray.shutdown()
    return 0
