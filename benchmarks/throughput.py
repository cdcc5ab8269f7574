"""Embedding throughput of diffemb against the usual ways of running the same model (issue 6).

    python benchmarks/throughput.py --quick    # small corpora, one repetition: ~6 min on 2 idle cores, ~10 shared
    python benchmarks/throughput.py            # the full run: about 30 minutes on 2 idle CPU cores
    python benchmarks/throughput.py --models minilm --corpora passages --parts main
    python benchmarks/throughput.py --dream7b  # + a Dream-7B-shaped model on a GPU

Run by hand, never as a timed test. Writes a Markdown report (default `benchmarks/results/throughput.md`) and
prints it. What is measured, on the same model, texts and device, in one process:

- systems: diffemb (`encode_documents`, `encode_queries` without instruction); sentence-transformers `encode`
  with batch_size 32 (what LangChain's HuggingFaceEmbeddings calls); LlamaIndex's `HuggingFaceEmbedding`
  through `get_text_embedding_batch` (10 texts per call, its default); a plain transformers loop (fixed batches
  of 32 in input order, padded to the longest, mean pooling).
- models: the real all-MiniLM-L6-v2 folder; a Qwen2-shaped bidirectional model with random weights in Dream's
  layout (built once into the diffemb cache); with `--dream7b` a Dream-7B-shaped model in bf16 on a GPU.
- corpora (benchmarks/corpora.py): short queries, log-normal passages, long documents of 3-6 windows.
- corpus tokens/second: the corpus's body tokens (no template, no special tokens) that a system's vectors
  cover, over its time; every system embeds the same texts, so a ratio is one system's time over the other's
  and diffemb gets no credit for the prompt-template tokens it adds. Also tokens fed (real, non-padding tokens
  at the model's forward, template included, counted by wrapping its forward); padding waste; peak memory
  (peak RSS over a baseline, in a fresh subprocess per system and corpus; on a GPU, torch's peak allocation
  in-process); model FLOP utilisation of the tokens fed against the measured dense matmul rate; a sweep over
  `batch_tokens` with the encoder's default marked; tokenisation vs forward time; torch thread counts.

Verdicts on issue 6's targets use wall clock (the full run is meant for an idle machine), with the CPU-time
ratio beside them; a run whose load average exceeds the core count is flagged as contended. Every system is
timed once per repetition, in rotating order, and the median is reported.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput_parts.config import CORPORA, DEFAULT_OUT, SYSTEMS, log
from throughput_parts.memory import child_main
from throughput_parts.models import prepare_model
from throughput_parts.report import environment, report
from throughput_parts.runners import ModelResult, run_model
from throughput_parts.systems import quiet_logs


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small corpora, one repetition (development)")
    parser.add_argument("--models", default="minilm,qwen2", help="comma-separated: minilm, qwen2")
    parser.add_argument("--corpora", default=",".join(CORPORA), help="comma-separated: queries, passages, long")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated subset of " + ", ".join(SYSTEMS))
    parser.add_argument(
        "--parts", default="main,sweep,split,threads", help="main, sweep, split, threads (memory: see --no-memory)"
    )
    parser.add_argument(
        "--reps", type=int, default=0, help="timed repetitions per system (default: 1 quick, 2 full, 3 on a GPU)"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--device", default="cpu", help="device for minilm and qwen2 (default cpu)")
    parser.add_argument("--dream7b", action="store_true", help="add a Dream-7B-shaped model (needs a CUDA GPU)")
    parser.add_argument("--dream7b-tiny", action="store_true", help=argparse.SUPPRESS)  # exercises that path on CPU
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.argv = argv
    args.models = [m for m in args.models.split(",") if m]
    args.corpora = [c for c in args.corpora.split(",") if c]
    args.systems = [s for s in args.systems.split(",") if s]
    args.parts = [p for p in args.parts.split(",") if p]
    for kind in args.corpora:
        if kind not in CORPORA:
            parser.error(f"unknown corpus {kind!r}")
    for name in args.systems:
        if name not in SYSTEMS:
            parser.error(f"unknown system {name!r}")
    return args


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.child:
        with warnings.catch_warnings(), quiet_logs():
            warnings.simplefilter("ignore")
            child_main(args.child)
        return
    started = time.perf_counter()
    env = environment()
    specs = [prepare_model(name, args.device) for name in args.models]
    if args.dream7b:
        if torch.cuda.is_available():
            specs.append(prepare_model("dream7b", "cuda"))
        else:
            env["dream7b_skipped"] = "--dream7b: skipped, no CUDA GPU here (the Dream-7B-shaped model is GPU-only)"
            log(env["dream7b_skipped"])
    if args.dream7b_tiny:
        specs.append(prepare_model("dream7b-tiny", args.device))
    results: list[ModelResult] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for spec in specs:
            results.append(run_model(spec, args))
    env["load_end"] = os.getloadavg()[0]
    env["minutes"] = (time.perf_counter() - started) / 60
    cpu_results = [r for r in results if not r.gpu]
    gpu_results = [r for r in results if r.gpu]
    parts = []
    if cpu_results:
        parts.append(report(cpu_results, args, env))
    if gpu_results:
        parts.append(report(gpu_results, args, env, gpu=True))
    if "dream7b_skipped" in env:
        parts.append(env["dream7b_skipped"] + ".\n")
    text = "\n".join(parts)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
