"""Framing and tokenising texts: template and instruction around one tokenisation of the body, character
offsets into the original text, and the reference's stripping of a text's trailing white space (Dream)."""

from __future__ import annotations

import numpy as np
import pytest

from diffemb import DiffEmbedEncoder
from diffemb.profiles import DREAM_TEMPLATE, PLAIN_TEMPLATE, TextTemplate
from diffemb.text import TextTokenizer


@pytest.fixture(scope="module")
def dream_text(tiny_dream_encoder: DiffEmbedEncoder) -> TextTokenizer:
    return TextTokenizer(tiny_dream_encoder.tokenizer, DREAM_TEMPLATE)


def _ids(text: TextTokenizer, string: str) -> list[int]:
    return list(text.tokenizer(string, add_special_tokens=False)["input_ids"])


def test_dream_frame_is_the_chat_turn_around_instruction_and_body(dream_text: TextTokenizer) -> None:
    frame = dream_text.frame("Retrieve text based on user query.")
    assert list(frame.head) == _ids(dream_text, "<|im_start|>user\n")
    assert list(frame.instruction) == _ids(dream_text, "Retrieve text based on user query:")  # "." → ":"
    assert list(frame.tail) == _ids(dream_text, "<|im_end|>")
    assert frame.lead == " "  # the instruction's trailing space is tokenised with the body, as in one string
    body = dream_text.tokenize(["the cat"], frame.lead)[0].ids
    row = frame.row(body)
    assert row == _ids(dream_text, "<|im_start|>user\nRetrieve text based on user query: the cat<|im_end|>")
    assert frame.overhead == len(row) - len(body)
    assert dream_text.frame(None).instruction == () and dream_text.frame("   ").lead == ""


def test_offsets_are_characters_of_the_original_text_even_with_a_lead(dream_text: TextTokenizer) -> None:
    text = "Zürich in 1999, the cat"
    for lead in ("", " "):
        body = dream_text.tokenize([text], lead)[0]
        assert body.char_span(0, len(body)) == (0, len(text))
        assert "".join(text[a:b] for a, b in body.offsets) == text  # byte-level BPE: tokens tile the text
        assert body.char_span(2, 2) == (0, 0)  # an empty token range covers no character


def test_dream_strips_trailing_white_space_like_the_reference(dream_text: TextTokenizer) -> None:
    plain, padded = dream_text.tokenize(["the cat reads", "the cat reads \n\t "], " ")
    assert padded.ids == plain.ids and padded.offsets == plain.offsets
    assert dream_text.count_tokens("the cat reads \n") == dream_text.count_tokens("the cat reads")
    # Leading white space is kept (the reference's separator sits before the text), and spans count it.
    indented = dream_text.tokenize(["  the cat"])[0]
    assert indented.char_span(0, len(indented)) == (0, len("  the cat"))


def test_templates_without_the_switch_keep_trailing_white_space(dream_text: TextTokenizer) -> None:
    keeping = TextTokenizer(dream_text.tokenizer, TextTemplate(tokenizer_specials=False))
    plain, padded = keeping.tokenize(["the cat reads", "the cat reads \n"])
    assert len(padded.ids) > len(plain.ids)


def test_a_dream_text_ending_in_a_newline_gets_the_same_vector(tiny_dream_encoder: DiffEmbedEncoder) -> None:
    vectors = tiny_dream_encoder.encode_documents(["the cat reads a red book", "the cat reads a red book\n \n"])
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)
    chunks = tiny_dream_encoder.encode_document_chunks(["a red book \n"])[0]
    assert chunks.spans == [(0, len("a red book"))]
    assert tiny_dream_encoder.describe()["profile"]["template"]["strip_trailing_whitespace"] is True


def test_the_tokenizers_own_specials_frame_an_encoder_row(minilm_encoder: DiffEmbedEncoder) -> None:
    tokenizer = minilm_encoder.tokenizer
    text = TextTokenizer(tokenizer, PLAIN_TEMPLATE)
    frame = text.frame(None)
    assert list(frame.head) == [tokenizer.cls_token_id] and list(frame.tail) == [tokenizer.sep_token_id]
    body = text.tokenize(["The cat reads."])[0].ids
    assert frame.row(body) == tokenizer("The cat reads.")["input_ids"]
