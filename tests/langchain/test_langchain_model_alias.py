"""`DiffEmbedEmbeddings(model=...)`, as users of langchain-huggingface write it, and options that cannot apply."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from diffemb import DiffEmbedEncoder
from langchain_diffemb import DiffEmbedEmbeddings

TINY: dict[str, Any] = {"device": "cpu", "dtype": "float32", "max_length": 64}


@pytest.fixture(autouse=True)
def _no_diffemb_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in DiffEmbedEmbeddings.model_fields:
        monkeypatch.delenv(f"DIFFEMB_{name.upper()}", raising=False)


def test_model_is_an_alias_of_model_name(tiny_dream_folder: Path) -> None:
    by_alias = DiffEmbedEmbeddings(model=str(tiny_dream_folder), **TINY)
    by_name = DiffEmbedEmbeddings(model_name=str(tiny_dream_folder), **TINY)
    assert by_alias.model_name == str(tiny_dream_folder)
    assert by_alias.encoder.model is by_name.encoder.model  # one loaded model, same settings
    assert by_alias.embed_query("tides") == by_name.embed_query("tides")


def test_model_and_model_name_together_are_refused(tiny_dream_folder: Path) -> None:
    with pytest.raises(ValidationError, match="model= and model_name= are the same setting"):
        DiffEmbedEmbeddings(model=str(tiny_dream_folder), model_name=str(tiny_dream_folder), **TINY)


def test_model_beats_the_environment(tiny_dream_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIFFEMB_MODEL_NAME", "not/a-model")
    assert DiffEmbedEmbeddings(model=str(tiny_dream_folder), **TINY).model_name == str(tiny_dream_folder)


def test_a_loading_option_beside_a_given_encoder_is_refused(tiny_dream_encoder: DiffEmbedEncoder) -> None:
    with pytest.raises(ValueError, match="local_files_only only applies when loading"):
        DiffEmbedEmbeddings(encoder=tiny_dream_encoder, local_files_only=True)
