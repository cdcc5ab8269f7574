"""Input checks with errors that name the bad item and the fix."""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from typing import Literal

Role = Literal["query", "document"]
ROLES = ("query", "document")
# Unicode categories that carry no text: control (NUL, ESC), format (zero-width space, BOM, bidi marks) and the
# separators. A text made only of these has nothing to embed, whatever the tokenizer makes of its bytes.
_INVISIBLE = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


def check_texts(texts: object, what: str = "texts") -> list[str]:
    """The texts as a list, or a TypeError/ValueError naming the first bad item by its index."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"{what} must be a list of strings, got a single {type(texts).__name__}: wrap it in a list")
    if not isinstance(texts, Iterable):
        raise TypeError(f"{what} must be a list of strings, got {type(texts).__name__}")
    items = list(texts)
    for index, text in enumerate(items):
        check_text(text, index, what)
    return items


def check_text(text: object, index: int, what: str = "texts") -> str:
    if not isinstance(text, str):
        raise TypeError(f"{what}[{index}] is a {type(text).__name__}, not a str: pass text only")
    if not text.strip():
        raise ValueError(f"{what}[{index}] is empty or white space only: remove it or give it text")
    if all(unicodedata.category(char) in _INVISIBLE for char in text):  # stops at the first visible character
        raise ValueError(
            f"{what}[{index}] has only invisible characters (zero-width, BOM, control or separator characters, "
            "no text): remove it or give it text"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        # A lone surrogate ("\ud800"), e.g. from bytes decoded with errors="surrogateescape" or a bad JSON escape:
        # tokenizers fail on it with a TypeError that names no text.
        raise ValueError(
            f"{what}[{index}] is not valid Unicode text (lone surrogate {text[err.start]!r} at character {err.start}): "
            "decode the source as UTF-8 without 'surrogateescape', or drop the character"
        ) from None
    return text


def check_role(role: object) -> Role:
    if role not in ROLES:
        raise ValueError(f"role must be 'query' or 'document', got {role!r}")
    return role  # type: ignore[return-value]


def caller_stacklevel() -> int:
    """The `stacklevel` that makes a warning point at the first line outside diffemb (the caller's code)."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] == "diffemb":
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


_TEXT_INDEX = re.compile(r"texts\[(\d+)\]")


def retell_text_error(error: Exception, name: Callable[[int], str], count: int | None = None) -> Exception:
    """The core's error about `texts[i]` told with the caller's own name for that text (`name(i)`, e.g. "line 7
    of in.txt" or "document 3 (id 'a')"), as an error of the same type; `error` itself when it names no text
    (or an index at or beyond `count`). One place for the adapters and the command line to do this."""
    found = _TEXT_INDEX.search(str(error))
    if found is None or (count is not None and int(found.group(1)) >= count):
        return error
    retold = type(error)(_TEXT_INDEX.sub(name(int(found.group(1))), str(error), count=1))
    retold.__cause__ = error
    return retold


def checked_groups(texts: Iterable[object], size: int) -> Iterator[list[str]]:
    """`texts` in lists of `size`, each text checked (`texts[i]` with its index in the whole stream)."""
    group: list[str] = []
    for index, text in enumerate(texts):
        group.append(check_text(text, index))
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group
