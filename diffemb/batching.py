"""Length-sorted batches under a token budget, and the out-of-memory backoff that shrinks the budget.

The budget counts padded tokens: rows × longest row ≤ `budget`. Sorting rows by length first keeps the padding
(and so the wasted compute) small; the caller restores the original order from the row indices.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, wait_none

from diffemb.device import is_out_of_memory

logger = logging.getLogger(__name__)

Result = TypeVar("Result")


# A batch that already holds a quarter of the budget is closed when the next row is this much narrower than its
# widest row: many short rows (queries) then split into near-equal-width batches instead of one batch padded to
# the longest, while a batch is never so small that the matmuls starve.
WIDTH_TOLERANCE = 0.1
MIN_FILL = 0.25


def plan_batches(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Row indices grouped into batches, longest rows first, each batch within `budget` padded tokens.

    A row longer than the budget still gets a batch of its own: the budget bounds batch width, never drops a row.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        widest = lengths[current[0]] if current else lengths[index]
        over_budget = (len(current) + 1) * widest > budget
        filled = len(current) * widest >= MIN_FILL * budget
        narrower = lengths[index] < (1 - WIDTH_TOLERANCE) * widest
        if current and (over_budget or (filled and narrower)):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def padding_waste(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Padded tokens divided by real tokens for a batch plan (0.0 means no padding at all)."""
    real = sum(lengths)
    padded = sum(len(batch) * max(lengths[i] for i in batch) for batch in batches)
    return (padded - real) / real if real else 0.0


class OutOfMemoryAtMinimum(RuntimeError):
    """A single row does not fit in memory even alone."""


@dataclass
class BudgetedRunner(Generic[Result]):
    """Runs rows through `forward` in token-budgeted batches, halving the budget whenever memory runs out.

    `forward(rows)` receives row indices (longest first) and returns one result per row. After an OOM the
    memory is freed (`on_oom`), the budget halved, and the failing batch re-planned and retried; rows already
    done are kept. The smaller budget stays for the rest of the runner's life, so one call learns it once.
    """

    forward: Callable[[list[int]], list[Result]]
    budget: int
    on_oom: Callable[[], None] = lambda: None

    def run(self, lengths: Sequence[int]) -> Iterator[tuple[list[int], list[Result]]]:
        """Yields (row indices, results) per batch, in length-sorted order."""
        for batch in plan_batches(lengths, self.budget):
            yield from self.run_batch(batch, lengths)

    def run_batch(self, batch: list[int], lengths: Sequence[int]) -> Iterator[tuple[list[int], list[Result]]]:
        """One planned batch, re-planned into smaller ones under a halved budget whenever memory runs out."""
        done: list[tuple[list[int], list[Result]]] = []
        finished: set[int] = set()
        widest = max(lengths[i] for i in batch)

        def give_up(state: RetryCallState) -> bool:
            return self.budget <= widest

        def shrink(state: RetryCallState) -> None:
            self.on_oom()
            self.budget = max(self.budget // 2, widest)
            logger.warning("out of memory: token budget lowered to %d and the batch retried", self.budget)

        def attempt() -> None:
            remaining = [i for i in batch if i not in finished]
            sub_lengths = [lengths[i] for i in remaining]
            for sub in plan_batches(sub_lengths, self.budget):
                rows = [remaining[j] for j in sub]
                results = self.forward(rows)
                done.append((rows, results))
                finished.update(rows)

        retrying = Retrying(
            retry=retry_if_exception(is_out_of_memory),
            stop=give_up,
            wait=wait_none(),
            before_sleep=shrink,
            reraise=True,
        )
        try:
            retrying(attempt)
        except Exception as error:
            if is_out_of_memory(error):
                raise OutOfMemoryAtMinimum(
                    f"out of memory on a single text of {widest} tokens at the smallest token budget: "
                    "lower max_length (long documents are then split into more windows), use a smaller dtype, "
                    "or move to a device with more memory"
                ) from error
            raise
        yield from done
