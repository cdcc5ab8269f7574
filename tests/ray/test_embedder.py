"""The batch class the Ray actors run (`diffemb.ray.embedder`), called directly: no Ray needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diffemb import DiffEmbedEncoder
from diffemb.cli.io import WINDOW_FIELDS
from diffemb.ray import WINDOW_COLUMNS, DiffEmbedBatchEmbedder

pa = pytest.importorskip("pyarrow")
pd = pytest.importorskip("pandas")

TEXTS = ["river bread engine", "violin harbour pepper orbit", "garden ledger", "glacier lantern copper", "meadow"]
LONG = " ".join(f"word{i} and more of it" for i in range(30))


@pytest.fixture(scope="module")
def tiny_bert_encoder(tiny_bert_folder: Path) -> DiffEmbedEncoder:
    return DiffEmbedEncoder.from_pretrained(tiny_bert_folder, device="cpu")


def test_batch_formats_give_the_core_vectors(tiny_bert_folder, tiny_bert_encoder):
    expected = tiny_bert_encoder.encode_documents(TEXTS)
    embedder = DiffEmbedBatchEmbedder(str(tiny_bert_folder), device="cpu")
    assert embedder.encoder.model is tiny_bert_encoder.model  # one loaded model per process

    table = embedder(pa.table({"id": [1, 2, 3, 4, 5], "text": TEXTS}))
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 32)
    np.testing.assert_allclose(np.asarray(table.column("embedding").to_pylist()), expected, atol=1e-6)

    frame = embedder(pd.DataFrame({"id": [1, 2, 3, 4, 5], "text": TEXTS}))
    assert list(frame.columns) == ["id", "text", "embedding"]
    np.testing.assert_allclose(np.stack(frame["embedding"].to_list()), expected, atol=1e-6)

    arrays = embedder({"id": np.arange(5), "text": np.array(TEXTS, dtype=object)})
    np.testing.assert_allclose(arrays["embedding"], expected, atol=1e-6)

    empty = embedder(pa.table({"id": pa.array([], pa.int64()), "text": pa.array([], pa.string())}))
    assert empty.num_rows == 0 and empty.schema.field("embedding").type == pa.list_(pa.float32(), 32)

    queries = DiffEmbedBatchEmbedder(str(tiny_bert_folder), role="query", output_column="q", device="cpu")
    out = queries(pa.table({"text": TEXTS, "embedding": [[0.0]] * 5}))
    assert out.column_names == ["text", "embedding", "q"]
    np.testing.assert_allclose(np.asarray(out.column("q").to_pylist()), tiny_bert_encoder.encode_queries(TEXTS))


@pytest.mark.parametrize("aggregation", ["mean", "late"])
def test_window_rows_are_the_core_window_vectors(tiny_bert_folder, tiny_bert_encoder, aggregation):
    view = tiny_bert_encoder.with_settings(chunk_aggregation=aggregation, chunk_size=12, chunk_overlap=2)
    reference = view.encode_document_chunks([LONG, "a short one"])
    embedder = DiffEmbedBatchEmbedder(
        str(tiny_bert_folder), device="cpu", id_column="doc", chunks=True, chunk_aggregation=aggregation,
        chunk_size=12, chunk_overlap=2,
    )  # fmt: skip

    out = embedder(pa.table({"doc": ["long", "short"], "text": [LONG, "a short one"], "extra": [1, 2]}))

    assert WINDOW_COLUMNS == WINDOW_FIELDS  # the layout `diffemb embed --chunks` writes
    assert out.column_names == [*WINDOW_FIELDS, "embedding"]
    windows = len(reference[0])
    assert windows > 2 and out.num_rows == windows + 1
    assert out.column("document_id").to_pylist() == ["long"] * windows + ["short"]
    assert out.column("window_index").to_pylist() == [*range(windows), 0]
    spans = list(zip(out.column("start").to_pylist(), out.column("end").to_pylist(), strict=True))
    assert spans == [*reference[0].spans, *reference[1].spans]
    assert out.column("token_count").to_pylist() == [*reference[0].token_counts, *reference[1].token_counts]
    vectors = np.asarray(out.column("embedding").to_pylist(), dtype=np.float32)
    np.testing.assert_allclose(vectors, np.concatenate([c.vectors for c in reference]), atol=1e-6)

    frame = embedder(pd.DataFrame({"doc": ["long"], "text": [LONG]}))
    assert list(frame.columns) == [*WINDOW_FIELDS, "embedding"] and len(frame) == windows
    empty = embedder(pa.table({"doc": pa.array([], pa.string()), "text": pa.array([], pa.string())}))
    assert empty.num_rows == 0 and empty.schema.field("embedding").type == pa.list_(pa.float32(), 32)


def test_precision_and_truncate_dim_pass_through(tiny_bert_folder, tiny_bert_encoder):
    table = pa.table({"text": TEXTS})
    floats = tiny_bert_encoder.encode_documents(TEXTS)

    packed = DiffEmbedBatchEmbedder(str(tiny_bert_folder), device="cpu", precision="ubinary")(table)
    assert packed.schema.field("embedding").type == pa.list_(pa.uint8(), 4)  # 32 dimensions, 8 per byte
    np.testing.assert_array_equal(np.asarray(packed.column("embedding").to_pylist()), np.packbits(floats > 0, axis=1))

    signed = DiffEmbedBatchEmbedder(str(tiny_bert_folder), device="cpu", precision="binary")(table)
    assert signed.schema.field("embedding").type == pa.list_(pa.int8(), 4)

    short = DiffEmbedBatchEmbedder(str(tiny_bert_folder), device="cpu", precision="float16", truncate_dim=8)(table)
    assert short.schema.field("embedding").type == pa.list_(pa.float16(), 8)
    expected = tiny_bert_encoder.encode_documents(TEXTS, precision="float16", truncate_dim=8)
    np.testing.assert_allclose(np.asarray(short.column("embedding").to_pylist()), expected, atol=1e-3)

    calibration = tiny_bert_encoder.encode_documents([f"sample text {i}" for i in range(120)])
    coded = DiffEmbedBatchEmbedder(str(tiny_bert_folder), device="cpu", precision="int8", calibration=calibration)
    expected = tiny_bert_encoder.encode_documents(TEXTS, precision="int8", calibration=calibration)
    np.testing.assert_array_equal(np.asarray(coded(table).column("embedding").to_pylist()), expected)
    with pytest.raises(ValueError, match="needs calibration="):
        DiffEmbedBatchEmbedder(str(tiny_bert_folder), device="cpu", precision="uint8")
    with pytest.raises(ValueError, match="precision must be one of"):
        DiffEmbedBatchEmbedder(str(tiny_bert_folder), device="cpu", precision="int4")


def test_bad_rows_are_named_by_id_or_by_their_other_columns(tiny_bert_folder):
    embedder = DiffEmbedBatchEmbedder(str(tiny_bert_folder), device="cpu", id_column="id")
    with pytest.raises(ValueError, match=r"^the row with id='b': its 'text' is empty or white space only: drop or"):
        embedder(pa.table({"id": ["a", "b"], "text": ["fine", "  "]}))
    with pytest.raises(TypeError, match=r"^the row with id='a' has no text \(a null\) in column 'text'"):
        embedder(pa.table({"id": ["a"], "text": pa.array([None], pa.string())}))
    with pytest.raises(ValueError, match=r"^the row with id='z': its 'text' has only invisible characters"):
        embedder(pa.table({"id": ["y", "z"], "text": ["fine", "\u200b\ufeff"]}))
    anonymous = DiffEmbedBatchEmbedder(str(tiny_bert_folder), device="cpu")
    with pytest.raises(TypeError, match=r"^row 1 of a batch of 2 \(n=8\): its 'text' is a int, not a str"):
        anonymous(pd.DataFrame({"n": [7, 8], "text": ["fine", 5]}))
    with pytest.raises(KeyError, match="no text column 'body'"):
        DiffEmbedBatchEmbedder(str(tiny_bert_folder), text_column="body", device="cpu")(pa.table({"text": ["x"]}))


def test_window_options_are_checked_before_the_model_loads():
    with pytest.raises(ValueError, match="use role='document'"):
        DiffEmbedBatchEmbedder("no-such-model", role="query", id_column="id", chunks=True)
    with pytest.raises(ValueError, match="pass id_column"):
        DiffEmbedBatchEmbedder("no-such-model", chunks=True)
    with pytest.raises(ValueError, match="pass chunks=True for one row per window"):
        DiffEmbedBatchEmbedder("no-such-model", chunk_aggregation="none")
