"""Quantised weights on the CPU: weight memory, speed and agreement with full precision, on real weights.

A by-hand measurement, not a test. The model is Qwen2.5-Coder-0.5B-Instruct as a Dream-layout folder (the
real weights of the slow tests: `diffemb.testing.offline_assets.qwen_coder_dream_folder()`, from the `slow`
extra), run bidirectionally with mean pooling as diffemb runs Dream. Loading modes:

    fp32           `from_pretrained(..., dtype="float32")`: the reference
    int8 (torchao) `from_pretrained(..., quantization="int8")`: diffemb's CPU path, torchao's int8
                   weight-only `quantize_` on every linear layer after loading
    int8 (bnb)     the same fp32 model with every linear layer swapped for bitsandbytes' `Linear8bitLt`
                   (LLM.int8(), threshold 6.0) on its CPU backend: diffemb's CUDA path, measured here as the
                   alternative CPU backend

Per mode: bytes of the weights as held (parameters, buffers, quantisation scales), load time, corpus tokens/s
(best of `--repeats` interleaved runs on a shared machine), and per text the cosine of its vector to the fp32
vector. Texts: the first window (256 tokens) of local-pydocs pages and their synopsis queries.

    python benchmarks/quantization.py          # writes benchmarks/results/quantization.md
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from diffemb import DiffEmbedEncoder
from diffemb.quantization import weight_bytes
from diffemb.tasks import load_task
from diffemb.testing.offline_assets import qwen_coder_dream_folder

RESULTS = Path(__file__).parent / "results" / "quantization.md"
MIB = 2**20


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def load(folder: Path, mode: str) -> DiffEmbedEncoder:
    options: dict[str, Any] = {"device": "cpu", "dtype": "float32", "max_length": 256, "shared": False}
    if mode == "int8 (torchao)":
        return DiffEmbedEncoder.from_pretrained(folder, quantization="int8", **options)
    encoder = DiffEmbedEncoder.from_pretrained(folder, **options)
    if mode == "int8 (bnb)":
        swap_in_bitsandbytes_int8(encoder.model)
    return encoder


def swap_in_bitsandbytes_int8(model: torch.nn.Module) -> None:
    """Every `nn.Linear` as a bitsandbytes `Linear8bitLt` (quantised on the CPU when moved there)."""
    import bitsandbytes as bnb

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is torch.nn.Linear:
                layer = bnb.nn.Linear8bitLt(
                    child.in_features, child.out_features, bias=child.bias is not None,
                    has_fp16_weights=False, threshold=6.0, device="meta",
                )  # fmt: skip
                layer.weight = bnb.nn.Int8Params(child.weight.data, requires_grad=False, has_fp16_weights=False)
                if child.bias is not None:
                    layer.bias = torch.nn.Parameter(child.bias.data, requires_grad=False)
                setattr(parent, name, layer)
    model.to("cpu")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=16, help="pydocs pages (and as many queries) for agreement")
    parser.add_argument("--timed", type=int, default=4, help="of which pages (and queries) are timed per run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per mode, interleaved; the best counts")
    parser.add_argument("--modes", default="fp32,int8 (torchao),int8 (bnb)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    folder = qwen_coder_dream_folder()
    task = load_task("local-pydocs", limit=args.texts)[0]
    documents, queries = list(task.corpus.values()), list(task.queries.values())
    modes = args.modes.split(",")
    encoders: dict[str, DiffEmbedEncoder] = {}
    loads: dict[str, float] = {}
    vectors: dict[str, np.ndarray] = {}
    seconds: dict[str, list[float]] = {mode: [] for mode in modes}
    for mode in modes:
        started = time.perf_counter()
        encoders[mode] = load(folder, mode)
        loads[mode] = time.perf_counter() - started
        print(f"{mode}: loaded in {loads[mode]:.0f}s, {weight_bytes(encoders[mode].model) / MIB:.0f} MiB", flush=True)
    reference = encoders[modes[0]]
    views = {mode: encoders[mode].with_settings(chunk_aggregation="first") for mode in modes}
    for mode, view in views.items():
        vectors[mode] = np.vstack([view.encode_documents(documents), view.encode_queries(queries)])
    timed_docs, timed_queries = documents[: args.timed], queries[: args.timed]
    tokens = sum(min(views[modes[0]].count_tokens(t), 256) for t in timed_docs + timed_queries)
    for repeat in range(args.repeats):  # interleaved, so a busy spell on the shared machine hits every mode
        for mode, view in views.items():
            started = time.perf_counter()
            view.encode_documents(timed_docs)
            view.encode_queries(timed_queries)
            seconds[mode].append(time.perf_counter() - started)
            print(f"repeat {repeat} {mode}: {seconds[mode][-1]:.1f}s", flush=True)
    base_bytes = weight_bytes(reference.model)
    lines = [
        "# Quantised weights on the CPU: memory, speed and agreement (Qwen2.5-Coder-0.5B, real weights)",
        "",
        "Produced by `python benchmarks/quantization.py` (method in its docstring). "
        f"Agreement: {len(documents)} pydocs pages (first 256-token window) + {len(queries)} queries. Speed: "
        f"{args.timed} pages + {args.timed} queries = {tokens:,} tokens per run; best of {args.repeats} "
        f"interleaved runs on a shared 2-core CPU (torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, Python {platform.python_version()}). Cosine: per text, to the fp32 "
        "vector of the same text.",
        "",
        "| loading mode | weights (MiB) | vs fp32 | load (s) | tokens/s | speed vs fp32 | min cosine | mean cosine |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base_rate = tokens / min(seconds[modes[0]])
    for mode in modes:
        size = weight_bytes(encoders[mode].model)
        rate = tokens / min(seconds[mode])
        agreement = cosines(vectors[mode], vectors[modes[0]])
        lines.append(
            f"| {mode} | {size / MIB:,.0f} | {size / base_bytes:.2f}x | {loads[mode]:.0f} | {rate:,.0f} | "
            f"{rate / base_rate:.2f}x | {agreement.min():.4f} | {agreement.mean():.4f} |"
        )
    args.output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
