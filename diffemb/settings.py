"""The resolved settings of one encoder, and their fingerprint for caches."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from diffemb.chunking import ChunkingConfig
from diffemb.profiles import ModelProfile

FINGERPRINT_VERSION = 1
"""Bumped whenever diffemb changes how vectors are computed, so old caches are not mixed with new ones."""


@dataclass(frozen=True)
class EncoderSettings:
    """Everything that decides an encoder's vectors or speed, after defaults were applied."""

    model: str
    revision: str | None
    adapter: str | None
    profile: ModelProfile
    chunking: ChunkingConfig
    dtype: str
    device: str
    batch_tokens: int
    padding_side: str

    def vector_affecting(self) -> dict[str, Any]:
        """The settings that change vectors (not device placement or batch size, which do not)."""
        return {
            "version": FINGERPRINT_VERSION,
            "model": self.model,
            "revision": self.revision,
            "adapter": self.adapter,
            "profile": asdict(self.profile),
            "chunking": asdict(self.chunking),
            "dtype": self.dtype,
        }

    def fingerprint(self) -> str:
        """A stable short hash of `vector_affecting()`: equal fingerprints mean interchangeable vectors."""
        blob = json.dumps(self.vector_affecting(), sort_keys=True, default=str).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()[:16]
