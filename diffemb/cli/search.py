"""`diffemb search`: rank the documents of a folder or file for a query by their best window, and show it.

Documents are scored by max-sim over their window vectors (the window that matches best decides). The result
shows that window, centred on its passage (one or two sentences) that matches the query best, highlighted, so
the answer is on the screen even when it sits deep in a long document. Names and texts are printed escaped: a
file name cannot inject terminal codes or forge a result line. Reading the documents and the cache lives in
`diffemb.cli.search_index`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from diffemb.cli.args import non_negative_int, positive_int
from diffemb.cli.io import CliError, name_text_error
from diffemb.cli.search_index import Documents, SearchCache, build_index, default_cache_dir, read_documents, shown
from diffemb.similarity import cosine_scores, top_k

DESCRIPTION = (
    "Rank documents by their best-matching window (max-sim over window vectors) and show that window, centred on "
    "its passage closest to the query. Window vectors are cached per document in a cache folder (default: "
    "$XDG_CACHE_HOME/diffemb or ~/.cache/diffemb), keyed by the encoder's fingerprint and the document's text, so "
    "a later search embeds only the query and the documents that are new or changed."
)


def add_search_arguments(search: argparse.ArgumentParser) -> None:
    search.add_argument("query", help="the query text")
    search.add_argument(
        "--docs",
        "-d",
        type=Path,
        required=True,
        help="a folder (each .txt/.md file is one document) or a .txt/.jsonl/.parquet file (one per line or row)",
    )
    search.add_argument("-k", type=positive_int, default=5, help="how many documents to show (default: 5)")
    search.add_argument("--text-field", help="field holding the text in .jsonl/.parquet documents (default: text)")
    search.add_argument("--instruction", help="query instruction (default: the model's; '' for none)")
    search.add_argument(
        "--snippet-chars", type=non_negative_int, default=300, help="characters of the best window shown (0: none)"
    )
    search.add_argument("--json", action="store_true", help="print the results as JSON")
    search.add_argument(
        "--cache-dir", type=Path, help="where window vectors are cached (default: $XDG_CACHE_HOME/diffemb)"
    )
    search.add_argument("--no-cache", action="store_true", help="neither read nor write cached window vectors")
    search.add_argument(
        "--follow-links", action="store_true", help="read symlinked files and folders that lead out of --docs"
    )
    search.add_argument("--quiet", "-q", action="store_true", help="no progress bar or status lines")


def run_search(args: argparse.Namespace, load_encoder: Callable[[], Any], status: Callable[[str], None]) -> int:
    """The search command; `load_encoder` is called once the documents are read (input errors come first)."""
    if not args.query.strip():
        raise CliError("the query is empty")
    documents = read_documents(args.docs, args.text_field, args.follow_links)
    if documents.skipped_links:
        names = ", ".join(documents.skipped_links[:5]) + (" ..." if len(documents.skipped_links) > 5 else "")
        status(
            f"skipped {len(documents.skipped_links)} links leading out of {shown(args.docs)} ({names}); "
            "--follow-links reads them"
        )
    encoder = load_encoder()
    from diffemb.encoder import DEFAULT  # imports torch: only once a model is needed

    instruction = DEFAULT if args.instruction is None else args.instruction
    query = encoder.encode([args.query], role="query", instruction=instruction, show_progress=False)[0]
    cache = (
        None
        if args.no_cache
        else SearchCache(args.cache_dir or default_cache_dir(), encoder.fingerprint, encoder.dimension)
    )

    def on_error(error: ValueError, subset: list[int]) -> Exception:
        return name_text_error(error, lambda i: documents.where(subset[i]))

    def embed(texts: list[str]) -> list[Any]:
        return encoder.encode_document_chunks(texts, show_progress=not args.quiet)  # type: ignore[no-any-return]

    index, embedded, problems = build_index(documents, embed, cache, on_error)
    total, windows = len(documents.texts), len(index.vectors)
    if embedded == 0:
        status(f"cache hit: {total} documents ({windows} windows) from {shown(cache.root if cache else '')}")
    elif cache is None or embedded == total:
        status(
            f"embedded {total} documents ({windows} windows)" + (f"; cached in {shown(cache.root)}" if cache else "")
        )
    else:
        status(f"embedded {embedded} new or changed of {total} documents; the rest from {shown(cache.root)}")
    for problem in problems:
        status(problem)
    results = _results(encoder, query, documents, index, args.k)
    if args.json:
        print(safe_json(results))
    else:
        mark = _marker()
        for result in results:
            print(f"{result['rank']}. {result['score']:.4f}  {shown(result['document'])}")
            text = documents.texts[result["index"]]
            chunk, match = result["chunk"], result["match"]
            line = snippet(
                text, (chunk["start"], chunk["end"]), (match["start"], match["end"]), args.snippet_chars, mark
            )
            if line:
                print(f"   {line}")
    return 0


def _results(encoder: Any, query: np.ndarray, documents: Documents, index: Any, k: int) -> list[dict[str, Any]]:
    best, rows = index.scores(query)
    results = []
    for rank, i in enumerate(top_k(best, k), start=1):
        text = documents.texts[i]
        start, end = (int(v) for v in index.spans[rows[i]])
        match_start, match_end = best_passage(encoder, query, text, start, end)
        results.append(
            {
                "rank": rank,
                "score": round(float(best[i]), 6),
                "document": documents.labels[i],
                "index": int(i),
                "chunk": {"start": start, "end": end, "text": text[start:end]},
                "match": {"start": match_start, "end": match_end, "text": text[match_start:match_end]},
            }
        )
    return results


# -- the best passage of a window, and the snippet around it --------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+|\n\s*\n")


def sentence_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Character spans of the sentences of `text[start:end]` (paragraph breaks end a sentence too), trimmed of
    white space; pieces without a letter or digit are left out."""
    spans, cursor = [], start
    for found in _SENTENCE_END.finditer(text, start, end):
        spans.append((cursor, found.start()))
        cursor = found.end()
    spans.append((cursor, end))
    trimmed = []
    for a, b in spans:
        piece = text[a:b]
        a, b = a + len(piece) - len(piece.lstrip()), b - (len(piece) - len(piece.rstrip()))
        if any(char.isalnum() for char in text[a:b]):
            trimmed.append((a, b))
    return trimmed


def best_passage(encoder: Any, query: np.ndarray, text: str, start: int, end: int) -> tuple[int, int]:
    """The span of the window's passage closest to the query: one sentence or two neighbouring ones (a fact and
    its subject are often split over two sentences); the whole window if it has one sentence."""
    sentences = sentence_spans(text, start, end)
    if len(sentences) <= 1:
        return sentences[0] if sentences else (start, end)
    pairs = [(a, b) for (a, _), (_, b) in itertools.pairwise(sentences)]
    passages = sentences + pairs
    try:
        vectors = encoder.encode([text[a:b] for a, b in passages], role="document", show_progress=False)
    except ValueError:  # a piece with no tokens for this model: fall back to the window's first sentence
        return sentences[0]
    return passages[int(top_k(cosine_scores(query, vectors)[0], 1)[0])]


def _flat(text: str) -> str:
    return " ".join(text.split())


def snippet(text: str, window: tuple[int, int], match: tuple[int, int], limit: int, mark: Callable[[str], str]) -> str:
    """About `limit` characters of the window around the match, white space collapsed, the match marked, every
    piece escaped for the terminal; "…" where the window goes on."""
    if limit == 0:
        return ""
    (start, end), (match_start, match_end) = window, match
    middle = _flat(text[match_start:match_end])
    if len(middle) >= limit:
        cut = middle[: max(limit - 1, 1)]
        return mark(shown(cut.rsplit(" ", 1)[0] if " " in cut else cut)) + "…"
    before, after = _flat(text[start:match_start]), _flat(text[match_end:end])
    room = limit - len(middle) - 2
    take_after = min(len(after), max(room // 2, room - len(before)))
    take_before = min(len(before), room - take_after)
    left, right = before[len(before) - take_before :], after[:take_after]
    if take_before < len(before):
        left = "…" + left.split(" ", 1)[-1] if " " in left else "…"
    if take_after < len(after):
        right = (right.rsplit(" ", 1)[0] if " " in right else "") + "…"
    return " ".join(piece for piece in (shown(left), mark(shown(middle)), shown(right)) if piece)


def _marker() -> Callable[[str], str]:
    """Bold on a terminal (unless NO_COLOR is set); `**...**` in a pipe or file."""
    if sys.stdout.isatty() and not os.environ.get("NO_COLOR"):
        return lambda text: f"\x1b[1m{text}\x1b[0m"
    return lambda text: f"**{text}**"


def safe_json(results: list[dict[str, Any]]) -> str:
    """The results as JSON, with every control, format (bidi) and separator character escaped (json.dumps leaves
    C1 controls and U+202E raw), so the output is safe on a terminal and still the same JSON."""
    public = [{key: value for key, value in result.items() if key != "index"} for result in results]
    text = json.dumps(public, indent=2, ensure_ascii=False)
    return "".join(_json_escape(char) if shown(char) != char and char not in "\\\n" else char for char in text)


def _json_escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
