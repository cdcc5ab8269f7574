"""Compact vectors: what a user storing int8/binary codes or Matryoshka-truncated vectors relies on."""

from __future__ import annotations

import asyncio
import warnings

import numpy as np
import pytest

from diffemb import DiffEmbedEncoder
from diffemb.precision import bytes_per_vector, dequantize, int8_ranges, quantize, search, truncate

HAND = np.array(
    [[0.5, -1.0, 0.0, 2.0, 0.1, -0.2, 0.3, -0.4, 0.9], [-0.5, 1.0, 1.0, -2.0, 0.0, 0.2, -0.3, 0.4, -0.9]], np.float32
)


def test_ubinary_packs_one_bit_per_positive_dimension_and_binary_is_it_minus_128() -> None:
    ubinary = quantize(HAND, "ubinary")
    # Row 0 bits (value > 0): 1 0 0 1 1 0 1 0 | 1 → bytes 0b10011010 = 154 and 0b10000000 = 128 (padded per row).
    # Row 1 bits: 0 1 1 0 0 1 0 1 | 0 → 0b01100101 = 101 and 0.
    assert ubinary.dtype == np.uint8
    assert ubinary.tolist() == [[154, 128], [101, 0]]
    binary = quantize(HAND, "binary")
    assert binary.dtype == np.int8
    assert binary.tolist() == [[26, 0], [-27, -128]]
    assert bytes_per_vector(9, "binary") == 2 and bytes_per_vector(384, "ubinary") == 48


def test_int8_codes_follow_the_calibration_ranges() -> None:
    calibration = np.array([[0.0, -1.0], [2.55, 1.55], [1.0, 0.0]], dtype=np.float32)
    vectors = np.array([[0.0, -1.0], [2.55, 1.55], [1.0, 0.0], [9.0, -9.0]], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # three calibration vectors are few on purpose
        uint8 = quantize(vectors, "uint8", calibration=calibration)
        int8 = quantize(vectors, "int8", calibration=calibration)
    # Dimension 0: start 0, step 0.01 → 1.0 is step 100; dimension 1: start -1, step 0.01 → 0.0 is step 100.
    # Values beyond the calibration range are clipped to the end steps (9.0 → 255, -9.0 → 0).
    assert uint8.dtype == np.uint8 and int8.dtype == np.int8
    expected = np.array([[0, 0], [255, 255], [100, 100], [255, 0]])
    np.testing.assert_array_equal(uint8, expected)
    np.testing.assert_array_equal(int8.astype(int), uint8.astype(int) - 128)
    ranges = int8_ranges(np.vstack([calibration] * 40))
    approx = dequantize(quantize(vectors[:3], "int8", ranges=ranges), "int8", ranges)
    np.testing.assert_allclose(approx, vectors[:3], atol=0.011)  # within one step of 0.01


def test_bad_calibration_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="NaN or infinite"):
        quantize(HAND, "int8", calibration=np.full((200, 9), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"calibration must be a \(n, 9\) float array"):
        quantize(HAND, "int8", calibration=np.zeros((200, 8), np.float32))
    with pytest.raises(ValueError, match=r"ranges must be \(2, 9\)"):
        quantize(HAND, "uint8", ranges=np.zeros((3, 9)))


def test_int8_without_calibration_uses_the_batch_and_warns_when_it_is_small() -> None:
    with pytest.warns(UserWarning, match="calibration"):
        codes = quantize(HAND, "uint8")
    assert codes.min(axis=0).tolist() == [0] * 9  # each dimension's batch minimum is step 0
    assert codes.max(axis=0).tolist() == [255] * 9


def test_truncate_keeps_the_first_dimensions_and_renormalises() -> None:
    vectors = np.array([[3.0, 4.0, 12.0]], dtype=np.float32) / 13
    np.testing.assert_allclose(truncate(vectors, 2, normalize=True), [[0.6, 0.8]], atol=1e-6)
    np.testing.assert_allclose(truncate(vectors, 2, normalize=False), vectors[:, :2], atol=1e-7)
    with pytest.raises(ValueError, match="more than the vectors' 3 dimensions"):
        truncate(vectors, 4, normalize=True)


def test_encode_truncates_before_quantising(minilm_encoder: DiffEmbedEncoder) -> None:
    texts = ["bees dance to tell the hive where flowers are", "a kettle boils water", "stock markets fell today"]
    full = minilm_encoder.encode_documents(texts)
    short = minilm_encoder.encode_documents(texts, truncate_dim=128)
    assert short.shape == (3, 128) and short.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(short, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(short, truncate(full, 128, normalize=True), atol=1e-6)
    bits = minilm_encoder.encode_queries(texts, precision="ubinary", truncate_dim=128)
    np.testing.assert_array_equal(bits, np.packbits(full[:, :128] > 0, axis=1))
    half = minilm_encoder.encode(texts, precision="float16")
    assert half.dtype == np.float16
    np.testing.assert_allclose(half, full, atol=1e-3)
    with pytest.raises(ValueError, match="truncate_dim=385 is more than"):
        minilm_encoder.encode(texts, truncate_dim=385)
    with pytest.raises(ValueError, match="precision must be one of"):
        minilm_encoder.encode(texts, precision="int4")  # type: ignore[arg-type]
    assert minilm_encoder.encode([], precision="ubinary").shape == (0, 48)
    assert minilm_encoder.encode([], precision="int8").dtype == np.int8


def test_int8_calibration_gives_the_same_codes_in_every_entry_point(minilm_encoder: DiffEmbedEncoder) -> None:
    texts = [f"note {i}: the {w} is on the table" for i, w in enumerate(["cup", "pen", "book", "lamp", "key"])]
    sample = [f"{w} number {i} sits in a box" for i in range(20) for w in ("cup", "pen", "book", "lamp", "key")]
    calibration = minilm_encoder.encode_documents(sample)  # 100 vectors, so no small-sample warning
    options = {"precision": "int8", "truncate_dim": 64, "calibration": calibration}
    batch = minilm_encoder.encode_documents(texts, **options)  # type: ignore[arg-type]
    floats = truncate(minilm_encoder.encode_documents(texts), 64, True)
    np.testing.assert_array_equal(batch, quantize(floats, "int8", truncate(calibration, 64, True)))
    # Other entry points batch differently, so a float32 rounding may move a value across a step boundary.
    streamed = np.stack(list(minilm_encoder.encode_documents_iter(texts, group_size=2, **options)))  # type: ignore[arg-type]
    chunks = minilm_encoder.encode_document_chunks(texts, **options)  # type: ignore[arg-type]
    awaited = asyncio.run(minilm_encoder.aencode_documents(texts, **options))  # type: ignore[arg-type]
    for other in (streamed, np.concatenate([c.vectors for c in chunks]), awaited):  # one window per text
        assert other.dtype == np.int8 and other.shape == batch.shape
        assert np.abs(other.astype(int) - batch.astype(int)).max() <= 1
    with pytest.raises(ValueError, match="on a stream needs `calibration`"):
        next(minilm_encoder.encode_documents_iter(texts, precision="int8"))


CORPUS = [
    "Bees perform a waggle dance to show hive mates the direction of flowers.",
    "A kettle heats water until it boils and the switch clicks off.",
    "The central bank raised interest rates to slow inflation.",
    "Photosynthesis turns sunlight, water and carbon dioxide into sugar.",
    "The striker scored twice in the second half of the final.",
    "Volcanoes erupt when magma rises through cracks in the crust.",
    "A sourdough starter needs flour and water every day.",
    "Penguins huddle together to survive the Antarctic winter.",
    "The compiler turns source code into machine instructions.",
    "Tides rise and fall because of the moon's gravity.",
    "A violin has four strings tuned in fifths.",
    "Glaciers carve valleys as they slowly move downhill.",
]
QUERIES = [
    "how do bees tell each other where flowers are?",
    "why is there high tide and low tide?",
    "what does a compiler do?",
    "how do plants make food from light?",
    "how do penguins keep warm?",
]


@pytest.mark.parametrize("precision", ["ubinary", "binary", "int8"])
def test_rescoring_recovers_the_float_top_hit(minilm_encoder: DiffEmbedEncoder, precision: str) -> None:
    corpus = minilm_encoder.encode_documents(CORPUS)
    queries = minilm_encoder.encode_queries(QUERIES)
    float_top = np.argmax(queries @ corpus.T, axis=1)
    ranges = int8_ranges(np.vstack([corpus] * 10))
    codes = quantize(corpus, precision, ranges=ranges)
    found, scores = search(queries, codes, precision, top_k=3, rescore_multiplier=3, corpus_float=corpus, ranges=ranges)
    np.testing.assert_array_equal(found[:, 0], float_top)
    np.testing.assert_allclose(scores[:, 0], (queries @ corpus.T).max(axis=1), atol=1e-5)
    # A fetcher (e.g. rows of a memory-mapped file) does the same as the array.
    fetched, _ = search(queries, codes, precision, top_k=3, corpus_float=lambda rows: corpus[rows], ranges=ranges)
    np.testing.assert_array_equal(fetched, found)
    one, _ = search(queries[0], codes, precision, top_k=1, ranges=ranges)  # first stage alone, one query
    assert one.shape == (1,)


def test_search_names_missing_ranges_and_bad_sizes() -> None:
    codes = quantize(np.eye(4, dtype=np.float32), "int8", ranges=np.array([[-1.0] * 4, [1.0] * 4]))
    with pytest.raises(ValueError, match="needs the ranges"):
        search(np.ones(4, dtype=np.float32), codes, "int8")
    with pytest.raises(ValueError, match="top_k must be a positive"):
        search(np.ones(4, dtype=np.float32), codes, "float32", top_k=0)
