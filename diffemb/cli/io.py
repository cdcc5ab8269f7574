"""Files for the `diffemb` command line: reading texts, writing vectors atomically, the search cache.

Nothing here imports torch, so every input problem is found (and reported in one line) before a model loads.
Problems are raised as `CliError` with a message that names the file, the line and the fix.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

INPUT_SUFFIXES = (".txt", ".jsonl", ".parquet")
OUTPUT_SUFFIXES = (".npy", ".jsonl", ".parquet")
DOCUMENT_SUFFIXES = (".txt", ".md")
CACHE_FOLDER = ".diffemb-cache"
EMBEDDING_FIELD = "embedding"


class CliError(Exception):
    """A problem the user can fix; the command line prints it as one line, without a traceback."""


@dataclass
class Records:
    """The texts of one input file, with what is needed to write them back out with their vectors."""

    path: Path
    texts: list[str]
    unit: str  # "line" or "row": how a message names one text
    rows: list[dict[str, Any]] | None = None  # .jsonl: every record, all fields
    table: Any = None  # .parquet: the pyarrow table as read
    digest: str = field(default="")  # sha256 of the file's bytes

    def label(self, index: int) -> str:
        return f"{self.unit} {index + 1}"


def _suffix(path: Path) -> str:
    return path.suffix.lower()


def _read_bytes(path: Path) -> bytes:
    if path.is_dir():
        raise CliError(f"{path} is a folder, not a file")
    try:
        return path.read_bytes()
    except OSError as err:
        raise CliError(f"cannot read {path}: {err.strerror or err}") from err


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise CliError(f"{path} is not UTF-8 text (bad byte at offset {err.start})") from err


def _lines(path: Path, data: bytes) -> list[str]:
    text = _decode(path, data)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line does not start another one
    return [line.removesuffix("\r") for line in lines]


def read_records(path: Path, text_field: str = "text") -> Records:
    """Texts of a `.txt` (one per line), `.jsonl` (the `text_field` of each record) or `.parquet` file."""
    suffix = _suffix(path)
    if suffix not in INPUT_SUFFIXES:
        raise CliError(f"cannot read {path}: unknown extension {suffix or '(none)'!r}; use {', '.join(INPUT_SUFFIXES)}")
    data = _read_bytes(path)
    if not data.strip():
        raise CliError(f"{path} is empty: it has no texts to embed")
    digest = hashlib.sha256(data).hexdigest()
    if suffix == ".txt":
        texts = _lines(path, data)
        records = Records(path, texts, "line", digest=digest)
    elif suffix == ".jsonl":
        rows = [_json_record(path, i, line) for i, line in enumerate(_lines(path, data))]
        texts = [_field(path, f"line {i + 1}", row, text_field) for i, row in enumerate(rows)]
        records = Records(path, texts, "line", rows=rows, digest=digest)
    else:
        table = _read_parquet(path)
        if text_field not in table.column_names:
            raise CliError(_missing_field(path, "it", text_field, table.column_names))
        texts = table.column(text_field).to_pylist()
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                kind = "null" if text is None else type(text).__name__
                raise CliError(f"row {i + 1} of {path}: field {text_field!r} is {kind}, not text")
        records = Records(path, texts, "row", table=table, digest=digest)
    for i, text in enumerate(records.texts):
        if not text.strip():
            raise CliError(f"{records.label(i)} of {path} is empty: remove it or give it text")
    if not records.texts:
        raise CliError(f"{path} is empty: it has no texts to embed")
    return records


def _json_record(path: Path, index: int, line: str) -> dict[str, Any]:
    if not line.strip():
        raise CliError(f"line {index + 1} of {path} is empty: remove it or give it a JSON record")
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise CliError(f"line {index + 1} of {path} is not valid JSON: {err.msg} (column {err.colno})") from err
    if not isinstance(row, dict):
        raise CliError(f"line {index + 1} of {path} is a JSON {type(row).__name__}, not an object with a text field")
    return row


def _field(path: Path, where: str, row: dict[str, Any], name: str) -> str:
    if name not in row:
        raise CliError(_missing_field(path, where, name, list(row)))
    value = row[name]
    if not isinstance(value, str):
        kind = "null" if value is None else type(value).__name__
        raise CliError(f"{where} of {path}: field {name!r} is {kind}, not text")
    return value


def _missing_field(path: Path, where: str, name: str, fields: list[str]) -> str:
    have = ", ".join(repr(f) for f in fields[:8]) or "none"
    return f"{where} of {path} has no {name!r} field (its fields: {have}); pick one with --text-field"


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as err:
        raise CliError('reading or writing .parquet needs pyarrow: pip install "diffemb[cli]"') from err
    return pyarrow


def _read_parquet(path: Path) -> Any:
    pa = _pyarrow()
    try:
        return pa.parquet.read_table(path)
    except (OSError, pa.ArrowException) as err:
        raise CliError(f"cannot read {path} as parquet: {_one_line(err)}") from err


def check_output(output: Path, source: Path) -> str:
    """The output format from the extension; checked before any model loads."""
    suffix = _suffix(output)
    if suffix not in OUTPUT_SUFFIXES:
        raise CliError(
            f"cannot write {output}: unknown extension {suffix or '(none)'!r}; use {', '.join(OUTPUT_SUFFIXES)}"
        )
    if output.resolve() == source.resolve():
        raise CliError(f"the output {output} is the input file: pick another --output")
    if output.is_dir():
        raise CliError(f"the output {output} is a folder: give a file name ending in {', '.join(OUTPUT_SUFFIXES)}")
    if not output.parent.is_dir():
        raise CliError(f"cannot write {output}: folder {output.parent} does not exist")
    if suffix == ".parquet":
        _pyarrow()
    return suffix


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """A temp file beside `final`, renamed onto it only if the block succeeds; removed otherwise."""
    handle, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent)
    os.close(handle)
    temp = Path(name)
    try:
        yield temp
        umask = os.umask(0)
        os.umask(umask)
        temp.chmod(0o666 & ~umask)  # mkstemp makes the file owner-only; a normal file follows the umask
        os.replace(temp, final)
    finally:
        temp.unlink(missing_ok=True)


def write_vectors(output: Path, vectors: np.ndarray, records: Records, text_field: str) -> None:
    """`.npy`: the (n, dimension) float32 matrix; `.jsonl`/`.parquet`: every input field plus `embedding`."""
    suffix = _suffix(output)
    try:
        with atomic_path(output) as temp:
            if suffix == ".npy":
                with temp.open("wb") as handle:
                    np.save(handle, vectors.astype(np.float32, copy=False))
            elif suffix == ".jsonl":
                _write_jsonl(temp, vectors, records, text_field)
            else:
                _write_parquet(temp, vectors, records, text_field)
    except OSError as err:
        raise CliError(f"cannot write {output}: {err.strerror or err}") from err


def _rows(records: Records, text_field: str) -> list[dict[str, Any]]:
    if records.rows is not None:
        return records.rows
    if records.table is not None:
        return list(records.table.to_pylist())
    return [{text_field: text} for text in records.texts]


def _write_jsonl(path: Path, vectors: np.ndarray, records: Records, text_field: str) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row, vector in zip(_rows(records, text_field), vectors, strict=True):
            out = {**row, EMBEDDING_FIELD: vector.tolist()}
            handle.write(json.dumps(out, ensure_ascii=False, default=str) + "\n")


def _write_parquet(path: Path, vectors: np.ndarray, records: Records, text_field: str) -> None:
    pa = _pyarrow()
    dimension = vectors.shape[1]
    flat = pa.array(vectors.astype(np.float32, copy=False).reshape(-1), type=pa.float32())
    column = pa.FixedSizeListArray.from_arrays(flat, dimension)
    try:
        if records.table is not None:
            table = records.table
        elif records.rows is not None:
            table = pa.Table.from_pylist(records.rows)
        else:
            table = pa.table({text_field: records.texts})
    except pa.ArrowException as err:
        raise CliError(f"the records of {records.path} do not fit one parquet table: {_one_line(err)}") from err
    if EMBEDDING_FIELD in table.column_names:
        table = table.drop_columns([EMBEDDING_FIELD])
    pa.parquet.write_table(table.append_column(EMBEDDING_FIELD, column), path)


# -- search: documents and their cached chunk vectors ----------------------------------------------------------


@dataclass
class Documents:
    """The documents of a search: labels, texts, and where and under which content key their vectors cache."""

    labels: list[str]
    texts: list[str]
    cache_folder: Path
    cache_stem: str  # the source's name in the cache file name ("" for a folder's own cache)
    digest: str  # sha256 over every document's bytes and name, and how texts were taken from them


def read_documents(source: Path, text_field: str = "text") -> Documents:
    """The .txt/.md files of a folder (one document each, sorted by path), or the texts of one file."""
    if not source.exists():
        raise CliError(f"cannot read {source}: no such file or folder")
    if source.is_dir():
        return _folder_documents(source)
    records = read_records(source, text_field)
    labels = [records.label(i) for i in range(len(records.texts))]
    if records.rows is not None and all(isinstance(r.get("id"), (str, int)) for r in records.rows):
        labels = [str(r["id"]) for r in records.rows]
    digest = hashlib.sha256(f"{records.digest}\0{text_field}".encode()).hexdigest()
    return Documents(labels, records.texts, source.parent / CACHE_FOLDER, f"{source.name}.", digest)


def _folder_documents(folder: Path) -> Documents:
    files = sorted(
        path
        for path in folder.rglob("*")
        if path.suffix.lower() in DOCUMENT_SUFFIXES
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )
    if not files:
        raise CliError(f"{folder} has no .txt or .md files to search")
    digest = hashlib.sha256()
    labels, texts = [], []
    for path in files:
        data = _read_bytes(path)
        text = _decode(path, data)
        if not text.strip():
            raise CliError(f"{path} is empty: remove it or give it text")
        label = path.relative_to(folder).as_posix()
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)
        labels.append(label)
        texts.append(text)
    return Documents(labels, texts, folder / CACHE_FOLDER, "", digest.hexdigest())


@dataclass
class ChunkIndex:
    """Every document's chunk vectors in one matrix: document i owns rows `offsets[i]:offsets[i + 1]`."""

    vectors: np.ndarray  # (chunks, dimension) float32
    spans: np.ndarray  # (chunks, 2) int64 character spans in the document's text
    offsets: np.ndarray  # (documents + 1,) int64

    @classmethod
    def from_chunks(cls, chunks: list[Any]) -> ChunkIndex:
        counts = [len(c.spans) for c in chunks]
        return cls(
            np.concatenate([c.vectors for c in chunks]).astype(np.float32),
            np.asarray([span for c in chunks for span in c.spans], dtype=np.int64).reshape(-1, 2),
            np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        )

    def scores(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per document, the best chunk's score (max-sim) and that chunk's row."""
        chunk_scores = self.vectors @ query.astype(np.float32)
        starts = self.offsets[:-1]
        best = np.maximum.reduceat(chunk_scores, starts)
        rows = np.array([s + int(np.argmax(chunk_scores[s:e])) for s, e in zip(starts, self.offsets[1:], strict=True)])
        return best, rows


def cache_file(documents: Documents, fingerprint: str) -> Path:
    return documents.cache_folder / f"{documents.cache_stem}{fingerprint}-{documents.digest[:16]}.npz"


def load_cache(path: Path, n_documents: int) -> ChunkIndex | None:
    """The cached index, or None when there is none or it does not fit (a broken file is rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            index = ChunkIndex(data["vectors"], data["spans"], data["offsets"])
    except (OSError, ValueError, KeyError):
        return None
    if len(index.offsets) != n_documents + 1 or int(index.offsets[-1]) != len(index.vectors):
        return None
    return index


def save_cache(path: Path, index: ChunkIndex) -> str | None:
    """Write the index atomically and drop older caches of the same source; a warning text if it failed."""
    try:
        path.parent.mkdir(exist_ok=True)
        with atomic_path(path) as temp, temp.open("wb") as handle:
            np.savez(handle, vectors=index.vectors, spans=index.spans, offsets=index.offsets)
        prefix = path.name[: path.name.rindex("-") + 1]  # same source, same encoder, older contents
        for old in path.parent.glob(f"{glob_escape(prefix)}*.npz"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError as err:
        return f"could not cache vectors in {path.parent}: {err.strerror or err}"
    return None


def glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in text)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
