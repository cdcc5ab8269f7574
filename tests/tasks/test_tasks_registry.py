"""The task registry and load_task."""

from __future__ import annotations

import pytest

from diffemb.tasks import TASKS, load_task


def test_registry_names() -> None:
    assert set(TASKS) == {"local-passkey", "local-needle", "local-pydocs", "local-manpages"}


def test_load_task_returns_lists_and_round_trips_names() -> None:
    [task] = load_task("local-passkey", lengths=[256], n_docs=10, n_queries=5)
    assert task.name == "local-passkey-256"
    assert load_task(task.name, n_docs=10, n_queries=5) == [task]
    [needle] = load_task("local-needle-paraphrase-256", n_docs=10, n_queries=5)
    assert needle.meta["kind"] == "paraphrase" and needle.meta["length"] == 256
    [pydocs] = load_task("local-pydocs", limit=5)
    assert len(pydocs.queries) == 5


def test_unknown_task_raises() -> None:
    with pytest.raises(KeyError, match="local-passkey"):
        load_task("local-nonsense")
