"""A missing optional package names the diffemb extra that brings it (diffemb.extras.require), never a bare
`No module named ...`: checked by hiding the package from the import system."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from diffemb.extras import require


def _hide(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make `import module` fail as if the package were not installed (None in sys.modules halts an import)."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)  # type: ignore[arg-type]


def _forget(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Drop cached diffemb modules so that they import afresh (the originals come back after the test)."""
    for name in modules:
        if name in sys.modules:
            monkeypatch.delitem(sys.modules, name)


def test_require_names_the_extra_and_the_purpose(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide(monkeypatch, "bm25s")
    with pytest.raises(
        ImportError, match=r"the BM25 floor needs the Python package 'bm25s': pip install \"diffemb\[eval\]\""
    ):
        require("bm25s", "eval", "the BM25 floor")
    assert require("json", "none", "x") is sys.modules["json"]  # present: the module itself


def test_training_without_its_extra_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide(monkeypatch, "datasets")
    _forget(monkeypatch, "diffemb.training.train")
    # sentence-transformers itself needs datasets, so either package may be the one named.
    with pytest.raises(
        ImportError, match=r"diffemb train needs the Python package '\w+': pip install \"diffemb\[train\]\""
    ):
        importlib.import_module("diffemb.training.train")


def test_diffemb_train_without_its_extra_prints_the_install_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from diffemb.cli.main import main

    _hide(monkeypatch, "datasets")
    _forget(monkeypatch, "diffemb.training.train")
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"query": "q", "positive": "p", "negatives": ["n"]}\n', "utf-8")
    code = main(["train", "--model", "some-model", "--data", str(data), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code != 0
    assert 'pip install "diffemb[train]"' in err and err.count("pip install") == 1, err
    assert "No module named" not in err
    assert not (tmp_path / "out").exists()


def test_evaluation_without_its_extra_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from diffemb.evaluation import mteb_adapter
    from diffemb.tasks import RetrievalTask, bm25_scores

    _hide(monkeypatch, "mteb", "bm25s")
    for flag in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(flag, "1")  # import_mteb sets them; keep them out of later tests
    with pytest.raises(ImportError, match=r"'mteb': pip install \"diffemb\[eval\]\""):
        mteb_adapter.import_mteb()
    task = RetrievalTask(name="t", queries={"q": "a"}, corpus={"d": "a"}, qrels={"q": {"d": 1}}, metric="ndcg@10")
    with pytest.raises(ImportError, match=r"'bm25s': pip install \"diffemb\[eval\]\""):
        bm25_scores(task)
