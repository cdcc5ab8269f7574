"""Hostile arguments and data for `diffemb train` (issue 17, items 2 and 12).

A run that cannot learn (one pair per step and no negative: InfoNCE over one candidate is 0) is refused before
the model loads, and a run whose loss stayed 0 anyway saves no adapter. Bad arguments are one-line errors
before anything loads; bad bytes in the data name the file and the line.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("sentence_transformers")
pytest.importorskip("datasets")
pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")

from diffemb.cli.main import main  # noqa: E402
from diffemb.training import DataError  # noqa: E402
from diffemb.training.data import check_loss_moved  # noqa: E402
from diffemb.training.train import train  # noqa: E402

FAST = {"device": "cpu", "dtype": "float32", "show_progress": False}
PAIRS = [
    {"query": "what colour is the sky?", "positive": "The sky is blue."},
    {"query": "what colour is grass?", "positive": "Grass is green."},
    {"query": "what colour is snow?", "positive": "Snow is white."},
]


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _train_cli(tmp_path: Path, *extra: str, data: Path | None = None, output: Path | None = None) -> int:
    data = data or _jsonl(tmp_path / "pairs.jsonl", PAIRS)
    output = output or tmp_path / "adapter"
    return main(["train", "--model", "unused-model", "--data", str(data), "--output", str(output), *extra])


# -- item 2: nothing to contrast ----------------------------------------------------------------------------------


def test_batch_of_one_without_negatives_is_refused_before_loading(tmp_path: Path) -> None:
    # "unused-model" cannot load: the refusal comes first, and nothing is written.
    with pytest.raises(DataError, match="nothing to contrast: every training step holds one pair"):
        train("unused-model", PAIRS, tmp_path / "adapter", batch_size=1, eval_fraction=0.0, **FAST)
    with pytest.raises(DataError, match=r"nothing to contrast.*\(1 training pair\(s\), batch size \d+\)"):
        train("unused-model", PAIRS[:1], tmp_path / "adapter", eval_fraction=0.0, **FAST)
    assert not (tmp_path / "adapter").exists()


def test_cli_refuses_a_run_with_nothing_to_contrast(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _train_cli(tmp_path, "--batch-size", "1", "--eval-fraction", "0") == 2
    err = capsys.readouterr().err
    assert err.startswith("diffemb train: error: nothing to contrast") and len(err.strip().splitlines()) == 1


def test_hard_negatives_give_a_batch_of_one_something_to_contrast(tmp_path: Path, tiny_dream_folder: Path) -> None:
    rows = [{**row, "negatives": ["Coal is black."]} for row in PAIRS]
    result = train(tiny_dream_folder, rows, tmp_path / "adapter", batch_size=1, max_steps=2, eval_fraction=0.0,
                   lora_r=4, lora_alpha=8, logging_steps=1, **FAST)  # fmt: skip
    assert result.steps == 2 and all(loss > 0 for _, loss in result.losses)


def test_a_loss_that_stayed_zero_saves_no_adapter(tmp_path: Path, tiny_dream_folder: Path) -> None:
    # Two pairs with the same positive: the no-duplicates sampler puts them in separate batches of one, so the
    # up-front check (two pairs, batch size 2) passes but every step has a single candidate.
    rows = [{"query": "what colour is the sky?", "positive": "The sky is blue."},
            {"query": "name the sky's colour", "positive": "The sky is blue."}]  # fmt: skip
    out = tmp_path / "adapter"
    with pytest.raises(DataError, match="the training loss was 0 at every logged step"):
        train(tiny_dream_folder, rows, out, batch_size=2, max_steps=2, eval_fraction=0.0, lora_r=4, lora_alpha=8,
              logging_steps=1, **FAST)  # fmt: skip
    assert not (out / "adapter_model.safetensors").exists() and not (out / "diffemb.json").exists()


def test_loss_check_accepts_any_step_that_moved() -> None:
    check_loss_moved([(1, 0.0), (2, 0.3)])
    check_loss_moved([])  # no logged step: nothing to judge
    with pytest.raises(DataError, match=r"steps 1\.\.3"):
        check_loss_moved([(1, 0.0), (2, 0.0), (3, 0.0)])


# -- item 12: arguments checked up front ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argument", "value", "message"),
    [
        ("--batch-size", "0", "argument --batch-size: must be a positive number, got 0"),
        ("--max-steps", "-3", "argument --max-steps: must be a positive number, got -3"),
        ("--max-steps", "0", "argument --max-steps: must be a positive number, got 0"),
        ("--epochs", "0", "argument --epochs: must be a positive number"),
        ("--grad-accum", "0", "argument --grad-accum: must be a positive number"),
        ("--lora-r", "0", "argument --lora-r: must be a positive number"),
        ("--warmup-steps", "-1", "argument --warmup-steps: must be zero or more"),
        ("--lr", "0", "argument --lr: must be a positive number"),
        ("--eval-fraction", "1", "argument --eval-fraction: must be at least 0 and below 1"),
        ("--lora-dropout", "-0.1", "argument --lora-dropout: must be at least 0 and below 1"),
    ],
)
def test_bad_numbers_are_usage_errors(
    argument: str, value: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _train_cli(tmp_path, argument, value)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("diffemb: error: ") and message in lines[0]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"batch_size": 0}, "batch_size must be a positive number, got 0"),
        ({"max_steps": 0}, "max_steps must be a positive number, got 0"),
        ({"max_steps": -3}, "max_steps must be a positive number, got -3"),
        ({"warmup_steps": -1}, "warmup_steps must be zero or more"),
        ({"eval_fraction": 1.5}, r"eval_fraction must be in \[0, 1\)"),
    ],
)
def test_the_python_api_checks_the_same_numbers(overrides: dict[str, object], message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=message):
        train("unused-model", PAIRS, tmp_path / "adapter", **overrides, **FAST)  # type: ignore[arg-type]


def test_bad_utf8_data_names_the_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_bytes(json.dumps(PAIRS[0]).encode() + b'\n{"query": "caf\xe9", "positive": "x"}\n')
    assert _train_cli(tmp_path, data=data) == 2
    err = capsys.readouterr().err
    assert f"{data}: 1 bad row(s)" in err and "line 2: not UTF-8 text (bad byte at column 15)" in err


def test_an_output_that_is_a_file_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "adapter.bin"
    output.write_bytes(b"not a folder")
    assert _train_cli(tmp_path, output=output) == 2
    err = capsys.readouterr().err
    assert f"the output {output} is a file" in err and "checkpoints" not in err
    assert output.read_bytes() == b"not a folder"
    assert _train_cli(tmp_path, output=output / "inside") == 2
    assert f"{output} is a file" in capsys.readouterr().err
