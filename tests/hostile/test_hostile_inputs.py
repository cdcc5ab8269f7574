"""Hostile texts through the Python API and both framework adapters (issue 17, items 1, 9, 10 and 15).

Every bad text is an error that names its index in the caller's list: a body with no tokens for the model
(all-MiniLM-L6-v2 drops combining marks alone), a text of invisible characters only (zero-width space, BOM, NUL,
control characters: a byte-level BPE would give them tokens, so this is checked on the characters), and a lone
surrogate (which tokenizers reject with a TypeError that names nothing). Warnings point at the caller's line.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from diffemb import DiffEmbedEncoder
from diffemb.inputs import check_texts

GOOD = ["The sky is blue.", "Bees dance to show where flowers are.", "Rivers run to the sea."]
INVISIBLE = {
    "zero-width spaces": "\u200b\u200b\u200b",
    "byte order mark": "\ufeff",
    "NUL": "\x00",
    "control characters": "\x01\x02\x1b",
    "mixed": " \u200b\ufeff\x00\u2028 ",
}
NO_TOKENS = "\u0301\u0302"  # combining accents alone: visible characters, but no token for MiniLM
LONE_SURROGATE = "caf\ud800 au lait"


@pytest.mark.parametrize("case", sorted(INVISIBLE))
def test_invisible_only_text_is_named_by_index(case: str) -> None:
    with pytest.raises(ValueError, match=r"texts\[2\] has only invisible characters"):
        check_texts([*GOOD[:2], INVISIBLE[case], GOOD[2]])


@pytest.mark.parametrize("case", sorted(INVISIBLE))
def test_invisible_only_text_fails_on_a_byte_level_model(case: str, tiny_dream_encoder: DiffEmbedEncoder) -> None:
    # Dream's byte-level BPE gives these texts tokens; they still carry no text and must not get a vector.
    with pytest.raises(ValueError, match=r"texts\[1\] has only invisible characters"):
        tiny_dream_encoder.encode([GOOD[0], INVISIBLE[case]])


def test_text_with_no_tokens_is_named_by_every_api(minilm_encoder: DiffEmbedEncoder) -> None:
    texts = [GOOD[0], GOOD[1], NO_TOKENS]
    pattern = r"texts\[2\] has no tokens for this model"
    with pytest.raises(ValueError, match=pattern):
        minilm_encoder.encode(texts)
    with pytest.raises(ValueError, match=pattern):
        minilm_encoder.encode_queries(texts)
    with pytest.raises(ValueError, match=pattern):
        minilm_encoder.encode_document_chunks(texts)
    with pytest.raises(ValueError, match=pattern):
        minilm_encoder.with_settings(chunk_aggregation="late").encode_document_chunks(texts)


def test_documents_iter_names_the_global_index(minilm_encoder: DiffEmbedEncoder) -> None:
    texts = [*GOOD, GOOD[0], GOOD[1], NO_TOKENS, GOOD[2]]  # the bad one is item 5: in the third group of two
    stream = minilm_encoder.encode_documents_iter(iter(texts), group_size=2)
    first = [next(stream), next(stream)]
    np.testing.assert_allclose(np.stack(first), minilm_encoder.encode_documents(GOOD[:2]), atol=1e-5)
    with pytest.raises(ValueError, match=r"texts\[5\] has no tokens"):
        list(stream)
    with pytest.raises(ValueError, match=r"texts\[4\] has only invisible characters"):
        list(minilm_encoder.encode_documents_iter([*GOOD, "ok", "\u200b"], group_size=2))


@pytest.mark.parametrize("size", [0, -1, True, 2.0])
def test_documents_iter_rejects_a_group_size_that_is_not_positive(
    size: object, minilm_encoder: DiffEmbedEncoder
) -> None:
    with pytest.raises(ValueError, match="group_size must be a positive number"):
        minilm_encoder.encode_documents_iter(GOOD, group_size=size)  # type: ignore[arg-type]


def test_lone_surrogate_is_a_value_error_naming_the_index(minilm_encoder: DiffEmbedEncoder) -> None:
    with pytest.raises(ValueError, match=r"texts\[1\] is not valid Unicode text \(lone surrogate '\\ud800'"):
        minilm_encoder.encode([GOOD[0], LONE_SURROGATE])
    with pytest.raises(ValueError, match=r"texts\[0\] is not valid Unicode"):
        minilm_encoder.encode_queries([LONE_SURROGATE])


def test_langchain_names_the_bad_text(minilm_encoder: DiffEmbedEncoder) -> None:
    from langchain_diffemb import DiffEmbedEmbeddings

    embeddings = DiffEmbedEmbeddings(encoder=minilm_encoder)
    with pytest.raises(ValueError, match=r"texts\[3\] has no tokens"):
        embeddings.embed_documents([*GOOD, NO_TOKENS])
    with pytest.raises(ValueError, match=r"texts\[1\] has only invisible characters"):
        embeddings.embed_documents([GOOD[0], "\ufeff"])
    with pytest.raises(ValueError, match=r"texts\[2\] is not valid Unicode"):
        embeddings.embed_documents([GOOD[0], GOOD[1], LONE_SURROGATE])
    with pytest.raises(ValueError, match=r"texts\[0\] has no tokens"):
        embeddings.embed_query(NO_TOKENS)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (NO_TOKENS, "has no tokens"),
        ("\u200b", "has only invisible characters"),
        (LONE_SURROGATE, "is not valid Unicode"),
    ],
)
def test_llamaindex_names_the_callers_index_across_batches(
    bad: str, message: str, minilm_encoder: DiffEmbedEncoder
) -> None:
    from llamaindex_diffemb import DiffEmbedEmbedding

    embed_model = DiffEmbedEmbedding(encoder=minilm_encoder, embed_batch_size=4)
    texts = [*GOOD, GOOD[0], GOOD[1], GOOD[2], bad, GOOD[0]]  # item 6: index 2 of the second batch of four
    with pytest.raises(ValueError, match=rf"texts\[6\] {message}"):
        embed_model.get_text_embedding_batch(texts)


async def test_llamaindex_async_batches_name_the_callers_index(minilm_encoder: DiffEmbedEncoder) -> None:
    from llamaindex_diffemb import DiffEmbedEmbedding

    embed_model = DiffEmbedEmbedding(encoder=minilm_encoder, embed_batch_size=2)
    with pytest.raises(ValueError, match=r"texts\[4\] has no tokens"):
        await embed_model.aget_text_embedding_batch([*GOOD, GOOD[0], NO_TOKENS])
    good = await embed_model.aget_text_embedding_batch(GOOD)
    np.testing.assert_allclose(np.asarray(good), minilm_encoder.encode_documents(GOOD), atol=1e-5)


def test_truncation_warning_points_at_the_callers_line(minilm_encoder: DiffEmbedEncoder) -> None:
    encoder = minilm_encoder.with_settings(max_length=16)
    with pytest.warns(UserWarning, match="longer than the model window") as record:
        encoder.encode_queries([" ".join(["word"] * 40)])
    assert Path(record[0].filename) == Path(__file__)
    with pytest.warns(UserWarning, match="were cut to their first window") as record:
        encoder.with_settings(chunk_aggregation="first").encode_documents([" ".join(["word"] * 40)])
    assert Path(record[0].filename) == Path(__file__)


def test_unknown_adapter_setting_warning_points_at_the_callers_line(tmp_path: Path) -> None:
    from diffemb.adapter_settings import read_adapter_settings

    (tmp_path / "diffemb.json").write_text('{"encoder": {"pooling": "mean", "newer_field": 1}}', encoding="utf-8")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert read_adapter_settings(tmp_path) == {"pooling": "mean"}
    assert len(record) == 1 and "newer_field" in str(record[0].message)
    assert Path(record[0].filename) == Path(__file__)
