"""Embedding throughput of diffemb against the usual ways of running the same model (issue 6).

    python benchmarks/throughput.py --quick                      # small corpora, one repetition: a few minutes
    python benchmarks/throughput.py                              # the full run (10-30 minutes on 2 CPU cores)
    python benchmarks/throughput.py --models minilm --corpora passages --parts main
    python benchmarks/throughput.py --dream7b                    # + a Dream-7B-shaped model on a GPU

Run by hand, never as a timed test. Writes a Markdown report (default `benchmarks/results/throughput.md`) and
prints it. What is measured, on the same model, texts and device, in one process:

- systems: diffemb (`encode_documents`, `encode_queries` without instruction); sentence-transformers `encode`
  with batch_size 32 (what LangChain's HuggingFaceEmbeddings calls); LlamaIndex's `HuggingFaceEmbedding`
  through `get_text_embedding_batch` (10 texts per call, its default); a plain transformers loop (fixed batches
  of 32 in input order, padded to the longest, mean pooling).
- models: the real all-MiniLM-L6-v2 folder; a Qwen2-shaped bidirectional model with random weights in Dream's
  layout (built once into the diffemb cache); with `--dream7b` a Dream-7B-shaped model in bf16 on a GPU.
- corpora (benchmarks/corpora.py): short queries, log-normal passages, long documents of 3-6 windows.
- tokens/second over real (non-padding) tokens that each system actually fed the model, counted by a hook on
  the model's forward; padding waste; peak memory (peak RSS over a baseline, in a fresh subprocess per system
  and corpus; on a GPU, torch's peak allocation in-process); model FLOP utilisation against the measured
  dense matmul rate; a sweep over `batch_tokens`; tokenisation vs forward time; torch thread counts.

Timings on a shared machine are noisy: every system is timed once per repetition, in rotating order, and the
median is reported, so ratios within one run are what to compare.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpora import Corpus, build_corpus

from diffemb import DiffEmbedEncoder
from diffemb.offline_assets import default_cache_dir, minilm_path

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "throughput.md"
SYSTEMS = ("diffemb", "sentence-transformers", "llamaindex", "transformers-loop")
PEERS = SYSTEMS[1:]
CORPORA = ("queries", "passages", "long")
ST_BATCH = 32  # sentence-transformers' default, and what LangChain's HuggingFaceEmbeddings passes
LLAMAINDEX_BATCH = 10  # llama_index.core DEFAULT_EMBED_BATCH_SIZE
LOOP_BATCH = 32

QWEN2_SHAPE = {"hidden_size": 512, "num_layers": 4, "num_heads": 8, "num_kv_heads": 2, "intermediate_size": 1408}
QWEN2_MAX_LENGTH = 1024  # Dream's profile says 4096; 1024 keeps the long-document corpus affordable on 2 cores
DREAM7B_SHAPE = {"hidden_size": 3584, "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
                 "intermediate_size": 18944, "vocab_size": 152064}  # fmt: skip
DREAM7B_TINY_SHAPE = {"hidden_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                      "intermediate_size": 512, "vocab_size": 1024}  # fmt: skip

# Corpus sizes: number of queries and passages, and body tokens of the long-document corpus (all windows).
SIZES = {
    "quick": {"queries": 96, "passages": 24, "long_tokens": 3000, "reps": 1},
    "full": {"queries": 512, "passages": 128, "long_tokens": 8000, "reps": 2},
    "gpu": {"queries": 8192, "passages": 2048, "long_tokens": 400000, "reps": 3},
}
SWEEP_BUDGETS = {"quick": (2048, 8192, 32768), "full": (1024, 2048, 4096, 8192, 16384, 32768)}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- models ---------------------------------------------------------------------------------------------------


@dataclass
class ModelSpec:
    name: str
    diffemb_path: str | None
    """Folder diffemb loads (None: the encoder is built in memory, see `build_dream7b`)."""
    peer_path: str | None
    """Folder sentence-transformers, LlamaIndex and AutoModel load; None: peers are emulated on the same module."""
    max_length: int | None
    """diffemb's `max_length` override and the peers' truncation length (None: the model's own)."""
    device: str
    description: str


def prepare_qwen2(device: str) -> ModelSpec:
    """A Qwen2-shaped Dream-layout checkpoint with seeded random weights, and the same weights as a plain
    `Qwen2Model` folder (`is_causal: false`) that sentence-transformers and AutoModel load. Built once."""
    shape = QWEN2_SHAPE
    root = default_cache_dir() / "bench" / f"qwen2-h{shape['hidden_size']}-l{shape['num_layers']}-v1"
    if not (root / "hf" / "config.json").is_file():
        from diffemb.testing.checkpoints import save_dream_checkpoint

        log(f"building the Qwen2-shaped benchmark model in {root}")
        root.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix="qwen2-bench-", dir=root.parent))
        save_dream_checkpoint(stage / "dream", seed=0, **shape)
        encoder = DiffEmbedEncoder.from_pretrained(stage / "dream", device="cpu", dtype="float32")
        encoder.model.save_pretrained(stage / "hf")
        tokenizer = encoder.backbone.tokenizer
        tokenizer.padding_side = "right"
        tokenizer.save_pretrained(stage / "hf")
        shutil.rmtree(root, ignore_errors=True)
        stage.rename(root)
    hidden, layers, ffn, heads = (shape[k] for k in ("hidden_size", "num_layers", "intermediate_size", "num_heads"))
    return ModelSpec(
        name="qwen2",
        diffemb_path=str(root / "dream"),
        peer_path=str(root / "hf"),
        max_length=QWEN2_MAX_LENGTH,
        device=device,
        description=(
            f"Qwen2-shaped bidirectional model, random weights, Dream layout (hidden {hidden}, {layers} layers, "
            f"FFN {ffn}, {heads} heads, 2 KV heads; the fixture's 600-token BPE), max_length {QWEN2_MAX_LENGTH}"
        ),
    )


def prepare_model(name: str, device: str) -> ModelSpec:
    if name == "minilm":
        path = str(minilm_path())
        return ModelSpec("minilm", path, path, None, device, "all-MiniLM-L6-v2 (real weights), max_seq_length 256")
    if name == "qwen2":
        return prepare_qwen2(device)
    if name in ("dream7b", "dream7b-tiny"):
        shape = DREAM7B_SHAPE if name == "dream7b" else DREAM7B_TINY_SHAPE
        return ModelSpec(
            name, None, None, 4096, device,
            "Dream-7B-shaped Qwen2Model (hidden {hidden_size}, {num_hidden_layers} layers, FFN {intermediate_size}, "
            "{num_attention_heads}/{num_key_value_heads} heads), random weights, bf16 (fp32 on CPU), max_length 4096; "
            "tokenizer: the fixture BPE".format(**shape),
        )  # fmt: skip
    raise ValueError(f"unknown model {name!r}: use minilm, qwen2 or dream7b")


def build_dream7b(spec: ModelSpec, batch_tokens: int | None = None) -> DiffEmbedEncoder:
    """A Dream-7B-shaped encoder with random weights, made directly on the device (no checkpoint on disk)."""
    from transformers import Qwen2Config, Qwen2Model, Qwen2Tokenizer

    from diffemb.backbones.base import Backbone
    from diffemb.chunking import ChunkingConfig
    from diffemb.device import attention_implementation, default_batch_tokens, resolve_dtype
    from diffemb.profiles import DREAM
    from diffemb.settings import EncoderSettings

    device = torch.device(spec.device)
    dtype = resolve_dtype("auto", device)
    shape = DREAM7B_SHAPE if spec.name == "dream7b" else DREAM7B_TINY_SHAPE
    config = Qwen2Config(
        **shape, max_position_embeddings=131072, rms_norm_eps=1e-6, tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, use_sliding_window=False,
    )  # fmt: skip
    config.is_causal = False
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2Model._from_config(
            config, dtype=dtype, attn_implementation=attention_implementation(device, dtype)
        )
    model.eval().requires_grad_(False)
    tokenizer = Qwen2Tokenizer.from_pretrained(prepare_qwen2("cpu").peer_path)
    backbone = Backbone(model=model, tokenizer=tokenizer, profile=DREAM, dimension=config.hidden_size)
    n_params = sum(p.numel() for p in model.parameters())
    budget = batch_tokens or default_batch_tokens(device, n_params, config.hidden_size)
    settings = EncoderSettings(
        model=spec.name, revision=None, adapter=None, profile=DREAM, chunking=ChunkingConfig(),
        dtype=str(dtype).removeprefix("torch."), device=str(device), batch_tokens=int(budget), padding_side="right",
    )  # fmt: skip
    return DiffEmbedEncoder(backbone, settings)


def load_diffemb(spec: ModelSpec, batch_tokens: int | None = None) -> DiffEmbedEncoder:
    if spec.diffemb_path is None:
        return build_dream7b(spec, batch_tokens)
    options: dict[str, Any] = {"device": spec.device, "batch_tokens": batch_tokens}
    if spec.max_length is not None:
        options["max_length"] = spec.max_length
    return DiffEmbedEncoder.from_pretrained(spec.diffemb_path, **options)


def body_window(encoder: DiffEmbedEncoder) -> int:
    """Body tokens of one document window (model window less the template)."""
    return int(encoder.profile.max_length - encoder.text.frame(None).overhead)


# -- counting what reaches the model ---------------------------------------------------------------------------


@dataclass
class Counts:
    calls: int = 0
    rows: int = 0
    padded: int = 0
    real: int = 0
    squares: int = 0
    """Sum over rows of (real length)^2, for the attention FLOPs."""

    @property
    def waste(self) -> float:
        return (self.padded - self.real) / self.real if self.real else 0.0


class ForwardCounter:
    """Counts rows, padded and real tokens of every batch that reaches the model.

    It wraps the instance's `forward` rather than registering a hook, because sentence-transformers 6 calls
    `model.forward(...)` directly, which bypasses module hooks. `functools.wraps` keeps the signature visible
    to callers that inspect it (diffemb looks for `position_ids` and `use_cache`).
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.counts = Counts()
        self.model = model
        original = model.forward
        self._had_own = "forward" in vars(model)

        @functools.wraps(original)
        def counted(*args: Any, **kwargs: Any) -> Any:
            self._count(args, kwargs)
            return original(*args, **kwargs)

        model.forward = counted  # type: ignore[method-assign]
        self._original = original

    def _count(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        mask = kwargs.get("attention_mask")
        rows, width = ids.shape
        lengths = mask.sum(dim=1) if mask is not None else torch.full((rows,), width)
        self.counts.calls += 1
        self.counts.rows += rows
        self.counts.padded += rows * width
        self.counts.real += int(lengths.sum())
        self.counts.squares += int((lengths.long() ** 2).sum())

    def take(self) -> Counts:
        counts, self.counts = self.counts, Counts()
        return counts

    def remove(self) -> None:
        if self._had_own:
            self.model.forward = self._original  # type: ignore[method-assign]
        else:
            del self.model.forward


@dataclass
class FlopModel:
    linear_params: int
    layers: int
    hidden: int

    def flops(self, counts: Counts) -> float:
        """Useful FLOPs: 2 x block linear weights per real token, plus 4 x layers x hidden x n per token of an
        n-token row (QK^T and AV). Padding, norms, activations and softmax are not counted."""
        return 2.0 * self.linear_params * counts.real + 4.0 * self.layers * self.hidden * counts.squares


def flop_model(model: torch.nn.Module) -> FlopModel:
    linear = sum(
        m.weight.numel()
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and "pooler" not in name and "lm_head" not in name
    )
    config = model.config  # type: ignore[union-attr]
    return FlopModel(int(linear), int(config.num_hidden_layers), int(config.hidden_size))


# -- systems --------------------------------------------------------------------------------------------------


class System:
    name: str
    module: torch.nn.Module
    """The transformers model whose forward passes are counted."""

    def encode(self, corpus: Corpus) -> Any:
        raise NotImplementedError

    def encode_texts(self, texts: list[str]) -> Any:
        return self.encode(Corpus("passages", texts))


class DiffembSystem(System):
    name = "diffemb"

    def __init__(self, encoder: DiffEmbedEncoder) -> None:
        self.encoder = encoder
        self.module = encoder.model

    def encode(self, corpus: Corpus) -> np.ndarray:
        if corpus.kind == "queries":
            return self.encoder.encode_queries(corpus.texts, instruction=None)
        return self.encoder.encode_documents(corpus.texts)


class SentenceTransformersSystem(System):
    name = "sentence-transformers"

    def __init__(self, model: Any) -> None:
        self.model = model
        self.module = model[0].auto_model

    def encode(self, corpus: Corpus) -> np.ndarray:
        return self.model.encode(corpus.texts, batch_size=ST_BATCH, show_progress_bar=False)


class LlamaIndexSystem(System):
    name = "llamaindex"

    def __init__(self, embedding: Any) -> None:
        self.embedding = embedding
        self.module = embedding._model[0].auto_model

    def encode(self, corpus: Corpus) -> np.ndarray:
        return np.asarray(self.embedding.get_text_embedding_batch(corpus.texts), dtype=np.float32)


class LoopSystem(System):
    """Batches of `batch` texts; `order="input"` is the plain loop, `"length"` sorts all texts by character
    length first (sentence-transformers' `encode`), and `group` splits the input into calls of `group` texts
    first (LlamaIndex's `get_text_embedding_batch`, each call an `encode`)."""

    def __init__(
        self, name: str, model: torch.nn.Module, tokenizer: Any, max_length: int, batch: int,
        order: str = "input", group: int | None = None,
    ) -> None:  # fmt: skip
        self.name = name
        self.module = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch = batch
        self.order = order
        self.group = group
        self.device = next(model.parameters()).device

    def encode(self, corpus: Corpus) -> np.ndarray:
        texts = corpus.texts
        groups = [texts[i : i + self.group] for i in range(0, len(texts), self.group)] if self.group else [texts]
        return np.concatenate([self._call(group) for group in groups])

    def _call(self, texts: list[str]) -> np.ndarray:
        order = list(range(len(texts)))
        if self.order == "length":
            order = sorted(order, key=lambda i: -len(texts[i]))
        out = np.empty((len(texts), self.module.config.hidden_size), dtype=np.float32)  # type: ignore[union-attr]
        for start in range(0, len(order), self.batch):
            index = order[start : start + self.batch]
            inputs = self.tokenizer(
                [texts[i] for i in index], padding=True, truncation=True, max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)  # fmt: skip
            with torch.inference_mode():
                hidden = self.module(**inputs).last_hidden_state  # (B, T, D)
                mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
                pooled = (hidden * mask).sum(dim=1).float() / mask.sum(dim=1).float()  # (B, D)
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
            out[index] = pooled.cpu().numpy()
        return out


def load_system(spec: ModelSpec, name: str, encoder: DiffEmbedEncoder | None = None) -> System:
    """One system on `spec`'s model. Emulated peers (no `peer_path`) reuse `encoder`'s module and tokenizer."""
    if name == "diffemb":
        return DiffembSystem(encoder or load_diffemb(spec))
    if spec.peer_path is None:
        encoder = encoder or load_diffemb(spec)
        # A copy: a padded, truncating `tokenizer(...)` call leaves padding and truncation switched on in the
        # shared fast-tokenizer backend, which diffemb's own tokenisation would then inherit.
        tokenizer = copy.deepcopy(encoder.backbone.tokenizer)
        tokenizer.padding_side = "right"
        length = int(spec.max_length or encoder.profile.max_length)
        model = encoder.model
        if name == "sentence-transformers":
            return LoopSystem(name, model, tokenizer, length, ST_BATCH, order="length")
        if name == "llamaindex":
            return LoopSystem(name, model, tokenizer, length, LLAMAINDEX_BATCH, order="length", group=LLAMAINDEX_BATCH)
        return LoopSystem(name, model, tokenizer, length, LOOP_BATCH)
    with warnings.catch_warnings(), quiet_logs():
        warnings.simplefilter("ignore")
        if name == "sentence-transformers":
            return SentenceTransformersSystem(load_sentence_transformer(spec))
        if name == "llamaindex":
            return LlamaIndexSystem(load_llamaindex(spec))
        if name == "transformers-loop":
            from transformers import AutoModel, AutoTokenizer

            model = AutoModel.from_pretrained(spec.peer_path).to(spec.device).eval()
            tokenizer = AutoTokenizer.from_pretrained(spec.peer_path)
            tokenizer.padding_side = "right"
            return LoopSystem(name, model, tokenizer, peer_max_length(spec), LOOP_BATCH)
    raise ValueError(f"unknown system {name!r}")


def peer_max_length(spec: ModelSpec) -> int:
    if spec.max_length is not None:
        return spec.max_length
    st_config = Path(spec.peer_path or "") / "sentence_bert_config.json"
    if st_config.is_file():
        return int(json.loads(st_config.read_text())["max_seq_length"])
    return 512


def load_sentence_transformer(spec: ModelSpec) -> Any:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    assert spec.peer_path is not None
    if (Path(spec.peer_path) / "modules.json").is_file():
        return SentenceTransformer(spec.peer_path, device=spec.device)
    transformer = Transformer(spec.peer_path, max_seq_length=spec.max_length)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    return SentenceTransformer(modules=[transformer, pooling], device=spec.device)


def load_llamaindex(spec: ModelSpec) -> Any:
    try:
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    except ImportError as error:  # pragma: no cover - the benchmark installs it; say what to do otherwise
        raise SystemExit("pip install llama-index-embeddings-huggingface (0.8.0 was measured)") from error
    return HuggingFaceEmbedding(
        model_name=spec.peer_path, device=spec.device, max_length=spec.max_length, cache_folder=tempfile.gettempdir()
    )


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    import logging

    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    st_logger = logging.getLogger("sentence_transformers")
    st_level = st_logger.level
    st_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        st_logger.setLevel(st_level)


# -- measurements ---------------------------------------------------------------------------------------------


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@dataclass
class Rate:
    """A dense matmul's FLOPs per wall second and per CPU second of this process (all its threads)."""

    wall: float
    cpu: float


def matmul_rate(device: str, size: int = 2048, repeats: int = 7) -> Rate:
    """Median rate of a dense size x size matmul: fp32 on CPU, bf16 on a GPU."""
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    inner = 20 if device.startswith("cuda") else 1
    torch.mm(a, b)
    sync(device)
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(inner):
            torch.mm(a, b)
        sync(device)
        wall.append(2.0 * size**3 * inner / (time.perf_counter() - start))
        cpu.append(2.0 * size**3 * inner / max(time.process_time() - start_cpu, 1e-9))
    return Rate(statistics.median(wall), statistics.median(cpu))


@dataclass
class Timing:
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    """CPU time of the whole process (every thread) during each run: robust to other load on the machine."""
    counts: Counts = field(default_factory=Counts)

    @property
    def tokens_per_second(self) -> float:
        return self.counts.real / statistics.median(self.seconds)

    @property
    def tokens_per_cpu_second(self) -> float:
        return self.counts.real / statistics.median(self.cpu_seconds)

    def spread(self) -> str:
        if len(self.seconds) < 2:
            return ""
        rates = [self.counts.real / s for s in self.seconds]
        return f"{min(rates):,.0f}-{max(rates):,.0f}"

    def add(self, seconds: float, cpu_seconds: float, counts: Counts) -> None:
        self.seconds.append(seconds)
        self.cpu_seconds.append(cpu_seconds)
        self.counts = counts


def time_once(system: System, counter: ForwardCounter, corpus: Corpus, device: str) -> tuple[float, float, Counts]:
    counter.take()
    gc.collect()
    sync(device)
    start, start_cpu = time.perf_counter(), time.process_time()
    system.encode(corpus)
    sync(device)
    return time.perf_counter() - start, time.process_time() - start_cpu, counter.take()


def interleaved(
    systems: dict[str, System], counters: dict[str, ForwardCounter], corpus: Corpus, reps: int, device: str
) -> dict[str, Timing]:
    """Each system timed `reps` times, in an order that rotates each repetition (drift hits all alike)."""
    names = list(systems)
    for name in names:  # warm-up: kernels, thread pools, lazy imports
        systems[name].encode(Corpus(corpus.kind, corpus.texts[:4]))
    timings = {name: Timing() for name in names}
    for rep in range(reps):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            seconds, cpu, counts = time_once(systems[name], counters[name], corpus, device)
            timings[name].add(seconds, cpu, counts)
            log(
                f"  {corpus.kind:8s} {name:22s} {counts.real / seconds:8,.0f} tok/s {counts.real / cpu:8,.0f} "
                f"tok/cpu-s ({seconds:.2f} s, {cpu:.2f} cpu-s)"
            )
    return timings


# -- peak memory in subprocesses ------------------------------------------------------------------------------

# Large tensors come from mmap and go back to the OS when freed, so RSS follows live memory and several
# measurements in one process do not hide behind memory the allocator kept from the previous one.
CHILD_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}


@dataclass
class MemoryJob:
    system: str
    kind: str
    batch_tokens: int | None = None


def _status_kb(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise KeyError(field_name)


def child_main(job_file: str) -> None:
    """Subprocess: for each job, warm the system up on two texts, reset the peak RSS (VmHWM) and report how far
    one run of the corpus raises it above the RSS before the run."""
    job = json.loads(Path(job_file).read_text())
    spec = ModelSpec(**job["spec"])
    corpora = {kind: Corpus(**data) for kind, data in job["corpora"].items()}
    torch.set_num_threads(job["threads"])
    systems: dict[tuple[str, int | None], System] = {}
    shared: DiffEmbedEncoder | None = None
    for item in job["jobs"]:
        task = MemoryJob(**item)
        key = (task.system, task.batch_tokens)
        if key not in systems:
            if task.system == "diffemb":
                shared = shared or load_diffemb(spec)
                budget = task.batch_tokens or shared.settings.batch_tokens
                systems[key] = DiffembSystem(
                    DiffEmbedEncoder(shared.backbone, replace(shared.settings, batch_tokens=budget))
                )
            else:
                systems[key] = load_system(spec, task.system)
        system, corpus = systems[key], corpora[task.kind]
        system.encode(Corpus(corpus.kind, corpus.texts[:2]))
        gc.collect()
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (peak RSS) to the current RSS
        baseline = _status_kb("VmRSS")
        system.encode(corpus)
        peak = _status_kb("VmHWM")
        print("RESULT " + json.dumps({**item, "peak_delta_mb": (peak - baseline) / 1024}), flush=True)


def peak_memory(spec: ModelSpec, jobs: list[MemoryJob], corpora: dict[str, Corpus]) -> list[float | None]:
    """Peak RSS over the pre-run RSS (MiB) of each job, run in order in one fresh process."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"spec": asdict(spec), "jobs": [asdict(j) for j in jobs], "threads": torch.get_num_threads(),
                   "corpora": {k: asdict(c) for k, c in corpora.items()}}, handle)  # fmt: skip
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--child", handle.name],
            capture_output=True, text=True, env={**os.environ, **CHILD_ENV}, check=False,
        )  # fmt: skip
    finally:
        os.unlink(handle.name)
    found = [json.loads(line[7:]) for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if len(found) < len(jobs):
        log(f"  memory run failed after {len(found)} of {len(jobs)} jobs: {done.stderr[-2000:]}")
    values: list[float | None] = [float(f["peak_delta_mb"]) for f in found]
    return values + [None] * (len(jobs) - len(values))


def gpu_peak(system: System, corpus: Corpus) -> float:
    torch.cuda.synchronize()
    gc.collect()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    system.encode(corpus)
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


# -- the benchmark parts --------------------------------------------------------------------------------------


@dataclass
class ModelResult:
    spec: ModelSpec
    flops: FlopModel
    window: int
    corpora: dict[str, Corpus]
    rates: list[Rate] = field(default_factory=list)
    timings: dict[str, dict[str, Timing]] = field(default_factory=dict)
    memory: dict[str, dict[str, float | None]] = field(default_factory=dict)
    sweep: dict[str, dict[int, Timing]] = field(default_factory=dict)
    sweep_memory: dict[str, dict[int, float | None]] = field(default_factory=dict)
    split: list[dict[str, Any]] = field(default_factory=list)
    threads: dict[int, Timing] = field(default_factory=dict)

    @property
    def gpu(self) -> bool:
        return self.spec.device.startswith("cuda")


def make_corpora(encoder: DiffEmbedEncoder, kinds: Sequence[str], size: dict[str, int], seed: int) -> dict[str, Corpus]:
    window = body_window(encoder)
    out = {}
    for kind in kinds:
        n = max(3, round(size["long_tokens"] / (4.5 * window))) if kind == "long" else size[kind]
        out[kind] = build_corpus(kind, encoder.backbone.tokenizer, n, window, seed=seed)
    return out


def mode(args: argparse.Namespace, spec: ModelSpec) -> str:
    return "gpu" if spec.device.startswith("cuda") else ("quick" if args.quick else "full")


def run_model(spec: ModelSpec, args: argparse.Namespace) -> ModelResult:
    size = SIZES[mode(args, spec)]
    reps = args.reps or size["reps"]
    log(f"== {spec.name}: loading diffemb")
    encoder = load_diffemb(spec)
    corpora = make_corpora(encoder, args.corpora, size, args.seed)
    result = ModelResult(spec, flop_model(encoder.model), body_window(encoder), corpora)
    for kind, corpus in corpora.items():
        log(f"   corpus {kind}: {len(corpus.texts)} texts, {corpus.total_body_tokens:,} body tokens")
    parts = set(args.parts)
    if "main" in parts:
        systems = {name: load_system(spec, name, encoder) for name in args.systems}
        counters = {name: ForwardCounter(system.module) for name, system in systems.items()}
        for kind, corpus in corpora.items():
            result.rates.append(matmul_rate(spec.device))
            log(f"   matmul {result.rates[-1].wall / 1e9:.1f} GFLOP/s wall, {result.rates[-1].cpu / 1e9:.1f} per cpu-s")
            result.timings[kind] = interleaved(systems, counters, corpus, reps, spec.device)
        for counter in counters.values():
            counter.remove()
        if not args.no_memory:
            result.memory = {kind: {} for kind in corpora}
            for name, system in systems.items():
                if result.gpu:
                    values = [gpu_peak(system, corpus) for corpus in corpora.values()]
                else:
                    values = peak_memory(spec, [MemoryJob(name, kind) for kind in corpora], corpora)
                for kind, value in zip(corpora, values, strict=True):
                    result.memory[kind][name] = value
                log(f"   memory {name}: {values} MiB")
        del systems, counters
        gc.collect()
    if "sweep" in parts and not result.gpu:
        run_sweep(result, encoder, args)
    if "split" in parts:
        run_split(result, encoder, args)
    if "threads" in parts and not result.gpu:
        run_threads(result, encoder, args)
    return result


def sweep_subset(corpus: Corpus, quick: bool) -> Corpus:
    """Parts that repeat many configurations use the first half of a corpus (same length distribution)."""
    n = len(corpus.texts) if quick else max(3, len(corpus.texts) // 2)
    return Corpus(corpus.kind, corpus.texts[:n], corpus.body_tokens[:n], corpus.window)


def run_sweep(result: ModelResult, encoder: DiffEmbedEncoder, args: argparse.Namespace) -> None:
    budgets = SWEEP_BUDGETS["quick" if args.quick else "full"]
    reps = max(1, (args.reps or SIZES[mode(args, result.spec)]["reps"]) - 1)
    log(f"== {result.spec.name}: batch_tokens sweep {budgets}")
    systems: dict[str, System] = {
        str(b): DiffembSystem(DiffEmbedEncoder(encoder.backbone, replace(encoder.settings, batch_tokens=b)))
        for b in budgets
    }
    counter = ForwardCounter(encoder.model)
    counters = dict.fromkeys(systems, counter)
    subsets = {kind: sweep_subset(corpus, args.quick) for kind, corpus in result.corpora.items()}
    for kind, sub in subsets.items():
        timings = interleaved(systems, counters, sub, reps, result.spec.device)
        result.sweep[kind] = {int(b): t for b, t in timings.items()}
    counter.remove()
    if not args.no_memory:
        kinds = list(subsets)
        jobs = [MemoryJob("diffemb", kind, b) for kind in kinds for b in budgets]
        values = peak_memory(result.spec, jobs, subsets)
        for job, value in zip(jobs, values, strict=True):
            result.sweep_memory.setdefault(job.kind, {})[int(job.batch_tokens or 0)] = value
        log(f"   sweep memory: {result.sweep_memory}")


def run_split(result: ModelResult, encoder: DiffEmbedEncoder, args: argparse.Namespace) -> None:
    """Tokenisation (text → planned rows) vs forward passes, and `encode_documents_iter` vs `encode_documents`."""
    log(f"== {result.spec.name}: tokenisation vs forward")
    reps = 1 if args.quick else 2
    counter = ForwardCounter(encoder.model)
    for kind in ("passages", "long"):
        if kind in result.corpora:
            texts = sweep_subset(result.corpora[kind], args.quick).texts
            result.split.append(split_one(encoder, counter, kind, texts, reps, result.spec.device))
            log(f"   {result.split[-1]}")
    counter.remove()


def split_one(
    encoder: DiffEmbedEncoder, counter: ForwardCounter, kind: str, texts: list[str], reps: int, device: str
) -> dict[str, Any]:
    from diffemb.encoder import DEFAULT

    small = max(4, len(texts) // 4)
    runs: dict[str, list[float]] = {k: [] for k in ("plan", "run", "encode", "iter", "iter_small")}
    waste: dict[str, float] = {}

    def timed(key: str, call: Callable[[], Any]) -> Any:
        counter.take()
        sync(device)
        start = time.perf_counter()
        out = call()
        sync(device)
        runs[key].append(time.perf_counter() - start)
        waste[key] = counter.take().waste
        return out

    for _ in range(reps):
        plan = timed("plan", lambda: encoder._plan(texts, "document", DEFAULT, encoder.settings.chunking))
        timed("run", lambda plan=plan: encoder._run(plan, show_progress=False))
        timed("encode", lambda: encoder.encode_documents(texts))
        timed("iter", lambda: list(encoder.encode_documents_iter(texts)))
        timed("iter_small", lambda: list(encoder.encode_documents_iter(texts, group_size=small)))
    row: dict[str, Any] = {key: statistics.median(values) for key, values in runs.items()}
    row.update(kind=kind, texts=len(texts), small=small, waste_all=waste["encode"], waste_small=waste["iter_small"])
    return row


def run_threads(result: ModelResult, encoder: DiffEmbedEncoder, args: argparse.Namespace) -> None:
    if "passages" not in result.corpora:
        return
    log(f"== {result.spec.name}: torch threads")
    before = torch.get_num_threads()
    corpus = sweep_subset(result.corpora["passages"], args.quick)
    system = DiffembSystem(encoder)
    counter = ForwardCounter(encoder.model)
    choices = sorted({1, before, os.cpu_count() or before})
    reps = max(1, (args.reps or SIZES[mode(args, result.spec)]["reps"]) - 1)
    timings = {n: Timing() for n in choices}
    try:
        for _ in range(reps):
            for n in choices:
                torch.set_num_threads(n)
                seconds, cpu, counts = time_once(system, counter, corpus, result.spec.device)
                timings[n].add(seconds, cpu, counts)
                log(f"   threads {n}: {counts.real / seconds:,.0f} tok/s, {counts.real / cpu:,.0f} tok/cpu-s")
    finally:
        torch.set_num_threads(before)
        counter.remove()
    result.threads = timings


# -- report ---------------------------------------------------------------------------------------------------


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def fmt_mem(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def median_rate(results: Sequence[ModelResult]) -> Rate:
    rates = [r for result in results for r in result.rates]
    if not rates:
        return Rate(float("nan"), float("nan"))
    return Rate(statistics.median(r.wall for r in rates), statistics.median(r.cpu for r in rates))


def mfu(result: ModelResult, timing: Timing, rate: Rate, cpu: bool) -> float:
    flops = result.flops.flops(timing.counts)
    if cpu:
        return flops / statistics.median(timing.cpu_seconds) / rate.cpu
    return flops / statistics.median(timing.seconds) / rate.wall


def report(results: list[ModelResult], args: argparse.Namespace, env: dict[str, Any], gpu: bool = False) -> str:
    rate = median_rate(results)
    rates = [r for result in results for r in result.rates]
    what = "bf16 2048x2048 torch.mm on the GPU" if gpu else "fp32 2048x2048 torch.mm"
    lines = [
        f"# {'GPU t' if gpu else 'T'}hroughput: diffemb vs sentence-transformers, LlamaIndex and a plain "
        "transformers loop",
        "",
        f"Generated by `{' '.join(['python benchmarks/throughput.py', *args.argv])}` on {env['date']}.",
        "",
        f"- Machine: {env['cpu']}, {env['cores']} cores visible, torch {env['torch']} with {env['threads']} "
        f"threads; transformers {env['transformers']}, sentence-transformers {env['st']}, "
        f"llama-index-embeddings-huggingface {env['llamaindex']}.",
        f"- Load average (1 min) at start / end: {env['load_start']:.1f} / {env['load_end']:.1f}.",
        f"- Dense matmul rate ({what}, median of 7, measured before each corpus): median "
        f"{rate.wall / 1e9:.1f} GFLOP/s wall (all: {', '.join(f'{r.wall / 1e9:.1f}' for r in rates)})"
        + ("." if gpu else f"; {rate.cpu / 1e9:.1f} GFLOP per CPU-second of the process."),
        "- tokens fed: real (non-padding) tokens that reached the model, template and special tokens included, "
        "counted at the model's forward. tok/s: wall clock, median over repetitions (range), systems in rotating "
        "order each repetition."
        + ("" if gpu else " tok/CPU-s: the same tokens over the process's CPU time (all threads), which other "
              "load on a shared machine barely moves; its ratios and MFU are the ones to trust when the load "
              "average exceeds the core count."),
        "- diffemb / x = diffemb's rate over the system's rate. waste = padded / real tokens - 1. MFU = useful "
        "FLOPs (2 x block linear weights per real token + 4 x layers x hidden x row length per token; padding not "
        "counted) per second over the matmul rate"
        + ("." if gpu else ", on CPU time (the targets table also gives it on wall time)."),
        "- peak MiB: peak RSS above the RSS just before one run of the corpus (after loading and a 2-text "
        "warm-up), in a fresh process per system (on a GPU: torch's peak allocation above the baseline).",
        "",
    ]  # fmt: skip
    for result in results:
        lines += model_section(result, rate)
    lines += targets_section(results, rate)
    for result in results:
        lines += sweep_section(result)
    lines += split_section(results)
    lines += threads_section(results)
    lines += notes_section(results)
    return "\n".join(lines) + "\n"


def model_section(result: ModelResult, rate: Rate) -> list[str]:
    spec = result.spec
    cpu = not result.gpu
    lines = [
        f"## {spec.name}: {spec.description}",
        "",
        f"Device {spec.device}; {result.flops.linear_params / 1e6:.1f} M block linear weights "
        f"({2 * result.flops.linear_params / 1e6:.1f} MFLOP per token before attention); document window "
        f"{result.window} body tokens.",
        "",
    ]
    head = "| corpus | texts / body tokens | system | tokens fed | tok/s (range) | diffemb / x |"
    rule = "|---|---:|---|---:|---:|---:|"
    if cpu:
        head += " tok/CPU-s | diffemb / x (CPU) |"
        rule += "---:|---:|"
    head += " waste | peak MiB | MFU |"
    rule += "---:|---:|---:|"
    lines += [head, rule]
    for kind, timings in result.timings.items():
        corpus = result.corpora[kind]
        ours = timings.get("diffemb")
        for name, timing in timings.items():
            spread = f" ({timing.spread()})" if timing.spread() else ""
            cells = [
                kind if name == next(iter(timings)) else "",
                f"{len(corpus.texts):,} / {corpus.total_body_tokens:,}" if name == next(iter(timings)) else "",
                name,
                f"{timing.counts.real:,}",
                f"{fmt_rate(timing.tokens_per_second)}{spread}",
                ""
                if ours is None or name == "diffemb"
                else f"{ours.tokens_per_second / timing.tokens_per_second:.2f}x",
            ]
            if cpu:
                cells += [
                    fmt_rate(timing.tokens_per_cpu_second),
                    "" if ours is None or name == "diffemb"
                    else f"{ours.tokens_per_cpu_second / timing.tokens_per_cpu_second:.2f}x",
                ]  # fmt: skip
            cells += [f"{timing.counts.waste:.0%}", fmt_mem(result.memory.get(kind, {}).get(name))]
            cells.append(f"{mfu(result, timing, rate, cpu):.0%}")
            lines.append("| " + " | ".join(cells) + " |")
    if "long" in result.timings and "diffemb" in result.timings["long"]:
        fed = {name: t.counts.real for name, t in result.timings["long"].items()}
        peers = [f"{fed['diffemb'] / n:.1f}x as many as {name}" for name, n in fed.items() if name != "diffemb" and n]
        lines += [
            "",
            "Long documents: diffemb embeds every token (windows of the model's length with 10% overlap, "
            "token-weighted mean of the window vectors); the peers truncate each document to its first window, so "
            f"they do less work and drop the rest of the text. diffemb fed the model {', '.join(peers)} tokens: "
            "compare rates, not wall time.",
        ]
    return [*lines, ""]


def _rate(timing: Timing, cpu: bool) -> float:
    return timing.tokens_per_cpu_second if cpu else timing.tokens_per_second


def targets_section(results: list[ModelResult], rate: Rate) -> list[str]:
    lines = [
        "## Targets (issue 6)",
        "",
        "| target | model | corpus | measured (CPU time) | measured (wall) | verdict |",
        "|---|---|---|---:|---:|---|",
    ]
    for result in results:
        name = result.spec.name
        cpu = not result.gpu
        for kind, timings in result.timings.items():
            if "diffemb" not in timings:
                continue
            ours = timings["diffemb"]
            ratios = {p: (_rate(ours, cpu) / _rate(t, cpu), _rate(ours, False) / _rate(t, False))
                      for p, t in timings.items() if p != "diffemb"}  # fmt: skip
            if ratios:
                worst = min(ratios, key=lambda p: ratios[p][0])
                value, wall = ratios[worst]
                lines.append(
                    f"| diffemb >= every peer | {name} | {kind} | {value:.2f}x ({worst}) | {wall:.2f}x | "
                    f"{verdict(value >= 1.0)} |"
                )
            if kind == "passages":
                for peer in ("transformers-loop", "llamaindex"):
                    if peer in ratios:
                        value, wall = ratios[peer]
                        lines.append(
                            f"| >= 1.5x {peer} | {name} | passages | {value:.2f}x | {wall:.2f}x | "
                            f"{verdict(value >= 1.5)} |"
                        )
                if cpu:
                    value, wall = mfu(result, ours, rate, True), mfu(result, ours, rate, False)
                    lines.append(
                        f"| >= 50% of matmul rate (CPU) | {name} | passages | {value:.0%} | {wall:.0%} | "
                        f"{verdict(value >= 0.5)} |"
                    )
    return [*lines, ""]


def sweep_section(result: ModelResult) -> list[str]:
    if not result.sweep:
        return []
    budgets = sorted(next(iter(result.sweep.values())))
    kinds = list(result.sweep)
    lines = [
        f"## batch_tokens sweep: {result.spec.name} (diffemb, CPU)",
        "",
        "tok/CPU-s (relative to the current default 8192), padding waste, and peak MiB (fresh process). "
        "Corpora: the first half of each main corpus. Wall tok/s in the second table.",
        "",
        "| batch_tokens | " + " | ".join(f"{k} tok/CPU-s" for k in kinds) + " | "
        + " | ".join(f"{k} waste" for k in kinds) + " | " + " | ".join(f"{k} peak MiB" for k in kinds) + " |",
        "|---:|" + "---:|" * (3 * len(kinds)),
    ]  # fmt: skip
    for budget in budgets:
        cells = []
        for timings in result.sweep.values():
            ref = timings.get(8192)
            rel = f" ({timings[budget].tokens_per_cpu_second / ref.tokens_per_cpu_second:.2f})" if ref else ""
            cells.append(f"{fmt_rate(timings[budget].tokens_per_cpu_second)}{rel}")
        cells += [f"{timings[budget].counts.waste:.1%}" for timings in result.sweep.values()]
        cells += [fmt_mem(result.sweep_memory.get(k, {}).get(budget)) for k in kinds]
        lines.append(f"| {budget} | " + " | ".join(cells) + " |")
    lines += ["", "| batch_tokens | " + " | ".join(f"{k} tok/s (wall)" for k in kinds) + " |",
              "|---:|" + "---:|" * len(kinds)]  # fmt: skip
    for budget in budgets:
        lines.append(
            f"| {budget} | " + " | ".join(fmt_rate(t[budget].tokens_per_second) for t in result.sweep.values()) + " |"
        )
    return [*lines, ""]


def split_section(results: list[ModelResult]) -> list[str]:
    rows = [(r.spec.name, s) for r in results for s in r.split]
    if not rows:
        return []
    lines = [
        "## Tokenisation vs forward, and `encode_documents_iter`",
        "",
        "Wall seconds, median. plan = tokenise and cut windows (`_plan`); forward = batches through the model and "
        "pooling (`_run`); encode = `encode_documents`; iter = `list(encode_documents_iter(texts))` with the "
        "default group_size 1024 (one group here, so nothing overlaps); iter/N = group_size N: the next group is "
        "tokenised in the worker thread while the current one runs, but each group is sorted on its own (padding "
        "waste, last column). Corpora: the first half of the main ones.",
        "",
        "| model | corpus | texts | plan s | forward s | plan share | encode s | iter s | iter/N s (N) | "
        "waste all / per group |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in rows:
        share = s["plan"] / (s["plan"] + s["run"])
        lines.append(
            f"| {name} | {s['kind']} | {s['texts']} | {s['plan']:.3f} | {s['run']:.2f} | {share:.1%} | "
            f"{s['encode']:.2f} | {s['iter']:.2f} | {s['iter_small']:.2f} ({s['small']}) | "
            f"{s['waste_all']:.1%} / {s['waste_small']:.1%} |"
        )
    return [*lines, ""]


def threads_section(results: list[ModelResult]) -> list[str]:
    rows = [r for r in results if r.threads]
    if not rows:
        return []
    lines = [
        "## torch threads (diffemb, passages, first half)",
        "",
        "| model | threads | tok/s (wall) | tok/CPU-s |",
        "|---|---:|---:|---:|",
    ]
    for result in rows:
        for n, timing in result.threads.items():
            lines.append(
                f"| {result.spec.name} | {n} | {fmt_rate(timing.tokens_per_second)} | "
                f"{fmt_rate(timing.tokens_per_cpu_second)} |"
            )
    return [*lines, ""]


def notes_section(results: list[ModelResult]) -> list[str]:
    lines = ["## How the peers were run", ""]
    for result in results:
        if result.spec.peer_path is None:
            lines.append(
                f"- {result.spec.name}: no checkpoint folder exists for the peers to load, so they are minimal "
                "equivalents driving the same in-memory model: sentence-transformers = all texts sorted by "
                f"character length, batches of {ST_BATCH}; LlamaIndex = calls of {LLAMAINDEX_BATCH} texts in "
                f"input order, each sorted and run as one batch; loop = batches of {LOOP_BATCH} in input order. "
                "All pad to the longest row of the batch and mean-pool."
            )
        else:
            lines.append(
                f"- {result.spec.name}: sentence-transformers (`SentenceTransformer.encode`, batch_size "
                f"{ST_BATCH}) and LlamaIndex (`HuggingFaceEmbedding(...).get_text_embedding_batch`, "
                f"embed_batch_size {LLAMAINDEX_BATCH}) load `{result.spec.peer_path}` themselves; the loop uses "
                "`AutoModel` and `AutoTokenizer` on it (batches of 32 in input order, padded to the longest, "
                "masked mean)."
            )
    if any(r.spec.name == "qwen2" for r in results):
        lines.append(
            "- qwen2: the peers' folder holds the same weights saved as a plain bidirectional `Qwen2Model` "
            "(`is_causal: false`), which sentence-transformers wraps as Transformer + Pooling(mean). The peers do "
            "not add Dream's chat template; diffemb does (5 tokens per row, counted in its tokens fed)."
        )
    lines.append(
        "- Queries are embedded with `encode_queries(texts, instruction=None)`, so every system embeds the bare "
        "query text; passages and long documents with `encode_documents`."
    )
    return [*lines, ""]


# -- entry point ----------------------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    import transformers

    def version(module: str) -> str:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as dist_version

        try:
            return dist_version(module)
        except PackageNotFoundError:
            return "not installed"

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "transformers": transformers.__version__,
        "st": version("sentence-transformers"),
        "llamaindex": version("llama-index-embeddings-huggingface"),
        "load_start": os.getloadavg()[0],
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small corpora, one repetition (development)")
    parser.add_argument("--models", default="minilm,qwen2", help="comma-separated: minilm, qwen2")
    parser.add_argument("--corpora", default=",".join(CORPORA), help="comma-separated: queries, passages, long")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated subset of " + ", ".join(SYSTEMS))
    parser.add_argument("--parts", default="main,sweep,split,threads", help="main, sweep, split, threads")
    parser.add_argument("--reps", type=int, default=0, help="timed repetitions per system (default: 1 quick, 3 full)")
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
