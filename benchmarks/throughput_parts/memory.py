"""Peak memory of one run of a corpus: peak RSS in a fresh subprocess (`throughput.py --child JOB_FILE`,
which runs `child_main`), or torch's peak allocation on a GPU."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from corpora import Corpus

from diffemb import DiffEmbedEncoder

from .config import ENTRY_SCRIPT, log
from .models import ModelSpec, load_diffemb
from .systems import DiffembSystem, System, load_system

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
                systems[key] = DiffembSystem(shared.with_settings(batch_tokens=budget))
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
            [sys.executable, str(ENTRY_SCRIPT), "--child", handle.name],
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
