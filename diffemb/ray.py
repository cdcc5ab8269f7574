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
Ray and its batch retried; rows are neither lost nor duplicated.

Needs the `ray` extra: `pip install "diffemb[ray]"`.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from diffemb.encoder import DEFAULT
from diffemb.extras import require

EMBEDDING_COLUMN = "embedding"
CHUNK_EMBEDDINGS_COLUMN = "chunk_embeddings"
CHUNK_SPANS_COLUMN = "chunk_spans"
CHUNK_TOKENS_COLUMN = "chunk_token_counts"

DEFAULT_BATCH_SIZE = 512
"""Rows per Ray batch: enough for the encoder's length sorting to pack tight token-budgeted passes."""
DEFAULT_MAX_RESTARTS = 4
"""How often Ray restarts a dead embedding actor (a crashed process or a lost node) before the job fails."""
DEFAULT_MAX_TASK_RETRIES = 4
"""How often a batch whose actor died is retried on the restarted (or another) actor."""
MAX_CPU_THREADS_PER_ACTOR = 8
"""On CPU-only clusters an actor gets at most this many torch threads; more CPUs give more actors."""

_PURPOSE = "Scale-out with Ray Data"


def _ray() -> Any:
    return require("ray", "ray", _PURPOSE)


def _is_default(value: Any) -> bool:
    # DEFAULT is compared by identity in the encoder; after pickling to an actor it is another object.
    return value is DEFAULT or type(value) is type(DEFAULT)


class DiffEmbedBatchEmbedder:
    """A callable class for `Dataset.map_batches`: loads the encoder once per actor and embeds each batch.

        ds.map_batches(DiffEmbedBatchEmbedder, fn_constructor_kwargs={"model": "...", "device": "cuda"},
                       concurrency=4, num_gpus=1, batch_size=512, batch_format="pyarrow")

    Batches may be pyarrow Tables, pandas DataFrames or dicts of numpy arrays; the same kind comes back with
    every input column plus `output_column` (a fixed-size list of float32 in Arrow, the Parquet layout that
    `diffemb embed` writes). With `chunk_aggregation="none"` documents also get `chunk_embeddings` (one vector
    per window), `chunk_spans` (each window's `[start, end)` characters) and `chunk_token_counts`; their
    `output_column` is then the token-weighted mean of the window vectors.

    Every other keyword goes to `DiffEmbedEncoder.from_pretrained` (whose weight cache shares one model per process,
    so actors that share a process share the model).
    """

    def __init__(
        self,
        model: str,
        *,
        text_column: str = "text",
        output_column: str = EMBEDDING_COLUMN,
        role: str = "document",
        instruction: Any = DEFAULT,
        id_column: str | None = None,
        torch_threads: int | None = None,
        **encoder_options: Any,
    ) -> None:
        from diffemb.encoder import DiffEmbedEncoder
        from diffemb.inputs import check_role

        self.text_column = text_column
        self.output_column = output_column
        self.role = check_role(role)
        self.instruction = DEFAULT if _is_default(instruction) else instruction
        self.id_column = id_column
        if torch_threads:
            import torch

            torch.set_num_threads(int(torch_threads))
        self.encoder = DiffEmbedEncoder.from_pretrained(str(model), **encoder_options)
        self.chunked = self.role == "document" and self.encoder.settings.chunking.aggregation == "none"

    def __call__(self, batch: Any) -> Any:
        texts = self._texts(batch)
        chunks: list[Any] | None
        if not texts:
            vectors = np.zeros((0, self.encoder.dimension), dtype=np.float32)
            chunks = [] if self.chunked else None
        elif self.chunked:
            from diffemb.chunking import aggregate

            chunks = self.encoder.encode_document_chunks(texts, instruction=self.instruction, show_progress=False)
            normalize = self.encoder.profile.normalize
            vectors = np.stack([aggregate(c, "mean", normalize) for c in chunks]).astype(np.float32)
        else:
            chunks = None
            vectors = self.encoder.encode(texts, role=self.role, instruction=self.instruction, show_progress=False)
        return self._with_columns(batch, vectors, chunks)

    # -- batch formats -------------------------------------------------------------------------------------

    def _texts(self, batch: Any) -> list[str]:
        names = _column_names(batch)
        if self.text_column not in names:
            raise KeyError(f"the batch has no text column {self.text_column!r}; its columns are {names}")
        texts = _column(batch, self.text_column)
        ids = _column(batch, self.id_column) if self.id_column and self.id_column in names else None
        for index, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                where = f"row with {self.id_column}={ids[index]!r}" if ids is not None else f"row {index} of a batch"
                if text is None:
                    problem = "has no text (null)"
                elif isinstance(text, str):
                    problem = "has an empty text"
                else:
                    problem = f"has a {type(text).__name__}, not a str,"
                raise ValueError(f"{where} {problem} in column {self.text_column!r}: drop or fill it before embedding")
        return texts

    def _with_columns(self, batch: Any, vectors: np.ndarray, chunks: list[Any] | None) -> Any:
        kind = _batch_kind(batch)
        if kind == "pyarrow":
            columns = _arrow_columns(self.output_column, vectors, chunks)
            table = batch
            for name, array in columns.items():
                if name in table.column_names:
                    table = table.set_column(table.column_names.index(name), name, array)
                else:
                    table = table.append_column(name, array)
            return table
        values: dict[str, Any] = {self.output_column: vectors}
        if chunks is not None:
            values[CHUNK_EMBEDDINGS_COLUMN] = [c.vectors.astype(np.float32, copy=False) for c in chunks]
            values[CHUNK_SPANS_COLUMN] = [np.asarray(c.spans, dtype=np.int64).reshape(-1, 2) for c in chunks]
            values[CHUNK_TOKENS_COLUMN] = [np.asarray(c.token_counts, dtype=np.int32) for c in chunks]
        if kind == "pandas":
            frame = batch.copy(deep=False)
            for name, column in values.items():
                frame[name] = list(column)
            return frame
        out = dict(batch)
        for name, column in values.items():
            if isinstance(column, np.ndarray):
                out[name] = column  # (rows, dimension)
            else:
                ragged = np.empty(len(column), dtype=object)  # one array per row, of varying length
                ragged[:] = column
                out[name] = ragged
        return out


def _arrow_columns(output_column: str, vectors: np.ndarray, chunks: list[Any] | None) -> dict[str, Any]:
    """Vectors as fixed-size lists of float32 (what `diffemb embed` writes to Parquet), chunks as lists of them."""
    import pyarrow as pa

    dimension = vectors.shape[1]
    columns = {output_column: _fixed_size_lists(vectors, dimension)}
    if chunks is None:
        return columns
    counts = np.asarray([0, *np.cumsum([len(c) for c in chunks])], dtype=np.int32)
    stacked = np.concatenate([c.vectors for c in chunks]) if chunks else np.zeros((0, dimension), np.float32)
    spans = np.asarray([span for c in chunks for span in c.spans], dtype=np.int64).reshape(-1, 2)
    tokens = pa.array([t for c in chunks for t in c.token_counts], type=pa.int32())
    columns[CHUNK_EMBEDDINGS_COLUMN] = pa.ListArray.from_arrays(counts, _fixed_size_lists(stacked, dimension))
    columns[CHUNK_SPANS_COLUMN] = pa.ListArray.from_arrays(counts, _fixed_size_lists(spans, 2, pa.int64()))
    columns[CHUNK_TOKENS_COLUMN] = pa.ListArray.from_arrays(counts, tokens)
    return columns


def _fixed_size_lists(matrix: np.ndarray, width: int, value_type: Any = None) -> Any:
    import pyarrow as pa

    value_type = value_type or pa.float32()
    flat = pa.array(np.ascontiguousarray(matrix).reshape(-1).astype(value_type.to_pandas_dtype()), type=value_type)
    return pa.FixedSizeListArray.from_arrays(flat, width)


def _batch_kind(batch: Any) -> str:
    module = type(batch).__module__
    if module.startswith("pyarrow"):
        return "pyarrow"
    if module.startswith("pandas"):
        return "pandas"
    if isinstance(batch, Mapping):
        return "numpy"
    raise TypeError(f"unsupported batch type {type(batch).__name__}: use batch_format 'pyarrow', 'pandas' or 'numpy'")


def _column_names(batch: Any) -> list[str]:
    kind = _batch_kind(batch)
    if kind == "pyarrow":
        return list(batch.column_names)
    return [str(name) for name in (batch.columns if kind == "pandas" else batch.keys())]


def _column(batch: Any, name: str) -> list[Any]:
    kind = _batch_kind(batch)
    if kind == "pyarrow":
        return list(batch.column(name).to_pylist())
    values = batch[name]
    return list(values.tolist())


# -- the one-liner -----------------------------------------------------------------------------------------------


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
    ray = _ray()
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

    Actors are sized from the connected cluster unless given (`default_concurrency`): one per GPU, or CPU
    actors of `torch_threads` threads; `concurrency` may be a number or a `(min, max)` autoscaling range.
    `id_column` only names rows in error messages (rows keep all their columns). A dead actor is restarted up
    to `max_restarts` times and its batch retried up to `max_task_retries` times (-1: without limit).
    `split_blocks` cuts blocks larger than `batch_size` rows first (streaming, no shuffle), so that one big file
    still feeds every actor and a retry redoes one batch. Other keywords go to `DiffEmbedEncoder.from_pretrained`
    in each actor; on a GPU actor `device="auto"` is its GPU. `max_actors` caps a pool sized automatically
    (a dataset of few batches need not load the model on every GPU). `embedder_class` may be a subclass of
    `DiffEmbedBatchEmbedder` (to post-process batches, say).
    """
    _ray()
    import ray.data

    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive number of rows, got {batch_size}")
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
    if not _is_default(instruction):
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


# -- Parquet in, Parquet out (`diffemb embed --ray`) -----------------------------------------------------------


def run_ray_embed(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    model: str | os.PathLike[str],
    address: str | None = None,
    role: str = "document",
    text_column: str = "text",
    id_column: str | None = None,
    *,
    instruction: Any = DEFAULT,
    output_column: str = EMBEDDING_COLUMN,
    concurrency: int | tuple[int, int] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    quiet: bool = False,
    ray_init_options: dict[str, Any] | None = None,
    **encoder_options: Any,
) -> dict[str, Any]:
    """Embed the `text_column` of a Parquet file or folder on Ray; write every input column plus the vectors.

    `address`: `None` (or `""`, `"local"`) starts a local Ray (or joins the one `$RAY_ADDRESS` names), `"auto"`
    joins the cluster that `ray start` runs on this machine, `"ray://head:10001"` or `"head:6379"` a remote one;
    an already initialised Ray is used as it is (and left running). An `output_path` ending in `.parquet` is one
    file, rows in input order, streamed to the driver and renamed into place when complete; anything else is a
    new folder (or `s3://...` prefix) that the workers write in parallel. On a cluster, paths must be reachable
    from every node (shared storage or object store URIs). The rows written are counted against the rows read,
    and with `id_column` every id is checked to come out once. Other keywords go to `embed_dataset`
    (`num_gpus`, `torch_threads`, ...) or to `DiffEmbedEncoder.from_pretrained`. Returns what was done: rows,
    dimension, seconds (all) and embed_seconds (the pipeline alone), rows per second, the cluster's CPUs and GPUs.
    """
    ray = _ray()
    started = time.perf_counter()
    source, target = _location(input_path), _location(output_path)
    single_file = target.lower().endswith(".parquet")
    _check_paths(source, target, single_file)

    owns_ray = not ray.is_initialized()
    if owns_ray:
        address = None if address in ("", "local") else address
        init = {"address": address, "include_dashboard": False, "log_to_driver": not quiet}
        init.update(ray_init_options or {})
        ray.init(**init)
    try:
        import ray.data

        columns, expected = _parquet_facts(source)
        for name in (text_column, id_column):
            if name is not None and name not in columns:
                raise KeyError(f"{source} has no column {name!r}; its columns are {columns}")
        resources = ray.cluster_resources()
        context = ray.data.DataContext.get_current()
        saved = (context.enable_progress_bars, context.execution_options.preserve_order)
        context.enable_progress_bars = not quiet
        context.execution_options.preserve_order = single_file  # one file: rows in input order
        try:
            with _footer_readers(source):
                ds = ray.data.read_parquet(source)  # the dataset keeps a copy of the context as it is now
        finally:
            context.enable_progress_bars, context.execution_options.preserve_order = saved
        embedding = time.perf_counter()
        embedded = embed_dataset(
            ds,
            model,
            text_column=text_column,
            output_column=output_column,
            role=role,
            instruction=instruction,
            id_column=id_column,
            concurrency=concurrency,
            batch_size=batch_size,
            max_actors=max(1, math.ceil(expected / batch_size)),
            **encoder_options,
        )
        if single_file:
            written, dimension = _write_one_file(embedded, Path(target), id_column, output_column)
        else:
            embedded.write_parquet(target)
            written, dimension = _parquet_facts(target)[1], None
        embed_seconds = time.perf_counter() - embedding
        if written != expected:
            raise RuntimeError(f"{expected} rows were read from {source} but {written} were written to {target}")
    finally:
        if owns_ray:
            ray.shutdown()
    return {
        "input": source,
        "output": target,
        "rows": written,
        "dimension": dimension,
        "seconds": round(time.perf_counter() - started, 2),
        "embed_seconds": round(embed_seconds, 2),
        "rows_per_second": round(written / embed_seconds, 1) if embed_seconds > 0 else math.inf,
        "cluster": {k: v for k, v in resources.items() if k in ("CPU", "GPU")},
    }


def _location(path: str | os.PathLike[str]) -> str:
    text = os.fspath(path)
    # pathlib turns "s3://bucket/key" into "s3:/bucket/key"; a URI that went through a Path gets its "//" back.
    text = re.sub(r"^([a-z][a-z0-9+.-]+):/(?!/)", r"\1://", text)
    return text if _is_uri(text) else str(Path(text).expanduser().resolve())


def _is_uri(location: str) -> bool:
    return "://" in location


def _check_paths(source: str, target: str, single_file: bool) -> None:
    """Problems with the paths, found before Ray starts."""
    if source == target:
        raise ValueError(f"the output {target} is the input: pick another output")
    if not _is_uri(source) and not Path(source).exists():
        raise FileNotFoundError(f"cannot read {source}: no such file or folder")
    if _is_uri(target):
        if single_file:
            raise ValueError(
                f"the output {target} is one .parquet file on remote storage: give a folder or prefix instead "
                "(the workers write it in parallel), or a local .parquet file"
            )
        return
    out = Path(target)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"cannot write {target}: folder {out.parent} does not exist")
    if single_file and out.is_dir():
        raise IsADirectoryError(f"the output {target} is a folder: give a file name, or a folder without .parquet")
    if not single_file and (out.is_file() or (out.is_dir() and any(out.iterdir()))):
        raise FileExistsError(f"the output folder {target} exists and is not empty: remove it or pick another")


def _parquet_facts(location: str) -> tuple[list[str], int]:
    """Column names and row count of a Parquet file or folder, from the footers only."""
    if _is_uri(location):
        import ray.data

        ds = ray.data.read_parquet(location)
        return list(ds.schema().names), int(ds.count())
    import pyarrow.dataset

    dataset = pyarrow.dataset.dataset(location, format="parquet")
    return list(dataset.schema.names), int(dataset.count_rows())


@contextlib.contextmanager
def _footer_readers(source: str) -> Iterator[None]:
    """Ray 2.60 starts 32 footer-reading actors (32 processes) per Parquet read, sized for object stores; a local
    file or folder gets one per 16 files instead, unless `RAY_DATA_PARQUET_FOOTER_NUM_ACTORS` says otherwise."""
    name = "RAY_DATA_PARQUET_FOOTER_NUM_ACTORS"
    if _is_uri(source) or name in os.environ:
        yield
        return
    files = 1 if Path(source).is_file() else sum(1 for _ in Path(source).rglob("*.parquet"))
    os.environ[name] = str(min(32, max(1, files // 16)))
    try:
        yield
    finally:
        os.environ.pop(name, None)


def _write_one_file(ds: Any, target: Path, id_column: str | None, output_column: str) -> tuple[int, int | None]:
    """Stream the dataset's batches into one Parquet file on the driver (temp file, renamed when complete)."""
    import tempfile

    import pyarrow.parquet as pq

    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(handle)
    temp = Path(name)
    rows = 0
    dimension = None
    seen: set[Any] = set()
    writer = None
    try:
        for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            if batch.num_rows == 0:
                continue
            if writer is None:
                writer = pq.ParquetWriter(temp, batch.schema)
                dimension = batch.schema.field(output_column).type.list_size
            writer.write_table(batch)
            rows += batch.num_rows
            if id_column is not None:
                for key in batch.column(id_column).to_pylist():
                    if key in seen:
                        raise RuntimeError(
                            f"{id_column}={key!r} is on two output rows: make the ids of the input unique"
                        )
                    seen.add(key)
        if writer is None:
            raise ValueError("the input has no rows")
        writer.close()
        writer = None
        umask = os.umask(0)
        os.umask(umask)
        temp.chmod(0o666 & ~umask)
        os.replace(temp, target)
    finally:
        if writer is not None:
            writer.close()
        temp.unlink(missing_ok=True)
    return rows, dimension
