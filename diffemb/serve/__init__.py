"""`diffemb serve`: one loaded model behind an OpenAI-compatible embeddings API, batching across requests.

    from diffemb.serve import ServeConfig, create_app
    app = create_app(encoder, ServeConfig(served_model_name="dream"))   # any ASGI server runs it

Modules: `app` (FastAPI application and routes), `schemas` (request/response bodies, input checks), `batcher`
(cross-request batching), `metrics` (Prometheus), `cli` (`diffemb serve`), `ray_serve` (`--ray`).
Importing this package needs nothing extra (the main CLI registers `serve` from it); `app` checks for the
`serve` extra: `pip install "diffemb[serve]"`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServeConfig", "create_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from diffemb.serve import app

        return getattr(app, name)
    raise AttributeError(f"module 'diffemb.serve' has no attribute {name!r}")
