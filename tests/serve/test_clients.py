"""A real `diffemb serve` process driven by the unmodified openai client, LangChain and LlamaIndex."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_openai import OpenAIEmbeddings
from llama_index.embeddings.openai_like import OpenAILikeEmbedding
from openai import AuthenticationError, BadRequestError, NotFoundError, OpenAI

from diffemb import DiffEmbedEncoder
from diffemb.serve.process import ServerProcess

SERVED_NAME = "minilm"  # what tests/serve/conftest.py serves, with this key
API_KEY = "test-key-123"

DOCS = [
    "Honey bees dance to tell each other where flowers are.",
    "The harbour freezes over in the coldest weeks of winter.",
    "A violin has four strings tuned in perfect fifths.",
]
QUERY = "how do bees share where the flowers are?"


def _openai(server: ServerProcess, api_key: str = API_KEY) -> OpenAI:
    return OpenAI(base_url=server.url + "/v1", api_key=api_key, max_retries=0, timeout=60)


def test_openai_client_gets_the_cores_vectors(minilm_server: ServerProcess, minilm_encoder: DiffEmbedEncoder) -> None:
    client = _openai(minilm_server)
    documents = client.embeddings.create(model=SERVED_NAME, input=DOCS)  # the client asks for base64 by default
    got = np.asarray([item.embedding for item in documents.data], dtype=np.float32)
    np.testing.assert_allclose(got, minilm_encoder.encode_documents(DOCS), atol=1e-5)
    assert documents.usage.prompt_tokens == sum(minilm_encoder.count_tokens(text) for text in DOCS)
    short = client.embeddings.create(model=SERVED_NAME, input=DOCS, dimensions=64)
    got = np.asarray([item.embedding for item in short.data], dtype=np.float32)
    np.testing.assert_allclose(got, minilm_encoder.encode_documents(DOCS, truncate_dim=64), atol=1e-5)
    floats = client.embeddings.create(model=f"{SERVED_NAME}:query", input=QUERY, encoding_format="float")
    np.testing.assert_allclose(floats.data[0].embedding, minilm_encoder.encode_queries([QUERY])[0], atol=1e-5)
    assert [model.id for model in client.models.list()] == [
        SERVED_NAME,
        f"{SERVED_NAME}:query",
        f"{SERVED_NAME}:document",
    ]


def test_openai_client_sees_clear_errors(minilm_server: ServerProcess) -> None:
    client = _openai(minilm_server)
    with pytest.raises(AuthenticationError, match="API key"):
        _openai(minilm_server, api_key="wrong").embeddings.create(model=SERVED_NAME, input="x")
    with pytest.raises(NotFoundError, match=f"use '{SERVED_NAME}'"):
        client.embeddings.create(model="text-embedding-3-small", input="x")
    with pytest.raises(BadRequestError, match=r"input\[1\] has no tokens"):
        client.embeddings.create(model=SERVED_NAME, input=["fine", "\u0301\u0301"])  # accents MiniLM strips
    with pytest.raises(BadRequestError, match=r"input\[2\] is empty"):
        client.embeddings.create(model=SERVED_NAME, input=["a", "b", ""])
    with pytest.raises(BadRequestError, match="dimensions"):
        client.embeddings.create(model=SERVED_NAME, input="x", dimensions=4096)
    # The key is sent as a bearer token; without one, plain HTTP gets 401 too.
    assert (
        httpx.post(minilm_server.url + "/v1/embeddings", json={"model": SERVED_NAME, "input": "x"}).status_code == 401
    )
    assert client.embeddings.create(model=SERVED_NAME, input="still serving").data


def test_langchain_openai_embeddings(minilm_server: ServerProcess, minilm_encoder: DiffEmbedEncoder) -> None:
    options: dict[str, Any] = {
        "base_url": minilm_server.url + "/v1",
        "api_key": API_KEY,
        "check_embedding_ctx_length": False,
    }
    documents = OpenAIEmbeddings(model=SERVED_NAME, max_retries=0, **options)
    queries = OpenAIEmbeddings(model=f"{SERVED_NAME}:query", max_retries=0, **options)  # embed_query sends no role
    np.testing.assert_allclose(documents.embed_documents(DOCS), minilm_encoder.encode_documents(DOCS), atol=1e-5)
    np.testing.assert_allclose(queries.embed_query(QUERY), minilm_encoder.encode_queries([QUERY])[0], atol=1e-5)
    store = InMemoryVectorStore.from_texts(DOCS, embedding=documents)
    store.embedding = queries
    assert store.similarity_search(QUERY, k=1)[0].page_content == DOCS[0]


def test_llamaindex_openai_like_embedding(minilm_server: ServerProcess, minilm_encoder: DiffEmbedEncoder) -> None:
    options: dict[str, Any] = {"api_base": minilm_server.url + "/v1", "api_key": API_KEY, "max_retries": 0}
    documents = OpenAILikeEmbedding(model_name=SERVED_NAME, **options)
    queries = OpenAILikeEmbedding(model_name=f"{SERVED_NAME}:query", **options)
    got = documents.get_text_embedding_batch(DOCS)
    np.testing.assert_allclose(got, minilm_encoder.encode_documents(DOCS), atol=1e-5)
    np.testing.assert_allclose(queries.get_query_embedding(QUERY), minilm_encoder.encode_queries([QUERY])[0], atol=1e-5)


def test_concurrent_clients_get_their_own_vectors(
    minilm_server: ServerProcess, minilm_encoder: DiffEmbedEncoder
) -> None:
    batches = [[f"client {c} sentence {i} about {DOCS[(c + i) % 3]}" for i in range(1 + c % 5)] for c in range(16)]

    def embed(texts: list[str]) -> np.ndarray:
        response = _openai(minilm_server).embeddings.create(model=SERVED_NAME, input=texts)
        return np.asarray([item.embedding for item in response.data], dtype=np.float32)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(embed, batches))
    for texts, got in zip(batches, results, strict=True):
        np.testing.assert_allclose(got, minilm_encoder.encode_documents(texts), atol=1e-5)
