"""Behaviour a user of `DiffEmbedEncoder` notices: shapes, order, batch invariance, instructions, errors."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from diffemb import DiffEmbedEncoder
from diffemb.extras import require

WORDS = "the cat reads a red book in the garden near station every morning while old farmer repairs window".split()


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 40))) for _ in range(n)]


def _load(folder: Path, **kw: object) -> DiffEmbedEncoder:
    options: dict[str, object] = {"device": "cpu", "dtype": "float32", **kw}
    return DiffEmbedEncoder.from_pretrained(folder, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fixture", "options"),
    [
        ("tiny_dream_folder", {}),
        ("tiny_llada_folder", {}),
        ("tiny_qwen2_folder", {}),
        ("tiny_qwen2_folder", {"attention": "bidirectional"}),
        ("tiny_llama_folder", {"padding_side": "left"}),
        ("tiny_llama_folder", {"attention": "bidirectional", "padding_side": "left"}),
        ("tiny_bert_folder", {}),
        ("minilm_folder", {}),
    ],
)
def test_a_vector_does_not_depend_on_its_batch_mates(
    fixture: str, options: dict[str, object], request: pytest.FixtureRequest
) -> None:
    encoder = _load(request.getfixturevalue(fixture), **options)
    texts = _texts(12)
    together = encoder.encode_documents(texts)
    alone = np.stack([encoder.encode_documents([text])[0] for text in texts])
    np.testing.assert_allclose(together, alone, atol=2e-5)
    # A tiny budget forces many batches of different widths: still the same vectors, in input order.
    small = encoder.with_settings(batch_tokens=64)
    np.testing.assert_allclose(small.encode_documents(texts), together, atol=2e-5)


def test_last_token_pooling_agrees_under_either_padding_side(tiny_qwen2_folder: Path) -> None:
    texts = _texts(8, seed=3)
    right = _load(tiny_qwen2_folder).encode_documents(texts)
    left = _load(tiny_qwen2_folder, padding_side="left").encode_documents(texts)
    np.testing.assert_allclose(right, left, atol=2e-5)


def test_shapes_dtype_order_and_empty_input(tiny_dream_encoder: DiffEmbedEncoder) -> None:
    texts = _texts(7, seed=1)
    vectors = tiny_dream_encoder.encode_documents(texts)
    assert vectors.dtype == np.float32 and vectors.shape == (7, tiny_dream_encoder.dimension)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    reversed_vectors = tiny_dream_encoder.encode_documents(texts[::-1])
    np.testing.assert_allclose(reversed_vectors[::-1], vectors, atol=2e-5)
    assert tiny_dream_encoder.encode_queries([]).shape == (0, tiny_dream_encoder.dimension)


def test_dimension_is_known_without_a_forward_pass(tiny_dream_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    encoder = _load(tiny_dream_folder)
    monkeypatch.setattr(encoder.model, "forward", lambda *a, **k: pytest.fail("forward ran"))
    assert encoder.dimension == 64


def test_queries_get_the_instruction_and_documents_do_not(tiny_dream_encoder: DiffEmbedEncoder) -> None:
    text = ["how do plants make food from light"]
    query = tiny_dream_encoder.encode_queries(text)
    document = tiny_dream_encoder.encode_documents(text)
    assert not np.allclose(query, document)
    np.testing.assert_allclose(tiny_dream_encoder.encode(text, role="query", instruction=""), document, atol=1e-6)
    np.testing.assert_allclose(tiny_dream_encoder.encode(text, role="query"), query, atol=1e-6)
    other = tiny_dream_encoder.encode(text, role="query", instruction="Find a passage that answers the question.")
    assert not np.allclose(other, query)


def test_dream_instruction_ends_with_a_colon(tiny_dream_encoder: DiffEmbedEncoder) -> None:
    dotted = tiny_dream_encoder.encode_queries(["x y z"], instruction="Retrieve text based on user query.")
    colon = tiny_dream_encoder.encode_queries(["x y z"], instruction="Retrieve text based on user query:")
    np.testing.assert_allclose(dotted, colon, atol=1e-6)


def test_template_can_be_turned_off(tiny_dream_folder: Path) -> None:
    plain = _load(tiny_dream_folder, template=False, query_instruction="")
    tokenizer = plain.backbone.tokenizer
    frame = plain.text.frame(None)
    assert frame.prefix == () and frame.tail == ()
    templated = _load(tiny_dream_folder)
    assert tokenizer.convert_ids_to_tokens(templated.text.frame(None).head[:1]) == ["<|im_start|>"]
    assert not np.allclose(plain.encode_documents(["a b c"]), templated.encode_documents(["a b c"]))


def test_excluding_the_instruction_pools_the_text_positions_only(tiny_dream_folder: Path) -> None:
    encoder = _load(tiny_dream_folder, exclude_instruction=True, normalize=False)
    text = "the cat reads a red book"
    frame = encoder.text.frame(encoder.profile.query_instruction)
    body = encoder.text.tokenize([text], frame.lead)[0].ids
    ids = frame.row(body)
    with torch.inference_mode():
        states = encoder.model(input_ids=torch.tensor([ids])).last_hidden_state[0]
    expected = states[len(frame.prefix) :].mean(0).numpy()
    np.testing.assert_allclose(encoder.encode_queries([text])[0], expected, atol=1e-5)
    included = _load(tiny_dream_folder, normalize=False).encode_queries([text])[0]
    assert not np.allclose(included, expected, atol=1e-4)


def test_long_queries_are_truncated_with_one_warning(tiny_dream_encoder: DiffEmbedEncoder) -> None:
    long_query = "what does the farmer repair " * 40
    with pytest.warns(UserWarning, match=r"1 of 2 queries are longer than the model window") as caught:
        vectors = tiny_dream_encoder.encode_queries([long_query, "short query"])
    assert len(caught) == 1 and vectors.shape == (2, 64)


@pytest.mark.parametrize(
    ("texts", "error", "message"),
    [
        ("just one string", TypeError, "wrap it in a list"),
        (42, TypeError, "must be a list of strings, got int"),
        (["fine", 3], TypeError, r"texts\[1\] is a int"),
        (["fine", None], TypeError, r"texts\[1\] is a NoneType"),
        (["fine", "ok", "   "], ValueError, r"texts\[2\] is empty"),
        ([""], ValueError, r"texts\[0\] is empty"),
    ],
)
def test_bad_input_names_the_item_and_the_fix(
    tiny_dream_encoder: DiffEmbedEncoder, texts: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        tiny_dream_encoder.encode(texts)  # type: ignore[arg-type]


def test_bad_settings_are_clear_errors(tiny_dream_folder: Path, tiny_dream_encoder: DiffEmbedEncoder) -> None:
    with pytest.raises(ValueError, match="role must be 'query' or 'document'"):
        tiny_dream_encoder.encode(["x"], role="passage")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"chunk_aggregation must be one of .*got 'avg'"):
        _load(tiny_dream_folder, chunk_aggregation="avg")
    with pytest.raises(ValueError, match="attention must be"):
        _load(tiny_dream_folder, attention="sideways")
    with pytest.raises(ValueError, match="unknown dtype"):
        _load(tiny_dream_folder, dtype="float8")


def test_a_missing_optional_dependency_names_the_extra() -> None:
    with pytest.raises(ImportError, match=r'pip install "diffemb\[eval\]"'):
        require("surely_not_installed_module", "eval", "BM25 scoring")


def test_progress_bar_is_off_by_default_and_on_when_asked(
    tiny_dream_encoder: DiffEmbedEncoder, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny_dream_encoder.encode_documents(["a b c"])
    assert "diffemb" not in capsys.readouterr().err
    tiny_dream_encoder.encode(["a b c"], show_progress=True)
    assert "diffemb" in capsys.readouterr().err


def test_fingerprint_tracks_vector_affecting_settings_only(tiny_dream_folder: Path) -> None:
    base = _load(tiny_dream_folder)
    assert base.fingerprint == _load(tiny_dream_folder, batch_tokens=128).fingerprint
    assert base.fingerprint != _load(tiny_dream_folder, max_length=32).fingerprint
    assert base.fingerprint != _load(tiny_dream_folder, query_instruction="Other:").fingerprint
    assert base.fingerprint != _load(tiny_dream_folder, chunk_aggregation="max").fingerprint


async def test_async_encoding_equals_sync(tiny_dream_encoder: DiffEmbedEncoder) -> None:
    texts = _texts(5, seed=9)
    np.testing.assert_allclose(
        await tiny_dream_encoder.aencode_queries(texts), tiny_dream_encoder.encode_queries(texts), atol=1e-6
    )
