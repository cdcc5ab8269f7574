"""Where a checkpoint lives: a local folder, or a hub id resolved to a local snapshot.

Everything after this module works on a local folder, so the loaders never care where the files came from.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# Weights, configs and tokenizers; the remote-code .py files are never needed since nothing runs them.
_ALLOW = [
    "*.json",
    "*.safetensors",
    "*.txt",
    "*.model",
    "*.bin",
    "1_Pooling/*",
    "2_Normalize/*",
    "*/config.json",
]


def resolve_folder(
    name_or_path: str | os.PathLike[str],
    *,
    revision: str | None = None,
    local_files_only: bool | None = None,
    token: str | bool | None = None,
    cache_dir: str | None = None,
) -> Path:
    """A local folder holding the checkpoint: `name_or_path` itself, or its hub snapshot (downloaded or cached).

    `local_files_only=None` follows `HF_HUB_OFFLINE`; with it true, only the local hub cache is used.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    name = str(name_or_path)
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise FileNotFoundError(f"model folder {name!r} does not exist (or is not a folder)")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    if local_files_only is None:
        local_files_only = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    try:
        folder = snapshot_download(
            name,
            revision=revision,
            allow_patterns=_ALLOW,
            local_files_only=local_files_only,
            token=token,
            cache_dir=cache_dir,
        )
    except LocalEntryNotFoundError as err:
        raise FileNotFoundError(
            f"model {name!r} is neither a local folder nor in the local hub cache"
            + (" (local_files_only is set)" if local_files_only else " and the hub could not be reached")
            + ": pass a folder path, or download it once where the hub is reachable"
        ) from err
    return Path(folder)


def read_config(folder: Path) -> dict[str, Any]:
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{folder} has no config.json: is it a transformers checkpoint folder?")
    with config_path.open(encoding="utf-8") as handle:
        config: dict[str, Any] = json.load(handle)
    return config
