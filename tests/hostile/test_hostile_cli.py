"""Hostile input files and signals for `diffemb embed` (issue 17, items 1, 5, 9 and 15).

A bad text is one error line naming the file and its line (before any model loads when the characters alone
show it), a folder or a misapplied option is an error rather than a guess, and SIGTERM cleans up like Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from diffemb.cli.main import main


def _one_error(capfd: pytest.CaptureFixture[str]) -> str:
    captured = capfd.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("diffemb: error: "), captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    return lines[0]


def _embed(source: Path, *extra: str, model: str = "unused-model-name") -> int:
    return main(["embed", "--model", model, str(source), "--output", str(source.parent / "out.npy"), "-q", *extra])


def test_invisible_line_is_named_before_the_model_loads(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "texts.txt"
    source.write_text("first text\n\u200b\ufeff\x00\nthird text\n", encoding="utf-8")
    assert _embed(source) == 1  # "unused-model-name" would fail to load: the error comes first
    line = _one_error(capfd)
    assert f"line 2 of {source} has only invisible characters" in line
    assert not (tmp_path / "out.npy").exists()


def test_lone_surrogate_in_a_jsonl_record_is_named(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "texts.jsonl"
    source.write_text('{"text": "fine"}\n{"text": "caf\\ud800"}\n', encoding="utf-8")  # valid JSON, bad text
    assert _embed(source) == 1
    assert f"line 2 of {source} is not valid Unicode text (lone surrogate" in _one_error(capfd)


def test_text_without_tokens_is_named_by_its_line(
    tmp_path: Path, minilm_folder: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "texts.txt"
    source.write_text("The sky is blue.\nBees dance.\n\u0301\u0302\n", encoding="utf-8")
    assert _embed(source, "--device", "cpu", model=str(minilm_folder)) == 1
    assert f"line 3 of {source} has no tokens for this model" in _one_error(capfd)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["texts.txt"]


def test_a_folder_input_says_it_is_a_folder(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["embed", "--model", "unused", ".", "-q"]) == 1
    line = _one_error(capfd)
    assert ". is a folder" in line and "unknown extension" not in line


def test_text_field_with_a_txt_file_is_an_error(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "texts.txt"
    source.write_text("one\ntwo\n", encoding="utf-8")
    assert _embed(source, "--text-field", "body") == 1
    assert "--text-field does not apply to" in _one_error(capfd)


SLOW_WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from diffemb.cli import main

    real_save = np.save

    def slow_save(handle, array):  # the vectors are written to the hidden temp file, then the run stalls
        real_save(handle, array)
        handle.flush()
        print("writing", flush=True)
        time.sleep(120)

    np.save = slow_save
    sys.exit(main(sys.argv[1:]))
    """
)


def test_sigterm_while_writing_removes_the_temp_file(tmp_path: Path, tiny_dream_folder: Path) -> None:
    source, output = tmp_path / "texts.txt", tmp_path / "vectors.npy"
    source.write_text("one text\nanother text\n", encoding="utf-8")
    args = ["embed", "--model", str(tiny_dream_folder), str(source), "--output", str(output), "-q", "--device", "cpu"]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "writing", process.stderr.read() if process.stderr else ""
        partial = [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")]
        assert partial and partial[0].startswith(".vectors.npy.")  # the temp file is there while it writes
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 143, err
    assert "diffemb: error: terminated" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["texts.txt"]  # no temp file, no half output
