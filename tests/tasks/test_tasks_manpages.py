"""The man-pages task, from Debian's manpages + manpages-dev (installed by scripts/setup.sh)."""

from __future__ import annotations

import pytest

from diffemb.tasks.manpages import build_manpages, extract_pair, page_paths

PAGE = r""".TH FROB 2 2024-01-01 "Test pages"
.SH NAME
frob, frobat \- turn widgets
into gadgets
.SH DESCRIPTION
.BR frob ()
does it.
"""


@pytest.fixture(scope="module")
def task():
    return build_manpages(limit=None)


def test_extract_pair_from_a_handmade_page() -> None:
    query, document = extract_pair(PAGE)
    assert query == "turn widgets into gadgets"
    assert document.startswith("FROB(2)\n\nNAME\nfrob, frobat\n\nDESCRIPTION\nfrob() does it.")
    assert "gadgets" not in document


def test_redirect_pages_are_skipped() -> None:
    assert extract_pair('.\\" comment\n.so man2/frob.2\n') is None
    assert extract_pair(".TH X 1\n.SH DESCRIPTION\nno name section\n") is None


def test_pages_come_from_the_two_packages() -> None:
    paths = page_paths()
    assert len(paths) > 1000
    assert all(not p.is_symlink() and p.suffix == ".gz" for p in paths)
    assert any(p.name == "read.2.gz" for p in paths)


def test_builds_over_500_unique_pairs(task) -> None:
    assert len(task.queries) > 500
    assert len(set(task.queries.values())) == len(task.queries)
    assert task.metric == "ndcg@10"
    assert task.queries["q:read.2"] == "read from a file descriptor"
    for qid, query in task.queries.items():
        document = task.corpus[next(iter(task.qrels[qid]))]
        assert query.strip() and "\\-" not in query and len(document) > 100
        name_section = next(part for part in document.split("\n\n") if part.startswith("NAME\n"))
        assert query not in name_section


def test_default_limit_is_a_seeded_subsample() -> None:
    sample = build_manpages(limit=30, seed=4, sections=("7",))
    assert len(sample.queries) == 30
    assert all(qid.endswith(".7") for qid in sample.queries)
    assert build_manpages(limit=30, seed=4, sections=("7",)) == sample
    assert build_manpages(limit=30, seed=5, sections=("7",)).queries != sample.queries


def test_missing_package_names_the_install_command(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="apt-get install manpages manpages-dev"):
        page_paths(dpkg_info=tmp_path)
