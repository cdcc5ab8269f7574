"""`run_ray_embed`: the Parquet-in, Parquet-out job behind `diffemb embed --ray`."""

from __future__ import annotations

import ast
import builtins
import contextlib
import gc
import logging
import math
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from diffemb.encoder import DEFAULT
from diffemb.ray.dataset import DEFAULT_BATCH_SIZE, embed_dataset, require_ray
from diffemb.ray.embedder import EMBEDDING_COLUMN
from diffemb.ray.parquet import (
    DocumentCounter,
    check_paths,
    footer_readers,
    is_uri,
    location,
    parquet_facts,
    write_folder,
    write_one_file,
)

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_FAILURE_LOGGERS = ("ray.data.exceptions", "ray.data._internal.execution.streaming_executor_state")
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception)): (.+)$")


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
    chunks: bool = False,
    concurrency: int | tuple[int, int] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    quiet: bool = False,
    ray_init_options: dict[str, Any] | None = None,
    **encoder_options: Any,
) -> dict[str, Any]:
    """Embed the `text_column` of a Parquet file or folder on Ray; write every input column plus the vectors
    (with `chunks=True`: one row per window of each document, see `embed_dataset`; needs `id_column`).

    `address`: `None` (or `""`, `"local"`) starts a local Ray (or joins the one `$RAY_ADDRESS` names), `"auto"`
    joins the cluster that `ray start` runs on this machine, `"ray://head:10001"` or `"head:6379"` a remote one;
    an already initialised Ray is used as it is (and left running). An `output_path` ending in `.parquet` is one
    file, rows in input order, streamed to the driver and renamed into place when complete; anything else is a
    new folder (or `s3://...` prefix) that the workers write in parallel. A local folder is written under a
    hidden name beside it and moved into place when complete, so a failed job (a bad row, say) leaves nothing
    behind. On a cluster, paths must be reachable from every node (shared storage or object store URIs). The
    documents written are counted against the rows read, and with `id_column` every id is checked to come out
    once (every window once). A bad row fails the job with one plain error naming it (by its `id_column` value
    when given). Other keywords go to `embed_dataset` (`num_gpus`, `torch_threads`, ...) or to
    `DiffEmbedEncoder.from_pretrained`. Returns what was done: rows, documents, dimension, seconds (all) and
    embed_seconds (the pipeline alone), rows per second, the cluster's CPUs and GPUs.
    """
    ray = require_ray()
    started = time.perf_counter()
    source, target = location(input_path), location(output_path)
    single_file = target.lower().endswith(".parquet")
    check_paths(source, target, single_file)

    # A local input's problems are found before Ray starts; a URI's need Ray's file systems.
    facts = None if is_uri(source) else _input_facts(source, text_column, id_column)
    owns_ray = not ray.is_initialized()
    if owns_ray:
        address = None if address in ("", "local") else address
        init = {"address": address, "include_dashboard": False, "log_to_driver": not quiet}
        init.update(ray_init_options or {})
        ray.init(**init)
    try:
        import ray.data

        expected = facts or _input_facts(source, text_column, id_column)
        resources = ray.cluster_resources()
        context = ray.data.DataContext.get_current()
        saved = (context.enable_progress_bars, context.execution_options.preserve_order)
        context.enable_progress_bars = not quiet
        context.execution_options.preserve_order = single_file  # one file: rows in input order
        try:
            with footer_readers(source):
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
            chunks=chunks,
            concurrency=concurrency,
            batch_size=batch_size,
            max_actors=max(1, math.ceil(expected / batch_size)),
            **encoder_options,
        )
        counter = DocumentCounter(id_column, windows=chunks)
        failure: BaseException | None = None
        try:
            with _failure_logs_silenced():
                if single_file:
                    dimension = write_one_file(embedded, Path(target), counter, output_column)
                else:
                    write_folder(embedded, target, counter)
                    dimension = None
        except Exception as error:
            failure = plain_error(error)
        if failure is not None:
            # The failed pipeline's actors live until the last reference to it is gone, and hold their CPUs: a
            # next job on the same Ray would wait for them forever. Raised outside the `except`, without the
            # traceback (which holds the pipeline's frames), after the cycles that reach it are collected.
            del ds, embedded
            gc.collect()
            failure.__cause__ = failure.__context__ = None
            raise failure.with_traceback(None)
        embed_seconds = time.perf_counter() - embedding
        documents = counter.documents()
        if documents != expected:
            raise RuntimeError(f"{expected} rows were read from {source} but {documents} came out in {target}")
    finally:
        if owns_ray:
            ray.shutdown()
    return {
        "input": source,
        "output": target,
        "rows": counter.rows,
        "documents": documents,
        "dimension": dimension,
        "seconds": round(time.perf_counter() - started, 2),
        "embed_seconds": round(embed_seconds, 2),
        "rows_per_second": round(counter.rows / embed_seconds, 1) if embed_seconds > 0 else math.inf,
        "cluster": {k: v for k, v in resources.items() if k in ("CPU", "GPU")},
    }


def _input_facts(source: str, text_column: str, id_column: str | None) -> int:
    """How many rows the input has, after checking it has some and has the columns asked for."""
    columns, rows = parquet_facts(source)
    for name in (text_column, id_column):
        if name is not None and name not in columns:
            raise KeyError(f"{source} has no column {name!r}; its columns are {columns}")
    if rows == 0:
        raise ValueError(f"{source} has no rows: nothing to embed")
    return rows


@contextlib.contextmanager
def _failure_logs_silenced() -> Iterator[None]:
    """Ray Data logs a failed batch twice at ERROR level before raising it; the job raises it as one plain error
    (`plain_error`), so those two log lines only repeat it (they stay in Ray's own log files)."""
    loggers = [logging.getLogger(name) for name in _FAILURE_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def plain_error(error: BaseException) -> BaseException:
    """The error a user can act on, out of Ray's wrappers.

    A failure in the batch code reaches the driver as a Ray error whose message is the remote traceback (with
    terminal colour codes) and whose cause is Ray Data's "UDF failed" wrapper; the original exception object
    does not travel. This returns a new exception of the original type (a builtin one; else a RuntimeError)
    with just its message, or `error` itself when it did not come from Ray.
    """
    from ray.exceptions import RayError

    if not isinstance(error, RayError):
        return error
    text = _ANSI.sub("", str(error))
    for line in text.splitlines():  # the root cause comes first in a chained traceback
        found = _EXCEPTION_LINE.match(line)
        if found is None or found.group(1).startswith("ray."):
            continue
        name, message = found.groups()
        kind = getattr(builtins, name, None)
        if isinstance(kind, type) and issubclass(kind, Exception):
            if kind is KeyError:
                with contextlib.suppress(ValueError, SyntaxError):
                    message = str(ast.literal_eval(message))  # KeyError shows its message quoted
            return kind(message)
        return RuntimeError(f"{name}: {message}")
    return RuntimeError(" ".join(text.split()))
