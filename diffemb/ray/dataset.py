"""`embed_dataset`: a Ray Dataset in, the same rows with vectors out, on a pool of embedding actors sized from the
cluster."""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

import numpy as np

from diffemb.encoder import DEFAULT
from diffemb.extras import require
from diffemb.ray.embedder import (
    EMBEDDING_COLUMN,
    DiffEmbedBatchEmbedder,
    check_chunk_options,
    compact_options,
    is_default,
)

DEFAULT_BATCH_SIZE = 512
"""Rows per Ray batch: enough for the encoder's length sorting to pack tight token-budgeted passes."""
DEFAULT_MAX_RESTARTS = 4
"""How often Ray restarts a dead embedding actor (a crashed process or a lost node) before the job fails."""
DEFAULT_MAX_TASK_RETRIES = 4
"""How often a batch whose actor died is retried on the restarted (or another) actor."""
MAX_CPU_THREADS_PER_ACTOR = 8
"""On CPU-only clusters an actor gets at most this many torch threads; more CPUs give more actors."""

PURPOSE = "Scale-out with Ray Data"


def require_ray() -> Any:
    return require("ray", "ray", PURPOSE)


def default_concurrency(
    concurrency: int | tuple[int, int] | None = None,
    num_gpus: float | None = None,
    torch_threads: int | None = None,
) -> dict[str, Any]:
    """How many embedding actors the connected cluster fits, and what each one asks Ray for.

    With GPUs: one actor per GPU (`num_gpus=1`). Without: actors of `torch_threads` torch threads each
    (default: a quarter of the CPUs from 8 CPUs up, else 1, and at most 8), one per that many CPUs. CPU actors
    reserve, all together, one CPU less than the cluster has: Ray Data's read and write tasks take one CPU
    each and would otherwise wait forever behind actors that never finish. Returns `concurrency`,
    `num_gpus`, `num_cpus` (per actor, for Ray's scheduler) and `torch_threads` (per actor, for torch).
    """
    ray = require_ray()
    resources = ray.cluster_resources()
    gpus = float(resources.get("GPU", 0))
    per_gpu = 1.0 if num_gpus is None else float(num_gpus)
    if gpus >= 1 and per_gpu > 0:
        actors = concurrency if concurrency is not None else max(1, int(gpus // per_gpu))
        return {"concurrency": actors, "num_gpus": per_gpu, "num_cpus": None, "torch_threads": torch_threads}
    cpus = max(1, int(resources.get("CPU", 1)))
    threads = torch_threads or (min(MAX_CPU_THREADS_PER_ACTOR, cpus // 4) if cpus >= 8 else 1)
    actors = concurrency if concurrency is not None else max(1, cpus // threads)
    most = max(actors) if isinstance(actors, tuple) else actors
    reserve = min(float(threads), math.floor(100 * (cpus - 1) / most) / 100)
    return {"concurrency": actors, "num_gpus": None, "num_cpus": reserve, "torch_threads": threads}


def embed_dataset(
    ds: Any,
    model: str | os.PathLike[str],
    *,
    text_column: str = "text",
    output_column: str = EMBEDDING_COLUMN,
    role: str = "document",
    instruction: Any = DEFAULT,
    id_column: str | None = None,
    chunks: bool = False,
    precision: str = "float32",
    truncate_dim: int | None = None,
    calibration: np.ndarray | None = None,
    concurrency: int | tuple[int, int] | None = None,
    num_gpus: float | None = None,
    num_cpus: float | None = None,
    torch_threads: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    batch_format: str = "pyarrow",
    max_restarts: int = DEFAULT_MAX_RESTARTS,
    max_task_retries: int = DEFAULT_MAX_TASK_RETRIES,
    split_blocks: bool = True,
    max_actors: int | None = None,
    embedder_class: type[DiffEmbedBatchEmbedder] = DiffEmbedBatchEmbedder,
    **encoder_options: Any,
) -> Any:
    """`ds` with an `output_column` of vectors (lazy, like every Ray Dataset transform).

    `chunks=True` gives one row per model window of each document instead, in the layout of `diffemb embed
    --chunks` (`document_id` from `id_column`, which it needs, `window_index`, `start`, `end`, `token_count`,
    then the vector; late window vectors when `chunk_aggregation="late"`). Without `chunks`, `id_column` only
    names rows in error messages (rows keep all their columns). `precision` ("float32", "float16", "int8",
    "uint8", "binary", "ubinary") and `truncate_dim` store compact vectors as the core's `encode` makes them
    (binary: packed bytes; int8/uint8 need `calibration`, float vectors of a sample of the corpus, so that all
    batches share one coding).

    Actors are sized from the connected cluster unless given (`default_concurrency`): one per GPU, or CPU
    actors of `torch_threads` threads; `concurrency` may be a number or a `(min, max)` autoscaling range.
    A dead actor is restarted up to `max_restarts` times and its batch retried up to `max_task_retries` times
    (-1: without limit). `split_blocks` cuts blocks larger than `batch_size` rows first (streaming, no shuffle),
    so that one big file still feeds every actor and a retry redoes one batch. Other keywords go to
    `DiffEmbedEncoder.from_pretrained` in each actor; on a GPU actor `device="auto"` is its GPU. `max_actors`
    caps a pool sized automatically (a dataset of few batches need not load the model on every GPU).
    `embedder_class` may be a subclass of `DiffEmbedBatchEmbedder` (to post-process batches, say).
    """
    require_ray()
    import ray.data

    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive number of rows, got {batch_size}")
    check_chunk_options(role, chunks, encoder_options.get("chunk_aggregation"), id_column)
    if num_gpus is None and str(encoder_options.get("device", "auto")).startswith("cpu"):
        num_gpus = 0  # CPU actors asked for, even where the cluster has GPUs
    if concurrency is None and max_actors is not None:
        planned = default_concurrency(None, num_gpus, torch_threads)["concurrency"]
        concurrency = max(1, min(planned, max_actors))
    chosen = default_concurrency(concurrency, num_gpus, torch_threads)
    actors = chosen["concurrency"]
    num_gpus = chosen["num_gpus"] if num_gpus is None else num_gpus
    num_cpus = chosen["num_cpus"] if num_cpus is None else num_cpus
    constructor: dict[str, Any] = {
        "model": str(model),
        "text_column": text_column,
        "output_column": output_column,
        "role": role,
        "id_column": id_column,
        "torch_threads": chosen["torch_threads"],
        **encoder_options,
    }
    if chunks:
        constructor["chunks"] = True
    constructor.update(compact_options(precision, truncate_dim, calibration))
    if not is_default(instruction):
        constructor["instruction"] = instruction
    if isinstance(actors, tuple):
        pool = ray.data.ActorPoolStrategy(min_size=actors[0], max_size=actors[1])
    else:
        pool = ray.data.ActorPoolStrategy(size=actors)
    resources: dict[str, Any] = {}
    if num_gpus:
        resources["num_gpus"] = num_gpus
    if num_cpus is not None:
        resources["num_cpus"] = num_cpus
    if split_blocks:
        ds = ds.repartition(target_num_rows_per_block=batch_size)
    with warnings.catch_warnings():
        # Ray 2.60 deprecates passing actor options such as max_restarts through map_batches' **kwargs (to be
        # removed in 2.64, which the `ray` extra excludes) and has no named parameter for them yet.
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated", category=Warning)
        return ds.map_batches(
            embedder_class,
            fn_constructor_kwargs=constructor,
            compute=pool,
            batch_size=batch_size,
            batch_format=batch_format,
            max_restarts=max_restarts,
            max_task_retries=max_task_retries,
            **resources,
        )
