"""Run a server as a child process on a free loopback port and wait until it is healthy.

Used by the tests (a real `diffemb serve` for real clients) and by `benchmarks/serve.py` (diffemb serve and
infinity-emb side by side). Only the standard library and httpx.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, wait (bounded), then kill; the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return int(self.process.returncode)


def start_process(
    command: list[str],
    port: int,
    log: Path,
    *,
    health_path: str = "/health",
    env: dict[str, str] | None = None,
    timeout: float = 180.0,
) -> ServerProcess:
    """Start `command` (which listens on `port`), output to `log`; return once `health_path` answers 200."""
    handle = log.open("wb")
    process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
    handle.close()
    server = ServerProcess(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{command[0]} exited with {process.returncode}:\n{server.output()[-4000:]}")
        try:
            if httpx.get(server.url + health_path, timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    server.stop(timeout=10)
    raise RuntimeError(f"{command[0]} did not become healthy in {timeout:.0f} s:\n{server.output()[-4000:]}")


def start_diffemb_serve(
    model: str | os.PathLike[str], log: Path, *options: str, timeout: float = 180.0
) -> ServerProcess:
    """`diffemb serve --model MODEL --port <free> OPTIONS...` with this interpreter, offline, on CPU threads
    that sleep while idle (spinning OpenMP threads slow a busy machine down)."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_WAIT_POLICY": "PASSIVE"}
    env.pop("DIFFEMB_API_KEY", None)
    command = [sys.executable, "-m", "diffemb.cli", "serve", "--model", str(model), "--port", str(port), *options]
    return start_process(command, port, log, env=env, timeout=timeout)
