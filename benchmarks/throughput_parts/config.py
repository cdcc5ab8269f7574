"""Constants of the throughput benchmark: systems, corpora, batch sizes, model shapes, corpus sizes; `log`."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

BENCHMARKS_DIR = Path(__file__).resolve().parent.parent
ENTRY_SCRIPT = BENCHMARKS_DIR / "throughput.py"
"""The script the memory subprocesses run (`throughput.py --child JOB_FILE`)."""
DEFAULT_OUT = BENCHMARKS_DIR / "results" / "throughput.md"
SYSTEMS = ("diffemb", "sentence-transformers", "llamaindex", "transformers-loop")
CORPORA = ("queries", "passages", "long")
ST_BATCH = 32  # sentence-transformers' default, and what LangChain's HuggingFaceEmbeddings passes
LLAMAINDEX_BATCH = 10  # llama_index.core DEFAULT_EMBED_BATCH_SIZE
LOOP_BATCH = 32

# Shapes are passed on as keyword arguments (save_dream_checkpoint, Qwen2Config), hence dict[str, Any].
QWEN2_SHAPE: dict[str, Any] = {
    "hidden_size": 512, "num_layers": 4, "num_heads": 8, "num_kv_heads": 2, "intermediate_size": 1408,
}  # fmt: skip
QWEN2_MAX_LENGTH = 1024  # Dream's profile says 4096; 1024 keeps the long-document corpus affordable on 2 cores
DREAM7B_SHAPE: dict[str, Any] = {
    "hidden_size": 3584, "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
    "intermediate_size": 18944, "vocab_size": 152064,
}  # fmt: skip
DREAM7B_TINY_SHAPE: dict[str, Any] = {
    "hidden_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    "intermediate_size": 512, "vocab_size": 1024,
}  # fmt: skip

# Corpus sizes: number of queries and passages, and body tokens of the long-document corpus (all windows; at least
# 3 documents). "full" is sized for about 30 minutes on 2 idle CPU cores with every model, corpus and part (main 2
# repetitions, memory, a 6-budget sweep with 1 repetition, split 2 repetitions, threads 1): main and memory take
# about half, the sweep over a quarter, qwen2 two thirds. "quick" takes about 6 minutes idle, 10 on a shared 2-core
# machine. The report states the minutes each part took.
SIZES = {
    "quick": {"queries": 96, "passages": 24, "long_tokens": 3000, "reps": 1},
    "full": {"queries": 512, "passages": 192, "long_tokens": 6000, "reps": 2},
    "gpu": {"queries": 8192, "passages": 2048, "long_tokens": 400000, "reps": 3},
}
SWEEP_BUDGETS = {"quick": (2048, 8192, 32768), "full": (1024, 2048, 4096, 8192, 16384, 32768)}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
