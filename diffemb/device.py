"""Device and dtype choice, the per-device lock that serialises forward passes, and OOM recognition."""

from __future__ import annotations

import ctypes
import importlib.util
import sys
import threading
from typing import Any

import torch

_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """`"auto"` picks cuda, then mps, then cpu; anything else is passed to `torch.device`."""
    if isinstance(spec, torch.device):
        return spec
    if spec != "auto":
        try:
            return torch.device(spec)
        except RuntimeError as err:
            raise ValueError(f"unknown device {spec!r}: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from err
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_devices(spec: str | torch.device | list[str] | tuple[str, ...] = "auto") -> list[torch.device]:
    """The devices to hold one model replica each: a list, a comma-separated string, or every visible GPU when
    `spec` is "auto" or "cuda" and several are visible (data parallel); otherwise one device."""
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise ValueError("device list is empty: name at least one device")
        return [resolve_device(item) for item in spec]
    if isinstance(spec, str) and "," in spec:
        return resolve_devices([item.strip() for item in spec.split(",") if item.strip()])
    if spec in ("auto", "cuda") and torch.cuda.is_available() and torch.cuda.device_count() > 1:
        return [torch.device("cuda", index) for index in range(torch.cuda.device_count())]
    return [resolve_device(spec)]


def resolve_dtype(spec: str | torch.dtype, device: torch.device) -> torch.dtype:
    """`"auto"` is bf16 on a GPU that supports it, fp16 on older GPUs and fp32 elsewhere."""
    if isinstance(spec, torch.dtype):
        return spec
    if spec == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if spec not in _DTYPES:
        raise ValueError(f"unknown dtype {spec!r}: use 'auto' or one of {sorted(_DTYPES)}")
    return _DTYPES[spec]


def attention_implementation(device: torch.device, dtype: torch.dtype) -> str:
    """flash-attention 2 where it is installed and can run (CUDA, half precision); PyTorch SDPA elsewhere."""
    half = dtype in (torch.float16, torch.bfloat16)
    if device.type == "cuda" and half and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def device_lock(device: torch.device) -> threading.Lock:
    """The one lock per device that every encoder (and so every framework adapter) takes around a forward pass.

    Concurrent forward passes on one GPU only compete for memory and kernels, so they are serialised; encoders
    on different devices run in parallel.
    """
    key = str(device)
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.Lock())


def default_batch_tokens(device: torch.device, n_params: int, hidden_size: int) -> int:
    """Padded tokens per forward pass: large enough to keep the matmuls busy, small enough to fit.

    On CPU throughput saturates at a few thousand tokens per pass and larger passes fall out of cache: the
    `benchmarks/throughput.py` sweep (MiniLM and a Qwen2-shaped model, 1k-32k budgets) put 8192 10-28% below
    the best budget on passages and long documents, and 4096 within 10% of the best on every corpus. On a GPU
    the activations of one token cost roughly `hidden_size * 34` bytes per layer at the widest point, so the
    budget is scaled from free memory.
    """
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        weights = n_params * 2
        spare = max(free - weights, free // 4)
        per_token = hidden_size * 4 * 34  # widest activation of a layer in half precision, with headroom
        return int(min(max(spare // (per_token * 2), 2048), 262144))
    if device.type == "mps":
        return 8192
    return 4096


def is_out_of_memory(error: BaseException) -> bool:
    """True for CUDA's OutOfMemoryError and the RuntimeErrors that MPS and CPU allocators raise."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def free_cached_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()


def release_host_memory() -> None:
    """Hand freed heap pages back to the operating system (glibc's `malloc_trim`).

    Activation shapes change from batch to batch, and glibc keeps the freed blocks of different sizes in its
    arenas; over a long stream the process's resident memory then grows far past its live heap. Trimming
    between groups keeps it flat. A no-op where glibc is not the allocator.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _find_malloc_trim() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return getattr(libc, "malloc_trim", None)


_MALLOC_TRIM = _find_malloc_trim()
