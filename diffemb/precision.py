"""Compact vectors: Matryoshka-style truncation, scalar and binary quantisation, and search with rescoring.

The quantisation follows the semantics users know from sentence-transformers' `quantize_embeddings`:

- `float16`: a cast (2 bytes per dimension).
- `uint8` / `int8`: per dimension, the range [min, max] of a calibration set is cut into 255 equal steps and each
  value becomes the index of its step (`uint8`: 0..255; `int8`: the same index minus 128). The ranges come from
  `calibration` (float vectors of a sample of *your* corpus — the same ranges must code documents and queries),
  or from explicit `ranges` (2, d). Without either, the vectors being coded calibrate themselves (the batch's own
  min/max, as sentence-transformers does), so codes from different calls are not comparable; a warning says so
  when the batch is small. Unlike sentence-transformers, values outside the calibration range are clipped to
  the end steps instead of wrapping around.
- `ubinary`: one bit per dimension (value > 0), packed 8 per byte with `np.packbits` (a row of d dimensions takes
  ceil(d / 8) bytes; bits are padded per row); `binary` is the same bytes minus 128, as int8.

Truncation keeps the first `truncate_dim` dimensions and re-normalises when the encoder's profile normalises; it
happens before quantisation (Matryoshka-trained models put the most information in the first dimensions).

`search` is the two-stage retrieval these codes are for: a cheap first stage (Hamming distance for binary codes,
a float query against de-quantised int8 codes, or float16) ranks the whole corpus and keeps
`top_k * rescore_multiplier` candidates, then the float query is scored against the candidates' float32 vectors
(an array, or a function that fetches them by index from disk) to order the final `top_k`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import Literal, TypedDict

import numpy as np
from typing_extensions import Unpack

from diffemb.chunking import DocumentChunks

Precision = Literal["float32", "float16", "int8", "uint8", "binary", "ubinary"]
PRECISIONS: tuple[str, ...] = ("float32", "float16", "int8", "uint8", "binary", "ubinary")
SMALL_CALIBRATION = 100
"""Fewer vectors than this give noisy int8 ranges (sentence-transformers warns at the same count)."""

FloatFetcher = Callable[[np.ndarray], np.ndarray]
"""Given corpus row indices (m,), their float vectors (m, d): e.g. a read from a memory-mapped .npy file."""


class CompactOptions(TypedDict, total=False):
    """The keyword arguments every `encode*` method takes to return compact vectors."""

    precision: Precision
    truncate_dim: int | None
    calibration: np.ndarray | None


def check_precision(precision: object) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(repr(p) for p in PRECISIONS)}, got {precision!r}")
    return str(precision)


def check_truncate_dim(truncate_dim: object, dimension: int) -> int | None:
    if truncate_dim is None:
        return None
    if isinstance(truncate_dim, bool) or not isinstance(truncate_dim, (int, np.integer)) or truncate_dim < 1:
        raise ValueError(f"truncate_dim must be a positive whole number of dimensions or None, got {truncate_dim!r}")
    if truncate_dim > dimension:
        raise ValueError(
            f"truncate_dim={truncate_dim} is more than the vectors' {dimension} dimensions: use at most {dimension}"
        )
    return int(truncate_dim)


def bytes_per_vector(dimension: int, precision: str) -> int:
    """Storage of one vector of `dimension` dimensions at `precision` (packed bits round up per vector)."""
    check_precision(precision)
    if precision in ("binary", "ubinary"):
        return (dimension + 7) // 8
    return dimension * {"float32": 4, "float16": 2}.get(precision, 1)


def truncate(vectors: np.ndarray, dim: int | None, normalize: bool) -> np.ndarray:
    """The first `dim` dimensions of every vector (last axis), re-normalised to unit length if `normalize`."""
    vectors = np.asarray(vectors)
    dim = check_truncate_dim(dim, vectors.shape[-1])
    if dim is None or dim == vectors.shape[-1]:
        return vectors
    kept = vectors[..., :dim].astype(np.float32)
    if not normalize:
        return kept
    return (kept / np.maximum(np.linalg.norm(kept, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def int8_ranges(calibration: np.ndarray) -> np.ndarray:
    """(2, d): per dimension the minimum and maximum of a calibration set of float vectors (n, d)."""
    values = np.asarray(calibration)
    if values.ndim != 2 or values.shape[0] < 1 or not np.issubdtype(values.dtype, np.floating):
        raise ValueError(
            f"calibration must be a (n, dimension) float array of sample vectors, got shape {values.shape} "
            f"dtype {values.dtype}"
        )
    if not np.isfinite(values).all():
        raise ValueError("calibration has NaN or infinite values: pass finite float vectors from the encoder")
    if values.shape[0] < SMALL_CALIBRATION:
        warnings.warn(
            f"int8 ranges from only {values.shape[0]} vectors are noisy: calibrate on {SMALL_CALIBRATION} or more "
            "vectors of your corpus",
            stacklevel=3,
        )
    return _min_max(values)


def quantize(
    vectors: np.ndarray,
    precision: str,
    calibration: np.ndarray | None = None,
    ranges: np.ndarray | None = None,
) -> np.ndarray:
    """`vectors` (..., d) float at `precision` (see the module's docstring for what each one is)."""
    precision = check_precision(precision)
    values = np.asarray(vectors)
    if not np.issubdtype(values.dtype, np.floating):
        raise ValueError(f"only float vectors can be quantised, got dtype {values.dtype}")
    if precision == "float32":
        return values.astype(np.float32, copy=False)
    if precision == "float16":
        return values.astype(np.float16)
    if precision in ("binary", "ubinary"):
        packed = np.packbits(values > 0, axis=-1)
        return (packed.astype(np.int16) - 128).astype(np.int8) if precision == "binary" else packed
    if values.size == 0:  # nothing to code, and nothing to take ranges from
        return np.zeros(values.shape, np.uint8 if precision == "uint8" else np.int8)
    if ranges is None and calibration is not None:
        ranges = int8_ranges(_at_dimension(calibration, values.shape[-1]))
    elif ranges is None:
        flat = values.reshape(-1, values.shape[-1])
        if flat.shape[0] < SMALL_CALIBRATION:
            warnings.warn(
                f"{precision} ranges come from these {flat.shape[0]} vectors alone: pass `calibration` (float "
                "vectors of a sample of your corpus) so that codes are accurate and comparable across calls",
                stacklevel=2,
            )
        ranges = _min_max(flat)
    starts, steps = _steps(ranges, values.shape[-1])
    # In float64 with a tiny guard, so a value exactly at a calibration maximum gets step 255, not 254.
    position = (values.astype(np.float64) - starts) / steps
    codes = np.clip(np.floor(position + 1e-7), 0, 255)
    return codes.astype(np.uint8) if precision == "uint8" else (codes - 128).astype(np.int8)


def dequantize(codes: np.ndarray, precision: str, ranges: np.ndarray | None = None) -> np.ndarray:
    """Float32 approximations of compact vectors: the centre of each int8 step, ±1 for bits."""
    precision = check_precision(precision)
    if precision in ("float32", "float16"):
        return np.asarray(codes, dtype=np.float32)
    if precision in ("binary", "ubinary"):
        unsigned = (np.asarray(codes).astype(np.int16) + 128).astype(np.uint8) if precision == "binary" else codes
        return np.unpackbits(np.asarray(unsigned, dtype=np.uint8), axis=-1).astype(np.float32) * 2 - 1
    if ranges is None:
        raise ValueError(f"{precision} codes need the ranges they were made with: pass ranges=int8_ranges(sample)")
    starts, steps = _steps(ranges, np.asarray(codes).shape[-1])
    index = np.asarray(codes, dtype=np.float32) + (128 if precision == "int8" else 0)
    return (starts + (index + 0.5) * steps).astype(np.float32)


def compact(
    vectors: np.ndarray,
    normalize: bool,
    precision: str = "float32",
    truncate_dim: int | None = None,
    calibration: np.ndarray | None = None,
) -> np.ndarray:
    """What `encode*` returns: `vectors` truncated (and re-normalised when the profile normalises), then quantised."""
    precision = check_precision(precision)
    check_truncate_dim(truncate_dim, np.asarray(vectors).shape[-1])
    if precision == "float32" and truncate_dim is None:
        return vectors
    if calibration is not None:
        calibration = truncate(_at_dimension(calibration, None), truncate_dim, normalize)
    return quantize(truncate(vectors, truncate_dim, normalize), precision, calibration)


def check_compact(dimension: int, stream: bool = False, **options: Unpack[CompactOptions]) -> None:
    """Check compact-vector options before any forward pass; a stream (no batch to take int8 ranges from) needs
    `calibration` for int8/uint8."""
    precision = check_precision(options.get("precision", "float32"))
    check_truncate_dim(options.get("truncate_dim"), dimension)
    if stream and precision in ("int8", "uint8") and options.get("calibration") is None:
        raise ValueError(
            f"precision={precision!r} on a stream needs `calibration` (float vectors of a sample of the corpus): "
            "each group would otherwise get its own ranges and codes would not be comparable"
        )


# -- search: compact first stage, float rescoring -----------------------------------------------------------

_POPCOUNT = np.array([bin(byte).count("1") for byte in range(256)], dtype=np.uint8)


def search(
    queries: np.ndarray,
    corpus: np.ndarray,
    precision: str,
    *,
    top_k: int = 10,
    rescore_multiplier: int = 4,
    corpus_float: np.ndarray | FloatFetcher | None = None,
    ranges: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-`top_k` corpus rows for float `queries` (q, d) or (d,) over compact `corpus` codes, best first.

    Returns (indices, scores), each (q, top_k) (or (top_k,) for one query). The first stage scores all rows by
    their codes: Hamming similarity (d − distance) for `binary`/`ubinary`, the float query against de-quantised
    codes for `int8`/`uint8` (`ranges` needed: the ones the codes were made with), a plain dot product for floats.
    With `corpus_float` (the corpus's float vectors, or a function fetching them by row index) the best
    `top_k * rescore_multiplier` candidates are re-scored with float dot products; the scores returned are
    then dot products, else the first stage's.
    """
    precision = check_precision(precision)
    one = np.asarray(queries).ndim == 1
    query = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    codes = np.asarray(corpus)
    if codes.ndim != 2 or len(codes) == 0:
        raise ValueError(f"corpus must be a non-empty (n, width) array of codes, got shape {codes.shape}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive whole number, got {top_k!r}")
    if isinstance(rescore_multiplier, bool) or not isinstance(rescore_multiplier, int) or rescore_multiplier < 1:
        raise ValueError(f"rescore_multiplier must be a positive whole number, got {rescore_multiplier!r}")
    first = _first_stage(query, codes, precision, ranges)
    keep = min(len(codes), top_k if corpus_float is None else top_k * rescore_multiplier)
    candidates = _top(first, keep)
    if corpus_float is None:
        indices = candidates[:, :top_k]
        scores = np.take_along_axis(first, indices, axis=1)
    else:
        rescored = np.stack([_float_rows(corpus_float, rows) @ q for q, rows in zip(query, candidates, strict=True)])
        order = _top(rescored, min(top_k, keep))
        indices = np.take_along_axis(candidates, order, axis=1)
        scores = np.take_along_axis(rescored, order, axis=1)
    return (indices[0], scores[0]) if one else (indices, scores)


def _first_stage(query: np.ndarray, codes: np.ndarray, precision: str, ranges: np.ndarray | None) -> np.ndarray:
    if precision in ("binary", "ubinary"):
        query_bits = quantize(query, "ubinary")
        unsigned = codes.astype(np.int16) + 128 if precision == "binary" else codes
        corpus_bits = np.asarray(unsigned).astype(np.uint8, copy=False)
        if query_bits.shape[1] != corpus_bits.shape[1]:
            raise ValueError(
                f"queries pack to {query_bits.shape[1]} bytes but corpus codes have {corpus_bits.shape[1]}"
            )
        distance = np.stack([_POPCOUNT[np.bitwise_xor(corpus_bits, q)].sum(axis=1, dtype=np.int32) for q in query_bits])
        return (query.shape[1] - distance).astype(np.float32)
    if precision in ("int8", "uint8") and ranges is None:
        raise ValueError(f"searching {precision} codes needs the ranges they were made with: pass ranges=")
    approx = dequantize(codes, precision, ranges)
    if approx.shape[1] != query.shape[1]:
        raise ValueError(f"queries have {query.shape[1]} dimensions but the corpus has {approx.shape[1]}")
    return query @ approx.T


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Per row, the column indices of the `k` highest scores, best first (ties: lower index first)."""
    part = (
        np.argpartition(-scores, k - 1, axis=1)[:, :k]
        if k < scores.shape[1]
        else np.tile(np.arange(scores.shape[1]), (len(scores), 1))
    )
    chosen = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -chosen), axis=1)
    return np.take_along_axis(part, order, axis=1)


def _float_rows(corpus_float: np.ndarray | FloatFetcher, rows: np.ndarray) -> np.ndarray:
    fetched = corpus_float(rows) if callable(corpus_float) else np.asarray(corpus_float)[rows]
    fetched = np.asarray(fetched, dtype=np.float32)
    if fetched.shape[0] != len(rows):
        raise ValueError(f"corpus_float gave {fetched.shape[0]} vectors for {len(rows)} requested rows")
    return fetched


def _at_dimension(calibration: np.ndarray, dimension: int | None) -> np.ndarray:
    values = np.asarray(calibration)
    if values.ndim != 2 or (dimension is not None and values.shape[1] != dimension):
        want = "(n, dimension)" if dimension is None else f"(n, {dimension})"
        raise ValueError(f"calibration must be a {want} float array of sample vectors, got shape {values.shape}")
    return values


def _min_max(values: np.ndarray) -> np.ndarray:
    return np.vstack([values.min(axis=0), values.max(axis=0)]).astype(np.float32)


def _steps(ranges: np.ndarray, dimension: int) -> tuple[np.ndarray, np.ndarray]:
    bounds = np.asarray(ranges, dtype=np.float64)
    if bounds.shape != (2, dimension):
        raise ValueError(f"ranges must be (2, {dimension}): per dimension the minimum and maximum, got {bounds.shape}")
    steps = (bounds[1] - bounds[0]) / 255
    # A dimension that never varies in the calibration set gets step 1, so its codes are 0 rather than NaN.
    return bounds[0], np.where(steps > 0, steps, 1.0)


def compact_chunks(
    per_text: list[DocumentChunks], normalize: bool, **options: Unpack[CompactOptions]
) -> list[DocumentChunks]:
    """`compact` applied to every window vector; int8 ranges without `calibration` come from all the windows."""
    if not options or not per_text:
        return per_text
    coded = compact(np.concatenate([chunks.vectors for chunks in per_text]), normalize, **options)
    ends = np.cumsum([len(chunks) for chunks in per_text])[:-1]
    return [replace(chunks, vectors=part) for chunks, part in zip(per_text, np.split(coded, ends), strict=True)]
