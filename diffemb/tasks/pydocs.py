"""Long-document retrieval over the Python 3.11 library reference, read from Debian.

The pages are not ours and are never committed: they are read at run time from the reST
sources that Debian's ``python3.11-doc`` package installs (``apt-get install
python3.11-doc``) under ``/usr/share/doc/python3.11/html/_sources/library/*.rst.txt``.

How the task is built (no labels are written by hand; no randomness unless ``limit``):

1. Every ``library/*.rst.txt`` file, in file-name order, whose first ``.. module::``
   directive has a ``:synopsis:`` option is one pair (255 files in Debian 12's 3.11.2-6+deb12u9).
2. Query: that synopsis (``query_from="synopsis"``, the default), or the page title with
   its ``:mod:`name` ---`` prefix removed (``query_from="title"``).
3. Document: the page with the line the query came from removed (the whole
   ``.. module::`` directive for a synopsis; title and underline for a title), with
   ``.. index::``, ``.. moduleauthor::`` and ``.. sectionauthor::`` directives dropped,
   inline roles reduced to their text (``:func:`~os.path.join``` -> ``join``) and
   heading underlines removed. Everything else, code samples included, stays.
4. Queries that occur on more than one page are dropped, so every query has exactly one
   relevant document. With ``limit`` a seeded subsample of pairs is kept, in file order.

Query ids are ``q:{page}``, document ids ``doc:{page}`` with ``page`` the file name less
``.rst.txt`` (email.message has two pages); metric nDCG@10.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections import Counter
from pathlib import Path

import numpy as np

from diffemb.tasks.base import RetrievalTask

DEFAULT_ROOT = Path("/usr/share/doc/python3.11/html/_sources/library")
_INSTALL_HINT = "apt-get install python3.11-doc"

_MODULE = re.compile(r"^\.\. module:: *(\S+)[ \t]*\n((?:[ \t]+\S.*\n)*)", re.M)
# An option value runs on over deeper-indented lines until the next ":option:".
_SYNOPSIS = re.compile(r"^[ \t]+:synopsis:[ \t]*(.*(?:\n[ \t]+[^\s:].*)*)", re.M)
# Directives that carry bookkeeping rather than content, with their indented bodies.
_DROPPED = re.compile(r"^\.\. (?:index|moduleauthor|sectionauthor)::.*\n(?:(?:[ \t]+.*)?\n)*?(?=\S|\Z)", re.M)
_ROLE = re.compile(r":([\w:.-]+):`([^`]*)`")
_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+])\1{3,}[ \t]*\n", re.M)
# "name --- Title" and ":mod:`email.charset`: Title" both lead with the module's name.
_TITLE_PREFIX = re.compile(r"^(?:.*?\s---\s+|:\w+:`[^`]*`:\s*)")


def _role_text(match: re.Match[str]) -> str:
    role, text = match.group(1), match.group(2)
    if role in ("pep", "rfc"):
        return f"{role.upper()} {text}"
    labelled = re.fullmatch(r"(.*?)\s*<[^<>]*>", text, re.S)
    if labelled and labelled.group(1):
        return labelled.group(1)
    # "~a.b.c" renders as "c" and a leading "!" only suppresses the link.
    text = text.lstrip("!")
    return text[1:].rsplit(".", 1)[-1] if text.startswith("~") else text


def clean_rst(text: str) -> str:
    """reST source reduced to readable text, without a full docutils parse."""
    text = _DROPPED.sub("", text)
    text = _ROLE.sub(_role_text, text)
    text = _UNDERLINE.sub("", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _title(text: str) -> tuple[str, int, int] | None:
    """The page title, and the start and end offsets of its title block."""
    lines = text.splitlines(keepends=True)
    offset = 0
    for line, nxt in itertools.pairwise(lines):
        stripped = line.strip()
        if stripped and re.fullmatch(r"([=\-~#*^\"])\1{2,}", nxt.strip()):
            return stripped, offset, offset + len(line) + len(nxt)
        offset += len(line)
    return None


def extract_pair(text: str, query_from: str = "synopsis") -> tuple[str, str, str] | None:
    """``(module, query, document)`` of one library page, or None if it has no query."""
    module = _MODULE.search(text)
    if module is None:
        return None
    if query_from == "synopsis":
        synopsis = _SYNOPSIS.search(module.group(2))
        if synopsis is None or not synopsis.group(1).strip():
            return None
        query = " ".join(_ROLE.sub(_role_text, synopsis.group(1)).split())
        body = text[: module.start()] + text[module.end() :]
    elif query_from == "title":
        title = _title(text)
        if title is None:
            return None
        line, start, end = title
        query = _ROLE.sub(_role_text, _TITLE_PREFIX.sub("", line)).strip()
        body = text[:start] + text[end:]
    else:
        raise ValueError(f"query_from must be 'synopsis' or 'title', got {query_from!r}")
    document = clean_rst(body)
    if not query or not document:
        return None
    return module.group(1), query, document


def library_pages(root: Path | str = DEFAULT_ROOT) -> list[Path]:
    """The library reST sources, in file-name order."""
    pages = sorted(Path(root).glob("*.rst.txt"))
    if not pages:
        raise FileNotFoundError(f"no Python library reST sources under {root}: {_INSTALL_HINT}")
    return pages


@functools.lru_cache(maxsize=4)
def _all_pairs(root: str, query_from: str) -> tuple[tuple[str, str, str], ...]:
    """``(page, query, document)`` for every page with a query; cached because parsing
    every page is most of a build and subsamples of one corpus are built repeatedly."""
    pairs = []
    for page in library_pages(root):
        pair = extract_pair(page.read_text(encoding="utf-8"), query_from)
        if pair is not None:
            # The file stem, not the module, names a pair: email.message has two pages.
            pairs.append((page.name.removesuffix(".rst.txt"), pair[1], pair[2]))
    return tuple(pairs)


def build_pydocs(
    query_from: str = "synopsis",
    limit: int | None = None,
    seed: int = 0,
    root: Path | str = DEFAULT_ROOT,
) -> RetrievalTask:
    """The ``local-pydocs`` task: module synopsis (or title) -> module page."""
    pairs = _all_pairs(str(root), query_from)
    repeated = Counter(query for _, query, _ in pairs)
    # One query on two pages would need shared labels; such queries are dropped.
    unique = [pair for pair in pairs if repeated[pair[1]] == 1]
    if limit is not None and limit < len(unique):
        keep = np.sort(np.random.default_rng(seed).choice(len(unique), limit, replace=False))
        unique = [unique[i] for i in keep]
    return RetrievalTask(
        name="local-pydocs",
        queries={f"q:{m}": q for m, q, _ in unique},
        corpus={f"doc:{m}": d for m, _, d in unique},
        qrels={f"q:{m}": {f"doc:{m}": 1} for m, _, _ in unique},
        metric="ndcg@10",
        meta={
            "family": "pydocs",
            "source": str(root),
            "query_from": query_from,
            "limit": limit,
            "seed": seed,
        },
    )
