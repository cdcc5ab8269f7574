"""One loaded encoder per distinct set of loading options, shared by every caller in the process.

Framework adapters re-create embedders freely (LlamaIndex `from_dict`, LangChain copies); loading a 7B model
each time would be slow and would double its memory, so they obtain encoders here.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

from diffemb.encoder import DiffEmbedEncoder

_SIGNATURE = inspect.signature(DiffEmbedEncoder.from_pretrained)
_ENCODERS: dict[tuple[tuple[str, str], ...], DiffEmbedEncoder] = {}
_GUARD = threading.Lock()


def shared_encoder(model_name_or_path: str, **options: Any) -> DiffEmbedEncoder:
    """`DiffEmbedEncoder.from_pretrained(model_name_or_path, **options)`, loaded once per distinct options."""
    # Bind to the signature with defaults applied, so `device="auto"` and leaving device out share one model.
    bound = _SIGNATURE.bind(model_name_or_path, **options)
    bound.apply_defaults()
    key = tuple((name, repr(value)) for name, value in bound.arguments.items())
    with _GUARD:
        encoder = _ENCODERS.get(key)
        if encoder is None:
            encoder = DiffEmbedEncoder.from_pretrained(model_name_or_path, **options)
            _ENCODERS[key] = encoder
        return encoder


def clear_shared_encoders() -> None:
    """Forget the shared encoders (their memory is freed once nothing else holds them)."""
    with _GUARD:
        _ENCODERS.clear()
