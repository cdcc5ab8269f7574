"""Every keyword `DiffEmbedEmbedding` accepts is honoured or refused with a reason, never silently dropped."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from diffemb import DiffEmbedEncoder
from llamaindex_diffemb import DiffEmbedEmbedding

TINY: dict[str, Any] = {"device": "cpu", "dtype": "float32", "max_length": 64}
REPO_ID = "diffemb-test/tiny-dream"


def hub_cache_with(folder: Path, root: Path) -> Path:
    """A Hugging Face download cache holding `folder` as the `main` snapshot of REPO_ID (what a download leaves)."""
    commit = "0" * 40
    repo = root / ("models--" + REPO_ID.replace("/", "--"))
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return root


def test_cache_folder_is_where_the_hub_id_is_found(tiny_dream_folder: Path, tmp_path: Path) -> None:
    cache = hub_cache_with(tiny_dream_folder, tmp_path / "hf-cache")
    embedder = DiffEmbedEmbedding(REPO_ID, cache_folder=str(cache), local_files_only=True, **TINY)
    assert embedder.cache_folder == str(cache)
    reference = DiffEmbedEncoder.from_pretrained(tiny_dream_folder, **TINY)
    np.testing.assert_allclose(
        embedder.get_text_embedding("a tide table"), reference.encode(["a tide table"])[0], atol=1e-5
    )
    with pytest.raises(OSError):  # the same id without that cache folder is not found offline
        DiffEmbedEmbedding(REPO_ID, local_files_only=True, **TINY)


def test_trust_remote_code_true_is_refused_with_the_reason(tiny_dream_folder: Path) -> None:
    with pytest.raises(ValueError, match="never runs a checkpoint's own Python code"):
        DiffEmbedEmbedding(str(tiny_dream_folder), trust_remote_code=True, **TINY)
    assert DiffEmbedEmbedding(str(tiny_dream_folder), trust_remote_code=False, **TINY).trust_remote_code is False


def test_unknown_keywords_are_errors_not_dropped(tiny_dream_folder: Path) -> None:
    with pytest.raises(ValidationError, match="max_lenght"):
        DiffEmbedEmbedding(str(tiny_dream_folder), max_lenght=64)
    with pytest.raises(ValidationError, match="model_kwarg"):
        DiffEmbedEmbedding(str(tiny_dream_folder), model_kwarg={}, **TINY)


def test_loading_options_beside_a_given_encoder_are_refused(
    tiny_dream_encoder: DiffEmbedEncoder, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="cache_folder only apply when loading"):
        DiffEmbedEmbedding(encoder=tiny_dream_encoder, cache_folder=str(tmp_path))
    with pytest.raises(ValueError, match="local_files_only only apply when loading"):
        DiffEmbedEmbedding(encoder=tiny_dream_encoder, local_files_only=True)


def test_every_field_survives_a_round_trip(tiny_dream_folder: Path, tmp_path: Path) -> None:
    cache = hub_cache_with(tiny_dream_folder, tmp_path / "hf-cache")
    embedder = DiffEmbedEmbedding(REPO_ID, cache_folder=str(cache), local_files_only=True, embed_batch_size=7, **TINY)
    again = DiffEmbedEmbedding.from_dict(embedder.to_dict())
    assert again.to_dict() == embedder.to_dict()
    assert again.cache_folder == str(cache) and again.embed_batch_size == 7
