"""The documents of `diffemb search` and their cached window vectors.

A folder is read without leaving it: a symlink that leads outside is skipped (and reported) unless the user asks
to follow links. Window vectors are cached per document, outside the documents folder (XDG cache or
`--cache-dir`), under the encoder's fingerprint and the sha256 of the document's text, so adding or changing one
document embeds only that one. Every cache entry is checked when read (a readable archive, finite float32
vectors of the encoder's dimension, spans inside the text); a broken entry is embedded again and rewritten.
Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from diffemb.cli.io import CliError, atomic_path, name_text_error, read_records
from diffemb.inputs import check_text
from diffemb.similarity import maxsim_scores_flat

DOCUMENT_SUFFIXES = (".txt", ".md")
CACHE_SUBFOLDER = "search"


def shown(text: object) -> str:
    """`text` safe to print on a terminal: control, format (bidi) and separator characters become escapes, so a
    file name cannot move the cursor, colour the screen or forge a line of output."""
    out = []
    for char in str(text):
        category = unicodedata.category(char)
        if char == "\\" or category in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            out.append("\\\\" if char == "\\" else char.encode("unicode_escape", "backslashreplace").decode("ascii"))
        else:
            out.append(char)
    return "".join(out)


@dataclass
class Documents:
    """The documents of a search, in a stable order, with the name each is shown under."""

    source: Path
    labels: list[str]
    texts: list[str]
    unit: str = ""  # "line"/"row" for the texts of one file; "" for the files of a folder
    skipped_links: list[str] = field(default_factory=list)  # links not followed, as shown

    def where(self, index: int) -> str:
        """Document `index` as an error message names it: its file, or its line/row and file."""
        if self.unit:
            return f"{self.unit} {index + 1} of {shown(self.source)}"
        return shown(self.source / self.labels[index])

    @property
    def keys(self) -> list[str]:
        """Per document, the sha256 of its text: the cache key of its vectors."""
        return [hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest() for text in self.texts]


def read_documents(source: Path, text_field: str | None = None, follow_links: bool = False) -> Documents:
    """The .txt/.md files of a folder (one document each, sorted by path), or the texts of one file."""
    if not source.exists():
        raise CliError(f"cannot read {shown(source)}: no such file or folder")
    if source.is_dir():
        if text_field is not None:
            raise CliError("--text-field names a field of .jsonl/.parquet documents; a folder's files are whole texts")
        return _folder_documents(source, follow_links)
    if source.suffix.lower() == ".txt" and text_field is not None:
        raise CliError(f"--text-field does not apply to {shown(source)}: a .txt file has one text per line")
    records = read_records(source, text_field or "text")
    labels = [records.label(i) for i in range(len(records.texts))]
    if records.rows is not None and all(isinstance(r.get("id"), (str, int)) for r in records.rows):
        labels = [str(r["id"]) for r in records.rows]
    return Documents(source, labels, records.texts, records.unit)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _folder_files(folder: Path, follow_links: bool) -> tuple[list[Path], list[str]]:
    """The document files under `folder` (hidden names skipped), and the links that were not followed."""
    root = folder.resolve()
    files: list[Path] = []
    skipped: list[str] = []
    seen: set[str] = set()  # real folders already walked: a link loop is walked once
    for directory, subfolders, names in os.walk(folder, followlinks=follow_links):
        real = os.path.realpath(directory)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
        here = Path(directory)
        kept = []
        for name in sorted(subfolders):
            if name.startswith("."):
                continue
            if not follow_links and (here / name).is_symlink():
                skipped.append((here / name).relative_to(folder).as_posix() + "/")
                continue
            kept.append(name)
        subfolders[:] = kept
        for name in names:
            path = here / name
            if name.startswith(".") or path.suffix.lower() not in DOCUMENT_SUFFIXES or not path.is_file():
                continue
            if not follow_links and path.is_symlink() and not _inside(path.resolve(), root):
                skipped.append(path.relative_to(folder).as_posix())
                continue
            files.append(path)
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix()), sorted(skipped)


def _folder_documents(folder: Path, follow_links: bool) -> Documents:
    files, skipped = _folder_files(folder, follow_links)
    if not files:
        raise CliError(f"{shown(folder)} has no .txt or .md files to search")
    labels: list[str] = []
    texts: list[str] = []
    for path in files:
        try:
            data = path.read_bytes()
        except OSError as err:
            raise CliError(f"cannot read {shown(path)}: {err.strerror or err}") from err
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise CliError(f"{shown(path)} is not UTF-8 text (bad byte at offset {err.start})") from err
        try:
            check_text(text, len(texts))  # empty or invisible-only: named by its file before any model loads
        except ValueError as err:
            raise name_text_error(err, shown(path)) from err
        labels.append(path.relative_to(folder).as_posix())
        texts.append(text)
    return Documents(folder, labels, texts, "", [shown(name) for name in skipped])


# -- the index: every document's window vectors ----------------------------------------------------------------


@dataclass
class WindowVectors:
    """One document's window vectors (K, dimension) float32 and their character spans (K, 2)."""

    vectors: np.ndarray
    spans: np.ndarray


@dataclass
class ChunkIndex:
    """Every document's window vectors in one matrix: document i owns rows `offsets[i]:offsets[i + 1]`."""

    vectors: np.ndarray  # (windows, dimension) float32
    spans: np.ndarray  # (windows, 2) int64 character spans in the document's text
    offsets: np.ndarray  # (documents + 1,) int64

    @classmethod
    def from_documents(cls, per_document: Sequence[WindowVectors]) -> ChunkIndex:
        counts = [len(d.vectors) for d in per_document]
        return cls(
            np.concatenate([d.vectors for d in per_document]).astype(np.float32, copy=False),
            np.concatenate([d.spans for d in per_document]).astype(np.int64, copy=False).reshape(-1, 2),
            np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        )

    def scores(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per document, the best window's score (max-sim) and that window's row."""
        best, window = maxsim_scores_flat(query.astype(np.float32), self.vectors, self.offsets)
        return best[0], self.offsets[:-1] + window[0]


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/diffemb`, or `~/.cache/diffemb` (a relative XDG_CACHE_HOME is ignored, as the spec says)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "diffemb"


@dataclass
class SearchCache:
    """Per-document window vectors under `root/search/<fingerprint>/<key[:2]>/<key>.npz`."""

    root: Path
    fingerprint: str
    dimension: int
    broken: list[str] = field(default_factory=list)  # entries found unusable (rebuilt), for the status line

    def entry(self, key: str) -> Path:
        return self.root / CACHE_SUBFOLDER / self.fingerprint / key[:2] / f"{key}.npz"

    def load(self, key: str, text: str) -> WindowVectors | None:
        """The cached windows of `text`, or None when there are none or they cannot be trusted."""
        path = self.entry(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                found = WindowVectors(np.asarray(data["vectors"]), np.asarray(data["spans"]))
        except Exception:  # any unreadable archive (BadZipFile, EOFError, ValueError, ...) is rebuilt
            found = None
        if found is None or not _valid(found, len(text), self.dimension):
            self.broken.append(path.name)
            return None
        return found

    def save(self, key: str, windows: WindowVectors) -> str | None:
        """Write one entry atomically; the reason as text if it could not be written (the search goes on)."""
        path = self.entry(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as temp, temp.open("wb") as handle:
                np.savez(handle, vectors=windows.vectors, spans=windows.spans)
        except OSError as err:
            return f"could not cache vectors in {shown(self.root)}: {err.strerror or err}"
        return None


def _valid(found: WindowVectors, text_length: int, dimension: int) -> bool:
    vectors, spans = found.vectors, found.spans
    if vectors.dtype != np.float32 or vectors.ndim != 2 or vectors.shape[0] < 1 or vectors.shape[1] != dimension:
        return False
    if not np.isfinite(vectors).all():
        return False
    if not np.issubdtype(spans.dtype, np.integer) or spans.shape != (vectors.shape[0], 2):
        return False
    starts, ends = spans[:, 0], spans[:, 1]
    return bool((starts >= 0).all() and (starts < ends).all() and (ends <= text_length).all())


def build_index(
    documents: Documents,
    embed: Callable[[list[str]], list[Any]],
    cache: SearchCache | None,
    on_error: Callable[[ValueError, list[int]], Exception],
) -> tuple[ChunkIndex, int, list[str]]:
    """The index of every document: cached entries where they can be trusted, the rest embedded with `embed`
    (texts → per text an object with `.vectors` and `.spans`) and cached. Returns the index, how many documents
    were embedded, and problems worth a status line. `on_error` turns an encoder ValueError about `texts[i]` of
    the embedded subset into the error to raise (it gets the subset's document indices)."""
    keys = documents.keys
    found: list[WindowVectors | None] = [
        None if cache is None else cache.load(key, text) for key, text in zip(keys, documents.texts, strict=True)
    ]
    missing = [i for i, windows in enumerate(found) if windows is None]
    problems: list[str] = []
    if missing:
        try:
            embedded = embed([documents.texts[i] for i in missing])
        except ValueError as err:
            raise on_error(err, missing) from err
        for i, chunks in zip(missing, embedded, strict=True):
            windows = WindowVectors(
                np.asarray(chunks.vectors, dtype=np.float32), np.asarray(chunks.spans, dtype=np.int64).reshape(-1, 2)
            )
            found[i] = windows
            problem = None if cache is None else cache.save(keys[i], windows)
            if problem is not None and problem not in problems:
                problems.append(problem)
    if cache is not None and cache.broken:
        problems.append(f"{len(cache.broken)} broken cache entries were embedded again and rewritten")
    complete = [windows for windows in found if windows is not None]
    return ChunkIndex.from_documents(complete), len(missing), problems
