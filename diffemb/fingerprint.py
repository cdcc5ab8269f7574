"""A fingerprint of what a checkpoint folder holds, not of where it lies.

Used to key the vector caches (`diffemb search`) and the in-process weight cache: the same model copied to two
folders, or reached by a relative and an absolute path, has one fingerprint; an adapter retrained in place, or a
hub snapshot at a new commit, has another. Reading 15 GB to hash it would take minutes, so a large file is
hashed by its size and three 1 MiB samples (start, middle, end); any file of at most 16 MiB — configs,
tokenizers, LoRA adapters — is hashed whole. Retrained weights of the same shapes change every sample, so
sampling misses only a deliberate edit in the unsampled middle of a weight file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

WHOLE_FILE_LIMIT = 16 * 2**20
SAMPLE = 2**20
# Files that decide vectors; READMEs, images and the training checkpoints of `diffemb train` do not.
_SUFFIXES = (".json", ".safetensors", ".bin", ".txt", ".model", ".gguf", ".pt", ".pth", ".py")
_SKIP_DIRS = {".git", ".cache", "checkpoints", "__pycache__", ".ipynb_checkpoints"}


def folder_fingerprint(folder: Path) -> str:
    """A short hash of the vector-deciding files under `folder` (names relative to it, sizes, contents)."""
    digest = hashlib.sha256()
    for path in _files(folder):
        digest.update(path.relative_to(folder).as_posix().encode("utf-8") + b"\0")
        digest.update(_file_digest(path))
    return digest.hexdigest()[:24]


def _files(folder: Path) -> list[Path]:
    found = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder).parts
        if any(part in _SKIP_DIRS or part.startswith(".") for part in relative[:-1]):
            continue
        if path.is_file() and path.suffix in _SUFFIXES and not path.name.startswith("."):
            found.append(path)
    return sorted(found)


def _file_digest(path: Path) -> bytes:
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode("ascii") + b"\0")
    with path.open("rb") as handle:
        if size <= WHOLE_FILE_LIMIT:
            for block in iter(lambda: handle.read(SAMPLE), b""):
                digest.update(block)
        else:
            for offset in (0, (size - SAMPLE) // 2, size - SAMPLE):
                handle.seek(offset)
                digest.update(handle.read(SAMPLE))
    return digest.digest()
