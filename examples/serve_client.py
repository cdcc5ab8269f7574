"""Start `diffemb serve` and embed through it with every client a RAG app uses: curl-like HTTP, the `openai`
client, LangChain's OpenAIEmbeddings and LlamaIndex's OpenAILikeEmbedding, then the native window endpoint.

    python examples/serve_client.py                          # offline: all-MiniLM-L6-v2 on CPU
    python examples/serve_client.py --url http://host:8080   # a server that is already running
                                    --model Dream-org/Dream-v0-Instruct-7B

Needs `pip install "diffemb[serve]" openai langchain-openai llama-index-embeddings-openai-like`. Queries and
documents are different requests for a diffusion embedder: the documents client asks for MODEL, the query client
for MODEL:query (the model's query instruction is added on the server).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from langchain_openai import OpenAIEmbeddings
from llama_index.embeddings.openai_like import OpenAILikeEmbedding
from openai import OpenAI

from diffemb.serve.process import start_diffemb_serve
from diffemb.testing.offline_assets import minilm_path

DOCUMENTS = [
    "Photosynthesis lets green plants convert light, water and carbon dioxide into sugar and oxygen.",
    "A pass key is a secret code that unlocks a door, an account or a device.",
    "Paris, on the Seine, has been the capital of France since the tenth century.",
]
QUERY = "What is a pass key used for?"


def run_clients(url: str, model: str, api_key: str) -> None:
    base = url + "/v1"
    # 1. The openai client (it asks for base64 vectors and decodes them).
    client = OpenAI(base_url=base, api_key=api_key)
    documents = np.array([d.embedding for d in client.embeddings.create(model=model, input=DOCUMENTS).data])
    query = np.array(client.embeddings.create(model=model + ":query", input=QUERY).data[0].embedding)
    print("openai:     best document:", DOCUMENTS[int(np.argmax(documents @ query))])

    # 2. LangChain: one Embeddings object per role; without check_embedding_ctx_length=False it sends token ids.
    options: dict[str, Any] = {"base_url": base, "api_key": api_key, "check_embedding_ctx_length": False}
    lc_documents = OpenAIEmbeddings(model=model, **options)
    lc_queries = OpenAIEmbeddings(model=model + ":query", **options)
    scores = np.array(lc_documents.embed_documents(DOCUMENTS)) @ np.array(lc_queries.embed_query(QUERY))
    print("LangChain:  best document:", DOCUMENTS[int(np.argmax(scores))])

    # 3. LlamaIndex: the same two-client pattern.
    li_documents = OpenAILikeEmbedding(model_name=model, api_base=base, api_key=api_key)
    li_queries = OpenAILikeEmbedding(model_name=model + ":query", api_base=base, api_key=api_key)
    scores = np.array(li_documents.get_text_embedding_batch(DOCUMENTS)) @ np.array(
        li_queries.get_query_embedding(QUERY)
    )
    print("LlamaIndex: best document:", DOCUMENTS[int(np.argmax(scores))])

    # 4. The native endpoint: one vector per window of a long document, with character spans.
    long_document = " ".join(DOCUMENTS * 40)
    answer = httpx.post(
        url + "/v1/diffemb/embed",
        json={"input": [long_document], "chunks": True},
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=120,
    ).json()
    windows = answer["data"][0]["chunks"]
    print(f"native:     {len(long_document)} characters -> {len(windows)} windows, first span", end=" ")
    print((windows[0]["start"], windows[0]["end"]), f"({windows[0]['tokens']} tokens)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running server (default: start one here on a free port)")
    parser.add_argument("--model", help="the served model name (default: the offline MiniLM folder)")
    parser.add_argument("--api-key", default="example-key")
    args = parser.parse_args()
    if args.url:
        run_clients(args.url.rstrip("/"), args.model, args.api_key)
        return
    model = args.model or str(minilm_path())
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "server.log"
        server = start_diffemb_serve(model, log, "--api-key", args.api_key, "--log-level", "warning")
        try:
            print(f"diffemb serve on {server.url} (model {model})")
            run_clients(server.url, model, args.api_key)
        finally:
            print("server stopped with exit code", server.stop())


if __name__ == "__main__":
    main()
