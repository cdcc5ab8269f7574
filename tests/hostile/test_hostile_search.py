"""Hostile folders, file names and caches for `diffemb search` (issue 17, items 1, 6, 7 and 8; issue 15 item 5).

The search stays inside the documents folder unless asked to follow links, prints names escaped, keeps its
vectors per document in a cache folder outside the documents (so one new file embeds one file), rebuilds any
cache entry it cannot trust, and shows the best window centred on the passage that answers the query.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from diffemb import DiffEmbedEncoder
from diffemb.cli.main import main

REPO = Path(__file__).resolve().parents[2]
DOCS = {
    "bees.md": "Honeybees tell their sisters where flowers are with a waggle dance on the comb.",
    "tides.txt": "Tides rise and fall twice a day because the Moon pulls on the oceans of the Earth.",
    "bread.md": "Sourdough bread rises because wild yeast and bacteria ferment the dough overnight.",
}
QUERY = "How do bees show each other where the flowers are?"


def _docs(root: Path, documents: dict[str, str] = DOCS) -> Path:
    folder = root / "docs"
    folder.mkdir()
    for name, text in documents.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def _search(
    capsys: pytest.CaptureFixture[str], model: Path, docs: Path, cache: Path, *extra: str, query: str = QUERY
) -> tuple[int, str, str]:
    code = main(["search", "-m", str(model), "--device", "cpu", "--docs", str(docs), "--cache-dir", str(cache),
                 query, *extra])  # fmt: skip
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def model(minilm_folder: Path, minilm_encoder: DiffEmbedEncoder) -> Path:
    """MiniLM's folder; the session encoder keeps its weights loaded, so each search reuses them."""
    return minilm_folder


# -- item 6: links and names ------------------------------------------------------------------------------------


def test_links_out_of_the_folder_are_not_followed_unless_asked(
    tmp_path: Path, model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = _docs(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("The launch code of the vault is 0000, bees love it.", encoding="utf-8")
    (docs / "leak.md").symlink_to(outside / "secret.md")
    (docs / "leakdir").symlink_to(outside, target_is_directory=True)
    (docs / "inside.md").symlink_to(docs / "bees.md")  # a link that stays inside the tree is read
    code, out, err = _search(capsys, model, docs, tmp_path / "cache", "--json", "-k", "10")
    assert code == 0, err
    names = [r["document"] for r in json.loads(out)]
    assert sorted(names) == ["bees.md", "bread.md", "inside.md", "tides.txt"]
    assert "launch code" not in out
    assert "skipped 2 links leading out of" in err and "leak.md" in err and "leakdir/" in err
    assert "--follow-links" in err

    code, out, err = _search(capsys, model, docs, tmp_path / "cache", "--json", "-k", "10", "--follow-links")
    assert code == 0, err
    names = [r["document"] for r in json.loads(out)]
    assert "leak.md" in names and "leakdir/secret.md" in names and "skipped" not in err


def test_link_loops_are_walked_once(tmp_path: Path, model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = _docs(tmp_path)
    (docs / "sub").mkdir()
    (docs / "sub" / "again").symlink_to(docs, target_is_directory=True)
    code, out, err = _search(capsys, model, docs, tmp_path / "cache", "--json", "-k", "10", "--follow-links")
    assert code == 0, err
    assert sorted(r["document"] for r in json.loads(out)) == sorted(DOCS)


EVIL_NAME = "evil\x1b[2J\x1b[31mred\u202e\n2. 0.9999  forged.md"


def test_file_names_are_printed_escaped(tmp_path: Path, model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = _docs(tmp_path, {**DOCS, EVIL_NAME: "Bees dance to tell their sisters where the flowers are."})
    code, out, err = _search(capsys, model, docs, tmp_path / "cache", "-k", "2", "--snippet-chars", "0")
    assert code == 0, err
    assert "\x1b" not in out and "\u202e" not in out
    lines = out.splitlines()
    assert len(lines) == 2 and [line.split(".")[0] for line in lines] == ["1", "2"]  # no forged third line
    assert "evil\\x1b[2J\\x1b[31mred\\u202e\\n2. 0.9999  forged.md" in out

    code, out, err = _search(capsys, model, docs, tmp_path / "cache", "-k", "4", "--json")
    assert code == 0, err
    assert "\x1b" not in out and "\u202e" not in out and "\\u001b" in out and "\\u202e" in out
    assert EVIL_NAME in [r["document"] for r in json.loads(out)]  # the JSON still holds the real name


# -- item 1: a document without tokens is named by its file -----------------------------------------------------


def test_document_without_tokens_names_its_file(
    tmp_path: Path, model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = _docs(tmp_path, {**DOCS, "accents.md": "\u0301\u0302\u0303"})
    code, out, err = _search(capsys, model, docs, tmp_path / "cache")
    assert code == 1 and out == ""
    assert err.strip() == f"diffemb: error: {docs / 'accents.md'} has no tokens for this model (only white space, " \
        "zero-width or control characters): remove it or give it text"  # fmt: skip

    (docs / "accents.md").write_text("\u200b\ufeff", encoding="utf-8")  # found before the model loads
    assert main(["search", "-m", "unused-model", "--docs", str(docs), QUERY]) == 1
    assert f"{docs / 'accents.md'} has only invisible characters" in capsys.readouterr().err


def test_text_field_with_a_folder_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = _docs(tmp_path)
    assert main(["search", "-m", "unused-model", "--docs", str(docs), "--text-field", "body", QUERY]) == 1
    assert "--text-field names a field of .jsonl/.parquet documents" in capsys.readouterr().err


# -- item 8: the cache lives outside the documents, per document ---------------------------------------------


def _entries(cache: Path) -> list[Path]:
    return sorted(cache.rglob("*.npz"))


def test_cache_is_outside_the_documents_and_per_document(
    tmp_path: Path, model: Path, minilm_encoder: DiffEmbedEncoder, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    docs = _docs(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    argv = ["search", "-m", str(model), "--device", "cpu", "--docs", str(docs), QUERY, "--json"]
    assert main(argv) == 0
    first = capsys.readouterr()
    assert "embedded 3 documents" in first.err
    assert sorted(p.name for p in docs.iterdir()) == sorted(DOCS)  # nothing written into the documents folder
    entries = _entries(tmp_path / "xdg" / "diffemb")
    assert len(entries) == 3 and all(minilm_encoder.fingerprint in p.parts for p in entries)

    (docs / "coffee.md").write_text("Coffee beans are roasted seeds of the coffee cherry.", encoding="utf-8")
    (docs / "tides.txt").write_text(DOCS["tides.txt"] + " Spring tides are the strongest.", encoding="utf-8")
    assert main(argv) == 0
    second = capsys.readouterr()
    assert "embedded 2 new or changed of 4 documents" in second.err
    assert main(argv) == 0
    third = capsys.readouterr()
    assert "cache hit: 4 documents" in third.err and "embedded" not in third.err
    assert json.loads(third.out) == json.loads(second.out)
    # Scores from cached vectors equal a fresh embedding of the same documents.
    fresh = main([*argv, "--no-cache"])
    assert fresh == 0 and json.loads(capsys.readouterr().out) == json.loads(third.out)


# -- item 7: a cache entry that cannot be trusted is rebuilt ----------------------------------------------------


def _save(path: Path, **arrays: np.ndarray) -> None:
    with path.open("wb") as handle:
        np.savez(handle, **arrays)


def _corrupt(path: Path, how: str, dimension: int) -> None:
    with np.load(path) as data:
        vectors, spans = data["vectors"], data["spans"]
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "garbage":
        path.write_bytes(b"\x00not a zip archive\xff" * 10)
    elif how == "nan":
        vectors = vectors.copy()
        vectors[0, 0] = np.nan
        _save(path, vectors=vectors, spans=spans)
    elif how == "dimension":
        _save(path, vectors=np.ones((len(vectors), dimension + 1), np.float32), spans=spans)
    elif how == "offsets":
        _save(path, vectors=vectors, spans=np.array([[0, 10**6]] * len(vectors), np.int64))
    elif how == "missing_array":
        _save(path, vectors=vectors)
    elif how == "pickled":
        _save(path, vectors=np.array([object()] * len(vectors), dtype=object), spans=spans)


@pytest.mark.parametrize("how", ["empty", "truncated", "garbage", "nan", "dimension", "offsets", "missing_array",
                                 "pickled"])  # fmt: skip
def test_broken_cache_entries_are_rebuilt(
    how: str, tmp_path: Path, model: Path, minilm_encoder: DiffEmbedEncoder, capsys: pytest.CaptureFixture[str]
) -> None:
    docs, cache = _docs(tmp_path), tmp_path / "cache"
    code, expected, err = _search(capsys, model, docs, cache, "--json")
    assert code == 0, err
    for entry in _entries(cache):
        _corrupt(entry, how, minilm_encoder.dimension)
    code, out, err = _search(capsys, model, docs, cache, "--json")
    assert code == 0 and "Traceback" not in err, err
    assert "3 broken cache entries were embedded again and rewritten" in err
    assert json.loads(out) == json.loads(expected)
    code, out, err = _search(capsys, model, docs, cache, "--json")
    assert code == 0 and "cache hit: 3 documents" in err and "embedded again" not in err


def test_an_unwritable_cache_does_not_stop_the_search(
    tmp_path: Path, model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = _docs(tmp_path)
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("", encoding="utf-8")
    code, out, err = _search(capsys, model, docs, blocker, "--json")
    assert code == 0 and json.loads(out)[0]["document"] == "bees.md"
    assert "could not cache vectors in" in err


# -- issue 15 item 5: the best window is shown, centred on the passage that answers ------------------------------


def test_search_shows_the_answer_from_deep_in_a_long_document(
    tmp_path: Path, model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(REPO / "examples" / "docs", docs, ignore=shutil.ignore_patterns(".*"))
    query = "Who invented the air-filled tyre?"  # the quickstart's question
    code, out, err = _search(capsys, model, docs, tmp_path / "cache", "-k", "1", query=query)
    assert code == 0, err
    title, snippet = out.splitlines()
    assert title.endswith("history_of_the_bicycle.md")
    assert "**In 1888 John Boyd Dunlop" in snippet  # the matching passage, marked (not a terminal: no colours)
    assert len(snippet.strip()) <= 300 + len("****")

    code, out, err = _search(capsys, model, docs, tmp_path / "cache", "-k", "1", "--json", query=query)
    (top,) = json.loads(out)
    match, chunk = top["match"], top["chunk"]
    assert chunk["start"] <= match["start"] < match["end"] <= chunk["end"]
    text = (docs / "history_of_the_bicycle.md").read_text(encoding="utf-8")
    assert text.index("In 1888") - chunk["start"] > 300  # deep in the window: the old 300-character cut hid it
    assert text[match["start"] : match["end"]] == match["text"] and "John Boyd Dunlop" in match["text"]
