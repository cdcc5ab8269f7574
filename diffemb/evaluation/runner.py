"""`evaluate()`: one or more models on offline tasks and mteb hub suites, with JSON and Markdown results.

Everything that can fail without a model fails first: unknown task names, a missing Debian package (the
task builders name the ``apt-get install``), an unreachable hub for hub suites. Then models load, the synthetic
tasks are built once with the first model's tokenizer (so every model sees the same texts), and each model runs
every task in every requested document mode. Scores are reproducible: tasks are seeded, rows run in a fixed
order and rankings break ties by document order; only the timings change between runs.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffemb.evaluation.offline import (
    bm25_metrics,
    build_offline_tasks,
    is_offline_task,
    run_task,
    task_sizes,
)
from diffemb.evaluation.report import markdown_report, markdown_table
from diffemb.evaluation.scoring import MODES, Session, check_modes
from diffemb.tasks import RetrievalTask

RESULTS_VERSION = 1


@dataclass
class EvalReport:
    """What :func:`evaluate` returns: the results as plain data, and where they were written."""

    results: dict[str, Any]
    output_dir: Path | None = None

    @property
    def table(self) -> str:
        return markdown_table(self.results)

    def score(self, task: str, model: str | None = None, mode: str | None = None, metric: str = "main") -> float:
        """One number: a task's metric for a model label (default: the first) and mode (default: the first)."""
        entry = self.results["tasks"][task]
        label = model or next(iter(entry["models"]))
        run = entry["models"][label]
        chosen = mode or next(iter(run["modes"]))
        return float(run["modes"][chosen]["metrics"][metric])


def parse_task_names(tasks: str | Sequence[str]) -> list[str]:
    names = tasks.split(",") if isinstance(tasks, str) else list(tasks)
    out = [n.strip() for n in names if n and n.strip()]
    if not out:
        raise ValueError("no task given")
    return out


def parse_modes(chunk_aggregation: str | Sequence[str] | None, encoder: Any = None) -> list[str]:
    if chunk_aggregation is None:
        default = encoder.settings.chunking.aggregation if encoder is not None else "mean"
        return [default if default in MODES else "maxsim"]
    names = chunk_aggregation.split(",") if isinstance(chunk_aggregation, str) else list(chunk_aggregation)
    # "none" gives window vectors; scoring them is max-sim.
    return check_modes(["maxsim" if n.strip() == "none" else n for n in names])


_GENERIC_NAMES = {"model", "models", "checkpoint", "final", "output", "snapshot"}


def _short_name(name: str) -> str:
    """A hub id as it is; a local folder by its name (and its parent's, when the name says nothing)."""
    path = Path(name).expanduser()
    if not path.exists():
        return name
    parts = path.resolve().parts
    if len(parts) >= 2 and parts[-1].lower() in _GENERIC_NAMES:
        return f"{parts[-2]}/{parts[-1]}"
    return parts[-1] if parts else name


def _label(model: Any, adapter: Any, taken: set[str]) -> str:
    if isinstance(model, (str, os.PathLike)):
        base = _short_name(str(model))
    else:
        settings = getattr(model, "settings", None)
        base = _short_name(str(settings.model)) if settings is not None else type(model).__name__
        adapter = adapter or (settings.adapter if settings is not None else None)
    if adapter:
        base += f" + {Path(str(adapter)).name}"
    label, n = base, 2
    while label in taken:
        label, n = f"{base} #{n}", n + 1
    taken.add(label)
    return label


def _load(model: Any, adapter: Any, load_kwargs: dict[str, Any]) -> Any:
    from diffemb.encoder import DiffEmbedEncoder

    if isinstance(model, DiffEmbedEncoder):
        return model
    path = Path(str(model)).expanduser()
    name = str(path) if path.exists() else str(model)
    return DiffEmbedEncoder.from_pretrained(name, adapter=adapter, **load_kwargs)


def evaluate(
    model_or_encoder: Any,
    tasks: str | Sequence[str],
    *,
    chunk_aggregation: str | Sequence[str] | None = None,
    limit: int | None = None,
    lengths: Sequence[int] | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    compare: Sequence[Any] = (),
    adapter: str | os.PathLike[str] | None = None,
    chunk_size: int | None = None,
    chunk_overlap: int | None = None,
    seed: int = 0,
    bm25: bool = True,
    show_progress: bool = True,
    hub_timeout: float = 3.0,
    **load_kwargs: Any,
) -> EvalReport:
    """Evaluate a model (and the ``compare`` models) on offline tasks and/or mteb hub suites.

    ``tasks``: names like ``local-passkey,local-pydocs`` or suites ``longembed``, ``bright``, ``followir``,
    ``mteb-eng-retrieval`` (or single mteb task names). ``chunk_aggregation``: one or more document modes
    (``first``, ``mean``, ``max``, ``late``, ``maxsim``, ``norm-mean``; default: the encoder's own).
    ``limit`` caps documents per task; ``lengths`` picks synthetic lengths. ``adapter`` applies to the first
    model; ``load_kwargs`` (``device``, ``dtype``, ``max_length``, ...) to every model loaded by name.
    With ``output_dir``, one ``{task}.json`` per task, ``results.json`` and ``results.md`` are written.
    """
    from tqdm.auto import tqdm

    started = time.perf_counter()
    names = parse_task_names(tasks)
    offline_names = [n for n in names if is_offline_task(n)]
    hub_names = [n for n in names if not is_offline_task(n)]
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number, got {limit}")
    modes = parse_modes(chunk_aggregation, model_or_encoder if hasattr(model_or_encoder, "settings") else None)

    hub_tasks: list[Any] = []
    if hub_names:
        from diffemb.evaluation import mteb_adapter

        hub_tasks = mteb_adapter.load_hub_tasks(hub_names, timeout=hub_timeout)
    # Real corpora first: a missing Debian package is reported before any model loads.
    prebuilt: dict[str, list[RetrievalTask]] = {}
    for name in offline_names:
        if name in ("local-pydocs", "local-manpages"):
            prebuilt[name] = build_offline_tasks(name, limit=limit, seed=seed)

    taken: set[str] = set()
    specs = [(model_or_encoder, adapter), *((m, None) for m in compare)]
    encoders: dict[str, Any] = {}
    for model, extra in specs:
        label = _label(model, extra, taken)
        encoders[label] = _load(model, extra, load_kwargs)
    first = next(iter(encoders.values()))

    built: list[RetrievalTask] = []
    family_of: dict[str, str] = {}
    for name in offline_names:
        group = prebuilt.get(name) or build_offline_tasks(
            name, count_tokens=first.count_tokens, lengths=lengths, limit=limit, seed=seed
        )
        for task in group:
            built.append(task)
            if len(group) > 1 or task.meta.get("length"):
                kind = task.meta.get("kind")
                family_of[task.name] = f"local-{task.meta.get('family')}" + (f"-{kind}" if kind else "")

    results: dict[str, Any] = {
        "version": RESULTS_VERSION,
        "settings": {
            "tasks": names,
            "modes": modes,
            "limit": limit,
            "lengths": list(lengths) if lengths else None,
            "seed": seed,
            "chunk_size": chunk_size,
            "chunk_overlap": chunk_overlap,
            "length_tokenizer": next(iter(encoders)),
        },
        "models": {
            label: {
                "fingerprint": enc.fingerprint,
                "dimension": enc.dimension,
                "max_length": enc.profile.max_length,
                "settings": _jsonable(enc.describe()),
            }
            for label, enc in encoders.items()
        },
        "tasks": {},
        "suites": {},
        "timings": {},
    }
    sessions = {
        label: Session(enc, chunk_size=chunk_size, chunk_overlap=chunk_overlap) for label, enc in encoders.items()
    }
    total = len(built) * len(encoders) + (len(encoders) * len(modes) if hub_tasks else 0)
    with tqdm(total=total, desc="diffemb eval", unit="run", disable=not show_progress) as bar:
        for task in built:
            entry: dict[str, Any] = {
                "task": task.name,
                "metric": task.metric,
                "family": family_of.get(task.name),
                "sizes": task_sizes(task, first.count_tokens),
                "models": {},
            }
            if bm25:
                entry["bm25"] = _rounded(bm25_metrics(task))
            for label, session in sessions.items():
                bar.set_postfix_str(f"{task.name} · {label}", refresh=False)
                run = run_task(session, task, modes)
                data = run.as_dict()
                results["timings"][f"{task.name} | {label}"] = {
                    "seconds": data.pop("seconds"),
                    "query_cost": data.pop("query_cost"),
                    "modes": {m: r.pop("cost") for m, r in data["modes"].items()},
                }
                entry["models"][label] = {"fingerprint": session.encoder.fingerprint, "modes": data["modes"]}
                session.cache.clear()  # rows repeat within a task, rarely across tasks: bound the memory
                bar.update(1)
            results["tasks"][task.name] = entry
        if hub_tasks:
            _run_hub(results, hub_tasks, hub_names, encoders, modes, show_progress, bar)
    results["timings"]["total_seconds"] = round(time.perf_counter() - started, 3)
    report = EvalReport(results)
    if output_dir is not None:
        report.output_dir = write_results(results, Path(output_dir))
    return report


def _run_hub(
    results: dict[str, Any],
    hub_tasks: list[Any],
    hub_names: list[str],
    encoders: dict[str, Any],
    modes: list[str],
    show_progress: bool,
    bar: Any,
) -> None:
    from diffemb.evaluation import mteb_adapter

    for suite in hub_names:
        if suite in mteb_adapter.SUITES:
            results["suites"][suite] = list(mteb_adapter.SUITES[suite])
    for label, encoder in encoders.items():
        for mode in modes:
            model = mteb_adapter.make_mteb_model(encoder, mode=mode, show_progress=show_progress)
            started = time.perf_counter()
            scores = mteb_adapter.run_mteb(model, hub_tasks, show_progress=show_progress)
            for task in hub_tasks:
                name = task.metadata.name
                entry = results["tasks"].setdefault(
                    name,
                    {"task": name, "metric": task.metadata.main_score, "family": None, "sizes": {}, "models": {}},
                )
                per_model = entry["models"].setdefault(label, {"fingerprint": encoder.fingerprint, "modes": {}})
                main = scores[name]["main_score"]
                per_model["modes"][mode] = {
                    "metrics": {"main": round(main, 6)},
                    "scores": scores[name]["scores"],
                    "settings": model.settings_for(name, getattr(task.metadata, "prompt", None)),
                }
            results["timings"][f"hub | {label} | {mode}"] = {"seconds": round(time.perf_counter() - started, 3)}
            bar.update(1)


def write_results(results: dict[str, Any], output_dir: Path) -> Path:
    """``{task}.json`` per task (scores, the models' fingerprints and settings, sizes, timings),
    ``results.json`` (everything) and ``results.md`` (the table)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, entry in results["tasks"].items():
        per_task = {
            "version": results["version"],
            **entry,
            "settings": results["settings"],
            "model_settings": {label: results["models"][label] for label in entry["models"]},
            "timings": {k: v for k, v in results["timings"].items() if isinstance(v, dict) and k.startswith(name)},
        }
        _write_json(output_dir / f"{_safe(name)}.json", per_task)
    _write_json(output_dir / "results.json", results)
    (output_dir / "results.md").write_text(markdown_report(results), encoding="utf-8")
    return output_dir


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _rounded(metrics: dict[str, float]) -> dict[str, float]:
    return {key: round(value, 6) for key, value in metrics.items()}


def _jsonable(data: Any) -> Any:
    return json.loads(json.dumps(data, default=str))
