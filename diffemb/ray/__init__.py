"""Scale-out with Ray Data: one encoder per actor, as many actors as the cluster has GPUs (or CPU slots).

    import ray
    from diffemb.ray import embed_dataset

    ds = ray.data.read_parquet("corpus/")                      # any Ray Dataset with a text column
    ds = embed_dataset(ds, model="Dream-org/Dream-v0-Instruct-7B", id_column="id")
    ds.write_parquet("vectors/")                               # every input column + "embedding"

The same code runs on a laptop (a local Ray is started), on `ray start --head` and on a cluster; `run_ray_embed`
is the Parquet-in, Parquet-out job behind `diffemb embed --ray`. Inside each batch the core encoder does what it
always does (length sorting, token budget, long-document windows, out-of-memory backoff), so a row's vector does
not depend on which actor or batch it landed in. A dead actor (a killed process, a lost node) is restarted by
Ray and its batch retried; rows are neither lost nor duplicated. `chunks=True` writes one row per model window
(document id, window, span, token count, vector) for max-sim retrieval over long documents.

Modules: `embedder` (the batch class the actors run), `batches` (the three batch formats), `dataset`
(`embed_dataset`, actor pool sizing), `job` (`run_ray_embed`), `parquet` (paths, staged outputs, id checks).
Needs the `ray` extra: `pip install "diffemb[ray]"`; importing this package does not import Ray.
"""

from __future__ import annotations

from diffemb.ray.dataset import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_RESTARTS,
    DEFAULT_MAX_TASK_RETRIES,
    default_concurrency,
    embed_dataset,
)
from diffemb.ray.embedder import EMBEDDING_COLUMN, WINDOW_COLUMNS, DiffEmbedBatchEmbedder
from diffemb.ray.job import run_ray_embed

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_RESTARTS",
    "DEFAULT_MAX_TASK_RETRIES",
    "EMBEDDING_COLUMN",
    "WINDOW_COLUMNS",
    "DiffEmbedBatchEmbedder",
    "default_concurrency",
    "embed_dataset",
    "run_ray_embed",
]
