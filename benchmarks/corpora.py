"""Seeded benchmark corpora cut to target token lengths with the model's own tokenizer.

The text is generated English-like prose (a small grammar over a few hundred common words, with names, numbers
and punctuation), so tokenizers see realistic word and sub-word statistics without any download. Every corpus
is a pure function of (kind, tokenizer, size, seed): a subprocess that rebuilds it gets the same texts.

Kinds:
- ``queries``: questions of 10-30 body tokens (uniform).
- ``passages``: log-normal body lengths, median ~150 tokens (sigma 0.6), clipped to the model window.
- ``long``: documents of 3-6 model windows each (uniform), which diffemb splits into windows and peers truncate.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from tokenizers import Tokenizer

_NAMES = ["Anna", "Tom", "Maria", "David", "Keiko", "Omar", "Lena", "Pierre", "Sofia", "Ivan", "Grace", "Luis",
          "Amara", "Chen", "Fatima", "Jonas", "Priya", "Mateo", "Ingrid", "Kwame"]  # fmt: skip
_PLACES = ["Berlin", "the harbour", "the old library", "Lagos", "the mountain village", "Kyoto", "the market square",
           "the research station", "Lisbon", "the river delta", "the northern plains", "Toronto", "the hospital",
           "the city archive", "Nairobi", "the coastal road"]  # fmt: skip
_ADJECTIVES = ["large", "small", "ancient", "modern", "quiet", "busy", "careful", "rapid", "expensive", "simple",
               "complex", "local", "national", "digital", "annual", "private", "public", "early", "late", "bright",
               "narrow", "wide", "strange", "common", "important", "recent", "detailed", "reliable", "fragile",
               "efficient", "seasonal", "historic", "rural", "urban", "technical", "medical", "financial", "legal",
               "chemical", "electric"]  # fmt: skip
_NOUNS = ["committee", "budget", "report", "bridge", "river", "garden", "engine", "network", "student", "teacher",
          "farmer", "doctor", "engineer", "museum", "station", "library", "market", "factory", "village", "school",
          "policy", "experiment", "protein", "battery", "satellite", "harvest", "contract", "painting", "recipe",
          "theorem", "algorithm", "database", "journey", "storm", "forest", "council", "company", "patient",
          "vaccine", "telescope", "manuscript", "treaty", "railway", "reservoir", "festival", "orchestra",
          "mineral", "glacier", "enzyme", "circuit", "dataset", "license", "invoice", "harbour", "tunnel",
          "population", "climate", "language", "economy", "software"]  # fmt: skip
_VERBS = ["reviewed", "built", "described", "measured", "repaired", "published", "rejected", "improved", "funded",
          "studied", "replaced", "visited", "tested", "designed", "delivered", "analysed", "approved", "painted",
          "translated", "predicted", "collected", "protected", "reduced", "doubled", "explained", "questioned",
          "recorded", "restored", "simulated", "inspected"]  # fmt: skip
_ADVERBS = ["quickly", "carefully", "slowly", "recently", "finally", "again", "openly", "quietly", "often", "rarely"]
_PREPOSITIONS = ["in", "near", "behind", "across", "beyond", "under", "above", "inside", "along", "around"]
_TIMES = ["in 1987", "last spring", "during the winter of 2003", "every Tuesday", "before the election",
          "after the flood", "in the early morning", "over three decades", "on 14 March", "within a week"]  # fmt: skip
_CONNECTIVES = ["However,", "Meanwhile,", "As a result,", "In addition,", "Nevertheless,", "For example,",
                "In contrast,", "Later,", "Surprisingly,", "According to the report,"]  # fmt: skip
_QUESTION_HEADS = ["how did", "why did", "when did", "where did", "which", "what", "who"]


_IRREGULAR = {"built": "build", "analysed": "analyse", "doubled": "double", "simulated": "simulate",
              "approved": "approve", "translated": "translate", "predicted": "predict", "reduced": "reduce",
              "replaced": "replace", "described": "describe", "measured": "measure", "published": "publish",
              "improved": "improve", "designed": "design", "questioned": "question", "restored": "restore",
              "studied": "study"}  # fmt: skip


def _base(verb: str) -> str:
    """The base form of a past-tense verb from `_VERBS` (for "did ... <verb>" questions)."""
    return _IRREGULAR.get(verb, verb.removesuffix("ed"))


def _noun_phrase(rng: random.Random) -> str:
    det = rng.choice(["the", "a", "the", "this", "every", "one"])
    if rng.random() < 0.5:
        return f"{det} {rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}"
    return f"{det} {rng.choice(_NOUNS)}"


def _subject(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.25:
        return rng.choice(_NAMES)
    if roll < 0.35:
        return f"{rng.randint(2, 950)} {rng.choice(_NOUNS)}s"
    return _noun_phrase(rng)


def sentence(rng: random.Random) -> str:
    """One declarative English-like sentence."""
    parts = [_subject(rng)]
    if rng.random() < 0.3:
        parts.append(rng.choice(_ADVERBS))
    parts.append(rng.choice(_VERBS))
    parts.append(_noun_phrase(rng))
    if rng.random() < 0.6:
        parts.append(f"{rng.choice(_PREPOSITIONS)} {rng.choice(_PLACES)}")
    if rng.random() < 0.4:
        parts.append(rng.choice(_TIMES))
    if rng.random() < 0.3:
        parts.append(f"and {rng.choice(_VERBS)} {_noun_phrase(rng)}")
    if rng.random() < 0.15:
        parts.append(f"at a cost of {rng.randint(2, 900)}.{rng.randint(0, 99):02d} million")
    text = " ".join(parts)
    if rng.random() < 0.2:
        text = f"{rng.choice(_CONNECTIVES)} {text}"
    return text[0].upper() + text[1:] + "."


def question(rng: random.Random) -> str:
    """One question, the shape of a search query."""
    head = rng.choice(_QUESTION_HEADS)
    if head in ("which", "what"):
        body = f"{rng.choice(_NOUNS)} did {_subject(rng)} {_base(rng.choice(_VERBS))}"
    elif head == "who":
        body = f"{rng.choice(_VERBS)} {_noun_phrase(rng)}"
    else:
        body = f"{_subject(rng)} {_base(rng.choice(_VERBS))} {_noun_phrase(rng)}"
    if rng.random() < 0.6:
        body += f" {rng.choice(_PREPOSITIONS)} {rng.choice(_PLACES)}"
    if rng.random() < 0.5:
        body += f" {rng.choice(_TIMES)}"
    text = f"{head} {body}"
    return text[0].upper() + text[1:]


def prose(rng: random.Random, n_chars: int) -> str:
    """Paragraphs of sentences, at least `n_chars` characters long."""
    out: list[str] = []
    size = 0
    while size < n_chars:
        paragraph = " ".join(sentence(rng) for _ in range(rng.randint(3, 7)))
        out.append(paragraph)
        size += len(paragraph) + 2
    return "\n\n".join(out)


@dataclass
class Corpus:
    kind: str
    texts: list[str]
    body_tokens: list[int] = field(default_factory=list)
    """Body tokens (no specials, no template) of each text under the model's tokenizer."""
    window: int = 0
    """Body tokens that fit in one model window."""

    @property
    def total_body_tokens(self) -> int:
        return sum(self.body_tokens)


Encode = Callable[[str], list[tuple[int, int]]]
"""Text → character offsets of its body tokens (the fast tokenizer without special tokens)."""


def offsets_encoder(tokenizer: object) -> Encode:
    """Character offsets of body tokens, from a transformers fast tokenizer's `tokenizers` backend."""
    # A copy: tokenizer.json files may switch on truncation and padding (MiniLM's truncates at 128 tokens).
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())  # type: ignore[attr-defined]
    backend.no_truncation()
    backend.no_padding()

    def encode(text: str) -> list[tuple[int, int]]:
        return list(backend.encode(text, add_special_tokens=False).offsets)

    return encode


def _cut(text: str, offsets: list[tuple[int, int]], n_tokens: int) -> str:
    """The prefix of `text` covering its first `n_tokens` tokens (the whole text if it has fewer)."""
    if n_tokens >= len(offsets):
        return text
    return text[: offsets[n_tokens - 1][1]].rstrip()


def _sized(rng: random.Random, encode: Encode, target: int, make: Callable[[random.Random, int], str]) -> str:
    """Generated text cut to `target` body tokens; re-cut while re-tokenising the cut changes the count."""
    chars = max(target * 6, 40)
    while True:
        text = make(rng, chars)
        offsets = encode(text)
        if len(offsets) >= target:
            break
        chars *= 2
    for _ in range(4):
        cut = _cut(text, offsets, target)
        count = len(encode(cut))
        if count <= target:
            return cut
        offsets = offsets[: target - (count - target)]
        text = cut
    return cut


def _query_text(rng: random.Random, n_chars: int) -> str:
    parts = [question(rng)]
    while sum(len(p) for p in parts) < n_chars:
        parts.append(f"{rng.choice(_PREPOSITIONS)} {_noun_phrase(rng)}")
    return " ".join(parts)


def lognormal_lengths(rng: random.Random, n: int, median: float, sigma: float, low: int, high: int) -> list[int]:
    return [min(max(round(rng.lognormvariate(math.log(median), sigma)), low), high) for _ in range(n)]


def build_corpus(kind: str, tokenizer: object, n: int, window: int, seed: int = 0) -> Corpus:
    """`n` texts of `kind` for a model whose window holds `window` body tokens."""
    rng = random.Random(f"{kind}:{seed}")
    encode = offsets_encoder(tokenizer)
    if kind == "queries":
        targets = [min(rng.randint(10, 30), window) for _ in range(n)]
        texts = [_sized(rng, encode, t, _query_text).rstrip(" ,.") + "?" for t in targets]
    elif kind == "passages":
        targets = lognormal_lengths(rng, n, median=150, sigma=0.6, low=16, high=window)
        texts = [_sized(rng, encode, t, prose) for t in targets]
    elif kind == "long":
        targets = [round(rng.uniform(3.0, 6.0) * window) for _ in range(n)]
        texts = [_sized(rng, encode, t, prose) for t in targets]
    else:
        raise ValueError(f"unknown corpus kind {kind!r}: use queries, passages or long")
    return Corpus(kind, texts, [len(encode(t)) for t in texts], window)


def word_documents(n: int, seed: int = 0, sentences: tuple[int, int] = (1, 4)) -> list[str]:
    """`n` short documents (a few sentences each) without a tokenizer, for streaming-memory runs."""
    rng = random.Random(f"short:{seed}")
    return [" ".join(sentence(rng) for _ in range(rng.randint(*sentences))) for _ in range(n)]
