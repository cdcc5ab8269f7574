"""Texts to token ids: one tokenisation of each text's body, framed by the template and instruction.

The row of a text is `head + instruction + body + tail`, each part tokenised on its own so that the encoder
knows exactly which positions hold the instruction (for pooling that excludes it) and which hold the text
(for splitting long documents into windows without tokenising twice).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from transformers import PreTrainedTokenizerBase

from diffemb.profiles import TextTemplate


@dataclass(frozen=True)
class TokenizedText:
    """The body of one text: its token ids and each token's character span in the original text."""

    ids: list[int]
    offsets: list[tuple[int, int]]

    def __len__(self) -> int:
        return len(self.ids)

    def char_span(self, start: int, end: int) -> tuple[int, int]:
        """Characters of the original text covered by tokens `start:end`."""
        if start >= end:
            return (0, 0)
        return (self.offsets[start][0], self.offsets[end - 1][1])


@dataclass(frozen=True)
class Frame:
    """The token ids that surround every body of one (template, instruction) pair."""

    head: tuple[int, ...]
    instruction: tuple[int, ...]
    tail: tuple[int, ...]
    lead: str
    """White space that ends the spelled instruction; it is tokenised with the body, as in the unsplit text."""

    @property
    def prefix(self) -> tuple[int, ...]:
        return self.head + self.instruction

    @property
    def overhead(self) -> int:
        return len(self.head) + len(self.instruction) + len(self.tail)

    def row(self, body_ids: Sequence[int]) -> list[int]:
        return [*self.head, *self.instruction, *body_ids, *self.tail]


class TextTokenizer:
    """Frames and tokenises texts for one tokenizer and template."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, template: TextTemplate) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise TypeError(
                f"{type(tokenizer).__name__} is a slow tokenizer; diffemb needs a fast (tokenizers-backed) "
                "tokenizer for character offsets: save the checkpoint with a tokenizer.json"
            )
        self.tokenizer = tokenizer
        self.template = template
        self._backend = tokenizer.backend_tokenizer
        self._specials_before, self._specials_after = _tokenizer_specials(tokenizer)
        self.frame = lru_cache(maxsize=64)(self._frame)

    def _ids(self, text: str) -> list[int]:
        if not text:
            return []
        return list(self._backend.encode(text, add_special_tokens=False).ids)

    def _frame(self, instruction: str | None) -> Frame:
        template = self.template
        spelled = template.spell_instruction(instruction)
        stripped = spelled.rstrip()
        head = self._ids(template.prefix)
        tail = self._ids(template.suffix)
        if template.tokenizer_specials:
            head = self._specials_before + head
            tail = tail + self._specials_after
        eos = self.tokenizer.eos_token_id
        if template.append_eos and isinstance(eos, int) and (not tail or tail[-1] != eos):
            tail = [*tail, eos]
        return Frame(tuple(head), tuple(self._ids(stripped)), tuple(tail), spelled[len(stripped) :])

    def body(self, text: str) -> str:
        """The part of `text` that is tokenised: the text itself, less its trailing white space when the
        template says so. It is a prefix of `text`, so token offsets into it are offsets into `text`."""
        return text.rstrip() if self.template.strip_trailing_whitespace else text

    def tokenize(self, texts: Sequence[str], lead: str = "") -> list[TokenizedText]:
        """Token ids and character offsets of each text's body, in one batched call to the fast tokenizer."""
        encodings = self._backend.encode_batch([lead + self.body(text) for text in texts], add_special_tokens=False)
        shift = len(lead)
        out = []
        for encoding in encodings:
            offsets = [(max(a - shift, 0), max(b - shift, 0)) for a, b in encoding.offsets]
            out.append(TokenizedText(list(encoding.ids), offsets))
        return out

    def count_tokens(self, text: str) -> int:
        """Tokens of a text's body (without template or specials), for sizing data to a model's window."""
        return len(self._backend.encode(self.body(text), add_special_tokens=False).ids)


def _tokenizer_specials(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer itself puts before and after a text (e.g. [CLS] … [SEP], or BOS …).

    Found by encoding a probe with and without specials rather than by reading attributes, because tokenizers
    differ in which of bos/cls/eos/sep they really add.
    """
    probe = "hello"
    bare = tokenizer(probe, add_special_tokens=False)["input_ids"]
    full = tokenizer(probe, add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return list(full[:start]), list(full[start + len(bare) :])
    return [], []
