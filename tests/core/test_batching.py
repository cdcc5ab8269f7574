"""Token-budget batching and the out-of-memory backoff, by fault injection."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from diffemb import DiffEmbedEncoder
from diffemb.batching import OutOfMemoryAtMinimum, padding_waste, plan_batches


def test_batches_respect_the_budget_and_keep_every_row() -> None:
    rng = random.Random(0)
    lengths = [rng.randint(1, 300) for _ in range(500)]
    batches = plan_batches(lengths, budget=2048)
    assert sorted(i for batch in batches for i in batch) == list(range(500))
    for batch in batches:
        assert len(batch) * max(lengths[i] for i in batch) <= 2048
    assert padding_waste(lengths, batches) < 0.1
    assert plan_batches([5000, 3], budget=100) == [[0], [1]]  # an over-long row still gets its own batch


def test_many_short_rows_are_not_padded_to_the_longest() -> None:
    """512 queries of 10-30 tokens (~10k tokens): two budget-filling batches would pad them by ~40%."""
    rng = random.Random(1)
    lengths = [rng.randint(10, 30) for _ in range(512)]
    batches = plan_batches(lengths, budget=8192)
    assert sorted(i for batch in batches for i in batch) == list(range(512))
    assert padding_waste(lengths, batches) < 0.12
    assert min(len(batch) * max(lengths[i] for i in batch) for batch in batches[:-1]) >= 8192 // 4


def _oom_above(encoder: DiffEmbedEncoder, limit: int, seen: list[int]) -> None:
    """Make the model raise CUDA-style OOM whenever a batch holds more than `limit` padded tokens."""
    forward = encoder.model.forward

    def failing(*args, **kwargs):  # type: ignore[no-untyped-def]
        ids = kwargs["input_ids"]
        seen.append(ids.numel())
        if ids.numel() > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return forward(*args, **kwargs)

    encoder.model.forward = failing  # type: ignore[method-assign]


def test_out_of_memory_halves_the_budget_and_every_vector_is_still_right(tiny_dream_folder) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(1)
    words = "the cat reads a red book in the garden".split()
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(2, 50))) for _ in range(40)]
    reference = DiffEmbedEncoder.from_pretrained(tiny_dream_folder, device="cpu", dtype="float32")
    expected = reference.encode_documents(texts)
    # shared=False: the test breaks this model's forward, which must not leak into encoders of other tests.
    encoder = DiffEmbedEncoder.from_pretrained(
        tiny_dream_folder, device="cpu", dtype="float32", batch_tokens=4096, shared=False
    )
    seen: list[int] = []
    _oom_above(encoder, 300, seen)
    got = encoder.encode_documents(texts)
    np.testing.assert_allclose(got, expected, atol=2e-5)
    assert max(seen) > 300 and any(n <= 300 for n in seen)
    # The smaller budget is kept for the rest of the call: after backing off, no batch exceeds the limit again.
    first_ok = next(i for i, n in enumerate(seen) if n <= 300)
    assert all(n <= 300 for n in seen[first_ok:])


def test_a_budget_lowered_by_out_of_memory_is_kept_for_later_calls_and_views(tiny_dream_folder) -> None:  # type: ignore[no-untyped-def]
    """On a GPU every call would otherwise start at the full budget and pay for the OOM again."""
    texts = [" ".join(["the cat reads a red book"] * (1 + i % 5)) for i in range(40)]
    encoder = DiffEmbedEncoder.from_pretrained(
        tiny_dream_folder, device="cpu", dtype="float32", batch_tokens=4096, shared=False
    )
    seen: list[int] = []
    _oom_above(encoder, 300, seen)
    first = encoder.encode_documents(texts)
    assert max(seen) > 300  # the first call ran into the limit and backed off
    for later in (encoder, encoder.with_settings(chunk_aggregation="max"), encoder.with_settings(batch_tokens=8192)):
        seen.clear()
        later.encode_documents(texts)
        assert seen and max(seen) <= 300  # started under the lowered budget: no batch hit the limit again
    np.testing.assert_allclose(encoder.encode_documents(texts), first, atol=2e-5)


def test_a_text_that_never_fits_gives_a_clear_error(tiny_dream_folder) -> None:  # type: ignore[no-untyped-def]
    encoder = DiffEmbedEncoder.from_pretrained(tiny_dream_folder, device="cpu", dtype="float32", shared=False)
    _oom_above(encoder, 10, [])
    with pytest.raises(OutOfMemoryAtMinimum, match=r"out of memory on a single text of .* tokens"):
        encoder.encode_documents(["the cat reads a red book in the garden near the station"])


def test_other_errors_are_not_retried(tiny_dream_folder) -> None:  # type: ignore[no-untyped-def]
    encoder = DiffEmbedEncoder.from_pretrained(tiny_dream_folder, device="cpu", dtype="float32", shared=False)
    calls = []

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        raise RuntimeError("shape mismatch")

    encoder.model.forward = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="shape mismatch"):
        encoder.encode_documents(["a b"])
    assert len(calls) == 1


def test_budget_is_a_view_setting_that_leaves_vectors_alone(tiny_dream_encoder: DiffEmbedEncoder) -> None:
    small = tiny_dream_encoder.with_settings(batch_tokens=7)
    assert small.settings.batch_tokens == 7 and small.model is tiny_dream_encoder.model
    texts = ["the cat reads", "a young doctor visits the museum on Sunday", "red"]
    np.testing.assert_allclose(small.encode_documents(texts), tiny_dream_encoder.encode_documents(texts), atol=2e-5)


def test_replicas_on_several_devices_share_the_work(tiny_dream_folder) -> None:  # type: ignore[no-untyped-def]
    """The multi-GPU code path, run with two CPU replicas: each gets batches, vectors stay right and in order."""
    texts = [" ".join(["the cat reads a red book"] * (1 + i % 7)) for i in range(30)]
    single = DiffEmbedEncoder.from_pretrained(tiny_dream_folder, device="cpu", dtype="float32")
    double = DiffEmbedEncoder.from_pretrained(
        tiny_dream_folder, device=["cpu", "cpu"], dtype="float32", batch_tokens=256, shared=False
    )
    replicas = double.loaded.pool.models
    assert len(replicas) == 2 and double.devices == [torch.device("cpu")] * 2
    assert replicas[0] is not replicas[1]
    # A view shares the replicas: it copies no weights.
    assert double.with_settings(chunk_aggregation="max").loaded.pool.models == replicas
    passes = [0, 0]
    for k, model in enumerate(replicas):
        original = model.forward

        def counting(*args, _k=k, _original=original, **kwargs):  # type: ignore[no-untyped-def]
            passes[_k] += 1
            return _original(*args, **kwargs)

        model.forward = counting  # type: ignore[method-assign]
    np.testing.assert_allclose(double.encode_documents(texts), single.encode_documents(texts), atol=2e-5)
    assert passes[0] > 0 and passes[1] > 0
