"""Training pairs: a JSONL file (or a hub dataset), checked row by row, split, and laid out for the trainer.

One row is one query with its positive document, optional hard negatives and an optional instruction:

    {"query": "colour of the sky", "positive": "The sky is blue.", "negatives": ["The grass is green."],
     "instruction": "Given a question, retrieve the sentence that answers it:"}

Every bad row (not an object, a missing or empty `query`/`positive`, a wrong type) is reported by line number,
all of them in one error; nothing is skipped silently. Blank lines are not rows. Other keys (ids, scores) are
ignored. An `instruction` of null or absent means "the recipe's query instruction"; "" means none.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from diffemb.extras import require

if TYPE_CHECKING:
    from datasets import Dataset

logger = logging.getLogger(__name__)

INSTRUCTION_COLUMN = "instruction"
"""Carried beside the text columns; the collator frames queries with it instead of embedding it."""
_SHOWN_ERRORS = 50


class DataError(ValueError):
    """Training data that cannot be used as it is; the message lists every bad row."""


@dataclass(frozen=True)
class Pair:
    query: str
    positive: str
    negatives: tuple[str, ...] = ()
    instruction: str | None = None
    """None: the recipe's query instruction; "": no instruction; anything else: this row's instruction."""
    where: str = ""
    """Where the row came from ("line 12", "row 3"), for messages."""


# -- reading -----------------------------------------------------------------------------------------------


def read_jsonl(path: str | os.PathLike[str]) -> list[Pair]:
    """Pairs from a JSONL file; a `DataError` lists every bad line by number."""
    path = Path(path)
    pairs: list[Pair] = []
    errors: list[str] = []
    try:
        content = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}") from err
    for number, raw in enumerate(content.split(b"\n"), start=1):
        where = f"line {number}"
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as err:
            errors.append(f"{where}: not UTF-8 text (bad byte at column {err.start + 1}); save the file as UTF-8")
            continue
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            errors.append(f"{where}: not valid JSON ({err.msg} at column {err.colno})")
            continue
        pair, problems = parse_row(row, where)
        if problems:
            errors.extend(f"{where}: {problem}" for problem in problems)
        elif pair is not None:
            pairs.append(pair)
    _raise_if(errors, str(path))
    if not pairs:
        raise DataError(f"{path} holds no rows: write one JSON object per line with 'query' and 'positive'")
    return pairs


def pairs_from_rows(rows: Iterable[Any], source: str = "rows") -> list[Pair]:
    """Pairs from in-memory rows (dicts or `Pair`s), checked like JSONL lines and numbered from 1."""
    pairs: list[Pair] = []
    errors: list[str] = []
    for number, row in enumerate(rows, start=1):
        if isinstance(row, Pair):
            pairs.append(row)
            continue
        where = f"row {number}"
        pair, problems = parse_row(row, where)
        errors.extend(f"{where}: {problem}" for problem in problems)
        if pair is not None and not problems:
            pairs.append(pair)
    _raise_if(errors, source)
    if not pairs:
        raise DataError(f"{source} holds no rows")
    return pairs


def parse_row(row: Any, where: str) -> tuple[Pair | None, list[str]]:
    """The pair of one decoded row, or the list of what is wrong with it."""
    if not isinstance(row, dict):
        return None, [f"expected a JSON object with 'query' and 'positive', got {_kind(row)}"]
    problems: list[str] = []
    query = _text(row, "query", problems)
    positive = _text(row, "positive", problems)
    negatives: list[str] = []
    raw_negatives = row.get("negatives")
    if "negatives" not in row and "negative" in row:
        problems.append("'negative' is not a field: put hard negatives in 'negatives', a list of strings")
    elif raw_negatives is not None:
        if not isinstance(raw_negatives, list):
            problems.append(f"'negatives' must be a list of strings, got {_kind(raw_negatives)}")
        else:
            for index, negative in enumerate(raw_negatives):
                if not isinstance(negative, str):
                    problems.append(f"'negatives'[{index}] must be a string, got {_kind(negative)}")
                elif not negative.strip():
                    problems.append(f"'negatives'[{index}] is empty")
                else:
                    negatives.append(negative)
    instruction = row.get("instruction")
    if instruction is not None and not isinstance(instruction, str):
        problems.append(f"'instruction' must be a string or null, got {_kind(instruction)}")
    if problems or query is None or positive is None:
        return None, problems
    return Pair(query, positive, tuple(negatives), instruction, where), []


def _text(row: dict[str, Any], key: str, problems: list[str]) -> str | None:
    if key not in row or row[key] is None:
        problems.append(f"missing '{key}'")
        return None
    value = row[key]
    if not isinstance(value, str):
        problems.append(f"'{key}' must be a string, got {_kind(value)}")
        return None
    if not value.strip():
        problems.append(f"'{key}' is empty")
        return None
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)


def _raise_if(errors: list[str], source: str) -> None:
    if not errors:
        return
    shown = errors[:_SHOWN_ERRORS]
    more = f"\n  … and {len(errors) - len(shown)} more" if len(errors) > len(shown) else ""
    raise DataError(f"{source}: {len(errors)} bad row(s), fix them and run again:\n  " + "\n  ".join(shown) + more)


# -- hub datasets ------------------------------------------------------------------------------------------

_QUERY_COLUMNS = ("query", "anchor", "question")
_POSITIVE_COLUMNS = ("positive", "pos", "positive_passages", "document", "passage", "answer")
_NEGATIVE_COLUMNS = ("negatives", "negative", "neg", "negative_passages")
_INSTRUCTION_COLUMNS = ("instruction",)


def load_pairs(source: str | os.PathLike[str] | Sequence[Any], *, split: str = "train") -> list[Pair]:
    """Pairs from a JSONL file, a list of rows, or a hub dataset name (`datasets.load_dataset`).

    Offline (`HF_HUB_OFFLINE=1`) a name that is not a file fails at once with one line that says so.
    """
    if not isinstance(source, (str, os.PathLike)):
        return pairs_from_rows(source)
    path = Path(source)
    if path.is_file():
        return read_jsonl(path)
    if path.exists():
        raise DataError(f"{path} is not a file: pass a JSONL file with one pair per line")
    name = str(source)
    if path.suffix in (".jsonl", ".json") or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise DataError(f"no such file: {name}")
    return _load_hub(name, split)


def _hub_offline() -> bool:
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except ImportError:  # pragma: no cover - huggingface_hub is a core dependency
        return os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false", "False")


def _load_hub(name: str, split: str) -> list[Pair]:
    if _hub_offline():
        raise DataError(
            f"{name!r} is not a local file and the Hugging Face hub is offline (HF_HUB_OFFLINE=1): "
            "pass a JSONL file of pairs instead"
        )
    load_dataset = require("datasets", "train", "loading a hub dataset").load_dataset
    try:
        dataset = load_dataset(name, split=split)
    except Exception as err:  # network errors, missing datasets and gated ones all end here
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"cannot load hub dataset {name!r} (split {split!r}): {first}") from None
    return pairs_from_hub_rows(dataset, name)


def pairs_from_hub_rows(rows: Any, name: str) -> list[Pair]:
    """Pairs from a hub dataset's rows, mapping common column names (query/anchor/question, positive/pos/…,
    negatives/negative/…, Tevatron's `positive_passages`/`negative_passages` lists of {title, text})."""
    columns = list(getattr(rows, "column_names", None) or (list(rows[0]) if len(rows) else []))
    query_col = next((c for c in _QUERY_COLUMNS if c in columns), None)
    positive_col = next((c for c in _POSITIVE_COLUMNS if c in columns), None)
    if query_col is None or positive_col is None:
        raise DataError(
            f"hub dataset {name!r} has columns {columns}; diffemb needs a query column (one of "
            f"{', '.join(_QUERY_COLUMNS)}) and a positive column (one of {', '.join(_POSITIVE_COLUMNS)})"
        )
    negative_col = next((c for c in _NEGATIVE_COLUMNS if c in columns), None)
    instruction_col = next((c for c in _INSTRUCTION_COLUMNS if c in columns), None)
    converted = []
    for row in rows:
        positives = _passages(row[positive_col])
        negatives = _passages(row[negative_col]) if negative_col else []
        converted.append(
            {
                "query": row[query_col],
                "positive": positives[0] if positives else None,
                "negatives": negatives,
                "instruction": row[instruction_col] if instruction_col else None,
            }
        )
    return pairs_from_rows(converted, f"hub dataset {name!r}")


def _passages(value: Any) -> list[Any]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, dict) and "text" in item:
            title = str(item.get("title") or "").strip()
            out.append(f"{title} {item['text']}".strip() if title else item["text"])
        else:
            out.append(item)
    return out


# -- splitting and layout ----------------------------------------------------------------------------------


def split_pairs(pairs: Sequence[Pair], eval_fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """(train, held-out): a seeded shuffle, at least one pair on each side when `eval_fraction` > 0.

    Pairs that share a query or a positive stay on the same side, so held-out scores are not inflated by
    texts the model was trained on.
    """
    if not 0.0 <= eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be in [0, 1), got {eval_fraction}")
    if eval_fraction == 0.0:
        return list(pairs), []
    if len(pairs) < 2:
        raise DataError(f"{len(pairs)} pair(s) cannot be split into training and held-out sets: add pairs")
    groups = _groups_by_shared_text(pairs)
    rng = random.Random(seed)
    rng.shuffle(groups)
    want = max(1, round(len(pairs) * eval_fraction))
    held: list[Pair] = []
    train: list[Pair] = []
    for group in groups:
        (held if len(held) < want else train).extend(group)
    if not train:
        raise DataError("every pair shares a query or a positive with the others: nothing is left to train on")
    return train, held


def _groups_by_shared_text(pairs: Sequence[Pair]) -> list[list[Pair]]:
    parent = list(range(len(pairs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_seen: dict[str, int] = {}
    for index, pair in enumerate(pairs):
        for key in ("q:" + pair.query, "p:" + pair.positive):
            if key in first_seen:
                parent[find(index)] = find(first_seen[key])
            else:
                first_seen[key] = index
    groups: dict[int, list[Pair]] = {}
    for index, pair in enumerate(pairs):
        groups.setdefault(find(index), []).append(pair)
    return list(groups.values())


def check_contrast(train_pairs: Sequence[Pair], batch_size: int, hard_negatives: int) -> None:
    """Refuse a run whose loss is zero by construction: a step with one pair and no negative has one candidate,
    so InfoNCE is 0, the LoRA weights never move and the saved adapter would do nothing."""
    in_batch = min(batch_size, len(train_pairs))
    negatives = min(max(hard_negatives, 0), max((len(p.negatives) for p in train_pairs), default=0))
    if in_batch < 2 and negatives == 0:
        raise DataError(
            f"nothing to contrast: every training step holds one pair ({len(train_pairs)} training pair(s), batch "
            f"size {batch_size}) and no hard negative, so the loss is 0 and the adapter would learn nothing; use a "
            "batch size of 2 or more with at least 2 training pairs (lower --eval-fraction), or give rows 'negatives'"
        )


def check_loss_moved(losses: Sequence[tuple[int, float]]) -> None:
    """After training: a loss that was 0 at every logged step means nothing was learned; fail instead of saving
    an adapter that changes nothing."""
    if losses and all(value == 0.0 for _, value in losses):
        raise DataError(
            f"the training loss was 0 at every logged step (steps {losses[0][0]}..{losses[-1][0]}): no batch had a "
            "second candidate to contrast, so no adapter was saved; use a larger batch or rows with 'negatives'"
        )


def negative_columns(count: int) -> list[str]:
    return [f"negative_{i + 1}" for i in range(count)]


def to_dataset(pairs: Sequence[Pair], hard_negatives: int, seed: int) -> tuple[Dataset, dict[str, int]]:
    """A `datasets.Dataset` with columns query, positive, negative_1..k and instruction, and layout counts.

    Every row needs the same number of negatives (k = min(`hard_negatives`, most negatives of any row)):
    rows with more are cut to their first k, rows with fewer are topped up with other rows' positives (random
    negatives, never the row's own positive). Both counts are logged and returned.
    """
    datasets = require("datasets", "train", "diffemb train")

    k = min(max(hard_negatives, 0), max((len(p.negatives) for p in pairs), default=0))
    rng = random.Random(seed)
    positives = [p.positive for p in pairs]
    cut = filled = 0
    columns: dict[str, list[Any]] = {"query": [], "positive": [], **{c: [] for c in negative_columns(k)}}
    instructions: list[str | None] = []
    for pair in pairs:
        negatives = list(pair.negatives[:k])
        cut += max(len(pair.negatives) - k, 0)
        tries = 0
        while len(negatives) < k and tries < 100:
            candidate = positives[rng.randrange(len(positives))]
            tries += 1
            if candidate != pair.positive and candidate not in negatives:
                negatives.append(candidate)
                filled += 1
        if len(negatives) < k:
            raise DataError(f"{pair.where or 'a row'}: cannot find {k} distinct negatives for it; add negatives")
        columns["query"].append(pair.query)
        columns["positive"].append(pair.positive)
        for name, negative in zip(negative_columns(k), negatives, strict=True):
            columns[name].append(negative)
        instructions.append(pair.instruction)
    if cut:
        logger.info("hard negatives: kept the first %d of each row, %d beyond that are not used", k, cut)
    if filled:
        logger.info("hard negatives: %d slots of rows with fewer than %d were filled with other rows' positives",
                    filled, k)  # fmt: skip
    columns[INSTRUCTION_COLUMN] = instructions
    dataset: Dataset = datasets.Dataset.from_dict(columns)
    return dataset, {"negatives_per_row": k, "negatives_cut": cut, "negatives_filled": filled}
