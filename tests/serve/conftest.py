"""A real `diffemb serve` process on a free loopback port, for tests that go through real clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from diffemb.serve.process import ServerProcess, start_diffemb_serve

SERVED_NAME = "minilm"
API_KEY = "test-key-123"


@pytest.fixture(scope="module")
def minilm_server(minilm_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """MiniLM served as `minilm` with the API key `test-key-123`, shared by a test module."""
    log = tmp_path_factory.mktemp("serve") / "server.log"
    server = start_diffemb_serve(
        minilm_folder, log, "--device", "cpu", "--served-model-name", SERVED_NAME, "--api-key", API_KEY,
        "--log-level", "warning",
    )  # fmt: skip
    try:
        yield server
    finally:
        server.stop()
