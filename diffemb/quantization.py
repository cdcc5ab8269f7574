"""Quantised weights: `from_pretrained(..., quantization="int8" | "nf4")`.

How: the checkpoint is loaded in full precision on the CPU, a LoRA adapter (if any) is merged into it, and then
every `nn.Linear` of the backbone is quantised where it will run:

- CPU, int8: torchao's int8 weight-only quantisation (`quantize_(model, Int8WeightOnlyConfig())`: int8 weights
  with one scale per output row, activations stay float).
- CUDA, int8 / nf4: each linear layer is swapped for its bitsandbytes counterpart holding the merged weights
  (`Linear8bitLt`, LLM.int8() with the usual outlier threshold 6.0, or `Linear4bit` with NF4 codes); moving the
  model onto the GPU is what quantises them. NF4 has no CPU kernels: it needs CUDA.

Embeddings and norms stay in the requested dtype.

Why merge first: the LoRA delta `B @ A` is added to the full-precision weight, so the merged weight is exactly
what the adapter was trained to produce and it is rounded once, like the base model's own weights. Applying the
adapter unmerged on a quantised base would need PEFT's quantised LoRA layers and an extra low-rank matmul per
layer in every forward pass; merging into already-quantised weights would round twice.

Why torchao on the CPU: `benchmarks/quantization.py` ran both on real Qwen2.5-Coder-0.5B weights
(`benchmarks/results/quantization.md`): torchao's int8 ran at 1.61x fp32's speed (1.15x in an earlier run) with
a per-text cosine to fp32 of at least 0.9990; bitsandbytes' CPU backend (which casts activations to float16 for
its int8 matmul) ran at 0.52x (0.53x). Both hold 0.46x fp32's weight memory.

Users who prefer transformers' load-time quantisation (lower peak host memory, no adapter) can still pass
`model_kwargs={"quantization_config": BitsAndBytesConfig(...), "device_map": ...}` — that goes to transformers
as it is; giving it together with `quantization=` is an error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

from diffemb.extras import require

QUANTIZATIONS: tuple[str, ...] = ("int8", "nf4")
INT8_OUTLIER_THRESHOLD = 6.0
"""LLM.int8()'s threshold (Dettmers et al. 2022; transformers' `BitsAndBytesConfig` default): activation
columns above it run in 16 bits."""


def check_quantization(
    quantization: object, devices: Sequence[torch.device], model_kwargs: dict[str, Any] | None
) -> str | None:
    """The quantization asked for, checked against the devices before any weight is read."""
    if quantization is None:
        return None
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            f"quantization must be one of {', '.join(repr(q) for q in QUANTIZATIONS)} or None, got {quantization!r}"
        )
    passed = sorted({"quantization_config", "device_map"} & set(model_kwargs or {}))
    if passed:
        raise ValueError(
            f"quantization={quantization!r} and model_kwargs {passed} both decide how weights are placed: give one "
            "(quantization= merges an adapter first; a quantization_config goes to transformers as it is)"
        )
    if len(devices) > 1:
        raise ValueError(f"quantization={quantization!r} runs on one device, got {len(devices)}: pass one device")
    device = devices[0]
    if quantization == "nf4" and device.type != "cuda":
        raise ValueError(
            f"quantization='nf4' needs a CUDA GPU (bitsandbytes has no 4-bit kernels for {device.type}): use "
            "quantization='int8' here, or device='cuda'"
        )
    if device.type not in ("cuda", "cpu"):
        raise ValueError(f"quantization={quantization!r} runs on cuda or cpu, not {device.type}")
    _backend(quantization, device)  # the package that will do it is installed
    return str(quantization)


def quantize_model(
    model: torch.nn.Module, quantization: str, device: torch.device, dtype: torch.dtype
) -> torch.nn.Module:
    """`model` (full precision, on the CPU) with every `nn.Linear` quantised, on `device`."""
    backend = _backend(quantization, device)
    if device.type == "cpu":
        backend.quantize_(model, backend.Int8WeightOnlyConfig(set_inductor_config=False))
        model.eval()
        model.requires_grad_(False)
        return model
    bnb = backend
    linears = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child) is torch.nn.Linear
    ]
    for parent, name, linear in linears:
        setattr(parent, name, _quantized_linear(bnb, linear, quantization, dtype))
    # bitsandbytes' int8 matmul casts float32 inputs to float16 and logs it on every pass: how its kernels work,
    # not something a user can act on, so that one message is dropped.
    logging.getLogger("bitsandbytes.autograd._functions").addFilter(_drop_cast_notice)
    model.to(device)  # bitsandbytes quantises a parameter when it is moved off its CPU copy (or onto the CPU)
    model.eval()
    model.requires_grad_(False)
    return model


def _backend(quantization: str, device: torch.device) -> Any:
    """torchao's quantisation API on the CPU, bitsandbytes on CUDA; an ImportError naming the extra if missing."""
    if device.type == "cpu":
        return require("torchao.quantization", "quant", f"quantization={quantization!r} on the CPU")
    return require("bitsandbytes", "quant", f"quantization={quantization!r} on CUDA")


def _drop_cast_notice(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("MatMul8bitLt: inputs will be cast")


def _quantized_linear(bnb: Any, linear: torch.nn.Linear, quantization: str, dtype: torch.dtype) -> torch.nn.Module:
    sizes = (linear.in_features, linear.out_features)
    has_bias = linear.bias is not None
    weight = linear.weight.data
    layer: torch.nn.Module
    if quantization == "int8":
        layer = bnb.nn.Linear8bitLt(
            *sizes, bias=has_bias, has_fp16_weights=False, threshold=INT8_OUTLIER_THRESHOLD, device="meta"
        )
        layer.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False)
    else:
        layer = bnb.nn.Linear4bit(*sizes, bias=has_bias, compute_dtype=dtype, quant_type="nf4", device="meta")
        layer.weight = bnb.nn.Params4bit(weight, requires_grad=False, quant_type="nf4", module=layer)
    if linear.bias is not None:
        layer.bias = torch.nn.Parameter(linear.bias.data.to(dtype), requires_grad=False)
    return layer


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes of every tensor the model keeps (parameters, buffers, quantisation scales). torchao keeps its int8
    data and scales inside a wrapper tensor whose own element size is the float dtype's: those are looked into."""
    return sum(_held(tensor) for tensor in model.state_dict().values() if isinstance(tensor, torch.Tensor))


def _held(tensor: torch.Tensor) -> int:
    flatten = getattr(tensor, "__tensor_flatten__", None)
    if flatten is not None and type(tensor) not in (torch.Tensor, torch.nn.Parameter):
        names, _context = flatten()
        return sum(_held(getattr(tensor, name)) for name in names)
    return int(tensor.numel() * tensor.element_size())
