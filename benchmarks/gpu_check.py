"""The GPU check: what diffemb's GPU paths do on a real card, on a Dream-7B-shaped model with random weights.

One script, about 5-8 minutes on one large GPU (H100/H200 class), no hub access needed:

    weights      a Dream-layout checkpoint with Dream-7B's shape (Qwen2: hidden 3584, 28 layers, 28 heads, 4 KV
                 heads, intermediate 18944, vocabulary 152064) and random bf16 weights generated on the GPU,
                 written to a temp folder (the layout of `diffemb.testing.checkpoints.save_dream_checkpoint`)
    matmul       the card's measured bf16 matmul rate (8192-wide square matmuls): the MFU denominator
    throughput   corpus tokens/s and MFU at 512 and 4,096 tokens per document, default `batch_tokens`,
                 with PyTorch SDPA and with flash-attention 2 where `flash_attn` is installed
    memory       peak allocated memory of the 4,096-token run at the default budget
    oom          the out-of-memory backoff on the real allocator: the process is capped to the weights plus a
                 few GiB (`torch.cuda.set_per_process_memory_fraction`), a too-large `batch_tokens` is forced,
                 and the vectors must match a small-budget run (cosine >= 0.999 per text)
    quantized    weight memory of int8 and NF4 loads (bitsandbytes) and their cosine to the bf16 vectors
    peer         sentence-transformers `encode` on the same weights (a Qwen2 folder with `is_causal: false`,
                 mean pooling) and the same texts, batch size = diffemb's budget / text length; tokens/s ratio

It prints one table and writes it to `benchmarks/results/gpu.md`. Each step runs on its own: a step that
fails puts its error in the table and the next one runs.

    python benchmarks/gpu_check.py                # on a CUDA machine
    python benchmarks/gpu_check.py --smoke        # the same code on the CPU with a tiny shape (tests run this)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from diffemb import DiffEmbedEncoder
from diffemb.backbones.dream import qwen2_config_from_dream
from diffemb.quantization import weight_bytes
from diffemb.testing.checkpoints import save_dream_checkpoint
from diffemb.testing.tiny_tokenizers import corpus

RESULTS = Path(__file__).parent / "results" / "gpu.md"
GIB = 1024**3


@dataclass(frozen=True)
class Shape:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    lengths: tuple[int, ...]
    tokens_per_length: int
    matmul_size: int


DREAM_7B = Shape(3584, 28, 28, 4, 18944, 152064, (512, 4096), 262144, 8192)
SMOKE = Shape(64, 2, 4, 2, 128, 1024, (32, 128), 512, 256)


class Report:
    """Rows of (measurement, value, note), printed and written as one Markdown table."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str]] = []

    def add(self, name: str, value: str, note: str = "") -> None:
        self.rows.append((name, value, note))
        print(f"{name}: {value}  {note}", flush=True)

    def step(self, name: str, run: Callable[[], None]) -> None:
        started = time.perf_counter()
        try:
            run()
        except Exception as err:  # one failing step must not hide the others' numbers
            traceback.print_exc()
            self.add(f"{name} (failed)", type(err).__name__, " ".join(str(err).split())[:200])
        print(f"-- {name} took {time.perf_counter() - started:.0f}s", flush=True)

    def markdown(self, header: list[str]) -> str:
        lines = [*header, "", "| measurement | value | note |", "|---|---|---|"]
        lines += [f"| {name} | {value} | {note} |" for name, value, note in self.rows]
        return "\n".join(lines) + "\n"


def build_checkpoint(folder: Path, shape: Shape, device: torch.device, dtype: torch.dtype) -> Path:
    """A Dream-layout checkpoint of `shape` with random weights made on `device` (fast on a GPU)."""
    from safetensors.torch import save_file
    from transformers import Qwen2Config, Qwen2ForCausalLM

    layout = save_dream_checkpoint(folder)  # tokenizer, config and remote-code stubs of the Dream layout
    config = json.loads((layout / "config.json").read_text())
    sizes = {"hidden_size": shape.hidden, "num_hidden_layers": shape.layers, "max_window_layers": shape.layers,
             "num_attention_heads": shape.heads, "num_key_value_heads": shape.kv_heads,
             "intermediate_size": shape.intermediate, "vocab_size": max(shape.vocab, config["vocab_size"])}  # fmt: skip
    config.update(sizes)
    (layout / "config.json").write_text(json.dumps(config, indent=2))
    qwen = Qwen2Config(
        vocab_size=sizes["vocab_size"], hidden_size=shape.hidden, intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers, num_attention_heads=shape.heads, num_key_value_heads=shape.kv_heads,
        tie_word_embeddings=False,
    )  # fmt: skip
    with torch.device("meta"):
        shapes = {name: tensor.shape for name, tensor in Qwen2ForCausalLM(qwen).state_dict().items()}
    (layout / "model.safetensors").unlink()
    generator = torch.Generator(device=device).manual_seed(0)
    shard: dict[str, torch.Tensor] = {}
    shard_bytes, index, weight_map = 0, 0, {}
    names = list(shapes)
    for position, name in enumerate(names):
        size = shapes[name]
        if "norm" in name:
            tensor = torch.ones(size, dtype=dtype) if name.endswith("weight") else torch.zeros(size, dtype=dtype)
        else:
            std = 1.0 if "embed" in name else (size[1] ** -0.5 if len(size) == 2 else 0.1)
            tensor = (torch.randn(size, generator=generator, device=device) * std).to(dtype).cpu()
        shard[name] = tensor
        shard_bytes += tensor.numel() * tensor.element_size()
        if shard_bytes > 4 * GIB or position == len(names) - 1:
            index += 1
            file = f"model-{index:05d}.safetensors"
            save_file(shard, str(layout / file), metadata={"format": "pt"})
            weight_map.update(dict.fromkeys(shard, file))
            shard, shard_bytes = {}, 0
    total = sum(int(np.prod(s)) for s in shapes.values()) * torch.finfo(dtype).bits // 8
    index_file = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (layout / "model.safetensors.index.json").write_text(json.dumps(index_file))
    return layout


def sentence_transformers_folder(dream: Path, encoder: DiffEmbedEncoder, target: Path) -> Path:
    """The same weights as a plain Qwen2 folder (bidirectional: `is_causal: false`) for sentence-transformers."""
    config = qwen2_config_from_dream(json.loads((dream / "config.json").read_text()))
    config.is_causal = False
    target.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(target)
    for file in dream.glob("model*.safetensors*"):
        (target / file.name).symlink_to(file)
    encoder.tokenizer.save_pretrained(target)
    return target


def texts_of(encoder: DiffEmbedEncoder, tokens: int, count: int) -> list[str]:
    """`count` distinct texts of about `tokens` tokens each, from the tiny tokenizer's training words."""
    words = " ".join(corpus(400)).split()
    per_word = max(encoder.count_tokens(" ".join(words[:200])) / 200, 0.1)
    n_words = max(int(tokens / per_word) - 8, 1)
    rng = np.random.default_rng(tokens)
    return [" ".join(rng.choice(words, n_words)) for _ in range(count)]


def matmul_rate(device: torch.device, dtype: torch.dtype, size: int) -> float:
    """Measured FLOP/s of square matmuls: the denominator of MFU."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    repeats = 20 if device.type == "cuda" else 5
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * size**3 * repeats / (time.perf_counter() - started)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def flops_per_text(model: torch.nn.Module, shape: Shape, tokens: int) -> float:
    """Forward FLOPs of one text: 2 per weight of every linear layer per token, plus attention's two s² matmuls."""
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    return 2 * linear * tokens + 4 * shape.layers * shape.hidden * tokens**2


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float32), b.astype(np.float32)
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def release() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class Check:
    def __init__(self, smoke: bool) -> None:
        self.smoke = smoke
        self.device = torch.device("cpu" if smoke else "cuda")
        self.dtype = torch.float32 if smoke else torch.bfloat16
        self.shape = SMOKE if smoke else DREAM_7B
        self.report = Report()
        self.rate = float("nan")
        self.folder = Path()
        self.texts: dict[int, list[str]] = {}
        self.reference: dict[int, np.ndarray] = {}

    def load(self, **options: Any) -> DiffEmbedEncoder:
        return DiffEmbedEncoder.from_pretrained(self.folder, device=str(self.device), dtype=self.dtype, **options)

    def run(self, workdir: Path) -> Report:
        report, device = self.report, self.device
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke: tiny shape)"
        report.add("device", name, f"torch {torch.__version__}")

        def weights() -> None:
            started = time.perf_counter()
            self.folder = build_checkpoint(workdir / "dream", self.shape, device, self.dtype)
            shape = self.shape
            note = f"random weights: hidden {shape.hidden}, {shape.layers} layers, vocabulary {shape.vocab}"
            report.add("checkpoint", f"{time.perf_counter() - started:.0f}s", note)

        def matmul() -> None:
            self.rate = matmul_rate(device, self.dtype, self.shape.matmul_size)
            rate = f"{self.rate / 1e12:.1f} TFLOP/s" if self.rate >= 1e12 else f"{self.rate / 1e9:.1f} GFLOP/s"
            report.add("matmul rate", rate, f"{self.dtype}, {self.shape.matmul_size}²")

        report.step("weights", weights)
        report.step("matmul", matmul)
        report.step("throughput sdpa", lambda: self.throughput("sdpa"))
        if not self.smoke and _has_flash_attention():
            report.step("throughput flash-attention 2", lambda: self.throughput("flash_attention_2"))
        else:
            report.add("flash-attention 2", "not run", "needs CUDA and the flash_attn package")
        report.step("oom backoff", self.oom_backoff)
        for quantization in ("int8", "nf4"):
            report.step(f"quantized {quantization}", lambda q=quantization: self.quantized(q))  # type: ignore[misc]
        report.step("sentence-transformers peer", lambda: self.peer(workdir))
        return report

    def throughput(self, attention: str) -> None:
        encoder = self.load(model_kwargs={"attn_implementation": attention})
        if attention == "sdpa":
            self.report.add(f"{self.dtype} weights", _size(weight_bytes(encoder.model)), "embeddings included")
        for length in self.shape.lengths:
            view = encoder.with_settings(max_length=length + 16)
            texts = self.texts.setdefault(
                length, texts_of(view, length, max(self.shape.tokens_per_length // length, 2))
            )
            view.encode_documents(texts[:2])  # warm-up: kernels, allocator
            sync(self.device)
            if self.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(self.device)
            started = time.perf_counter()
            vectors = view.encode_documents(texts)
            sync(self.device)
            seconds = time.perf_counter() - started
            self.reference.setdefault(length, vectors)
            tokens = sum(view.count_tokens(text) for text in texts)
            mfu = sum(flops_per_text(encoder.model, self.shape, view.count_tokens(t)) for t in texts) / seconds
            note = f"{len(texts)} texts, batch_tokens {view.settings.batch_tokens} (default), {attention}"
            self.report.add(f"{attention} {length} tokens", f"{tokens / seconds:,.0f} tokens/s", note)
            self.report.add(f"{attention} {length} MFU", f"{mfu / self.rate:.1%}", "target >= 45% at 512 tokens")
            if self.device.type == "cuda" and length == max(self.shape.lengths):
                peak = torch.cuda.max_memory_allocated(self.device) / GIB
                self.report.add(f"{attention} peak memory at {length}", f"{peak:.1f} GiB", "weights included")
        del encoder
        release()

    def oom_backoff(self) -> None:
        length = max(self.shape.lengths)
        texts = self.texts[length][:32]
        small = self.load(max_length=length + 16, batch_tokens=length + 16)
        expected = small.encode_documents(texts)
        forced = small.with_settings(batch_tokens=(length + 16) * len(texts))  # every text in one pass
        if self.device.type == "cuda":
            total = torch.cuda.get_device_properties(self.device).total_memory
            cap = (weight_bytes(small.model) + 6 * GIB) / total
            torch.cuda.set_per_process_memory_fraction(min(cap, 1.0), self.device)
        try:
            vectors = forced.encode_documents(texts)
        finally:
            if self.device.type == "cuda":
                torch.cuda.set_per_process_memory_fraction(1.0, self.device)
        caps = small.loaded.pool.budget_caps
        worst = float(cosines(vectors, expected).min())
        note = f"forced {forced.settings.batch_tokens} tokens; budget after backoff {caps or 'unchanged (no OOM)'}"
        self.report.add("oom backoff: min cosine to small-budget vectors", f"{worst:.5f}", note)
        if worst < 0.999:
            raise AssertionError(f"vectors after the OOM backoff differ from the small-budget run (cosine {worst})")
        del small, forced
        release()

    def quantized(self, quantization: str) -> None:
        if quantization == "nf4" and self.device.type != "cuda":
            try:
                self.load(quantization="nf4")
            except ValueError as err:  # what a CPU user gets: the error that names what is missing
                self.report.add("nf4 on CPU", "clear error (as designed)", str(err)[:80] + "…")
                return
            raise AssertionError("nf4 loaded on the CPU: bitsandbytes has no CPU 4-bit kernels to run it")
        length = min(self.shape.lengths)
        encoder = self.load(quantization=quantization, max_length=length + 16)
        texts = self.texts[length][:64]
        vectors = encoder.encode_documents(texts)
        worst = float(cosines(vectors, self.reference[length][:64]).min())
        note = f"min cosine to {self.dtype} vectors {worst:.4f}"
        self.report.add(f"{quantization} weights", _size(weight_bytes(encoder.model)), note)
        del encoder
        release()

    def peer(self, workdir: Path) -> None:
        try:
            from sentence_transformers import SentenceTransformer
            from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
        except ImportError:
            from sentence_transformers import SentenceTransformer
            from sentence_transformers.models import Pooling, Transformer  # type: ignore[no-redef]

        length = min(self.shape.lengths)
        texts = self.texts[length]
        # Without Dream's template the two must give the same vectors: the same weights, mean pooling.
        encoder = self.load(max_length=length + 16, template=False, normalize=False)
        plain = encoder.encode_documents(texts[:16])
        folder = sentence_transformers_folder(self.folder, encoder, workdir / "st")
        config: Any = encoder.model.config
        attention = config._attn_implementation
        budget = encoder.settings.batch_tokens
        del encoder
        release()
        module = Transformer(
            str(folder),
            model_kwargs={"dtype": self.dtype, "attn_implementation": attention},
            max_seq_length=length + 16,
        )
        peer = SentenceTransformer(modules=[module, Pooling(self.shape.hidden, "mean")], device=str(self.device))
        batch_size = max(budget // (length + 16), 1)
        peer.encode(texts[:2], batch_size=batch_size)
        sync(self.device)
        started = time.perf_counter()
        vectors = peer.encode(texts, batch_size=batch_size, convert_to_numpy=True)
        sync(self.device)
        seconds = time.perf_counter() - started
        tokens = sum(len(ids) for ids in peer.tokenizer(texts)["input_ids"])
        ours = [row for row in self.report.rows if row[0] in (f"sdpa {length} tokens", f"{attention} {length} tokens")]
        rate = tokens / seconds
        note = f"batch_size {batch_size}, {attention}"
        if ours:
            ratio = float(ours[-1][1].split()[0].replace(",", "")) / rate
            note += f"; diffemb / sentence-transformers = {ratio:.2f}x"
        self.report.add(f"sentence-transformers {length} tokens", f"{rate:,.0f} tokens/s", note)
        agreement = float(cosines(vectors[:16], plain).min())
        self.report.add("sentence-transformers min cosine to diffemb", f"{agreement:.5f}", "both without a template")
        del peer, module
        release()


def _size(n_bytes: int) -> str:
    return f"{n_bytes / GIB:.2f} GiB" if n_bytes >= GIB else f"{n_bytes / 2**20:.2f} MiB"


def _has_flash_attention() -> bool:
    import importlib.util

    return importlib.util.find_spec("flash_attn") is not None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny shape on the CPU: checks the code paths only")
    parser.add_argument("--output", type=Path, help=f"Markdown table (default: {RESULTS}; --smoke: none)")
    args = parser.parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        parser.error("no CUDA device: run on a GPU machine, or pass --smoke for the CPU code-path check")
    started = time.perf_counter()
    check = Check(args.smoke)
    workdir = Path(tempfile.mkdtemp(prefix="diffemb-gpu-check-"))
    try:
        report = check.run(workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    header = [
        "# GPU check" + (" (smoke: CPU, tiny shape; code paths only)" if args.smoke else ""),
        "",
        f"`python benchmarks/gpu_check.py{' --smoke' if args.smoke else ''}`; wall time "
        f"{time.perf_counter() - started:.0f}s. Random weights"
        + (" in a tiny shape" if args.smoke else " in Dream-7B's shape")
        + "; see the script's docstring.",
    ]
    table = report.markdown(header)
    print(table)
    output = args.output or (None if args.smoke else RESULTS)
    if output is not None:
        output.write_text(table, encoding="utf-8")
    failed = [row for row in report.rows if row[0].endswith("(failed)")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
