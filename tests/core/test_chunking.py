"""Long documents: windows over one tokenisation, their spans, and the aggregation of their vectors."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from diffemb import DiffEmbedEncoder
from diffemb.chunking import ChunkingConfig, DocumentChunks, aggregate, split_windows

LONG = " ".join(f"Sentence number {i} says the {w} is here." for i, w in enumerate(["cat", "dog", "fox"] * 30))


@pytest.mark.parametrize(("n", "size", "overlap"), [(1, 8, 0), (8, 8, 2), (9, 8, 2), (100, 16, 3), (257, 32, 0)])
def test_windows_cover_every_token_with_the_configured_overlap(n: int, size: int, overlap: int) -> None:
    windows = split_windows(n, size, overlap)
    covered = set()
    for start, end in windows:
        assert 0 <= start < end <= n and end - start <= size
        covered.update(range(start, end))
    assert covered == set(range(n))
    for (_, e1), (s2, _) in itertools.pairwise(windows):
        assert e1 - s2 >= overlap  # neighbours share at least `overlap` tokens (the last may share more)
    assert all(e - s == size for s, e in windows) or len(windows) == 1


def test_windows_never_exceed_max_length_with_the_template(tiny_dream_encoder: DiffEmbedEncoder) -> None:
    from diffemb.rows import plan_rows

    frame = tiny_dream_encoder.text.frame(None)
    tokenized = tiny_dream_encoder.text.tokenize([LONG])
    plan = plan_rows(tokenized, frame, 64, ChunkingConfig(overlap=5), exclude_instruction=False)
    assert len(plan.rows) > 3
    assert all(len(row.ids) <= 64 for row in plan.rows)
    assert max(len(row.ids) for row in plan.rows) == 64
    assert sum(c.tokens for c in plan.chunks[0]) >= len(tokenized[0])


def test_a_document_that_fits_gives_exactly_the_unchunked_vector(tiny_dream_folder) -> None:  # type: ignore[no-untyped-def]
    short = "the old farmer repairs the broken window"
    vectors = {
        how: DiffEmbedEncoder.from_pretrained(
            tiny_dream_folder, device="cpu", dtype="float32", chunk_aggregation=how
        ).encode_documents([short])
        for how in ("mean", "max", "first")
    }
    np.testing.assert_allclose(vectors["mean"], vectors["first"], atol=1e-6)
    np.testing.assert_allclose(vectors["max"], vectors["first"], atol=1e-6)


def test_aggregation_maths_on_known_vectors() -> None:
    chunks = DocumentChunks(np.array([[1.0, 0.0], [0.0, 2.0]], dtype=np.float32), [(0, 5), (5, 9)], [3, 1])
    np.testing.assert_allclose(aggregate(chunks, "mean", normalize=False), [0.75, 0.5])
    np.testing.assert_allclose(aggregate(chunks, "max", normalize=False), [1.0, 2.0])
    np.testing.assert_allclose(aggregate(chunks, "first", normalize=False), [1.0, 0.0])
    normalized = aggregate(chunks, "mean", normalize=True)
    np.testing.assert_allclose(np.linalg.norm(normalized), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="does not give one vector"):
        aggregate(chunks, "none", normalize=True)


def test_none_returns_spans_that_slice_back_to_the_chunk_text(tiny_dream_encoder: DiffEmbedEncoder) -> None:
    docs = [LONG, "a short one"]
    chunks = tiny_dream_encoder.encode_document_chunks(docs)
    assert len(chunks[0]) > 3 and len(chunks[1]) == 1
    tokenizer = tiny_dream_encoder.backbone.tokenizer
    for start, end in chunks[0].spans:
        piece = LONG[start:end]
        assert piece and piece.strip() in LONG
    assert chunks[0].spans[0][0] == 0 and chunks[0].spans[-1][1] == len(LONG)
    assert chunks[1].spans == [(0, len(docs[1]))]
    first_window = tokenizer.decode(tiny_dream_encoder.text.tokenize([LONG])[0].ids[: chunks[0].token_counts[0]])
    assert first_window.strip() == LONG[slice(*chunks[0].spans[0])].strip()
    np.testing.assert_allclose(np.linalg.norm(chunks[0].vectors, axis=1), 1.0, atol=1e-5)


def test_each_mode_embeds_all_of_a_long_document(tiny_dream_folder) -> None:  # type: ignore[no-untyped-def]
    def encoder(how: str) -> DiffEmbedEncoder:
        return DiffEmbedEncoder.from_pretrained(
            tiny_dream_folder, device="cpu", dtype="float32", max_length=64, chunk_aggregation=how
        )

    tail_changed = LONG[: -len("is here.")] + "was eaten."
    for how in ("mean", "max", "late"):
        a, b = encoder(how).encode_documents([LONG, tail_changed])
        assert not np.allclose(a, b, atol=1e-5), how
    with pytest.warns(UserWarning, match=r"2 of 2 documents .* cut to their first window"):
        a, b = encoder("first").encode_documents([LONG, tail_changed])
    np.testing.assert_allclose(a, b, atol=1e-6)


def _count_rows_per_pass(encoder: DiffEmbedEncoder) -> list[int]:
    """Rows of every forward pass the model runs from now on."""
    calls: list[int] = []
    forward = encoder.model.forward

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(int(kwargs["input_ids"].shape[0]))
        return forward(*args, **kwargs)

    encoder.model.forward = counting  # type: ignore[method-assign]
    return calls


def test_late_chunking_pools_spans_of_one_long_pass(tiny_dream_folder) -> None:  # type: ignore[no-untyped-def]
    encoder = DiffEmbedEncoder.from_pretrained(
        tiny_dream_folder, device="cpu", dtype="float32", max_length=64, chunk_aggregation="late", chunk_size=10,
        shared=False,
    )
    calls = _count_rows_per_pass(encoder)
    chunks = encoder.encode_document_chunks([LONG])[0]
    n_tokens = len(encoder.text.tokenize([LONG])[0])
    long_passes = len(split_windows(n_tokens, 64 - encoder.text.frame(None).overhead, 0))
    assert sum(calls) == long_passes and len(chunks) > long_passes
    assert encoder.encode_documents([LONG]).shape == (1, 64)


def test_all_windows_of_all_documents_share_one_batch_stream(tiny_dream_folder) -> None:  # type: ignore[no-untyped-def]
    encoder = DiffEmbedEncoder.from_pretrained(
        tiny_dream_folder, device="cpu", dtype="float32", max_length=64, batch_tokens=64 * 64, shared=False
    )
    calls = _count_rows_per_pass(encoder)
    encoder.encode_documents([LONG])
    windows_of_long = calls.pop()
    encoder.encode_documents([LONG, LONG[:400], LONG[:1000], "short"])
    # Every window of the three long documents in one forward pass; only "short", far narrower than a window,
    # gets a pass of its own rather than being padded to the window's width.
    assert len(calls) == 2 and calls[0] > windows_of_long and calls[1] == 1


def test_iter_yields_the_same_vectors_in_order(tiny_dream_encoder: DiffEmbedEncoder) -> None:
    rng = random.Random(4)
    docs = [LONG[: rng.randint(10, len(LONG))] for _ in range(9)]
    expected = tiny_dream_encoder.encode_documents(docs)
    streamed = np.stack(list(tiny_dream_encoder.encode_documents_iter(iter(docs), group_size=4)))
    np.testing.assert_allclose(streamed, expected, atol=2e-5)
    with pytest.raises(ValueError, match=r"texts\[2\] is empty"):
        list(tiny_dream_encoder.encode_documents_iter(["a", "b", " "], group_size=2))


def test_chunk_settings_are_checked() -> None:
    with pytest.raises(ValueError, match=r"chunk_overlap .* smaller than chunk_size"):
        ChunkingConfig(size=10, overlap=10).window(100)
    with pytest.raises(ValueError, match="no room for text"):
        ChunkingConfig().window(0)
