"""Request and response bodies of the server, and the checks that turn a request into texts.

Bodies are pydantic models (FastAPI documents them at `/docs`); `input` is declared loosely and checked here by
hand so that every error names the offending item (`input[3]`) instead of listing pydantic's union branches.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from diffemb.inputs import Role, check_texts

INPUT_TYPES: dict[str, Role] = {
    "query": "query",
    "document": "document",
    "search_query": "query",
    "search_document": "document",
}
"""Accepted `input_type` values: diffemb's roles and the names other OpenAI-compatible servers use."""


class ApiError(Exception):
    """An error answered as OpenAI's JSON error body: `{"error": {"message", "type", "param", "code"}}`."""

    def __init__(self, status: int, message: str, *, param: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        kind = "invalid_request_error" if 400 <= self.status < 500 else "server_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.status}}


class EmbeddingRequest(BaseModel):
    """OpenAI's `POST /v1/embeddings` body, plus diffemb's optional `input_type`."""

    model_config = ConfigDict(extra="allow")

    input: Any = Field(description="a string or a list of strings (token-id input is refused)")
    model: str = Field(description="the served model name, optionally with ':query' or ':document'")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(
        default=None, description="keep the first N dimensions (re-normalised when the model normalises)"
    )
    user: str | None = None
    input_type: str | None = Field(
        default=None, description="query or document (also search_query / search_document); default: document"
    )


class NativeEmbedRequest(BaseModel):
    """`POST /v1/diffemb/embed`: what OpenAI's API cannot say (role, instruction, per-window vectors)."""

    model_config = ConfigDict(extra="forbid")

    input: Any = Field(description="a string or a list of strings")
    model: str | None = Field(default=None, description="the served model name (optional here)")
    role: Literal["query", "document"] = "document"
    instruction: str | None = Field(
        default=None, description="instruction put before every text; null: the role's default; '': none"
    )
    chunks: bool = Field(default=False, description="documents only: one vector per window, with spans")
    dimensions: int | None = Field(default=None, description="keep the first N dimensions of every vector")


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: Usage


class Chunk(BaseModel):
    embedding: list[float]
    start: int = Field(description="first character of the window in the input text")
    end: int = Field(description="one past the last character of the window")
    tokens: int = Field(description="text tokens in the window")


class NativeItem(BaseModel):
    index: int
    embedding: list[float] | None = None
    chunks: list[Chunk] | None = None


class NativeResponse(BaseModel):
    object: Literal["list"] = "list"
    model: str
    role: Role
    dimension: int
    data: list[NativeItem]
    usage: Usage


@dataclass(frozen=True)
class Limits:
    """Caps checked on the raw request, before any tokenisation."""

    max_items: int = 2048
    max_item_chars: int = 200_000
    max_request_chars: int = 1_000_000


def texts_from_input(value: Any, limits: Limits) -> list[str]:
    """The request's texts, or an ApiError (400/413) naming the first bad item. Nothing is tokenised here."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ApiError(400, f"input must be a string or a list of strings, got {_json_type(value)}", param="input")
    if not value:
        raise ApiError(400, "input is an empty list: send at least one text", param="input")
    if all(isinstance(item, int) and not isinstance(item, bool) for item in value) or all(
        isinstance(item, list) for item in value
    ):
        raise ApiError(
            400,
            "input holds token ids; this server takes text only (the model has its own tokenizer). With LangChain's "
            "OpenAIEmbeddings set check_embedding_ctx_length=False",
            param="input",
        )
    if len(value) > limits.max_items:
        raise ApiError(
            413, f"input has {len(value)} items; the limit is {limits.max_items} per request: split it", param="input"
        )
    total = 0
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise ApiError(
                400, f"input[{index}] is {_json_type(item)}, not a string: send text only", param=f"input[{index}]"
            )
        if len(item) > limits.max_item_chars:
            raise ApiError(
                413,
                f"input[{index}] has {len(item)} characters; the limit is {limits.max_item_chars} per item",
                param=f"input[{index}]",
            )
        total += len(item)
    if total > limits.max_request_chars:
        raise ApiError(
            413,
            f"input has {total} characters in all; the limit is {limits.max_request_chars} per request: split it",
            param="input",
        )
    try:
        return check_texts(value, what="input")
    except (TypeError, ValueError) as err:
        raise ApiError(400, str(err), param=_param(str(err))) from None


def role_for(input_type: str | None, model_role: Role | None) -> Role:
    """The role from `input_type` and the model-name suffix; they must not contradict each other."""
    if input_type is None:
        return model_role or "document"
    role = INPUT_TYPES.get(input_type)
    if role is None:
        raise ApiError(
            400, f"input_type must be one of {', '.join(INPUT_TYPES)}, got {input_type!r}", param="input_type"
        )
    if model_role is not None and model_role != role:
        raise ApiError(
            400, f"input_type {input_type!r} contradicts the model name's role {model_role!r}", param="input_type"
        )
    return role


def encode_vector(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    """A vector as JSON floats, or as base64 of little-endian float32 (what the openai client decodes)."""
    if encoding_format == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return np.asarray(vector, dtype=np.float32).tolist()  # type: ignore[no-any-return]


def _param(message: str) -> str:
    word = message.split(" ", 1)[0]
    return word if word.startswith("input") else "input"


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", int: "a number", float: "a number", bool: "a boolean"}
    return names.get(type(value), "null" if value is None else type(value).__name__)
