"""An adapter's `diffemb.json`: the one module that writes it (training) and reads it back (loading).

The file sits beside a LoRA adapter and records how the model was run while the adapter was trained (the
"encoder" block: attention, pooling, max_length, instructions, normalisation), plus the training record
(recipe, hyper-parameters, metrics). `DiffEmbedEncoder.from_pretrained(base, adapter=folder)` applies the
encoder block, so loading reproduces the training-time encoding. Every field is type-checked on reading: a file
edited by hand fails with the field's name and what it must be, before any weight is read.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from dataclasses import fields
from pathlib import Path
from typing import Any

from diffemb.inputs import caller_stacklevel
from diffemb.profiles import ModelProfile, TextTemplate
from diffemb.settings import ATTENTIONS, POOLINGS

ADAPTER_SETTINGS_FILE = "diffemb.json"
"""Written by `diffemb train` beside an adapter: the encoder settings it was trained with."""

SETTINGS_FORMAT = 1
"""The version of the file's layout, written as its "format" field."""

_TEMPLATE_TYPES = {field.name: (str if field.type == "str" else bool) for field in fields(TextTemplate)}
# Per field: the allowed values (a tuple of strings) or the allowed types.
_ENCODER_FIELDS: dict[str, Any] = {
    "family": (str,),
    "attention": ATTENTIONS,
    "pooling": POOLINGS,
    "query_instruction": (str, type(None)),
    "document_instruction": (str, type(None)),
    "max_length": (int,),
    "normalize": (bool,),
    "exclude_instruction": (bool,),
    "template": (dict,),
}


def encoder_block(profile: ModelProfile) -> dict[str, Any]:
    """The "encoder" block for a profile: the fields `from_pretrained` applies when it loads the adapter.

    A missing instruction is written as "" (explicitly none) so that loading cannot fall back to a default.
    """
    return {
        "attention": profile.attention,
        "pooling": profile.pooling,
        "max_length": int(profile.max_length),
        "query_instruction": profile.query_instruction or "",
        "document_instruction": profile.document_instruction or "",
        "exclude_instruction": bool(profile.exclude_instruction),
        "normalize": bool(profile.normalize),
    }


def write_adapter_settings(
    folder: str | os.PathLike[str], profile: ModelProfile, record: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write `folder/diffemb.json`: the training `record` plus the profile's "encoder" block; returns what was
    written (as it reads back). The file is replaced atomically, so a reader never sees half of it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    content = {"format": SETTINGS_FORMAT, **(record or {}), "encoder": encoder_block(profile)}
    text = json.dumps(content, indent=2, default=str) + "\n"
    handle, temp = tempfile.mkstemp(dir=folder, prefix=f".{ADAPTER_SETTINGS_FILE}.", suffix=".partial")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temp, 0o644)
        os.replace(temp, folder / ADAPTER_SETTINGS_FILE)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    result: dict[str, Any] = json.loads(text)
    return result


def read_adapter_record(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The whole `diffemb.json` of an adapter folder (training record and "encoder" block), unchecked beyond
    being a JSON object; `{}` when the folder has none."""
    path = Path(folder) / ADAPTER_SETTINGS_FILE
    if not path.is_file():
        return {}
    try:
        with path.open(encoding="utf-8") as handle:
            saved = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}): retrain the adapter or fix the file") from err
    except RecursionError as err:  # "[[[[...": json's parser recurses once per level
        raise ValueError(f"{path} is nested too deeply for a diffemb.json: retrain or fix the file") from err
    if not isinstance(saved, dict):
        raise ValueError(f"{path} must hold a JSON object with an 'encoder' object of encoder settings")
    return saved


def read_adapter_settings(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The encoder settings an adapter was trained with (its `diffemb.json`), every field's type checked.

    A folder without the file gives `{}` (a plain PEFT adapter: the family's defaults apply).
    """
    path = Path(folder) / ADAPTER_SETTINGS_FILE
    saved = read_adapter_record(folder)
    encoder = saved.get("encoder", {})
    if not isinstance(encoder, dict):
        raise ValueError(f"{path}: 'encoder' must be an object of encoder settings")
    unknown = sorted(set(encoder) - set(_ENCODER_FIELDS))
    if unknown:  # written by a newer diffemb: say so, and use what this version understands
        warnings.warn(
            f"{path} has settings this diffemb does not know and ignores: {unknown}", stacklevel=caller_stacklevel()
        )
    settings: dict[str, Any] = {}
    for name, value in encoder.items():
        if name not in _ENCODER_FIELDS:
            continue
        allowed = _ENCODER_FIELDS[name]
        if all(isinstance(a, str) for a in allowed):
            if value not in allowed:
                raise ValueError(f"{path}: {name} must be one of {list(allowed)}, got {value!r}")
        elif not isinstance(value, allowed) or (allowed == (int,) and (isinstance(value, bool) or value < 1)):
            raise ValueError(f"{path}: {name} must be {' or '.join(t.__name__ for t in allowed)}, got {value!r}")
        _check_unicode(path, name, value)
        settings[name] = value
    if "template" in settings:
        settings["template"] = _template_from(settings["template"], path)
    return settings


def _template_from(data: dict[str, Any], path: Path) -> TextTemplate:
    unknown = sorted(set(data) - set(_TEMPLATE_TYPES))
    if unknown:
        raise ValueError(f"{path}: template has unknown fields {unknown} (known: {sorted(_TEMPLATE_TYPES)})")
    for name, value in data.items():
        if not isinstance(value, _TEMPLATE_TYPES[name]):
            raise ValueError(f"{path}: template.{name} must be {_TEMPLATE_TYPES[name].__name__}, got {value!r}")
        _check_unicode(path, f"template.{name}", value)
    if "{instruction}" not in data.get("instruction_format", "{instruction}"):
        raise ValueError(
            f"{path}: template.instruction_format must contain {{instruction}} (where the instruction goes), got "
            f"{data['instruction_format']!r}"
        )
    return TextTemplate(**data)


def _check_unicode(path: Path, name: str, value: Any) -> None:
    """A JSON string may hold a lone surrogate ("\\ud800"), which no tokenizer accepts: name it here."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{path}: {name} is not valid Unicode text (a lone surrogate): fix the file") from None
