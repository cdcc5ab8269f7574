"""Errors that say what is wrong: unknown evaluation tasks and damaged tokenizer files (issue 17, item 13)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from diffemb import DiffEmbedEncoder
from diffemb.cli.main import main


def _eval_error(capsys: pytest.CaptureFixture[str], tasks: str) -> str:
    assert main(["eval", "--model", "unused-model", "--tasks", tasks, "--quiet"]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("diffemb eval: error: "), captured.err
    return lines[0]


def test_unknown_task_lists_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    line = _eval_error(capsys, "local-passkey,no-such-task")
    assert "unknown task 'no-such-task'" in line and "hub" not in line.split("Known:")[0]
    for known in ("local-passkey", "local-needle", "local-pydocs", "local-manpages", "longembed", "bright"):
        assert known in line


@pytest.mark.parametrize(
    ("tasks", "suggestion"),
    [("local-paskey", "local-passkey"), ("longembd", "longembed"), ("LEMBPasskeyRetrievl", "LEMBPasskeyRetrieval")],
)
def test_a_misspelt_task_gets_a_suggestion(tasks: str, suggestion: str, capsys: pytest.CaptureFixture[str]) -> None:
    line = _eval_error(capsys, tasks)
    assert f"unknown task {tasks!r} (did you mean {suggestion}" in line


def _copy_checkpoint(source: Path, target: Path) -> Path:
    """A copy whose weights are a link (the tokenizer files are what the test breaks)."""
    target.mkdir()
    for path in source.iterdir():
        if path.is_file() and path.suffix == ".safetensors":
            (target / path.name).symlink_to(path)
        elif path.is_file():
            shutil.copy(path, target / path.name)
        else:
            shutil.copytree(path, target / path.name)
    return target


def test_truncated_tokenizer_json_is_named(minilm_folder: Path, tmp_path: Path) -> None:
    folder = _copy_checkpoint(minilm_folder, tmp_path / "minilm")
    tokenizer = folder / "tokenizer.json"
    tokenizer.write_bytes(tokenizer.read_bytes()[:500])
    with pytest.raises(ValueError, match=rf"the tokenizer file {tokenizer} is damaged \(Unterminated string"):
        DiffEmbedEncoder.from_pretrained(folder, device="cpu", shared=False)


def test_damaged_vocab_of_a_dream_checkpoint_is_named(tiny_dream_folder: Path, tmp_path: Path) -> None:
    folder = _copy_checkpoint(tiny_dream_folder, tmp_path / "dream")
    (folder / "vocab.json").write_bytes(b"\xff\xfe not json")
    with pytest.raises(ValueError, match=rf"the tokenizer file {folder / 'vocab.json'} is damaged"):
        DiffEmbedEncoder.from_pretrained(folder, device="cpu", dtype="float32", shared=False)


def test_damaged_tokenizer_is_one_line_on_the_command_line(
    minilm_folder: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    folder = _copy_checkpoint(minilm_folder, tmp_path / "minilm")
    (folder / "tokenizer.json").write_text("{}", encoding="utf-8")  # valid JSON, not a tokenizer
    source = tmp_path / "texts.txt"
    source.write_text("one text\n", encoding="utf-8")
    assert main(["embed", "--model", str(folder), str(source), "--device", "cpu", "-q"]) == 1
    err = capfd.readouterr().err.strip()
    assert err.startswith(f"diffemb: error: cannot load the tokenizer of {folder}") and "\n" not in err
    assert "tokenizer.json" in err and "download the checkpoint's tokenizer files again" in err
