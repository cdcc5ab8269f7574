"""The Python-docs task, from Debian's python3.11-doc (installed by scripts/setup.sh)."""

from __future__ import annotations

import pytest

from diffemb.tasks.pydocs import DEFAULT_ROOT, build_pydocs, clean_rst, extract_pair

PAGE = """\
:mod:`frobnicate` --- Turn widgets into gadgets
===============================================

.. module:: frobnicate
   :synopsis: Turn widgets into gadgets, quickly
              and reliably.

.. moduleauthor:: Someone <someone@example.invalid>

.. index:: single: widget

The :mod:`frobnicate` module calls :func:`~os.path.join` and follows :pep:`8`.
See :ref:`the guide <frob-guide>`.
"""


@pytest.fixture(scope="module")
def task():
    assert DEFAULT_ROOT.is_dir(), f"{DEFAULT_ROOT} is missing: apt-get install python3.11-doc"
    return build_pydocs()


def test_extract_pair_from_a_handmade_page() -> None:
    module, query, document = extract_pair(PAGE)
    assert module == "frobnicate"
    assert query == "Turn widgets into gadgets, quickly and reliably."
    assert ":synopsis:" not in document and "reliably" not in document
    assert "moduleauthor" not in document and "index::" not in document
    assert "The frobnicate module calls join and follows PEP 8." in document
    assert "See the guide." in document
    _, title_query, title_doc = extract_pair(PAGE, query_from="title")
    assert title_query == "Turn widgets into gadgets"
    assert "---" not in title_doc and ":synopsis:" in title_doc


def test_pages_without_a_module_give_no_pair() -> None:
    assert extract_pair("Title\n=====\n\nJust prose.\n") is None
    assert clean_rst("Heading\n-------\n\ntext") == "Heading\n\ntext"


def test_builds_over_200_pairs_with_text(task) -> None:
    assert len(task.queries) > 200
    assert len(task.queries) == len(task.corpus) == len(task.qrels)
    assert task.metric == "ndcg@10"
    for qid, query in task.queries.items():
        did = next(iter(task.qrels[qid]))
        assert query.strip() and len(task.corpus[did]) > 200
        assert f":synopsis: {query}" not in task.corpus[did]
    assert task.queries["q:json"] == "Encode and decode the JSON format."
    assert "doc:os.path" in task.corpus


def test_limit_is_a_seeded_subsample(task) -> None:
    small = build_pydocs(limit=20, seed=1)
    assert len(small.queries) == 20
    assert set(small.queries) <= set(task.queries)
    assert build_pydocs(limit=20, seed=1) == small
    assert build_pydocs(limit=20, seed=2).queries != small.queries


def test_missing_package_names_the_install_command(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"apt-get install python3\.11-doc"):
        build_pydocs(root=tmp_path)
