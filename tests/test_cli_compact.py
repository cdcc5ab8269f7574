"""`diffemb embed --precision/--truncate-dim` and the model-loading options `--quantization`/`--model-kwargs`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diffemb import DiffEmbedEncoder
from diffemb.cli.main import main

TEXTS = [
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris.",
    "Honeybees communicate the location of flowers through a waggle dance.",
    "Git branches let developers work on features without touching the main line.",
]


def test_embed_writes_packed_bits_and_int8_codes(
    tmp_path: Path, minilm_folder: Path, minilm_encoder: DiffEmbedEncoder, capfd: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "texts.txt"
    source.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    bits = tmp_path / "bits.npy"
    argv = ["embed", str(source), "-o", str(bits), "--model", str(minilm_folder), "--device", "cpu", "-q"]
    assert main([*argv, "--precision", "ubinary", "--truncate-dim", "128"]) == 0
    expected = minilm_encoder.encode_documents(TEXTS, precision="ubinary", truncate_dim=128)
    np.testing.assert_array_equal(np.load(bits), expected)
    assert np.load(bits).shape == (3, 16) and np.load(bits).dtype == np.uint8
    pq = pytest.importorskip("pyarrow.parquet")
    table_path = tmp_path / "codes.parquet"
    argv[3] = str(table_path)
    assert main([*argv, "--precision", "int8"]) == 0
    assert "diffemb: warning: int8 ranges come from these 3 vectors alone" in capfd.readouterr().err
    column = pq.read_table(table_path).column("embedding")
    assert str(column.type.value_type) == "int8" and column.type.list_size == 384
    assert np.asarray(column.to_pylist()).min() >= -128


def test_embed_with_int8_weights_and_model_kwargs(tmp_path: Path, tiny_dream_folder: Path) -> None:
    source = tmp_path / "texts.txt"
    source.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    out = tmp_path / "out.npy"
    argv = ["embed", str(source), "-o", str(out), "--model", str(tiny_dream_folder), "--device", "cpu", "-q"]
    assert main([*argv, "--dtype", "float32"]) == 0
    full = np.load(out)
    assert (
        main([*argv, "--dtype", "float32", "--quantization", "int8", "--model-kwargs", '{"low_cpu_mem_usage": true}'])
        == 0
    )
    int8 = np.load(out)
    cosine = (full * int8).sum(1) / (np.linalg.norm(full, axis=1) * np.linalg.norm(int8, axis=1))
    assert cosine.min() > 0.99


def test_bad_options_are_one_line_errors(
    tmp_path: Path, tiny_dream_folder: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "texts.txt"
    source.write_text("one text\n", encoding="utf-8")
    argv = ["embed", str(source), "--model", str(tiny_dream_folder), "--device", "cpu", "-q"]
    with pytest.raises(SystemExit):
        main([*argv, "--model-kwargs", "[1, 2]"])
    assert "must be a JSON object" in capfd.readouterr().err
    assert main([*argv, "--quantization", "nf4"]) == 1
    assert "'nf4' needs a CUDA GPU" in capfd.readouterr().err
    assert main([*argv, "--truncate-dim", "4096"]) == 1
    assert "truncate_dim=4096 is more than" in capfd.readouterr().err
