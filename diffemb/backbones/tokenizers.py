"""Loading a checkpoint's tokenizer, with an error that names the damaged file.

transformers and tokenizers report a truncated or corrupt `tokenizer.json` as a bare JSON or Rust parse error
("Unterminated string starting at: line 1 column 500") that names no file; every backbone loads its tokenizer
through `load_tokenizer`, which says which file of which folder is broken and what to do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from diffemb.backbones.base import quiet_transformers

# The files a Hugging Face tokenizer is built from; the JSON ones are checked first when loading fails.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    "tokenizer.model",
)


def load_tokenizer(tokenizer_class: Any, folder: str | Path, **kwargs: Any) -> Any:
    """`tokenizer_class.from_pretrained(folder, **kwargs)` quietly; a failure to read the files is a ValueError
    naming the broken file (or, when no single file can be blamed, the folder and its tokenizer files)."""
    try:
        with quiet_transformers():
            return tokenizer_class.from_pretrained(str(folder), **kwargs)
    except Exception as err:
        damaged = _damaged_file(Path(folder))
        if damaged is None and isinstance(err, OSError):
            raise  # transformers' own message for missing files names them and the folder
        raise ValueError(damaged or _explain(Path(folder), err)) from err


FIX = "download the checkpoint's tokenizer files again (or copy them from the original model)"


def _damaged_file(folder: Path) -> str | None:
    for name in TOKENIZER_FILES:
        path = folder / name
        if not name.endswith(".json") or not path.is_file():
            continue
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as bad:
            return f"the tokenizer file {path} is damaged ({_one_line(bad)}): {FIX}"
    return None


def _explain(folder: Path, error: Exception) -> str:
    fix = FIX
    present = [name for name in TOKENIZER_FILES if (folder / name).is_file()] or ["none"]
    return (
        f"cannot load the tokenizer of {folder} (its tokenizer files: {', '.join(present)}): "
        f"{type(error).__name__}: {_one_line(error)}; {fix}"
    )


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:300] or type(error).__name__
