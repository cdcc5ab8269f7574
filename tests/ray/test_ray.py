"""Scale-out with Ray Data (`diffemb.ray`), offline, on a local two-CPU Ray started once for this module.

Starting Ray and each pool of actors (a new process that imports torch and loads the model) is most of the cost,
so the module runs four pipelines in all: MiniLM over 2,000 rows with two actors, `run_ray_embed` to a folder
with an actor killed mid-run, `run_ray_embed` to one Parquet file, and window rows (late chunking) to a folder.
Tiny BERT stands in for the model where the test is about Ray rather than about vectors. The batch class on its
own is tested without Ray in `test_embedder.py`; bad input and faults in `tests/hostile/test_hostile_ray.py`.
"""

from __future__ import annotations

import collections
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from diffemb import DiffEmbedEncoder
from diffemb.ray import DiffEmbedBatchEmbedder, default_concurrency, embed_dataset, run_ray_embed
from diffemb.ray.parquet import location

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

WORDS = (
    "river bread engine violin harbour pepper orbit garden ledger glacier "
    "lantern copper meadow compass saddle thunder walnut ferry quartz tulip"
).split()


def _texts(n: int) -> list[str]:
    """Short, distinct texts (about eight tokens each: the forward passes are most of this module's CPU time)."""
    return [f"{WORDS[i % 20]} {WORDS[(i * 7 + 3) % 20]} {WORDS[(i // 20) % 20]} {i // 400}" for i in range(n)]


def _corpus(path: Path, n: int) -> tuple[list[str], list[str]]:
    ids = [f"doc-{i:05d}" for i in range(n)]
    texts = _texts(n)
    pq.write_table(pa.table({"id": ids, "text": texts, "n": list(range(n))}), path)
    return ids, texts


def _by_id(table: object, column: str = "embedding") -> dict[str, np.ndarray]:
    ids = table.column("id").to_pylist()  # type: ignore[attr-defined]
    vectors = np.asarray(table.column(column).to_pylist(), dtype=np.float32)  # type: ignore[attr-defined]
    return dict(zip(ids, vectors, strict=True))


def _collect(ds: object) -> object:
    return pa.concat_tables(list(ds.iter_batches(batch_format="pyarrow", batch_size=None)))  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def tiny_bert_encoder(tiny_bert_folder: Path) -> DiffEmbedEncoder:
    return DiffEmbedEncoder.from_pretrained(tiny_bert_folder, device="cpu")


# -- on Ray ------------------------------------------------------------------------------------------------------


def test_embed_dataset_matches_the_core_encoder(ray_local, tmp_path, minilm_folder, minilm_encoder):
    ids, texts = _corpus(tmp_path / "corpus.parquet", 2000)
    ds = ray_local.data.read_parquet(str(tmp_path / "corpus.parquet"))

    out = _collect(embed_dataset(ds, minilm_folder, id_column="id", device="cpu", concurrency=2, batch_size=250))

    assert collections.Counter(out.column("id").to_pylist()) == collections.Counter(ids)  # each id exactly once
    assert out.column_names == ["id", "text", "n", "embedding"]
    assert out.schema.field("embedding").type == pa.list_(pa.float32(), 384)
    got = _by_id(out)
    expected = minilm_encoder.encode_documents(texts)
    np.testing.assert_allclose(np.stack([got[i] for i in ids]), expected, atol=2e-5)
    texts_by_id = dict(zip(out.column("id").to_pylist(), out.column("text").to_pylist(), strict=True))
    assert all(texts_by_id[i] == t for i, t in zip(ids, texts, strict=True))  # rows kept their own columns


def test_a_killed_actor_is_replaced_and_its_batch_retried(ray_local, tmp_path, tiny_bert_folder, tiny_bert_encoder):
    ids, texts = _corpus(tmp_path / "corpus.parquet", 240)
    flag = tmp_path / "killed"

    class DiesOnce(DiffEmbedBatchEmbedder):
        """The first call anywhere claims the flag file and kills its own process, as a crash or OOM kill would."""

        def __call__(self, batch):
            try:
                handle = os.open(flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                out = super().__call__(batch)
                return out.append_column("pid", pa.array([os.getpid()] * out.num_rows, pa.int64()))
            os.write(handle, str(os.getpid()).encode())
            os.close(handle)
            os._exit(1)

    # To a folder, which the workers write in parallel (the single-file output is the next test).
    report = run_ray_embed(
        tmp_path / "corpus.parquet", tmp_path / "vectors", tiny_bert_folder, id_column="id", device="cpu",
        concurrency=1, batch_size=60, embedder_class=DiesOnce, quiet=True,
    )  # fmt: skip

    out = pq.read_table(tmp_path / "vectors")
    assert report["rows"] == 240 == out.num_rows
    killed = int(flag.read_text())
    assert killed not in set(out.column("pid").to_pylist())  # every batch came from the restarted actor
    assert collections.Counter(out.column("id").to_pylist()) == collections.Counter(ids)  # none lost, none twice
    got = _by_id(out)
    np.testing.assert_allclose(np.stack([got[i] for i in ids]), tiny_bert_encoder.encode_documents(texts), atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.parquet", "killed", "vectors"]  # no staging left
    assert report["documents"] == 240 and report["dimension"] is None


def test_window_rows_to_a_folder(ray_local, tmp_path, tiny_bert_folder, tiny_bert_encoder):
    long_texts = [" ".join(_texts(30 + 7 * i)) for i in range(6)]
    ids = [f"doc-{i}" for i in range(6)]
    pq.write_table(pa.table({"id": ids, "text": long_texts}), tmp_path / "long.parquet")
    options = {"chunk_aggregation": "late", "chunk_size": 48, "chunk_overlap": 8}

    report = run_ray_embed(
        tmp_path / "long.parquet", tmp_path / "windows", tiny_bert_folder, id_column="id", chunks=True,
        device="cpu", concurrency=1, batch_size=2, quiet=True, **options,
    )  # fmt: skip

    reference = tiny_bert_encoder.with_settings(**options).encode_document_chunks(long_texts)
    table = pq.read_table(tmp_path / "windows").sort_by([("document_id", "ascending"), ("window_index", "ascending")])
    assert table.column_names == ["document_id", "window_index", "start", "end", "token_count", "embedding"]
    assert report["documents"] == 6 and report["rows"] == table.num_rows == sum(len(c) for c in reference)
    assert table.column("document_id").to_pylist() == [i for i, c in zip(ids, reference, strict=True) for _ in c.spans]
    starts = table.column("start").to_pylist()
    assert starts == [start for c in reference for start, _ in c.spans]
    np.testing.assert_allclose(
        np.asarray(table.column("embedding").to_pylist()), np.concatenate([c.vectors for c in reference]), atol=1e-5
    )


def test_run_ray_embed_parquet_to_parquet(ray_local, tmp_path, tiny_bert_folder, tiny_bert_encoder):
    ids, texts = _corpus(tmp_path / "corpus.parquet", 300)

    report = run_ray_embed(
        tmp_path / "corpus.parquet", tmp_path / "vectors.parquet", tiny_bert_folder, role="query", id_column="id",
        device="cpu", batch_size=64, concurrency=1, quiet=True,
    )  # fmt: skip

    assert report["rows"] == 300 and report["dimension"] == 32 and report["cluster"] == {"CPU": 2.0}
    table = pq.read_table(tmp_path / "vectors.parquet")
    assert table.column_names == ["id", "text", "n", "embedding"]
    assert table.column("id").to_pylist() == ids  # one file keeps the input order
    assert table.column("n").to_pylist() == list(range(300))
    np.testing.assert_allclose(
        np.asarray(table.column("embedding").to_pylist()), tiny_bert_encoder.encode_queries(texts), atol=1e-5
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.parquet", "vectors.parquet"]  # no temp left


def test_run_ray_embed_names_a_missing_column_before_embedding(ray_local, tmp_path, tiny_bert_folder):
    _corpus(tmp_path / "corpus.parquet", 10)
    with pytest.raises(KeyError, match=r"no column 'body'.*'id', 'text', 'n'"):
        run_ray_embed(tmp_path / "corpus.parquet", tmp_path / "out.parquet", tiny_bert_folder, text_column="body")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run_ray_embed(tmp_path / "corpus.parquet", tmp_path / "no" / "out.parquet", tiny_bert_folder)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old.parquet").write_bytes(b"")
    with pytest.raises(FileExistsError, match="not empty"):
        run_ray_embed(tmp_path / "corpus.parquet", tmp_path / "full", tiny_bert_folder)
    with pytest.raises(FileNotFoundError, match="no such file"):
        run_ray_embed(tmp_path / "missing.parquet", tmp_path / "out.parquet", tiny_bert_folder)
    with pytest.raises(ValueError, match="give a folder or prefix"):
        run_ray_embed(tmp_path / "corpus.parquet", "s3://bucket/vectors.parquet", tiny_bert_folder)
    assert not (tmp_path / "out.parquet").exists()


def test_default_concurrency_follows_the_cluster(ray_local, monkeypatch):
    assert default_concurrency() == {"concurrency": 2, "num_gpus": None, "num_cpus": 0.5, "torch_threads": 1}
    monkeypatch.setattr(ray_local, "cluster_resources", lambda: {"CPU": 64.0, "GPU": 4.0})
    assert default_concurrency() == {"concurrency": 4, "num_gpus": 1.0, "num_cpus": None, "torch_threads": None}
    monkeypatch.setattr(ray_local, "cluster_resources", lambda: {"CPU": 32.0})
    chosen = default_concurrency()
    assert chosen["torch_threads"] == 8 and chosen["concurrency"] == 4 and chosen["num_cpus"] == 7.75


def test_embed_dataset_asks_ray_for_the_planned_pool(ray_local):
    class Recorder:
        def repartition(self, **options):
            self.repartition_options = options
            return self

        def map_batches(self, fn, **options):
            self.fn, self.options = fn, options
            return self

    ds = embed_dataset(
        Recorder(), "m", device="cpu", batch_size=100, max_actors=1, instruction=None, pooling="mean",
        precision="ubinary", truncate_dim=16,
    )  # fmt: skip
    assert ds.repartition_options == {"target_num_rows_per_block": 100}
    assert ds.fn is DiffEmbedBatchEmbedder
    options = ds.options
    assert (options["compute"].min_size, options["compute"].max_size) == (1, 1)  # capped: fewer batches than CPUs
    assert options["num_cpus"] == 1.0 and "num_gpus" not in options
    assert options["max_restarts"] == 4 and options["max_task_retries"] == 4
    assert options["batch_size"] == 100 and options["batch_format"] == "pyarrow"
    kwargs = options["fn_constructor_kwargs"]
    assert kwargs["instruction"] is None and kwargs["pooling"] == "mean" and kwargs["torch_threads"] == 1
    assert kwargs["precision"] == "ubinary" and kwargs["truncate_dim"] == 16 and "chunks" not in kwargs
    assert "instruction" not in embed_dataset(Recorder(), "m").options["fn_constructor_kwargs"]  # the model's own
    assert "precision" not in embed_dataset(Recorder(), "m").options["fn_constructor_kwargs"]  # float32
    windows = embed_dataset(Recorder(), "m", id_column="id", chunks=True, chunk_aggregation="late")
    assert windows.options["fn_constructor_kwargs"]["chunks"] is True
    with pytest.raises(ValueError, match="pass id_column"):
        embed_dataset(Recorder(), "m", chunks=True)
    with pytest.raises(ValueError, match="needs calibration="):
        embed_dataset(Recorder(), "m", precision="int8")


# -- no Ray needed ----------------------------------------------------------------------------------------------


def test_uris_survive_pathlib():
    assert location(Path("s3://bucket/corpus/")) == "s3://bucket/corpus"  # Path("s3://b") is "s3:/b"
    assert location("gs://bucket/vectors") == "gs://bucket/vectors"
    assert location("corpus.parquet") == str(Path.cwd() / "corpus.parquet")


def test_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r'pip install "diffemb\[ray\]"'):
        embed_dataset(object(), "model")
    with pytest.raises(ImportError, match=r'pip install "diffemb\[ray\]"'):
        run_ray_embed("in.parquet", "out.parquet", "model")
