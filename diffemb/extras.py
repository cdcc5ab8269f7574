"""Optional dependencies, imported on demand with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import `module`, or raise an ImportError telling the user which diffemb extra brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f'{purpose} needs the Python package {module.split(".")[0]!r}: pip install "diffemb[{extra}]"'
        ) from err
