"""LangChain's standard embeddings suites (langchain-tests), run unchanged against a tiny local Dream checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

from langchain_diffemb import DiffEmbedEmbeddings


class _TinyDream:
    """Points the suites at the session's tiny Dream checkpoint (their parameters are properties, not fixtures)."""

    folder: Path

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _tiny_folder(cls, tiny_dream_folder: Path) -> None:
        cls.folder = tiny_dream_folder

    @property
    def embeddings_class(self) -> type[DiffEmbedEmbeddings]:
        return DiffEmbedEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model_name": str(self.folder), "device": "cpu", "dtype": "float32", "max_length": 64}


class TestDiffEmbedEmbeddingsUnit(_TinyDream, EmbeddingsUnitTests):
    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        env = {
            "DIFFEMB_MODEL_NAME": str(self.folder),
            "DIFFEMB_MAX_LENGTH": "48",
            "DIFFEMB_QUERY_INSTRUCTION": "Find the passage:",
            "DIFFEMB_DEVICE": "cpu",
        }
        expected = {
            "model_name": str(self.folder),
            "max_length": 48,
            "query_instruction": "Find the passage:",
            "device": "cpu",
            "dtype": "float32",
        }
        return env, {"dtype": "float32"}, expected


class TestDiffEmbedEmbeddingsIntegration(_TinyDream, EmbeddingsIntegrationTests):
    pass
