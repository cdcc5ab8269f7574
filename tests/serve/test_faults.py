"""Faults: out-of-memory during a shared pass, SIGTERM with a request in flight, a port already in use."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch

from diffemb import DiffEmbedEncoder
from diffemb.serve import ServeConfig, create_app
from diffemb.serve.process import start_diffemb_serve


async def test_out_of_memory_is_retried_smaller_and_no_request_is_lost(tiny_dream_folder: Path) -> None:
    reference = DiffEmbedEncoder.from_pretrained(tiny_dream_folder, device="cpu", dtype="float32")
    # shared=False: this test breaks the model's forward, which must not leak into other tests' encoders.
    encoder = DiffEmbedEncoder.from_pretrained(
        tiny_dream_folder, device="cpu", dtype="float32", batch_tokens=4096, shared=False
    )
    forward = encoder.model.forward
    seen: list[int] = []

    def failing(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["input_ids"].numel())
        if kwargs["input_ids"].numel() > 200:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return forward(*args, **kwargs)

    encoder.model.forward = failing  # type: ignore[method-assign]
    requests = [[f"request {r} text {i} " + "bee " * (3 * i) for i in range(6)] for r in range(8)]
    app = create_app(encoder, ServeConfig(served_model_name="tiny"))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve") as http,
    ):
        responses = await asyncio.gather(
            *(http.post("/v1/embeddings", json={"model": "tiny", "input": texts}) for texts in requests)
        )
    assert max(seen) > 200  # the out-of-memory really happened
    for texts, response in zip(requests, responses, strict=True):
        assert response.status_code == 200, response.text
        got = np.asarray([item["embedding"] for item in response.json()["data"]], dtype=np.float32)
        np.testing.assert_allclose(got, reference.encode_documents(texts), atol=2e-5)


def test_sigterm_answers_the_request_in_flight_then_exits_0(
    minilm_folder: Path, minilm_encoder: DiffEmbedEncoder, tmp_path: Path
) -> None:
    server = start_diffemb_serve(minilm_folder, tmp_path / "server.log", "--device", "cpu", "--log-level", "warning")
    texts = [f"sentence number {i} about rivers, bread and violins in the harbour" for i in range(600)]
    answer: dict[str, Any] = {}

    def big_request() -> None:
        response = httpx.post(
            server.url + "/v1/embeddings", json={"model": str(minilm_folder), "input": texts}, timeout=120
        )
        answer["status"], answer["body"] = response.status_code, response.json()

    thread = threading.Thread(target=big_request)
    try:
        thread.start()
        deadline = time.monotonic() + 30
        while "diffemb_pass_texts_count 1.0" not in httpx.get(server.url + "/metrics").text:  # the pass has begun
            assert time.monotonic() < deadline, "the request never reached the encoder"
            time.sleep(0.05)
        server.process.send_signal(signal.SIGTERM)
        refused_deadline = time.monotonic() + 10
        while True:  # new connections are refused once the signal is handled
            try:
                httpx.get(server.url + "/health", timeout=1)
            except httpx.ConnectError:
                break
            assert time.monotonic() < refused_deadline, "the server kept accepting after SIGTERM"
            time.sleep(0.05)
        thread.join(timeout=120)
        assert server.process.wait(timeout=60) == 0, server.output()
    finally:
        if server.process.poll() is None:
            server.process.kill()
    assert answer["status"] == 200
    got = np.asarray([item["embedding"] for item in answer["body"]["data"]], dtype=np.float32)
    assert got.shape == (600, 384)
    picks = [0, 299, 599]
    np.testing.assert_allclose(got[picks], minilm_encoder.encode_documents([texts[i] for i in picks]), atol=1e-5)
    assert "Traceback" not in server.output()


def test_a_port_in_use_is_a_one_line_error(tiny_bert_folder: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "diffemb.cli", "serve", "--model", str(tiny_bert_folder), "--device", "cpu",
             "--port", str(port), "--log-level", "critical"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert result.returncode == 1
    assert f"diffemb: error: the server did not start on 127.0.0.1:{port}" in result.stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--port", "0"], "--port must be between 1 and 65535"),
        (["--replicas", "2"], "need --ray"),
        (["--max-items", "50", "--max-queue-texts", "10"], "max_queue_texts"),
    ],
)
def test_bad_options_fail_before_the_model_loads(options: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "diffemb.cli", "serve", "--model", "/nonexistent/model", *options],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0 and message in result.stderr
