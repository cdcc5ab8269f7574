"""Slow: int8 weights on the real Qwen2.5-Coder-0.5B (Dream layout) agree with full precision, per text."""

from __future__ import annotations

import numpy as np
import pytest

from diffemb import DiffEmbedEncoder
from diffemb.quantization import weight_bytes
from diffemb.testing import offline_assets

pytestmark = pytest.mark.slow

TEXTS = [
    "def fibonacci(n):\n    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)\n",
    "The os.path module implements some useful functions on pathnames.",
    "How do I read a JSON file into a dictionary?",
    "Ünïcödé, 中文字符 and three   spaces.",
]


def test_int8_weights_on_real_qwen_agree_with_fp32() -> None:
    folder = offline_assets.qwen_coder_dream_folder()
    options = {"device": "cpu", "dtype": "float32", "max_length": 128}
    full = DiffEmbedEncoder.from_pretrained(folder, **options)  # type: ignore[arg-type]
    reference = full.encode_documents(TEXTS)
    full_bytes = weight_bytes(full.model)
    del full
    int8 = DiffEmbedEncoder.from_pretrained(folder, quantization="int8", **options)  # type: ignore[arg-type]
    vectors = int8.encode_documents(TEXTS)
    cosine = (vectors * reference).sum(1) / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(reference, axis=1))
    assert cosine.min() > 0.98
    assert weight_bytes(int8.model) < 0.5 * full_bytes
