"""The Markdown summary of an evaluation: one column per model (and document mode), a BM25 floor column for
offline tasks, and the paper's reference numbers beside the hub suites they exist for."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# DiffEmbed (Zhang et al., arXiv 2505.15045), absolute points: AR LLM + LLM2Vec vs DiffEmbed (Dream).
PAPER_REFERENCE: dict[str, tuple[str, float, float]] = {
    "longembed": ("LongEmbed (6-task mean)", 42.0, 62.0),
    "bright": ("BRIGHT (reasoning subset mean, nDCG@10)", 25.0, 33.0),
    "followir": ("FollowIR", 19.0, 21.0),
}


def _pct(value: float | None) -> str:
    return "—" if value is None or value != value else f"{100 * value:.1f}"


def _columns(results: dict[str, Any]) -> list[tuple[str, str]]:
    """(model label, mode) in first-seen order."""
    out: list[tuple[str, str]] = []
    for task in results["tasks"].values():
        for label, run in task["models"].items():
            for mode in run["modes"]:
                if (label, mode) not in out:
                    out.append((label, mode))
    return out


def _header(columns: Sequence[tuple[str, str]], several_modes: bool) -> str:
    return " | ".join(f"{label} [{mode}]" if several_modes else label for label, mode in columns)


def markdown_table(results: dict[str, Any]) -> str:
    """The summary table: rows are tasks (synthetic families also get a mean row), then hub suites."""
    columns = _columns(results)
    modes = {mode for _, mode in columns}
    several = len(modes) > 1
    has_offline = any(t.get("bm25") for t in results["tasks"].values())
    head = ["task", "metric", *([_header(columns, several)] if columns else [])]
    if has_offline:
        head.append("BM25")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * (len(columns) + 2 + int(has_offline))]

    families: dict[str, list[str]] = {}
    for name, task in results["tasks"].items():
        family = task.get("family")
        if family:
            families.setdefault(family, []).append(name)

    def row(label: str, metric: str, values: list[float | None], bm25: float | None) -> str:
        cells = [label, metric, *(_pct(v) for v in values)]
        if has_offline:
            cells.append(_pct(bm25))
        return "| " + " | ".join(cells) + " |"

    def value(task: dict[str, Any], label: str, mode: str) -> float | None:
        run = task["models"].get(label)
        if not run or mode not in run["modes"]:
            return None
        return run["modes"][mode]["metrics"]["main"]

    done: set[str] = set()
    for name, task in results["tasks"].items():
        if name in done:
            continue
        family = task.get("family")
        members = families.get(family, [name]) if family else [name]
        for member in members:
            t = results["tasks"][member]
            bm25 = t["bm25"]["main"] if t.get("bm25") else None
            lines.append(row(member, t["metric"], [value(t, lab, m) for lab, m in columns], bm25))
            done.add(member)
        if family and len(members) > 1:
            means: list[float | None] = []
            for lab, m in columns:
                found = [value(results["tasks"][x], lab, m) for x in members]
                vals = [v for v in found if v is not None]
                means.append(float(np.mean(vals)) if vals else None)
            bm = [results["tasks"][x]["bm25"]["main"] for x in members if results["tasks"][x].get("bm25")]
            metric = results["tasks"][members[0]]["metric"]
            lines.append(
                row(f"**{family} (mean of {len(members)})**", metric, means, float(np.mean(bm)) if bm else None)
            )

    suites = results.get("suites", {})
    reference_lines = []
    for suite, members in suites.items():
        means = []
        for lab, m in columns:
            found = [value(results["tasks"][x], lab, m) for x in members if x in results["tasks"]]
            vals = [v for v in found if v is not None]
            means.append(float(np.mean(vals)) if len(vals) == len(members) and vals else None)
        lines.append(row(f"**{suite} (mean of {len(members)})**", "main", means, None))
        if suite in PAPER_REFERENCE:
            title, ar, diff = PAPER_REFERENCE[suite]
            reference_lines.append(f"| {title} | {ar:.0f} | {diff:.0f} |")
    out = "\n".join(lines)
    if reference_lines:
        out += (
            "\n\nThe paper's numbers for the same suites (DiffEmbed, arXiv 2505.15045; 7B models, trained LoRA "
            "adapters, 4096-token truncation):\n\n| suite | AR LLM + LLM2Vec | DiffEmbed (Dream) |\n|---|---|---|\n"
            + "\n".join(reference_lines)
        )
    return out + "\n"


def markdown_report(results: dict[str, Any]) -> str:
    """The full Markdown file: settings, the table, and the models' fingerprints."""
    settings = results["settings"]
    lines = [
        "# diffemb evaluation",
        "",
        f"Scores ×100; main metric per task (nDCG@1 for the synthetic tasks, nDCG@10 otherwise). Document "
        f"modes: {', '.join(settings['modes'])}. Limit: {settings['limit']}; seed {settings['seed']}.",
        "",
        markdown_table(results),
        "| model | fingerprint | dimension | max length |",
        "|---|---|---|---|",
    ]
    for label, model in results["models"].items():
        lines.append(f"| {label} | `{model['fingerprint']}` | {model['dimension']} | {model['max_length']} |")
    return "\n".join(lines) + "\n"
