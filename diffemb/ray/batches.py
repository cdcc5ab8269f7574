"""The three batch formats Ray Data hands to `map_batches` (pyarrow Tables, pandas DataFrames, dicts of numpy
arrays): read a column, pick rows, add columns, always giving back the kind that came in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def batch_kind(batch: Any) -> str:
    module = type(batch).__module__
    if module.startswith("pyarrow"):
        return "pyarrow"
    if module.startswith("pandas"):
        return "pandas"
    if isinstance(batch, Mapping):
        return "numpy"
    raise TypeError(f"unsupported batch type {type(batch).__name__}: use batch_format 'pyarrow', 'pandas' or 'numpy'")


def column_names(batch: Any) -> list[str]:
    kind = batch_kind(batch)
    if kind == "pyarrow":
        return list(batch.column_names)
    return [str(name) for name in (batch.columns if kind == "pandas" else batch.keys())]


def column_values(batch: Any, name: str) -> list[Any]:
    """A column as Python values (a null is None)."""
    if batch_kind(batch) == "pyarrow":
        return list(batch.column(name).to_pylist())
    return list(batch[name].tolist())


def num_rows(batch: Any) -> int:
    kind = batch_kind(batch)
    if kind == "pyarrow":
        return int(batch.num_rows)
    if kind == "pandas":
        return len(batch)
    return len(next(iter(batch.values()))) if batch else 0


def column_at(batch: Any, name: str, rows: Sequence[int]) -> Any:
    """The values of column `name` at `rows` (repeats allowed), keeping the batch's own type for them."""
    kind = batch_kind(batch)
    indices = np.asarray(rows, dtype=np.int64)
    if kind == "pyarrow":
        return batch.column(name).take(indices)
    if kind == "pandas":
        return batch[name].iloc[indices].to_numpy()
    return np.asarray(batch[name])[indices]


def new_batch(like: Any, values: dict[str, Any]) -> Any:
    """A batch of the same kind as `like` with just these columns (a 2-D matrix: a fixed-size list column)."""
    kind = batch_kind(like)
    if kind == "pyarrow":
        import pyarrow as pa

        return pa.table({name: fixed_size_lists(v) if _is_matrix(v) else v for name, v in values.items()})
    if kind == "pandas":
        import pandas as pd

        return pd.DataFrame({name: list(v) if _is_matrix(v) else v for name, v in values.items()})
    return dict(values)


def with_columns(batch: Any, values: dict[str, np.ndarray]) -> Any:
    """The batch with `values` added (or replaced): each a 1-D array of scalars or a 2-D matrix, one row per row
    of the batch. A matrix becomes a fixed-size list column in Arrow (the Parquet layout `diffemb embed` writes)."""
    kind = batch_kind(batch)
    if kind == "pyarrow":
        table = batch
        for name, array in values.items():
            column = fixed_size_lists(array) if _is_matrix(array) else _scalar_array(array)
            if name in table.column_names:
                table = table.set_column(table.column_names.index(name), name, column)
            else:
                table = table.append_column(name, column)
        return table
    if kind == "pandas":
        frame = batch.copy(deep=False)
        for name, array in values.items():
            frame[name] = list(array) if _is_matrix(array) else array
        return frame
    out = dict(batch)
    out.update(values)
    return out


def fixed_size_lists(matrix: np.ndarray) -> Any:
    """A (rows, width) matrix as an Arrow fixed-size list array of its own dtype (float32, float16, int8, uint8)."""
    import pyarrow as pa

    width = matrix.shape[1]
    flat = pa.array(np.ascontiguousarray(matrix).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, width)


def _scalar_array(array: np.ndarray) -> Any:
    import pyarrow as pa

    return pa.array(array)


def _is_matrix(values: Any) -> bool:
    return isinstance(values, np.ndarray) and values.ndim == 2
