"""The FastAPI application: OpenAI-compatible `/v1/embeddings`, the native `/v1/diffemb/embed`, health, models,
metrics. One `DiffEmbedEncoder` serves every request; roles and instructions are arguments of its calls.

    app = create_app(encoder, ServeConfig(served_model_name="dream"))       # an already loaded encoder
    app = create_app(lambda: DiffEmbedEncoder.from_pretrained(...), config)  # loaded at startup (Ray replicas)
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from diffemb.extras import require

require("fastapi", "serve", "diffemb serve")

from fastapi import FastAPI, Request  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.responses import JSONResponse, Response  # noqa: E402
from pydantic_core import to_json  # noqa: E402
from starlette.datastructures import Headers  # noqa: E402
from starlette.types import ASGIApp, Message, Receive, Scope, Send  # noqa: E402

from diffemb.encoder import DiffEmbedEncoder  # noqa: E402
from diffemb.inputs import Role  # noqa: E402
from diffemb.precision import check_truncate_dim  # noqa: E402
from diffemb.serve.batcher import Batcher, GroupKey  # noqa: E402
from diffemb.serve.metrics import ServerMetrics  # noqa: E402
from diffemb.serve.schemas import (  # noqa: E402
    ApiError,
    Chunk,
    EmbeddingRequest,
    EmbeddingResponse,
    Limits,
    NativeEmbedRequest,
    NativeItem,
    NativeResponse,
    Usage,
    encode_vector,
    role_for,
    texts_from_input,
)

logger = logging.getLogger("diffemb.serve")

ROLE_SUFFIXES: dict[str, Role] = {":query": "query", ":document": "document"}
OPEN_PATHS = frozenset({"/health"})
"""Paths answered without the API key (load balancers' health checks)."""


@dataclass(frozen=True)
class ServeConfig:
    """Everything the application needs besides the encoder."""

    served_model_name: str
    api_key: str | None = None
    limits: Limits = field(default_factory=Limits)
    max_queue_texts: int = 16_384
    retry_after: int = 1

    def __post_init__(self) -> None:
        if not self.served_model_name or not self.served_model_name.strip():
            raise ValueError("served_model_name is empty: give the name clients send as `model`")
        if self.max_queue_texts < self.limits.max_items:
            raise ValueError(
                f"max_queue_texts ({self.max_queue_texts}) is below max_items ({self.limits.max_items}): a full-size "
                "request could never be queued; raise the queue or lower max_items"
            )

    @property
    def model_names(self) -> list[str]:
        """The names `model` may take: documents by default, or one role per suffix."""
        return [self.served_model_name] + [self.served_model_name + suffix for suffix in ROLE_SUFFIXES]


EncoderSource = DiffEmbedEncoder | Callable[[], DiffEmbedEncoder]


class _Service:
    """What the routes share: the encoder, its batcher and the metrics (created at startup)."""

    def __init__(self, config: ServeConfig, metrics: ServerMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.batcher: Batcher | None = None
        self.encoder: DiffEmbedEncoder | None = None

    def role_of_model(self, model: str | None, *, required: bool = True) -> Role | None:
        if model is None and not required:
            return None
        name = self.config.served_model_name
        if model == name:
            return None
        for suffix, role in ROLE_SUFFIXES.items():
            if model == name + suffix:
                return role
        raise ApiError(
            404, f"model {model!r} is not served here; use {name!r} (or {name + ':query'!r} for queries)", param="model"
        )

    def ready(self) -> tuple[DiffEmbedEncoder, Batcher]:
        if self.encoder is None or self.batcher is None:
            raise ApiError(503, "the model is still loading", headers={"Retry-After": "5"})
        return self.encoder, self.batcher


def create_app(encoder: EncoderSource, config: ServeConfig) -> FastAPI:
    """The ASGI application. `encoder` is a loaded encoder or a function that loads one (called at startup)."""
    service = _Service(config, ServerMetrics())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loaded = encoder if isinstance(encoder, DiffEmbedEncoder) else await asyncio.to_thread(encoder)
        service.encoder = loaded
        service.batcher = Batcher(
            loaded, service.metrics, max_queue_texts=config.max_queue_texts, retry_after=config.retry_after
        )
        service.batcher.start()
        logger.info("serving %s (dimension %d) as %s", loaded.settings.model, loaded.dimension, config.model_names)
        try:
            yield
        finally:
            await service.batcher.close()  # answer everything still queued before the process exits

    app = FastAPI(title="diffemb serve", lifespan=lifespan)
    app.state.service = service

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse(_validation_error(error).body(), status_code=400)

    app.add_middleware(_AuthAndMetrics, api_key=config.api_key, metrics=service.metrics)

    @app.get("/health")
    async def health() -> JSONResponse:
        if service.encoder is None:
            return JSONResponse({"status": "loading"}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        data = [{"id": name, "object": "model", "owned_by": "diffemb", "created": 0} for name in config.model_names]
        return {"object": "list", "data": data}

    @app.get("/metrics")
    async def metrics() -> Response:
        body, content_type = service.metrics.exposition()
        return Response(body, media_type=content_type)

    @app.post("/v1/embeddings", response_model=EmbeddingResponse)
    async def embeddings(body: EmbeddingRequest) -> Response:
        model_role = service.role_of_model(body.model)
        role = role_for(body.input_type, model_role)
        texts = texts_from_input(body.input, config.limits)
        encoder, batcher = service.ready()
        dimensions = _dimensions(body.dimensions, encoder)
        result = await batcher.submit(texts, GroupKey(role, None, chunks=False, dimensions=dimensions))
        assert result.vectors is not None
        # The body is built as plain data and written by pydantic-core's JSON encoder: validating it again against
        # EmbeddingResponse (the documented schema) would cost the event loop ~1 ms per request under load.
        tokens = sum(result.tokens)
        answer = {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": encode_vector(vector, body.encoding_format)}
                for i, vector in enumerate(result.vectors)
            ],
            "model": body.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return Response(to_json(answer), media_type="application/json")

    @app.post("/v1/diffemb/embed", response_model=NativeResponse, response_model_exclude_none=True)
    async def native_embed(body: NativeEmbedRequest) -> NativeResponse:
        model_role = service.role_of_model(body.model, required=False)
        if model_role is not None and model_role != body.role:
            raise ApiError(400, f"role {body.role!r} contradicts the model name's role {model_role!r}", param="role")
        if body.chunks and body.role != "document":
            raise ApiError(400, "chunks=true gives window vectors of documents: use role 'document'", param="chunks")
        texts = texts_from_input(body.input, config.limits)
        encoder, batcher = service.ready()
        key = GroupKey(body.role, body.instruction, body.chunks, _dimensions(body.dimensions, encoder))
        result = await batcher.submit(texts, key)
        items: list[NativeItem] = []
        if result.chunks is not None:
            for i, found in enumerate(result.chunks):
                windows = [
                    Chunk(embedding=vector.tolist(), start=span[0], end=span[1], tokens=count)
                    for vector, span, count in zip(found.vectors, found.spans, found.token_counts, strict=True)
                ]
                items.append(NativeItem(index=i, chunks=windows))
        else:
            assert result.vectors is not None
            items = [NativeItem(index=i, embedding=vector.tolist()) for i, vector in enumerate(result.vectors)]
        tokens = sum(result.tokens)
        return NativeResponse(
            model=body.model or config.served_model_name,
            role=body.role,
            dimension=key.dimensions or encoder.dimension,
            data=items,
            usage=Usage(prompt_tokens=tokens, total_tokens=tokens),
        )

    return app


_KNOWN_PATHS = frozenset({"/health", "/v1/models", "/metrics", "/v1/embeddings", "/v1/diffemb/embed"})


class _AuthAndMetrics:
    """Pure ASGI middleware (cheaper per request than Starlette's BaseHTTPMiddleware): checks the API key and
    counts every answer, including the 400s FastAPI produces before a route runs."""

    def __init__(self, app: ASGIApp, *, api_key: str | None, metrics: ServerMetrics) -> None:
        self.app = app
        self.api_key = api_key
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope["path"]
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if self.api_key is not None and path not in OPEN_PATHS and not _authorised(scope, self.api_key):
                error = ApiError(401, "missing or wrong API key: send `Authorization: Bearer <key>`")
                response = JSONResponse(error.body(), status_code=401, headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send_and_note)
            else:
                await self.app(scope, receive, send_and_note)
        finally:
            label = path if path in _KNOWN_PATHS else "other"
            self.metrics.requests.labels(label, str(status)).inc()
            self.metrics.latency.labels(label).observe(time.perf_counter() - started)


def _dimensions(dimensions: int | None, encoder: DiffEmbedEncoder) -> int | None:
    """OpenAI's `dimensions` as the core's `truncate_dim`, checked before the request is queued."""
    try:
        return check_truncate_dim(dimensions, encoder.dimension)
    except ValueError as err:
        message = str(err).replace("truncate_dim", "dimensions")
        raise ApiError(400, message, param="dimensions") from None


def _authorised(scope: Scope, api_key: str) -> bool:
    header = Headers(scope=scope).get("authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(given.strip().encode(), api_key.encode())


def _validation_error(error: RequestValidationError) -> ApiError:
    """FastAPI's body errors (bad JSON, wrong field types) as one OpenAI-style message naming the field."""
    first = error.errors()[0] if error.errors() else {}
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    kind = first.get("type", "")
    if kind == "json_invalid":
        return ApiError(400, f"the request body is not valid JSON: {first.get('msg', '')}".rstrip(": "))
    if not location:
        return ApiError(400, "the request body must be a JSON object, sent with Content-Type: application/json")
    param = location[0] + "".join(f"[{part}]" for part in location[1:])
    return ApiError(400, f"{param}: {first.get('msg', 'invalid value')}", param=param)
