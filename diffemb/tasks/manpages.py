"""Long-document retrieval over the Linux man-pages, read from Debian at run time.

The pages are not ours and are never committed: they are read from what Debian's
``manpages`` and ``manpages-dev`` packages install (``apt-get install manpages
manpages-dev``), using dpkg's own file lists in ``/var/lib/dpkg/info/{package}.list`` so
that pages from any other installed package never leak in.

How the task is built (no labels are written by hand):

1. Every regular file ``/usr/share/man/man{S}/*.gz`` listed by those packages, with S in
   ``sections``, in path order; symlinks and pages that are only a ``.so`` redirect are
   skipped (1,113 files, 1,100 pages in Debian 12's manpages 6.03-2).
2. Each page is rendered to text by :mod:`diffemb.tasks.roff`. Query: the NAME section's
   one-liner after ``\\-`` (``read(2)`` -> "read from a file descriptor").
3. Document: the rendered page, ``read(2)`` title line first, with that one-liner removed
   from the NAME section (the names before ``\\-`` stay).
4. Queries that occur on more than one page (fork(2) and clone(2) both "create a child
   process") are dropped, so each query has exactly one relevant document (1,010 pairs
   remain on Debian 12).
5. If more than ``limit`` pairs remain, ``numpy.random.default_rng(seed)`` picks ``limit``
   of them without replacement, kept in path order.

Ids are ``q:{page}`` and ``doc:{page}`` with ``page`` like ``read.2``; metric nDCG@10.
"""

from __future__ import annotations

import functools
import gzip
import re
from collections import Counter
from pathlib import Path

import numpy as np

from diffemb.tasks.base import RetrievalTask
from diffemb.tasks.roff import parse, render_lines, unescape

PACKAGES: tuple[str, ...] = ("manpages", "manpages-dev")
DEFAULT_SECTIONS: tuple[str, ...] = ("1", "2", "3", "4", "5", "6", "7", "8")
DPKG_INFO = Path("/var/lib/dpkg/info")
_INSTALL_HINT = "apt-get install manpages manpages-dev"
_PAGE_PATH = re.compile(r"^/usr/share/man/man(\w+)/[^/]+\.gz$")


def page_paths(
    packages: tuple[str, ...] = PACKAGES,
    sections: tuple[str, ...] = DEFAULT_SECTIONS,
    dpkg_info: Path | str = DPKG_INFO,
) -> list[Path]:
    """The installed, non-symlink English man pages of ``packages``, in path order."""
    paths: set[Path] = set()
    for package in packages:
        listing = Path(dpkg_info) / f"{package}.list"
        if not listing.is_file():
            raise FileNotFoundError(f"Debian package {package!r} is not installed: {_INSTALL_HINT}")
        for line in listing.read_text(encoding="utf-8").splitlines():
            match = _PAGE_PATH.match(line)
            if match and match.group(1) in sections:
                path = Path(line)
                # Aliases are symlinks to another page; the page itself is listed too.
                if path.is_file() and not path.is_symlink():
                    paths.add(path)
    if not paths:
        # Installed yet absent: slim images often drop /usr/share/man via dpkg path-exclude.
        raise FileNotFoundError(
            f"{packages} are installed but no man pages are on disk (check path-exclude in "
            f"/etc/dpkg/dpkg.cfg.d/), then reinstall: {_INSTALL_HINT} --reinstall"
        )
    return sorted(paths)


def _is_redirect(source: str) -> bool:
    """True when the page's only content is a ``.so other/page`` include."""
    content: list[str] = []
    for line in source.splitlines():
        if line.strip() and not re.match(r"^[.']\s*\\\"", line):
            content.append(line)
            if len(content) > 2:
                break  # a real page has far more; no need to scan it
    return bool(content) and content[0].startswith(".so") and len(content) <= 2


def extract_pair(source: str) -> tuple[str, str] | None:
    """``(query, document)`` from one page's roff source, or None for no usable pair."""
    if _is_redirect(source):
        return None
    page = parse(source)
    name = next((s for s in page.sections if s.heading.upper() == "NAME"), None)
    if name is None:
        return None
    # The NAME one-liner is split on the raw "\-" so that hyphens inside names survive.
    raw_name = _raw_name_section(source)
    if raw_name is None or "\\-" not in raw_name:
        return None
    names, description = raw_name.split("\\-", 1)
    query = " ".join(unescape(description).split())
    names_text = " ".join(unescape(names).split()).rstrip(" ,")
    if not query:
        return None
    parts = [page.title] if page.title else []
    for section in page.sections:
        body = names_text if section is name else render_lines(section.lines)
        parts.append(f"{section.heading}\n{body}".strip())
    document = "\n\n".join(p for p in parts if p)
    return query, document


def _raw_name_section(source: str) -> str | None:
    """The NAME section's text lines joined, still in roff (escapes intact)."""
    lines = source.splitlines()
    for i, line in enumerate(lines):
        if re.match(r'^\.SH\s+"?NAME"?\s*$', line.strip(), re.I):
            body = []
            for nxt in lines[i + 1 :]:
                if nxt.startswith(".SH"):
                    break
                if nxt.startswith((".", "'")):
                    # Font macros (.B name) carry words; other requests carry none.
                    macro = re.match(r"^[.']\s*(B|I|BR|RB|IR|RI|BI|IB)\s+(.*)$", nxt)
                    if macro:
                        body.append(macro.group(2).replace('"', ""))
                    continue
                body.append(nxt)
            return " ".join(body)
    return None


@functools.lru_cache(maxsize=4)
def _all_pairs(
    packages: tuple[str, ...], sections: tuple[str, ...], dpkg_info: str
) -> tuple[tuple[str, str, str], ...]:
    """``(page, query, document)`` for every usable page; cached because rendering every
    page is most of a build and subsamples of one corpus are built repeatedly."""
    pairs: list[tuple[str, str, str]] = []
    for path in page_paths(packages, sections, dpkg_info):
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
            pair = extract_pair(fh.read())
        if pair is not None:
            pairs.append((path.name.removesuffix(".gz"), *pair))
    return tuple(pairs)


def build_manpages(
    limit: int | None = 1000,
    seed: int = 0,
    sections: tuple[str, ...] = DEFAULT_SECTIONS,
    packages: tuple[str, ...] = PACKAGES,
    dpkg_info: Path | str = DPKG_INFO,
) -> RetrievalTask:
    """The ``local-manpages`` task: NAME one-liner -> rest of the man page."""
    pairs = _all_pairs(tuple(packages), tuple(sections), str(dpkg_info))
    repeated = Counter(query for _, query, _ in pairs)
    unique = [p for p in pairs if repeated[p[1]] == 1]
    n_pairs = len(unique)
    if limit is not None and limit < len(unique):
        keep = np.sort(np.random.default_rng(seed).choice(len(unique), limit, replace=False))
        unique = [unique[i] for i in keep]
    return RetrievalTask(
        name="local-manpages",
        queries={f"q:{p}": q for p, q, _ in unique},
        corpus={f"doc:{p}": d for p, _, d in unique},
        qrels={f"q:{p}": {f"doc:{p}": 1} for p, _, _ in unique},
        metric="ndcg@10",
        meta={
            "family": "manpages",
            "packages": list(packages),
            "sections": list(sections),
            "pairs_before_limit": n_pairs,
            "limit": limit,
            "seed": seed,
        },
    )
