"""`DiffEmbedEmbeddings` itself: fields, environment variables, a given encoder, outputs, input errors, import."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from diffemb import DiffEmbedEncoder
from langchain_diffemb import DiffEmbedEmbeddings

TINY: dict[str, Any] = {"device": "cpu", "dtype": "float32", "max_length": 64}


@pytest.fixture
def embeddings(tiny_dream_folder: Path) -> DiffEmbedEmbeddings:
    return DiffEmbedEmbeddings(model_name=str(tiny_dream_folder), **TINY)


@pytest.fixture(autouse=True)
def _no_diffemb_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in DiffEmbedEmbeddings.model_fields:
        monkeypatch.delenv(f"DIFFEMB_{name.upper()}", raising=False)


def test_outputs_are_python_floats_in_input_order(embeddings: DiffEmbedEmbeddings) -> None:
    texts = ["a red fox", "the stock market", "a red fox"]
    vectors = embeddings.embed_documents(texts)
    assert len(vectors) == 3 and all(len(v) == embeddings.encoder.dimension for v in vectors)
    assert all(type(x) is float for v in vectors for x in v)
    assert vectors[0] == vectors[2] and vectors[0] != vectors[1]
    np.testing.assert_allclose(vectors, embeddings.encoder.encode_documents(texts), atol=1e-6)
    query = embeddings.embed_query("a red fox")
    assert all(type(x) is float for x in query)
    np.testing.assert_allclose(query, embeddings.encoder.encode_queries(["a red fox"])[0], atol=1e-6)


async def test_empty_input_gives_empty_list(embeddings: DiffEmbedEmbeddings) -> None:
    assert embeddings.embed_documents([]) == []
    assert await embeddings.aembed_documents([]) == []


def test_query_and_document_differ_by_the_query_instruction(tiny_dream_folder: Path) -> None:
    text = "how do tides work"
    asymmetric = DiffEmbedEmbeddings(model_name=str(tiny_dream_folder), query_instruction="Find the answer:", **TINY)
    assert asymmetric.embed_query(text) != asymmetric.embed_documents([text])[0]
    symmetric = DiffEmbedEmbeddings(model_name=str(tiny_dream_folder), query_instruction="", **TINY)
    np.testing.assert_allclose(symmetric.embed_query(text), symmetric.embed_documents([text])[0], atol=1e-6)


def test_bad_inputs_are_named_by_index(embeddings: DiffEmbedEmbeddings) -> None:
    with pytest.raises(TypeError, match=r"\[1\]"):
        embeddings.embed_documents(["fine", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"\[2\]"):
        embeddings.embed_documents(["fine", "also fine", "   "])
    with pytest.raises(TypeError, match="single str"):
        embeddings.embed_documents("not a list")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\[0\]"):
        embeddings.embed_query("")


def test_fields_reach_the_encoder_and_typos_fail(tiny_dream_folder: Path) -> None:
    embeddings = DiffEmbedEmbeddings(
        model_name=str(tiny_dream_folder),
        query_instruction="Q:",
        chunk_size=16,
        chunk_overlap=4,
        chunk_aggregation="max",
        normalize=False,
        batch_tokens=512,
        **TINY,
    )
    settings = embeddings.encoder.settings
    assert settings.profile.query_instruction == "Q:" and settings.profile.max_length == 64
    assert (settings.chunking.size, settings.chunking.overlap, settings.chunking.aggregation) == (16, 4, "max")
    assert settings.profile.normalize is False and settings.batch_tokens == 512
    with pytest.raises(ValidationError, match="frozen"):
        embeddings.max_length = 32  # type: ignore[misc]
    with pytest.raises(ValidationError, match="max_lenght"):
        DiffEmbedEmbeddings(model_name=str(tiny_dream_folder), max_lenght=64)
    with pytest.raises(ValidationError, match="chunk_aggregation"):
        DiffEmbedEmbeddings(model_name=str(tiny_dream_folder), chunk_aggregation="none")
    with pytest.raises(ValidationError, match="model_name is required"):
        DiffEmbedEmbeddings()


def test_equal_settings_share_one_loaded_model(tiny_dream_folder: Path) -> None:
    first = DiffEmbedEmbeddings(model_name=str(tiny_dream_folder), **TINY)
    second = DiffEmbedEmbeddings(model_name=str(tiny_dream_folder), show_progress=False, **TINY)
    assert first.encoder.model is second.encoder.model
    assert DiffEmbedEmbeddings(model_name=str(tiny_dream_folder), device="cpu").encoder is not first.encoder


def test_environment_fills_missing_settings_and_arguments_win(
    tiny_dream_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIFFEMB_MODEL_NAME", str(tiny_dream_folder))
    monkeypatch.setenv("DIFFEMB_MAX_LENGTH", "40")
    monkeypatch.setenv("DIFFEMB_NORMALIZE", "false")
    monkeypatch.setenv("DIFFEMB_DEVICE", "cpu")
    monkeypatch.setenv("DIFFEMB_DTYPE", "float32")
    from_env = DiffEmbedEmbeddings()
    assert from_env.model_name == str(tiny_dream_folder) and from_env.max_length == 40 and from_env.normalize is False
    assert from_env.encoder.settings.profile.max_length == 40 and from_env.encoder.settings.profile.normalize is False
    explicit = DiffEmbedEmbeddings(max_length=32, normalize=None)
    assert explicit.max_length == 32 and explicit.normalize is None
    assert explicit.encoder.settings.profile.max_length == 32 and explicit.encoder.settings.profile.normalize is True


def test_given_encoder_is_used_as_is(tiny_dream_encoder: DiffEmbedEncoder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIFFEMB_MAX_LENGTH", "999")  # ignored: the encoder's settings are what they are
    embeddings = DiffEmbedEmbeddings(encoder=tiny_dream_encoder)
    assert embeddings.encoder is tiny_dream_encoder
    assert embeddings.model_name == tiny_dream_encoder.settings.model and embeddings.max_length == 64
    assert embeddings.query_instruction == tiny_dream_encoder.settings.profile.query_instruction
    assert embeddings.cache_namespace == f"diffemb-{tiny_dream_encoder.fingerprint}"
    np.testing.assert_allclose(embeddings.embed_query("hi"), tiny_dream_encoder.encode_queries(["hi"])[0], atol=1e-6)
    assert DiffEmbedEmbeddings(encoder=tiny_dream_encoder, max_length=64, show_progress=True).show_progress is True
    with pytest.raises(ValueError, match="max_length"):
        DiffEmbedEmbeddings(encoder=tiny_dream_encoder, max_length=128)


def test_missing_langchain_core_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(sys.modules):
        if name.split(".")[0] == "langchain_diffemb":
            monkeypatch.delitem(sys.modules, name)
        elif name.split(".")[0] == "langchain_core":
            monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules makes `import` fail
    monkeypatch.setitem(sys.modules, "langchain_core", None)
    with pytest.raises(ImportError, match=re.escape('pip install "diffemb[langchain]"')):
        importlib.import_module("langchain_diffemb")
