"""The `diffemb` command line, offline, with all-MiniLM-L6-v2 as the model.

A new process spends about ten CPU seconds importing torch and transformers, so two runs are subprocesses, started
side by side: the installed console script (embed .txt → .npy, with its progress bar) and `python -m diffemb.cli
search`, whose cached vectors the second search, in this process, must find on disk. Everything else calls
`diffemb.cli.main(argv)`, the function the console script runs, in this process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from diffemb import DiffEmbedEncoder
from diffemb.cli.io import CliError, Records, write_vectors
from diffemb.cli.main import main

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "examples" / "docs"
TEXTS = [
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris.",
    "Honeybees communicate the location of flowers through a waggle dance.",
    "Git branches let developers work on features without touching the main line.",
]
QUERIES = ["When was the iron tower in Paris finished?", "How do bees share where food is?"]
BICYCLE_QUERY = "Who came up with air-filled tyres for bikes?"
BEES_QUERY = "How do bees tell each other where the flowers are?"

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def _env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env["OMP_NUM_THREADS"] = "1"  # several runs share two cores
    env.pop("DIFFEMB_DEBUG", None)
    return env


def _start(*args: str, script: bool = False) -> subprocess.Popen[str]:
    command = [str(Path(sys.executable).parent / "diffemb")] if script else [sys.executable, "-m", "diffemb.cli"]
    return subprocess.Popen(
        [*command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=REPO
    )


def _finish(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    out, err = process.communicate(timeout=600)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    (root / "texts.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    rows = [{"id": f"t{i}", "body": text, "year": 2000 + i} for i, text in enumerate(TEXTS)]
    (root / "texts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    pq.write_table(pa.table({"query": QUERIES, "qid": [7, 8]}), root / "queries.parquet")
    shutil.copytree(DOCS, root / "docs", ignore=shutil.ignore_patterns(".diffemb-cache"))
    return root


@pytest.fixture(scope="module")
def runs(work: Path, minilm_folder: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    """The two runs in their own processes, side by side: the console script, and the first search."""
    model = str(minilm_folder)
    txt = _start("embed", "--model", model, str(work / "texts.txt"), "--output", str(work / "out.npy"), script=True)
    cache = str(work / "cache")
    search = _start("search", "-m", model, "--docs", str(work / "docs"), BICYCLE_QUERY, "-k", "3", "--json",
                    "--cache-dir", cache)  # fmt: skip
    return {"search1": _finish(search), "txt": _finish(txt)}


def _main(capsys: pytest.CaptureFixture[str], *argv: str) -> subprocess.CompletedProcess[str]:
    """`main(argv)` in this process (what the console script calls), with its exit code and output."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(argv, code, captured.out, captured.err)


def _ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_embed_txt_to_npy_matches_python_api(runs: dict, work: Path, minilm_encoder: DiffEmbedEncoder) -> None:
    _ok(runs["txt"])
    vectors = np.load(work / "out.npy")
    assert vectors.shape == (3, minilm_encoder.dimension) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, minilm_encoder.encode_documents(TEXTS), atol=1e-5)
    assert "100%" in runs["txt"].stderr  # the progress bar went to stderr
    assert "wrote 3 float32 vectors of 384 values" in runs["txt"].stderr


def test_embed_jsonl_to_parquet_keeps_fields(
    work: Path, minilm_folder: Path, minilm_encoder: DiffEmbedEncoder, capsys: pytest.CaptureFixture[str]
) -> None:
    source, output = str(work / "texts.jsonl"), str(work / "out.parquet")
    _ok(_main(capsys, "embed", "-m", str(minilm_folder), source, "--text-field", "body", "-o", output, "-q"))
    table = pq.read_table(work / "out.parquet")
    assert table.column_names == ["id", "body", "year", "embedding"]
    assert table.column("id").to_pylist() == ["t0", "t1", "t2"]
    assert table.column("year").to_pylist() == [2000, 2001, 2002]
    vectors = np.asarray(table.column("embedding").to_pylist(), dtype=np.float32)
    np.testing.assert_allclose(vectors, minilm_encoder.encode_documents(TEXTS), atol=1e-5)


def test_embed_parquet_to_jsonl_as_queries(
    work: Path, minilm_folder: Path, minilm_encoder: DiffEmbedEncoder, capsys: pytest.CaptureFixture[str]
) -> None:
    source, output = str(work / "queries.parquet"), str(work / "queries.jsonl")
    args = ("--text-field", "query", "--role", "query", "-o", output)
    _ok(_main(capsys, "embed", "-m", str(minilm_folder), source, *args))
    rows = [json.loads(line) for line in (work / "queries.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["query"], r["qid"]) for r in rows] == list(zip(QUERIES, [7, 8], strict=True))
    vectors = np.asarray([r["embedding"] for r in rows], dtype=np.float32)
    assert vectors.shape == (2, 384)
    np.testing.assert_allclose(vectors, minilm_encoder.encode_queries(QUERIES), atol=1e-5)


def test_info_prints_the_profile(
    minilm_folder: Path, minilm_encoder: DiffEmbedEncoder, capsys: pytest.CaptureFixture[str]
) -> None:
    result = _main(capsys, "info", str(minilm_folder), "--device", "cpu")
    _ok(result)
    info = json.loads(result.stdout)
    assert info["dimension"] == 384 and info["family"] == "sentence-transformers"
    assert info["fingerprint"] == minilm_encoder.fingerprint
    assert info["profile"]["pooling"] == "mean"


def test_search_finds_the_paraphrased_document(runs: dict, work: Path, minilm_encoder: DiffEmbedEncoder) -> None:
    first = runs["search1"]
    _ok(first)
    results = json.loads(first.stdout)
    assert [r["rank"] for r in results] == [1, 2, 3]
    top = results[0]
    assert top["document"] == "history_of_the_bicycle.md"
    assert "Dunlop" in top["chunk"]["text"]  # the best chunk of a long document, not its opening
    text = (work / "docs" / top["document"]).read_text(encoding="utf-8")
    assert text[top["chunk"]["start"] : top["chunk"]["end"]] == top["chunk"]["text"]
    # The score is the max-sim of the Python API's chunk vectors.
    chunks = minilm_encoder.encode_document_chunks([text])[0]
    query = minilm_encoder.encode_queries([BICYCLE_QUERY])[0]
    assert top["score"] == pytest.approx(float((chunks.vectors @ query).max()), abs=1e-5)
    assert "embedded 13 documents" in first.stderr and "cache hit" not in first.stderr


def test_second_search_uses_the_cache(
    runs: dict, work: Path, minilm_folder: Path, minilm_encoder: DiffEmbedEncoder, capsys: pytest.CaptureFixture[str]
) -> None:
    _ok(runs["search1"])  # its process wrote the cache; this run is a fresh encoder in another process
    docs, cache = str(work / "docs"), str(work / "cache")
    argv = ("search", "-m", str(minilm_folder), "--docs", docs, BEES_QUERY, "--json", "--cache-dir", cache)
    second = _main(capsys, *argv)
    _ok(second)
    assert json.loads(second.stdout)[0]["document"] == "honeybees.md"
    # One entry per document, under the encoder's fingerprint, in the cache folder (not among the documents).
    cached = list((work / "cache").rglob("*.npz"))
    assert len(cached) == 13 and all(minilm_encoder.fingerprint in path.parts for path in cached)
    assert not any(path.name.startswith(".") for path in (work / "docs").iterdir())
    assert "cache hit" in second.stderr and "embedded" not in second.stderr


# -- errors, in-process through main(): found before any model loads -----------------------------------------


ERROR_CASES = {
    "missing": (None, "missing.txt", "cannot read"),
    "extension": ("a,b\n", "texts.csv", "unknown extension '.csv'"),
    "empty_file": ("\n\n", "empty.txt", "is empty"),
    "empty_line": ("first\n  \nthird\n", "gap.txt", "line 2 of"),
    "empty_text": ('{"text": "ok"}\n{"text": ""}\n', "gap.jsonl", "line 2 of"),
    "no_field": ('{"text": "ok"}\n{"body": "x"}\n', "nofield.jsonl", "line 2 of"),
    "bad_json": ('{"text": "ok"}\n{"text": \n', "broken.jsonl", "not valid JSON"),
    "not_utf8": (b"caf\xe9\n", "latin1.txt", "not UTF-8"),
    "output_extension": ("fine\n", "fine.txt", "unknown extension '.csv'"),
    "bad_field": ('{"body": "x"}\n', "body.jsonl", "no 'text' field (its fields: 'body'); pick one with --text-field"),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_input_errors_are_one_line(case: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    content, name, expected = ERROR_CASES[case]
    source = tmp_path / name
    if isinstance(content, bytes):
        source.write_bytes(content)
    elif content is not None:
        source.write_text(content, encoding="utf-8")
    output = tmp_path / ("out.csv" if case == "output_extension" else "out.npy")
    code = main(["embed", "--model", "unused-model-name", str(source), "--output", str(output)])
    captured = capfd.readouterr()
    assert code != 0 and captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("diffemb: error: "), captured.err
    assert expected in lines[0]
    assert "Traceback" not in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ([name] if content is not None else [])


def test_search_errors_are_one_line(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty.md").write_text("", encoding="utf-8")
    assert main(["search", "-m", "unused", "--docs", str(tmp_path), "query"]) == 1
    assert main(["search", "-m", "unused", "--docs", str(tmp_path / "nothing"), "query"]) == 1
    assert main(["search", "-m", "unused", "--docs", str(tmp_path), "  "]) == 1
    lines = capfd.readouterr().err.strip().splitlines()
    assert [line.split(": ")[1] for line in lines] == ["error"] * 3
    assert "empty.md is empty" in lines[0] and "no such file or folder" in lines[1] and "query is empty" in lines[2]


def test_usage_errors_are_one_line(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["embed", "--model", "m", "x.txt", "--chunk-size", "0"])
    assert exit_info.value.code == 2
    lines = capfd.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("diffemb: error: argument --chunk-size")


def test_failed_write_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    output = tmp_path / "vectors.npy"
    output.write_bytes(b"previous result")
    records = Records(tmp_path / "in.txt", ["a", "b"], "line")

    def broken_save(handle: object, array: object) -> None:
        handle.write(b"half")  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", broken_save)
    with pytest.raises(CliError, match="No space left on device"):
        write_vectors(output, np.zeros((2, 4), dtype=np.float32), records, "text")
    assert output.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["vectors.npy"]
