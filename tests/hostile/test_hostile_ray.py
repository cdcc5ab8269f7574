"""Bad input and faults on Ray (`diffemb.ray`, `diffemb embed --ray`): a failed job leaves nothing behind and
says in one line what is wrong (issue 17, items 4 and 11). One local Ray for the module (`ray_local`)."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from diffemb.cli.main import main
from diffemb.ray import run_ray_embed
from diffemb.ray.job import plain_error

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

ROWS = 1000


def _corpus(path: Path, null_at: int | None = None, ids: list[str] | None = None) -> list[str]:
    texts: list[str | None] = [f"short text number {i}" for i in range(ROWS)]
    if null_at is not None:
        texts[null_at] = None
    ids = ids or [f"doc-{i:04d}" for i in range(ROWS)]
    pq.write_table(pa.table({"id": ids, "text": pa.array(texts, pa.string())}), path)
    return ids


def test_empty_inputs_are_named_before_ray_starts(tmp_path, tiny_bert_folder, monkeypatch):
    import ray

    monkeypatch.setattr(ray, "init", lambda **_: pytest.fail("Ray started for an input with nothing to embed"))
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"id": pa.array([], pa.string()), "text": pa.array([], pa.string())}), empty)
    with pytest.raises(ValueError, match=r"empty\.parquet has no rows: nothing to embed"):
        run_ray_embed(empty, tmp_path / "out.parquet", tiny_bert_folder)
    (tmp_path / "folder").mkdir()
    with pytest.raises(ValueError, match=r"folder has no \.parquet files: nothing to embed"):
        run_ray_embed(tmp_path / "folder", tmp_path / "out", tiny_bert_folder)
    with pytest.raises(KeyError, match=r"no column 'body'"):
        run_ray_embed(empty, tmp_path / "out.parquet", tiny_bert_folder, text_column="body")


def test_ray_options_the_command_line_cannot_honour(tmp_path, tiny_bert_folder, capsys):
    corpus = tmp_path / "corpus.parquet"
    _corpus(corpus)
    assert main(["embed", str(corpus), "--model", str(tiny_bert_folder), "--chunks", "--ray"]) == 1
    assert "--chunks with --ray needs --id-field" in capsys.readouterr().err
    assert main(["embed", str(corpus), "--model", str(tiny_bert_folder), "--precision", "int8", "--ray"]) == 1
    assert "--precision int8 takes its ranges from the whole file" in capsys.readouterr().err


def test_plain_error_unwraps_a_remote_traceback():
    ray_exceptions = pytest.importorskip("ray.exceptions")
    remote = (
        "\x1b[36mray::MapWorker(MapBatches(DiffEmbedBatchEmbedder)).submit()\x1b[39m (pid=1)\n"
        '  File "embedder.py", line 87, in __call__\n'
        "KeyError: \"the batch has no text column 'body'\"\n\n"
        "The above exception was the direct cause of the following exception:\n\n"
        "ray.exceptions.UserCodeException: UDF failed to process a data block.\n"
    )

    class Wrapped(ray_exceptions.RayError):
        def __str__(self) -> str:
            return remote

    error = plain_error(Wrapped())
    assert type(error) is KeyError and error.args == ("the batch has no text column 'body'",)
    mine = ValueError("not from Ray")
    assert plain_error(mine) is mine


# -- on Ray (these start the module's local Ray; the tests above must run without one) ------------------------


def test_a_bad_row_fails_the_cli_in_one_line_and_leaves_nothing(ray_local, tmp_path, tiny_bert_folder, capsys):
    corpus, out = tmp_path / "corpus.parquet", tmp_path / "vectors"
    _corpus(corpus, null_at=900)
    command = ["embed", str(corpus), "-o", str(out), "--model", str(tiny_bert_folder), "--device", "cpu"]

    code = main([*command, "--id-field", "id", "--ray", "--quiet"])

    assert code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1] == (
        "diffemb: error: the row with id='doc-0900' has no text (a null) in column 'text': drop or fill it "
        "before embedding"
    )
    assert not [line for line in lines if "\x1b[" in line or "Traceback" in line or line.startswith("  File")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.parquet"]  # no part files, no staging folder

    ids = _corpus(corpus)  # fixed: the same command now runs, into the same (still absent) folder
    assert main([*command, "--id-field", "id", "--precision", "ubinary", "--ray", "--quiet"]) == 0
    table = pq.read_table(out)
    assert table.schema.field("embedding").type == pa.list_(pa.uint8(), 4)  # 32 dimensions as packed bits
    assert collections.Counter(table.column("id").to_pylist()) == collections.Counter(ids)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.parquet", "vectors"]


def test_duplicate_ids_are_refused_for_a_folder_too(ray_local, tmp_path, tiny_bert_folder):
    ids = [f"doc-{i:04d}" for i in range(ROWS)]
    ids[700] = ids[3]
    _corpus(tmp_path / "corpus.parquet", ids=ids)
    with pytest.raises(ValueError, match=r"^id='doc-0003' is on two output rows: make the ids of the input unique"):
        run_ray_embed(
            tmp_path / "corpus.parquet", tmp_path / "vectors", tiny_bert_folder, id_column="id", device="cpu",
            concurrency=1, quiet=True,
        )  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.parquet"]
