"""Parquet in and out for `run_ray_embed`: paths checked before Ray starts, outputs that appear complete or not
at all, and the check that every document comes out exactly once."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from diffemb.ray.embedder import DOCUMENT_ID, WINDOW_INDEX


def location(path: str | os.PathLike[str]) -> str:
    """A local path made absolute, or a URI (`s3://...`) kept as it is."""
    text = os.fspath(path)
    # pathlib turns "s3://bucket/key" into "s3:/bucket/key"; a URI that went through a Path gets its "//" back.
    text = re.sub(r"^([a-z][a-z0-9+.-]+):/(?!/)", r"\1://", text)
    return text if is_uri(text) else str(Path(text).expanduser().resolve())


def is_uri(place: str) -> bool:
    return "://" in place


def check_paths(source: str, target: str, single_file: bool) -> None:
    """Problems with the paths, found before Ray starts."""
    if source == target:
        raise ValueError(f"the output {target} is the input: pick another output")
    if not is_uri(source) and not Path(source).exists():
        raise FileNotFoundError(f"cannot read {source}: no such file or folder")
    if is_uri(target):
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


def parquet_facts(place: str) -> tuple[list[str], int]:
    """Column names and row count of a Parquet file or folder, from the footers only."""
    if is_uri(place):
        import ray.data

        ds = ray.data.read_parquet(place)
        return list(ds.schema().names), int(ds.count())
    import pyarrow.dataset

    if Path(place).is_dir() and not any(Path(place).rglob("*.parquet")):
        raise ValueError(f"{place} has no .parquet files: nothing to embed")
    dataset = pyarrow.dataset.dataset(place, format="parquet")
    return list(dataset.schema.names), int(dataset.count_rows())


def column_batches(place: str, columns: list[str]) -> Iterator[Any]:
    """Some columns of a Parquet file or folder as pyarrow record batches, streamed."""
    if is_uri(place):
        import ray.data

        yield from ray.data.read_parquet(place, columns=columns).iter_batches(batch_format="pyarrow")
        return
    import pyarrow.dataset

    yield from pyarrow.dataset.dataset(place, format="parquet").to_batches(columns=columns)


@contextlib.contextmanager
def footer_readers(source: str) -> Iterator[None]:
    """Ray 2.60 starts 32 footer-reading actors (32 processes) per Parquet read, sized for object stores; a local
    file or folder gets one per 16 files instead, unless `RAY_DATA_PARQUET_FOOTER_NUM_ACTORS` says otherwise."""
    name = "RAY_DATA_PARQUET_FOOTER_NUM_ACTORS"
    if is_uri(source) or name in os.environ:
        yield
        return
    files = 1 if Path(source).is_file() else sum(1 for _ in Path(source).rglob("*.parquet"))
    os.environ[name] = str(min(32, max(1, files // 16)))
    try:
        yield
    finally:
        os.environ.pop(name, None)


class DocumentCounter:
    """Counts output rows and checks that each document comes out once (with window rows: each window once)."""

    def __init__(self, id_column: str | None, windows: bool) -> None:
        self.id_column = DOCUMENT_ID if windows else id_column
        self.windows = windows
        self.rows = 0
        self.seen: set[Any] = set()

    @property
    def columns(self) -> list[str]:
        if self.id_column is None:
            return []
        return [DOCUMENT_ID, WINDOW_INDEX] if self.windows else [self.id_column]

    def add(self, batch: Any) -> None:
        self.rows += batch.num_rows
        if self.id_column is None:
            return
        ids = batch.column(self.id_column).to_pylist()
        keys: Iterable[Any] = zip(ids, batch.column(WINDOW_INDEX).to_pylist(), strict=True) if self.windows else ids
        for key in keys:
            if key in self.seen:
                name = self.id_column
                what = f"window {key[1]} of {name}={key[0]!r}" if self.windows else f"{name}={key!r}"
                raise ValueError(f"{what} is on two output rows: make the ids of the input unique")
            self.seen.add(key)

    def documents(self) -> int:
        """How many documents came out: distinct ids for window rows, else rows."""
        if self.windows and self.id_column is not None:
            return len({key[0] for key in self.seen})
        return self.rows


def write_one_file(ds: Any, target: Path, counter: DocumentCounter, output_column: str) -> int | None:
    """Stream the dataset's batches into one Parquet file on the driver (temp file, renamed when complete);
    returns the vectors' width."""
    import pyarrow.parquet as pq

    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(handle)
    temp = Path(name)
    width = None
    writer = None
    try:
        for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            if batch.num_rows == 0:
                continue
            if writer is None:
                writer = pq.ParquetWriter(temp, batch.schema)
                width = batch.schema.field(output_column).type.list_size
            counter.add(batch)
            writer.write_table(batch)
        if writer is None:
            raise ValueError("the input has no rows")
        writer.close()
        writer = None
        _readable_like_a_new_file(temp)
        os.replace(temp, target)
    finally:
        if writer is not None:
            writer.close()
        temp.unlink(missing_ok=True)
    return width


def write_folder(ds: Any, target: str, counter: DocumentCounter) -> None:
    """Let the workers write the folder in parallel. A local folder is written beside the target under a hidden
    name and moved into place only when complete and checked, so a failed job leaves nothing behind and can
    simply be run again; an object-store prefix (which has no rename) is written in place."""
    if is_uri(target):
        ds.write_parquet(target)
        _count_written(target, counter)
        return
    final = Path(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        ds.write_parquet(str(staging))
        _count_written(str(staging), counter)
        _readable_like_a_new_file(staging, folder=True)
        if final.is_dir():
            final.rmdir()  # empty (checked before the job started): os.replace cannot replace a folder
        os.replace(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _count_written(place: str, counter: DocumentCounter) -> None:
    if counter.id_column is None:
        counter.rows = parquet_facts(place)[1]
        return
    for batch in column_batches(place, counter.columns):
        counter.add(batch)


def _readable_like_a_new_file(path: Path, folder: bool = False) -> None:
    """mkstemp/mkdtemp create owner-only entries; give them the permissions the user's umask gives new ones."""
    umask = os.umask(0)
    os.umask(umask)
    path.chmod((0o777 if folder else 0o666) & ~umask)
