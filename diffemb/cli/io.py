"""Files for the `diffemb` command line: reading texts, writing vectors atomically.

Nothing here imports torch, so every input problem is found (and reported in one line) before a model loads.
Problems are raised as `CliError` with a message that names the file, the line and the fix.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from diffemb.extras import require
from diffemb.inputs import check_text, retell_text_error

INPUT_SUFFIXES = (".txt", ".jsonl", ".parquet")
OUTPUT_SUFFIXES = (".npy", ".jsonl", ".parquet")
EMBEDDING_FIELD = "embedding"


class CliError(Exception):
    """A problem the user can fix; the command line prints it as one line, without a traceback."""


def name_text_error(error: ValueError, where: Callable[[int], str] | str) -> Exception:
    """The encoder's "texts[i] ..." error with `texts[i]` replaced by where the text came from (`where(i)` or
    `where`, e.g. "line 7 of in.txt") as a one-line CliError; any other ValueError as it is."""
    retold = retell_text_error(error, where if callable(where) else lambda _index: where)
    return error if retold is error else CliError(str(retold))


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
    if path.is_dir():
        raise CliError(
            f"{path} is a folder: give one .txt, .jsonl or .parquet file (`diffemb search --docs` reads folders)"
        )
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
        try:
            check_text(text, i)  # empty, invisible-only or not valid Unicode: named before any model loads
        except ValueError as err:
            raise name_text_error(err, lambda index: f"{records.label(index)} of {path}") from err
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
        require("pyarrow.parquet", "cli", "reading or writing .parquet")  # callers use it as pa.parquet
        return require("pyarrow", "cli", "reading or writing .parquet")
    except ImportError as err:
        raise CliError(str(err)) from err


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
    """`.npy`: the (n, dimension) matrix; `.jsonl`/`.parquet`: every input field plus `embedding`. Vectors keep
    their dtype (float32, or a compact `precision`: float16, int8/uint8 codes, packed bits)."""
    suffix = _suffix(output)
    try:
        with atomic_path(output) as temp:
            if suffix == ".npy":
                with temp.open("wb") as handle:
                    np.save(handle, vectors)
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
    flat = pa.array(vectors.reshape(-1))  # the column type follows the vectors' dtype
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


WINDOW_FIELDS = ("document_id", "window_index", "start", "end", "token_count")
"""`embed --chunks`: the columns of each window row, before `embedding` (`start`/`end`: its characters)."""


def document_ids(records: Records, id_field: str | None) -> list[Any]:
    """Per text, its id for `embed --chunks`: the `id_field` of its record, or its 0-based position."""
    if id_field is None:
        return list(range(len(records.texts)))
    if records.rows is None and records.table is None:
        raise CliError(f"--id-field does not apply to {records.path}: a .txt file has no fields (ids are line numbers)")
    if records.rows is not None:
        ids = [row.get(id_field) for row in records.rows]
    else:
        if id_field not in records.table.column_names:
            raise CliError(_missing_field(records.path, "it", id_field, records.table.column_names))
        ids = records.table.column(id_field).to_pylist()
    for i, value in enumerate(ids):
        if value is None:
            raise CliError(f"{records.label(i)} of {records.path} has no {id_field!r} value: every text needs an id")
    seen: dict[Any, int] = {}
    for i, value in enumerate(ids):
        if value in seen:
            raise CliError(
                f"{records.label(i)} of {records.path} repeats the id {value!r} of {records.label(seen[value])}: "
                f"ids in {id_field!r} must be unique"
            )
        seen[value] = i
    return ids


def check_window_output(output: Path, source: Path) -> str:
    """`check_output` for `embed --chunks`, which writes rows of several fields: `.jsonl` or `.parquet` only."""
    suffix = check_output(output, source)
    if suffix == ".npy":
        raise CliError(f"cannot write window vectors to {output}: .npy holds one vector per text; use .jsonl/.parquet")
    return suffix


def write_window_vectors(output: Path, ids: list[Any], chunks: list[Any]) -> int:
    """`embed --chunks`: one row per window (`WINDOW_FIELDS` + `embedding`) in `.jsonl` or `.parquet` (checked by
    `check_window_output`); returns how many rows. `chunks` are the core's `DocumentChunks`, one per id."""
    suffix = _suffix(output)
    columns: dict[str, list[Any]] = {name: [] for name in WINDOW_FIELDS}
    for document_id, doc_chunks in zip(ids, chunks, strict=True):
        for index, ((start, end), tokens) in enumerate(zip(doc_chunks.spans, doc_chunks.token_counts, strict=True)):
            for name, value in zip(WINDOW_FIELDS, (document_id, index, start, end, tokens), strict=True):
                columns[name].append(value)
    vectors = np.concatenate([c.vectors for c in chunks])  # float32, or the dtype of a compact precision
    try:
        with atomic_path(output) as temp:
            if suffix == ".jsonl":
                with temp.open("w", encoding="utf-8") as handle:
                    for i, vector in enumerate(vectors):
                        row = {name: columns[name][i] for name in WINDOW_FIELDS}
                        handle.write(json.dumps({**row, EMBEDDING_FIELD: vector.tolist()}, default=str) + "\n")
            else:
                pa = _pyarrow()
                flat = pa.array(vectors.reshape(-1))
                table = pa.table(columns).append_column(
                    EMBEDDING_FIELD, pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])
                )
                pa.parquet.write_table(table, temp)
    except OSError as err:
        raise CliError(f"cannot write {output}: {err.strerror or err}") from err
    return len(vectors)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
