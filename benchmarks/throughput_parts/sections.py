"""The report's sections on diffemb alone: the batch_tokens sweep (with the default budget judged against the
best), tokenisation vs forward, and torch threads."""

from __future__ import annotations

from .runners import ModelResult
from .timing import Timing

NEAR_BEST = 0.10
"""The default budget is "near the best" when its rate is within this fraction of the sweep's best."""


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def fmt_mem(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def subset_note(result: ModelResult, kinds: tuple[str, ...] | None = None) -> str:
    """What the sweep, split and threads parts ran on, true in `--quick` (whole corpora) and full (half) mode."""
    counts = {
        kind: (len(sub.texts), len(result.corpora[kind].texts))
        for kind, sub in result.subsets.items()
        if kinds is None or kind in kinds
    }
    one = len(counts) == 1
    if all(n == total for n, total in counts.values()):
        return f"the whole main {next(iter(counts))} corpus" if one else "each main corpus, whole"
    listed = ", ".join(f"{kind} {n} of {total}" for kind, (n, total) in counts.items())
    return f"the first half of {'the' if one else 'each'} main corpus, at least 3 texts ({listed} texts)"


def subsets_note(results: list[ModelResult], kinds: tuple[str, ...] | None = None) -> str:
    notes = {r.spec.name: subset_note(r, kinds) for r in results}
    if len(set(notes.values())) == 1:
        return next(iter(notes.values()))
    return "; ".join(f"{name}: {note}" for name, note in notes.items())


def best_budget(timings: dict[int, Timing], cpu: bool) -> int:
    return max(timings, key=lambda b: timings[b].rate(cpu=cpu))


def default_verdict(kind: str, timings: dict[int, Timing], default: int) -> str:
    """One line: the sweep's best budget for a corpus, and whether the default is within `NEAR_BEST` of it."""
    if default not in timings:
        return f"- {kind}: the default {default} was not swept."
    best = best_budget(timings, cpu=False)
    share = timings[default].rate() / timings[best].rate()
    best_cpu = best_budget(timings, cpu=True)
    share_cpu = timings[default].rate(cpu=True) / timings[best_cpu].rate(cpu=True)
    on_cpu = f"On CPU time: best {best_cpu}, default at {share_cpu:.2f}."
    if best == default:
        return f"- {kind}: the default {default} is the best ({fmt_rate(timings[best].rate())} tok/s wall). {on_cpu}"
    judged = (
        f"within {NEAR_BEST:.0%} of the best"
        if share >= 1 - NEAR_BEST
        else f"**more than {NEAR_BEST:.0%} below the best** ({1 - share:.0%} slower)"
    )
    return (
        f"- {kind}: best {best} ({fmt_rate(timings[best].rate())} tok/s wall); the default {default} reaches "
        f"{share:.2f} of it: {judged}. {on_cpu}"
    )


def sweep_section(result: ModelResult) -> list[str]:
    if not result.sweep:
        return []
    default = result.default_budget
    budgets = sorted(next(iter(result.sweep.values())))
    kinds = list(result.sweep)
    reps = len(next(iter(next(iter(result.sweep.values())).values())).seconds)
    runs = f"{reps} timed runs (median)" if reps > 1 else "1 timed run"

    def label(budget: int) -> str:
        return f"**{budget} (default)**" if budget == default else str(budget)

    def rel(timings: dict[int, Timing], budget: int, cpu: bool) -> str:
        ref = timings.get(default)
        value = timings[budget].rate(cpu=cpu)
        return fmt_rate(value) + (f" ({value / ref.rate(cpu=cpu):.2f})" if ref else "")

    lines = [
        f"## batch_tokens sweep: {result.spec.name} (diffemb, {result.spec.device})",
        "",
        f"The default is **{default}**: the budget the encoder picks on this device and model when `batch_tokens` "
        "is not given (`diffemb.device.default_batch_tokens`, read back from the loaded encoder). Corpus tok/s on "
        "wall clock, in brackets relative to the default; padding waste; peak MiB (fresh process). Corpora: "
        f"{subset_note(result)}. {runs} per budget, budgets in rotating order. tok/CPU-s in the second "
        "table.",
        "",
        "| batch_tokens | " + " | ".join(f"{k} tok/s (wall)" for k in kinds) + " | "
        + " | ".join(f"{k} waste" for k in kinds) + " | " + " | ".join(f"{k} peak MiB" for k in kinds) + " |",
        "|---:|" + "---:|" * (3 * len(kinds)),
    ]  # fmt: skip
    for budget in budgets:
        cells = [rel(timings, budget, cpu=False) for timings in result.sweep.values()]
        cells += [f"{timings[budget].counts.waste:.1%}" for timings in result.sweep.values()]
        cells += [fmt_mem(result.sweep_memory.get(k, {}).get(budget)) for k in kinds]
        lines.append(f"| {label(budget)} | " + " | ".join(cells) + " |")
    lines += ["", "| batch_tokens | " + " | ".join(f"{k} tok/CPU-s" for k in kinds) + " |",
              "|---:|" + "---:|" * len(kinds)]  # fmt: skip
    for budget in budgets:
        cells = [rel(timings, budget, cpu=True) for timings in result.sweep.values()]
        lines.append(f"| {label(budget)} | " + " | ".join(cells) + " |")
    lines += ["", f"Default vs the sweep's best (wall clock; within {NEAR_BEST:.0%} counts as near the best):"]
    lines += [default_verdict(kind, timings, default) for kind, timings in result.sweep.items()]
    return [*lines, ""]


def split_section(results: list[ModelResult]) -> list[str]:
    rows = [(r.spec.name, s) for r in results for s in r.split]
    if not rows:
        return []
    lines = [
        "## Tokenisation vs forward, and `encode_documents_iter`",
        "",
        "Wall seconds, median. plan = tokenise and cut windows (`encoder.plan`); forward = batches through the model "
        "and pooling (`encoder.run`); encode = `encode_documents`; iter = `list(encode_documents_iter(texts))` with "
        "the default group_size 1024 (one group here, so nothing overlaps); iter/N = group_size N: the next group is "
        "tokenised in the worker thread while the current one runs, but each group is sorted on its own (padding "
        f"waste, last column). Corpora: {subsets_note([r for r in results if r.split], ('passages', 'long'))}.",
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
        "## torch threads (diffemb, passages)",
        "",
        f"Corpus: {subsets_note(rows, ('passages',))}. Corpus tok/s, median over repetitions.",
        "",
        "| model | texts | threads | tok/s (wall) | tok/CPU-s |",
        "|---|---:|---:|---:|---:|",
    ]
    for result in rows:
        texts = len(result.subsets["passages"].texts)
        for n, timing in result.threads.items():
            rates = f"{fmt_rate(timing.rate())} | {fmt_rate(timing.rate(cpu=True))}"
            lines.append(f"| {result.spec.name} | {texts} | {n} | {rates} |")
    return [*lines, ""]
