"""What training writes: one module (diffemb.adapter_settings) writes diffemb.json and loading reads it back;
the training modules import without a circle."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from diffemb.adapter_settings import (
    ADAPTER_SETTINGS_FILE,
    read_adapter_record,
    read_adapter_settings,
    write_adapter_settings,
)
from diffemb.profiles import DREAM
from diffemb.training.output import ADAPTER_FILES, check_output


def test_written_settings_read_back_as_the_profile(tmp_path: Path) -> None:
    profile = replace(DREAM, query_instruction=None, max_length=256, pooling="last", attention="causal")
    written = write_adapter_settings(tmp_path, profile, {"recipe": "long", "steps": 3})
    assert read_adapter_record(tmp_path) == written
    assert written["format"] == 1 and written["recipe"] == "long"
    settings = read_adapter_settings(tmp_path)
    assert settings == {
        "attention": "causal",
        "pooling": "last",
        "max_length": 256,
        "query_instruction": "",  # none, explicitly: loading cannot fall back to the family's
        "document_instruction": "",
        "exclude_instruction": False,
        "normalize": True,
    }
    assert [p.name for p in tmp_path.iterdir()] == [ADAPTER_SETTINGS_FILE]  # no temporary file left behind


def test_a_hand_edited_field_is_named(tmp_path: Path) -> None:
    (tmp_path / ADAPTER_SETTINGS_FILE).write_text(json.dumps({"encoder": {"max_length": "12"}}), "utf-8")
    with pytest.raises(ValueError, match="max_length must be int, got '12'"):
        read_adapter_settings(tmp_path)
    (tmp_path / ADAPTER_SETTINGS_FILE).write_text("[1, 2]", "utf-8")
    with pytest.raises(ValueError, match="must hold a JSON object"):
        read_adapter_settings(tmp_path)
    assert read_adapter_settings(tmp_path / "missing") == {}


def test_an_earlier_run_is_not_overwritten_by_accident(tmp_path: Path) -> None:
    (tmp_path / ADAPTER_FILES[0]).write_text("{}", "utf-8")
    with pytest.raises(FileExistsError, match="already holds a training run"):
        check_output(tmp_path, tmp_path / "checkpoints", resume=False, overwrite=False)
    assert check_output(tmp_path, tmp_path / "checkpoints", resume=False, overwrite=True) is None


def test_training_modules_import_without_a_circle() -> None:
    """`train` imports `model`, `output` and `evaluator`; none of them imports `train` back (nor `model` from
    `output`, which only names it for type checking)."""
    import ast

    import diffemb.training as package

    folder = Path(package.__file__).parent
    for name in ("model", "output", "evaluator", "data"):
        tree = ast.parse((folder / f"{name}.py").read_text("utf-8"))
        assert not any(
            isinstance(node, ast.ImportFrom) and node.module == "diffemb.training.train" for node in ast.walk(tree)
        ), name
