"""LongEmbed-style Passkey retrieval, built offline from a fixed filler and seeded keys.

How a task of length L (tokens) is built, for ``seed`` s:

1. ``rng = numpy.random.default_rng([s, L])`` - each length has its own stream, so building
   one length alone gives the same task as building it among others.
2. ``n_docs`` distinct names from :data:`diffemb.tasks.names.FIRST_NAMES`, one distinct
   5-digit key (10000-99999) and one depth in [0, 1) per document, in that draw order.
3. Document i is the five filler sentences below repeated and cut at a sentence boundary
   so that, with "{name}'s pass key is {key}." inserted between filler sentences at
   ``round(depth * n_sentences)``, ``count_tokens`` reports about L tokens.
4. ``n_queries`` documents are drawn without replacement; query j asks
   "What is {name}'s pass key?" for the j-th of them, relevance 1, all others 0.

The relevant document is the only one that contains the query's name, so a lexical
matcher solves the task; what it measures is whether a single sentence survives pooling
over a long, repetitive context. The task metric is nDCG@1, as in LongEmbed.
"""

from __future__ import annotations

import numpy as np

from diffemb.tasks.base import LONGEMBED_LENGTHS, RetrievalTask
from diffemb.tasks.lengths import (
    CountTokens,
    SentenceStream,
    approx_count_tokens,
    build_to_length,
)
from diffemb.tasks.names import sample_names

FILLER: tuple[str, ...] = (
    "The grass is green.",
    "The sky is blue.",
    "The sun is yellow.",
    "Here we go.",
    "There and back again.",
)
KEY_SENTENCE = "{name}'s pass key is {key}."
QUERY = "What is {name}'s pass key?"


def build_passkey_length(
    length: int,
    *,
    n_queries: int = 50,
    n_docs: int = 100,
    seed: int = 0,
    count_tokens: CountTokens | None = None,
    stream: SentenceStream | None = None,
) -> RetrievalTask:
    """One Passkey task whose documents are about ``length`` tokens long."""
    if not 0 < n_queries <= n_docs:
        raise ValueError(f"need 0 < n_queries <= n_docs, got {n_queries} and {n_docs}")
    count = count_tokens or approx_count_tokens
    stream = stream or SentenceStream.measure(FILLER, count)
    rng = np.random.default_rng([seed, length])
    names = sample_names(rng, n_docs)
    keys = rng.choice(90_000, size=n_docs, replace=False) + 10_000
    depths = rng.random(n_docs)

    corpus: dict[str, str] = {}
    doc_tokens: dict[str, int] = {}
    doc_depth: dict[str, float] = {}
    drift = 0
    for i, (name, key, depth) in enumerate(zip(names, keys, depths, strict=True)):
        did = f"d{i}"
        sentence = KEY_SENTENCE.format(name=name, key=int(key))
        # Always starting at filler sentence 0 keeps every document's opening identical,
        # as in LongEmbed, so only the key sentence tells documents apart.
        text, measured, _, drift = build_to_length(stream, 0, sentence, float(depth), length, count, drift)
        corpus[did] = text
        doc_tokens[did] = measured
        doc_depth[did] = float(depth)

    picked = rng.choice(n_docs, size=n_queries, replace=False)
    queries = {f"q{j}": QUERY.format(name=names[i]) for j, i in enumerate(picked)}
    qrels = {f"q{j}": {f"d{i}": 1} for j, i in enumerate(picked)}
    answers = {f"q{j}": str(int(keys[i])) for j, i in enumerate(picked)}
    return RetrievalTask(
        name=f"local-passkey-{length}",
        queries=queries,
        corpus=corpus,
        qrels=qrels,
        metric="ndcg@1",
        meta={
            "family": "passkey",
            "length": length,
            "seed": seed,
            "doc_tokens": doc_tokens,
            "depth": doc_depth,
            "answers": answers,
        },
    )


def build_passkey(
    lengths: tuple[int, ...] | list[int] = LONGEMBED_LENGTHS,
    n_queries: int = 50,
    n_docs: int = 100,
    seed: int = 0,
    count_tokens: CountTokens | None = None,
) -> list[RetrievalTask]:
    """Passkey tasks ``local-passkey-{L}``, one per length, in the order given."""
    count = count_tokens or approx_count_tokens
    # The filler is measured once and shared by every length.
    stream = SentenceStream.measure(FILLER, count)
    return [
        build_passkey_length(
            length,
            n_queries=n_queries,
            n_docs=n_docs,
            seed=seed,
            count_tokens=count,
            stream=stream,
        )
        for length in lengths
    ]
