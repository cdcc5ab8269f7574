"""Rows from tokenised texts, on a hand-made tokenisation: truncated queries, document windows with their
character spans, instruction-free pooling ranges, and late-chunking ranges inside one long row."""

from __future__ import annotations

import pytest

from diffemb.chunking import ChunkingConfig
from diffemb.rows import plan_rows
from diffemb.text import Frame, TokenizedText

FRAME = Frame(head=(1,), instruction=(2, 3), tail=(9,), lead=" ")  # overhead 4 tokens
BARE = Frame(head=(1,), instruction=(), tail=(9,), lead="")
# Ten body tokens 10..19; token i covers characters [2i, 2i + 1) of its text ("a b c d ...").
TEXT = TokenizedText(ids=list(range(10, 20)), offsets=[(2 * i, 2 * i + 1) for i in range(10)])


def test_a_query_is_cut_to_the_window_and_counted_as_truncated() -> None:
    plan = plan_rows([TEXT], FRAME, max_length=8, chunking=None, exclude_instruction=False)
    (row,) = plan.rows
    assert row.ids == [1, 2, 3, 10, 11, 12, 13, 9]  # head, instruction, 4 body tokens, tail
    assert row.segments == [(0, 8)] and row.owners == [(0, 0)]
    assert plan.truncated == 1
    assert [(c.span, c.tokens) for c in plan.chunks[0]] == [((0, 7), 4)]


def test_excluding_the_instruction_pools_from_the_body_on() -> None:
    row = plan_rows([TEXT], FRAME, max_length=8, chunking=None, exclude_instruction=True).rows[0]
    assert row.segments == [(3, 8)]  # after head + instruction, through the tail
    bare = plan_rows([TEXT], BARE, max_length=8, chunking=None, exclude_instruction=True).rows[0]
    assert bare.segments == [(0, len(bare.ids))]  # no instruction: nothing to leave out


def test_a_document_is_split_into_overlapping_windows_with_spans() -> None:
    chunking = ChunkingConfig("mean", size=4, overlap=1)
    plan = plan_rows([TEXT], FRAME, max_length=8, chunking=chunking, exclude_instruction=False)
    assert [row.ids[3:-1] for row in plan.rows] == [[10, 11, 12, 13], [13, 14, 15, 16], [16, 17, 18, 19]]
    assert [row.owners for row in plan.rows] == [[(0, 0)], [(0, 1)], [(0, 2)]]
    assert [(c.span, c.tokens) for c in plan.chunks[0]] == [((0, 7), 4), ((6, 13), 4), ((12, 19), 4)]
    assert plan.truncated == 0


def test_texts_keep_their_order_and_short_ones_one_row() -> None:
    short = TokenizedText(ids=[30, 31], offsets=[(0, 3), (4, 6)])
    plan = plan_rows([short, TEXT, short], FRAME, 8, ChunkingConfig("max", size=4, overlap=0), False)
    assert [row.owners[0][0] for row in plan.rows] == [0, 1, 1, 1, 2]
    assert [len(chunks) for chunks in plan.chunks] == [1, 3, 1]
    assert plan.chunks[0][0].span == (0, 6)


def test_first_aggregation_truncates_documents() -> None:
    plan = plan_rows([TEXT], FRAME, 8, ChunkingConfig("first"), False)
    assert len(plan.rows) == 1 and plan.truncated == 1


def test_late_chunking_pools_several_ranges_of_one_long_row() -> None:
    """Capacity 4 body tokens per pass, windows of 2: passes over tokens 0-3, 4-7 and (shifted back) 6-9."""
    plan = plan_rows([TEXT], FRAME, 8, ChunkingConfig("late", size=2, overlap=0), False)
    assert [row.ids[3:-1] for row in plan.rows] == [[10, 11, 12, 13], [14, 15, 16, 17], [16, 17, 18, 19]]
    assert all(row.segments == [(3, 5), (5, 7)] for row in plan.rows)  # body ranges after head + instruction
    assert [owner for row in plan.rows for owner in row.owners] == [(0, k) for k in range(6)]
    assert [c.span for c in plan.chunks[0][:2]] == [(0, 3), (4, 7)]


def test_an_empty_body_in_late_chunking_still_gets_a_vector() -> None:
    plan = plan_rows([TokenizedText([], [])], FRAME, 8, ChunkingConfig("late"), False)
    (row,) = plan.rows
    assert row.segments == [(0, len(row.ids))] and plan.chunks[0][0].span == (0, 0)


def test_no_room_for_text_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="leaves no room for text"):
        plan_rows([TEXT], FRAME, max_length=4, chunking=None, exclude_instruction=False)
