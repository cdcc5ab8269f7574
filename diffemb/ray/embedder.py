"""The callable class Ray Data's actors run: one encoder per actor process, vectors for each batch of rows."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from diffemb.cli.io import WINDOW_FIELDS
from diffemb.encoder import DEFAULT
from diffemb.ray.batches import column_at, column_names, column_values, new_batch, num_rows, with_columns

EMBEDDING_COLUMN = "embedding"
WINDOW_COLUMNS = WINDOW_FIELDS
"""With `chunks=True` each window row has these columns before its vector, the ones `diffemb embed --chunks` writes:
`document_id` (the `id_column` value), `window_index` (in its document), `start`/`end` (its characters,
`text[start:end]`) and `token_count`."""
DOCUMENT_ID, WINDOW_INDEX, START, END, TOKEN_COUNT = WINDOW_FIELDS

_TEXT_INDEX = re.compile(r"texts\[(\d+)\]")  # how the core names a bad text (diffemb.inputs, encoder.plan)


def is_default(value: Any) -> bool:
    # DEFAULT is compared by identity in the encoder; after pickling to an actor it is another object.
    return value is DEFAULT or type(value) is type(DEFAULT)


class DiffEmbedBatchEmbedder:
    """A callable class for `Dataset.map_batches`: loads the encoder once per actor and embeds each batch.

        ds.map_batches(DiffEmbedBatchEmbedder, fn_constructor_kwargs={"model": "...", "device": "cuda"},
                       compute=ray.data.ActorPoolStrategy(size=4), num_gpus=1, batch_size=512,
                       batch_format="pyarrow")

    Batches may be pyarrow Tables, pandas DataFrames or dicts of numpy arrays; the same kind comes back with
    every input column plus `output_column` (a fixed-size list in Arrow, float32 unless `precision` says
    otherwise: the Parquet layout that `diffemb embed` writes). With `chunks=True` (documents only) each
    document becomes one row per model window instead, with the columns `diffemb embed --chunks` writes
    (`WINDOW_COLUMNS`: `document_id` from `id_column`, `window_index`, `start`, `end`, `token_count`) and the
    window's vector in `output_column`; with `chunk_aggregation="late"` those are late (contextual) window
    vectors, pooled from one long pass over the document. `precision` and `truncate_dim` give compact vectors
    as the core's `encode` does (`diffemb.precision`; binary codes are packed bytes, 8 dimensions a byte);
    int8/uint8 need `calibration`, so that every batch codes with the same ranges.

    Every other keyword goes to `DiffEmbedEncoder.from_pretrained`, whose weight cache shares one loaded model
    per process (actors that share a process share the model).
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
        chunks: bool = False,
        precision: str = "float32",
        truncate_dim: int | None = None,
        calibration: np.ndarray | None = None,
        torch_threads: int | None = None,
        **encoder_options: Any,
    ) -> None:
        from diffemb.encoder import DiffEmbedEncoder
        from diffemb.inputs import check_role

        self.text_column = text_column
        self.output_column = output_column
        self.role = check_role(role)
        self.instruction = DEFAULT if is_default(instruction) else instruction
        self.id_column = id_column
        self.chunks = bool(chunks)
        check_chunk_options(self.role, self.chunks, encoder_options.get("chunk_aggregation"), id_column)
        self.compact = compact_options(precision, truncate_dim, calibration)
        if torch_threads:
            import torch

            torch.set_num_threads(int(torch_threads))
        self.encoder = DiffEmbedEncoder.from_pretrained(str(model), **encoder_options)

    def __call__(self, batch: Any) -> Any:
        names = column_names(batch)
        if self.text_column not in names:
            raise KeyError(f"the batch has no text column {self.text_column!r}; its columns are {names}")
        texts = column_values(batch, self.text_column)
        try:
            if self.chunks:
                return self._window_rows(batch, texts)
            vectors = self.encoder.encode(
                texts, role=self.role, instruction=self.instruction, show_progress=False, **self.compact
            )
        except (TypeError, ValueError) as error:
            raise self._named(error, batch) from None
        return with_columns(batch, {self.output_column: vectors})

    def _window_rows(self, batch: Any, texts: list[Any]) -> Any:
        assert self.id_column is not None  # checked by __init__
        per_text = self.encoder.encode_document_chunks(
            texts, instruction=self.instruction, show_progress=False, **self.compact
        )
        owners = [row for row, chunks in enumerate(per_text) for _ in range(len(chunks))]
        spans = np.asarray([span for chunks in per_text for span in chunks.spans], dtype=np.int64).reshape(-1, 2)
        return new_batch(
            batch,
            {
                DOCUMENT_ID: column_at(batch, self.id_column, owners),
                WINDOW_INDEX: np.asarray([w for chunks in per_text for w in range(len(chunks))], dtype=np.int32),
                START: spans[:, 0],
                END: spans[:, 1],
                TOKEN_COUNT: np.asarray([t for chunks in per_text for t in chunks.token_counts], dtype=np.int32),
                self.output_column: (
                    np.concatenate([chunks.vectors for chunks in per_text])
                    if per_text
                    else self.encoder.encode([], **self.compact)  # no rows, of the width and type the others have
                ),
            },
        )

    def _named(self, error: Exception, batch: Any) -> Exception:
        """The core's error about `texts[i]` (i within this batch), saying which row of the dataset it is."""
        found = _TEXT_INDEX.search(str(error))
        if found is None:
            return error
        index = int(found.group(1))
        text = column_values(batch, self.text_column)[index]
        row = self.row_name(batch, index)
        if text is None:
            message = f"{row} has no text (a null) in column {self.text_column!r}"
        else:
            reason = str(error)[found.end() :].split(":")[0].strip()  # the core's fix is about a list of texts
            message = f"{row}: its {self.text_column!r} {reason}"
        return type(error)(f"{message}: drop or fill it before embedding")

    def row_name(self, batch: Any, index: int) -> str:
        """`the row with id='x'`, or the row's first other columns when no id column is known."""
        names = column_names(batch)
        if self.id_column is not None and self.id_column in names:
            return f"the row with {self.id_column}={column_values(batch, self.id_column)[index]!r}"
        others = [name for name in names if name != self.text_column][:3]
        shown = [f"{name}={_short(column_values(batch, name)[index])}" for name in others]
        where = f"row {index} of a batch of {num_rows(batch)}"
        return f"{where} ({', '.join(shown)})" if shown else where


def check_chunk_options(role: str, chunks: bool, chunk_aggregation: Any, id_column: str | None) -> None:
    """Window rows are for documents and name their document; `chunk_aggregation="none"` (several vectors per
    text) needs them."""
    if chunks and role != "document":
        raise ValueError("chunks=True gives one row per window of a document: use role='document'")
    if chunks and id_column is None:
        raise ValueError("chunks=True writes one row per window: pass id_column, the column naming each document")
    if not chunks and chunk_aggregation == "none":
        raise ValueError(
            "chunk_aggregation='none' keeps one vector per window: pass chunks=True for one row per window "
            "(or pick 'mean', 'max', 'first' or 'late' for one vector per document)"
        )


def compact_options(precision: str, truncate_dim: int | None, calibration: np.ndarray | None) -> dict[str, Any]:
    """The `precision` / `truncate_dim` / `calibration` keywords for the core's `encode*`, checked where they can
    be before a model loads. int8 and uint8 codes need `calibration`: without it each batch would calibrate its
    own ranges and the codes of different batches (and actors) would not be comparable."""
    from diffemb.precision import check_precision

    options: dict[str, Any] = {}
    if check_precision(precision) != "float32":
        options["precision"] = precision
    if truncate_dim is not None:
        options["truncate_dim"] = truncate_dim
    if calibration is not None:
        options["calibration"] = np.asarray(calibration)
    if precision in ("int8", "uint8") and calibration is None:
        raise ValueError(
            f"precision={precision!r} on Ray needs calibration= (float vectors of a sample of your corpus, embedded "
            "with the same model): every batch must code with the same ranges"
        )
    return options


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
