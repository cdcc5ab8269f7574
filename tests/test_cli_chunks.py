"""`diffemb embed --chunks`: one row per model window, with the document's id, the window's span and vector."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from diffemb import DiffEmbedEncoder
from diffemb.cli.main import main
from diffemb.testing.long_documents import NEEDLE, needle_corpus

pq = pytest.importorskip("pyarrow.parquet")


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("chunks") / "docs.jsonl"
    rows = [{"id": f"doc-{name}", "text": text} for name, text in needle_corpus(sentences=12, needle_after=8).items()]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def read_rows(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()  # type: ignore[no-any-return]
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize(("suffix", "late"), [(".parquet", False), (".jsonl", True)])
def test_window_rows_match_the_core(
    corpus_file: Path, minilm_folder: Path, minilm_encoder: DiffEmbedEncoder, tmp_path: Path, suffix: str, late: bool
) -> None:
    output = tmp_path / f"windows{suffix}"
    argv = ["embed", "-m", str(minilm_folder), str(corpus_file), "-o", str(output), "--chunks", "--id-field", "id"]
    argv += ["--max-length", "64", "--device", "cpu", "-q"] + (["--chunk-aggregation", "late"] if late else [])
    assert main(argv) == 0
    rows = read_rows(output)
    records = [json.loads(line) for line in corpus_file.read_text(encoding="utf-8").splitlines()]
    view = minilm_encoder.with_settings(max_length=64, chunk_aggregation="late" if late else "none")
    expected = view.encode_document_chunks([r["text"] for r in records])
    assert len(rows) == sum(len(c) for c in expected)
    position = 0
    for record, chunks in zip(records, expected, strict=True):
        for index, (span, tokens, vector) in enumerate(
            zip(chunks.spans, chunks.token_counts, chunks.vectors, strict=True)
        ):
            row = rows[position]
            position += 1
            assert (row["document_id"], row["window_index"]) == (record["id"], index)
            assert (row["start"], row["end"], row["token_count"]) == (*span, tokens)
            np.testing.assert_allclose(row["embedding"], vector, atol=1e-5)
    needle_rows = [r for r in rows if NEEDLE in next(x["text"] for x in records if x["id"] == r["document_id"])
                   [r["start"] : r["end"]]]  # fmt: skip
    assert needle_rows or late  # plain windows: one holds the whole needle sentence


@pytest.mark.parametrize(
    ("extra", "output", "message"),
    [
        ([], "out.npy", ".npy holds one vector per text"),
        (["--role", "query"], "out.parquet", "leave out --role query"),
        (["--id-field", "missing"], "out.jsonl", "has no 'missing' value"),
    ],
)
def test_errors_are_one_line(
    corpus_file: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str], extra: list[str], output: str, message: str
) -> None:
    argv = ["embed", "-m", "unused-model", str(corpus_file), "-o", str(tmp_path / output), "--chunks", *extra]
    assert main(argv) == 1
    err = capfd.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / output).exists()


def test_repeated_ids_and_default_ids(tmp_path: Path, minilm_folder: Path, capfd: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "dup.jsonl"
    source.write_text('{"id": 1, "text": "one"}\n{"id": 1, "text": "two"}\n', encoding="utf-8")
    assert (
        main(["embed", "-m", "unused", str(source), "-o", str(tmp_path / "o.jsonl"), "--chunks", "--id-field", "id"])
        == 1
    )
    assert "line 2 of" in capfd.readouterr().err
    text = tmp_path / "plain.txt"
    text.write_text("first text\nsecond text\n", encoding="utf-8")
    output = tmp_path / "plain.parquet"
    assert (
        main(["embed", "-m", str(minilm_folder), str(text), "-o", str(output), "--chunks", "--device", "cpu", "-q"])
        == 0
    )
    assert [(r["document_id"], r["window_index"]) for r in read_rows(output)] == [(0, 0), (1, 0)]
