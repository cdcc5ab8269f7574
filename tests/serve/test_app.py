"""The application in-process (FastAPI TestClient, httpx ASGI transport): routes, errors, roles, batching."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from diffemb import DiffEmbedEncoder
from diffemb.inputs import Role
from diffemb.serve import ServeConfig, create_app
from diffemb.serve.schemas import Limits

NAME = "tiny"
TEXTS = ["the cat reads a red book", "a garden in the rain", "seven bees", "a long " + "word " * 150]


@pytest.fixture
def client(tiny_dream_encoder: DiffEmbedEncoder) -> Iterator[TestClient]:
    app = create_app(tiny_dream_encoder, ServeConfig(served_model_name=NAME, limits=Limits(8, 2000, 5000)))
    with TestClient(app) as test_client:
        yield test_client


def _embed(client: TestClient, payload: dict[str, Any], status: int = 200) -> dict[str, Any]:
    response = client.post("/v1/embeddings", json=payload)
    assert response.status_code == status, response.text
    return dict(response.json())


def _vectors(body: dict[str, Any]) -> np.ndarray:
    return np.asarray([item["embedding"] for item in body["data"]], dtype=np.float32)


def test_openai_request_gives_the_cores_document_vectors_and_counts_tokens(
    client: TestClient, tiny_dream_encoder: DiffEmbedEncoder
) -> None:
    body = _embed(client, {"model": NAME, "input": TEXTS})
    assert body["object"] == "list" and body["model"] == NAME
    assert [item["index"] for item in body["data"]] == [0, 1, 2, 3]
    np.testing.assert_allclose(_vectors(body), tiny_dream_encoder.encode_documents(TEXTS), atol=1e-5)
    tokens = sum(tiny_dream_encoder.count_tokens(text) for text in TEXTS)
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    single = _embed(client, {"model": NAME, "input": TEXTS[0]})  # a bare string is one text
    np.testing.assert_allclose(_vectors(single)[0], _vectors(body)[0], atol=1e-6)


def test_queries_by_model_name_or_input_type_and_base64(
    client: TestClient, tiny_dream_encoder: DiffEmbedEncoder
) -> None:
    expected = tiny_dream_encoder.encode_queries(TEXTS[:2])
    assert not np.allclose(expected, tiny_dream_encoder.encode_documents(TEXTS[:2]), atol=1e-3)
    by_name = _embed(client, {"model": f"{NAME}:query", "input": TEXTS[:2]})
    by_type = _embed(client, {"model": NAME, "input": TEXTS[:2], "input_type": "search_query"})
    np.testing.assert_allclose(_vectors(by_name), expected, atol=1e-5)
    np.testing.assert_allclose(_vectors(by_type), expected, atol=1e-5)
    packed = _embed(client, {"model": f"{NAME}:query", "input": TEXTS[:2], "encoding_format": "base64"})
    decoded = np.stack([np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4") for item in packed["data"]])
    np.testing.assert_allclose(decoded, expected, atol=1e-5)
    conflict = _embed(client, {"model": f"{NAME}:document", "input": "x", "input_type": "query"}, 400)
    assert "contradicts" in conflict["error"]["message"]


@pytest.mark.parametrize(
    ("payload", "status", "param", "words"),
    [
        ({"model": NAME, "input": []}, 400, "input", "empty list"),
        ({"model": NAME, "input": ["fine", ""]}, 400, "input[1]", "empty"),
        ({"model": NAME, "input": ["fine", "   "]}, 400, "input[1]", "white space"),
        ({"model": NAME, "input": ["fine", "\u200b\ufeff"]}, 400, "input[1]", "invisible characters"),
        ({"model": NAME, "input": ["fine", 7]}, 400, "input[1]", "a number, not a string"),
        ({"model": NAME, "input": ["fine", None]}, 400, "input[1]", "null"),
        ({"model": NAME, "input": [[1, 2, 3]]}, 400, "input", "token ids"),
        ({"model": NAME, "input": [101, 2023]}, 400, "input", "token ids"),
        ({"model": NAME, "input": {"text": "x"}}, 400, "input", "an object"),
        ({"model": NAME, "input": ["x"] * 9}, 413, "input", "limit is 8"),
        ({"model": NAME, "input": ["ok", "y" * 2001]}, 413, "input[1]", "2001 characters"),
        ({"model": NAME, "input": ["z" * 2000] * 3}, 413, "input", "6000 characters"),
        ({"model": NAME, "input": "x", "dimensions": 0}, 400, "dimensions", "positive whole number"),
        ({"model": NAME, "input": "x", "dimensions": 10_000}, 400, "dimensions", "more than the vectors' 64"),
        ({"model": NAME, "input": "x", "encoding_format": "int8"}, 400, "encoding_format", "base64"),
        ({"model": NAME, "input": "x", "input_type": "passage"}, 400, "input_type", "search_query"),
        ({"input": "x"}, 400, "model", "required"),
        ({"model": "other", "input": "x"}, 404, "model", "'tiny'"),
    ],
)
def test_bad_input_is_a_json_error_naming_the_item(
    client: TestClient, payload: dict[str, Any], status: int, param: str, words: str
) -> None:
    error = _embed(client, payload, status)["error"]
    assert error["param"] == param
    assert words in error["message"]
    assert _embed(client, {"model": NAME, "input": "still serving"})["data"]  # the server goes on


def test_dimensions_keep_the_first_ones_renormalised(client: TestClient, tiny_dream_encoder: DiffEmbedEncoder) -> None:
    body = _embed(client, {"model": NAME, "input": TEXTS[:2], "dimensions": 16})
    expected = tiny_dream_encoder.encode_documents(TEXTS[:2], truncate_dim=16)
    assert expected.shape == (2, 16)
    np.testing.assert_allclose(_vectors(body), expected, atol=1e-5)
    native = client.post("/v1/diffemb/embed", json={"input": TEXTS[3:], "chunks": True, "dimensions": 8}).json()
    assert native["dimension"] == 8 and {len(w["embedding"]) for w in native["data"][0]["chunks"]} == {8}


def test_invalid_json_and_non_object_bodies(client: TestClient) -> None:
    broken = client.post(
        "/v1/embeddings", content=b'{"model": "tiny", "input": [', headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["error"]["message"]
    listed = client.post("/v1/embeddings", json=["tiny"])
    assert listed.status_code == 400 and "JSON object" in listed.json()["error"]["message"]
    # A lone surrogate is legal JSON escaping but not text: named before it reaches the tokenizer.
    surrogate = b'{"model": "tiny", "input": ["fine", "bad \\ud800 half"]}'
    refused = client.post("/v1/embeddings", content=surrogate, headers={"content-type": "application/json"})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "input[1]"
    assert "lone surrogate" in refused.json()["error"]["message"]


def test_native_endpoint_gives_window_vectors_with_spans(
    client: TestClient, tiny_dream_encoder: DiffEmbedEncoder
) -> None:
    response = client.post("/v1/diffemb/embed", json={"input": TEXTS, "chunks": True})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = tiny_dream_encoder.encode_document_chunks(TEXTS)
    assert len(expected[3].vectors) > 1  # the long text really has several windows
    for item, chunks in zip(body["data"], expected, strict=True):
        got = np.asarray([window["embedding"] for window in item["chunks"]], dtype=np.float32)
        np.testing.assert_allclose(got, chunks.vectors, atol=1e-5)
        assert [(w["start"], w["end"]) for w in item["chunks"]] == [tuple(span) for span in chunks.spans]
        assert [w["tokens"] for w in item["chunks"]] == list(chunks.token_counts)
    instructed = client.post("/v1/diffemb/embed", json={"input": TEXTS[:2], "role": "query", "instruction": "Find:"})
    np.testing.assert_allclose(
        np.asarray([item["embedding"] for item in instructed.json()["data"]], dtype=np.float32),
        tiny_dream_encoder.encode(TEXTS[:2], role="query", instruction="Find:"),
        atol=1e-5,
    )
    refused = client.post("/v1/diffemb/embed", json={"input": ["q"], "role": "query", "chunks": True})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "chunks"


def test_health_models_and_metrics(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ids = [model["id"] for model in client.get("/v1/models").json()["data"]]
    assert ids == [NAME, f"{NAME}:query", f"{NAME}:document"]
    _embed(client, {"model": NAME, "input": TEXTS[:3]})
    _embed(client, {"model": NAME, "input": []}, 400)
    metrics = client.get("/metrics").text
    for line in (
        'diffemb_requests_total{path="/v1/embeddings",status="200"} 1.0',
        'diffemb_requests_total{path="/v1/embeddings",status="400"} 1.0',
        'diffemb_texts_total{role="document"} 3.0',
        "diffemb_pass_texts_count 1.0",
        "diffemb_queue_texts 0.0",
    ):
        assert line in metrics
    assert "diffemb_request_seconds_bucket" in metrics and "diffemb_tokens_total" in metrics


def test_api_key_is_required_except_for_health(tiny_dream_encoder: DiffEmbedEncoder) -> None:
    app = create_app(tiny_dream_encoder, ServeConfig(served_model_name=NAME, api_key="s3cret"))
    with TestClient(app) as client:
        payload = {"model": NAME, "input": "x"}
        assert client.post("/v1/embeddings", json=payload).status_code == 401
        wrong = client.post("/v1/embeddings", json=payload, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "API key" in wrong.json()["error"]["message"]
        assert client.get("/v1/models").status_code == 401 and client.get("/metrics").status_code == 401
        assert client.get("/health").status_code == 200
        good = client.post("/v1/embeddings", json=payload, headers={"Authorization": "Bearer s3cret"})
        assert good.status_code == 200


def test_config_refuses_a_queue_smaller_than_one_request() -> None:
    with pytest.raises(ValueError, match="max_queue_texts"):
        ServeConfig(served_model_name=NAME, limits=Limits(max_items=100), max_queue_texts=10)


async def test_concurrent_requests_share_passes_and_get_their_own_vectors(tiny_dream_encoder: DiffEmbedEncoder) -> None:
    app = create_app(tiny_dream_encoder, ServeConfig(served_model_name=NAME))
    requests = [[f"text {i} number {j} " + "bee " * (i % 7) for j in range(1 + i % 3)] for i in range(24)]
    roles: list[Role] = ["query" if i % 4 == 0 else "document" for i in range(24)]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://serve") as http:
            responses = await asyncio.gather(
                *(
                    http.post("/v1/embeddings", json={"model": NAME, "input": texts, "input_type": role})
                    for texts, role in zip(requests, roles, strict=True)
                )
            )
        metrics = (await httpx.AsyncClient(transport=transport, base_url="http://serve").get("/metrics")).text
    for texts, role, response in zip(requests, roles, responses, strict=True):
        assert response.status_code == 200, response.text
        got = _vectors(response.json())
        np.testing.assert_allclose(got, tiny_dream_encoder.encode(texts, role=role), atol=1e-5)
    passes = float(
        next(line.split()[-1] for line in metrics.splitlines() if line.startswith("diffemb_pass_texts_count"))
    )
    assert passes < 24  # requests were packed together rather than run one by one


async def test_full_queue_answers_429_with_retry_after(tiny_dream_encoder: DiffEmbedEncoder) -> None:
    view = tiny_dream_encoder.with_settings()
    entered, release = threading.Event(), threading.Event()
    real_vectors = view.vectors

    def held_vectors(*args: Any, **kwargs: Any) -> np.ndarray:
        entered.set()
        assert release.wait(30)
        return real_vectors(*args, **kwargs)

    view.vectors = held_vectors  # type: ignore[method-assign]  # hold the pass so the queue fills up
    app = create_app(view, ServeConfig(served_model_name=NAME, limits=Limits(max_items=2), max_queue_texts=2))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve") as http,
    ):
        running = asyncio.ensure_future(http.post("/v1/embeddings", json={"model": NAME, "input": ["a", "b"]}))
        assert await asyncio.to_thread(entered.wait, 30)  # the first request is inside the held pass
        waiting = asyncio.ensure_future(http.post("/v1/embeddings", json={"model": NAME, "input": ["c", "d"]}))
        for _ in range(300):  # until the second one fills the queue (bounded)
            if "diffemb_queue_texts 2.0" in (await http.get("/metrics")).text:
                break
            await asyncio.sleep(0.01)
        refused = await http.post("/v1/embeddings", json={"model": NAME, "input": ["e"]})
        release.set()
        first, second = await running, await waiting
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert "queue is full" in refused.json()["error"]["message"]
    assert first.status_code == 200 and second.status_code == 200
    np.testing.assert_allclose(_vectors(second.json()), tiny_dream_encoder.encode_documents(["c", "d"]), atol=1e-5)


async def test_a_bad_request_in_a_shared_pass_fails_alone(minilm_encoder: DiffEmbedEncoder) -> None:
    # MiniLM's tokenizer strips accents, so lone combining accents have no token: the core's plan() refuses them.
    app = create_app(minilm_encoder, ServeConfig(served_model_name=NAME))
    payloads = [["fine one", "fine two"], ["ok", "\u0301\u0301"], ["fine three"]]
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve") as http,
    ):
        responses = await asyncio.gather(
            *(http.post("/v1/embeddings", json={"model": NAME, "input": texts}) for texts in payloads)
        )
    assert [r.status_code for r in responses] == [200, 400, 200]
    error = responses[1].json()["error"]
    assert error["param"] == "input[1]" and "input[1] has no tokens" in error["message"]
    np.testing.assert_allclose(
        _vectors(responses[2].json()), minilm_encoder.encode_documents(["fine three"]), atol=1e-5
    )
