"""Passkey builder: sizes, lengths, determinism and that the key really is findable."""

from __future__ import annotations

import re

import pytest

from diffemb.tasks.base import LONGEMBED_LENGTHS
from diffemb.tasks.lengths import approx_count_tokens
from diffemb.tasks.passkey import FILLER, build_passkey

LENGTHS = [256, 512, 2048]


def whitespace_count(text: str) -> int:
    return len(text.split())


def char_count(text: str) -> int:
    return len(text) // 4


@pytest.fixture(scope="module")
def tasks():
    return build_passkey(lengths=LENGTHS, seed=0)


def test_default_lengths_are_longembed() -> None:
    assert LONGEMBED_LENGTHS == (256, 512, 1024, 2048, 4096, 8192, 16384, 32768)


def test_sizes_and_one_relevant_per_query(tasks) -> None:
    assert [t.name for t in tasks] == [f"local-passkey-{n}" for n in LENGTHS]
    for task in tasks:
        assert task.metric == "ndcg@1"
        assert len(task.queries) == 50 and len(task.corpus) == 100
        assert set(task.qrels) == set(task.queries)
        assert all(len(rels) == 1 and list(rels.values()) == [1] for rels in task.qrels.values())
        relevant = [next(iter(rels)) for rels in task.qrels.values()]
        assert len(set(relevant)) == 50
        # Relevant docs are spread through the corpus, not first, so that tie-breaking by
        # document order cannot favour them.
        assert set(relevant) != {f"d{i}" for i in range(50)}


@pytest.mark.parametrize("count", [approx_count_tokens, whitespace_count, char_count])
def test_token_counts_within_five_percent(count) -> None:
    for task in build_passkey(lengths=[256, 1024, 4096], n_docs=20, n_queries=5, count_tokens=count):
        target = task.meta["length"]
        for did, text in task.corpus.items():
            assert abs(count(text) - target) <= 0.05 * target, (task.name, did, count(text))
            assert task.meta["doc_tokens"][did] == count(text)


def test_key_sentence_is_in_the_relevant_doc_only(tasks) -> None:
    for task in tasks:
        words = {did: set(re.findall(r"\w+", text)) for did, text in task.corpus.items()}
        for qid, query in task.queries.items():
            name = re.fullmatch(r"What is (\w+)'s pass key\?", query).group(1)
            did = next(iter(task.qrels[qid]))
            key = task.meta["answers"][qid]
            assert re.fullmatch(r"[1-9]\d{4}", key)
            assert f"{name}'s pass key is {key}." in task.corpus[did]
            assert [d for d, w in words.items() if name in w] == [did]


def test_documents_are_filler_plus_one_key_sentence(tasks) -> None:
    filler = set(FILLER)
    for text in tasks[0].corpus.values():
        sentences = re.findall(r"[^.]+\.", text)
        odd = [s.strip() for s in sentences if s.strip() not in filler]
        assert len(odd) == 1 and "pass key is" in odd[0]


def test_same_seed_same_tasks_other_seed_differs(tasks) -> None:
    assert build_passkey(lengths=LENGTHS, seed=0) == tasks
    assert build_passkey(lengths=LENGTHS, seed=1)[0].corpus != tasks[0].corpus


def test_a_length_built_alone_equals_the_same_length_built_among_others(tasks) -> None:
    assert build_passkey(lengths=[512]) == [tasks[1]]


def test_longest_length_is_cheap_and_counts_are_bounded() -> None:
    calls = 0

    def counting(text: str) -> int:
        nonlocal calls
        calls += 1
        return approx_count_tokens(text)

    [task] = build_passkey(lengths=[32768], n_docs=20, n_queries=5, count_tokens=counting)
    assert calls <= 5 + 20 * 3  # filler sentences once, then a few per document
    assert all(abs(n - 32768) <= 0.01 * 32768 for n in task.meta["doc_tokens"].values())


def test_bad_sizes_raise() -> None:
    with pytest.raises(ValueError):
        build_passkey(lengths=[256], n_queries=10, n_docs=5)
    with pytest.raises(ValueError):
        build_passkey(lengths=[256], n_docs=10_000, n_queries=1)
