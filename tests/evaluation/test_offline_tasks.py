"""Offline tasks resolved by diffemb.evaluation: documented sizes, and MiniLM in a sane band per mode."""

from __future__ import annotations

import numpy as np
import pytest

from diffemb.evaluation import Session
from diffemb.evaluation.offline import bm25_metrics, build_offline_tasks, run_task
from diffemb.tasks import RetrievalTask

pytestmark = pytest.mark.filterwarnings("ignore:.*longer than the model window:UserWarning")


def test_synthetic_tasks_build_with_their_documented_sizes(minilm_encoder):
    count = minilm_encoder.count_tokens
    passkey = build_offline_tasks("local-passkey", count_tokens=count, lengths=[256, 1024], limit=8)
    assert [t.name for t in passkey] == ["local-passkey-256", "local-passkey-1024"]
    for task, length in zip(passkey, [256, 1024], strict=True):
        assert (len(task.queries), len(task.corpus), task.metric) == (8, 8, "ndcg@1")
        tokens = np.array(list(task.meta["doc_tokens"].values()))
        # Lengths are MiniLM tokens, within the builders' tolerance (half a filler sentence).
        assert np.all(np.abs(tokens - length) <= 8), tokens
    needle = build_offline_tasks("local-needle", lengths=[256], limit=6)
    assert [t.name for t in needle] == ["local-needle-name-number-256", "local-needle-paraphrase-256"]
    # The default size is LongEmbed's: 50 queries over 100 documents per length.
    (full,) = build_offline_tasks("local-passkey-256")
    assert (len(full.queries), len(full.corpus)) == (50, 100)


def test_real_corpora_build_with_their_documented_sizes():
    (pydocs,) = build_offline_tasks("local-pydocs")
    assert len(pydocs.corpus) == len(pydocs.queries) > 200  # 255 pairs on Debian 12
    assert pydocs.metric == "ndcg@10"
    (manpages,) = build_offline_tasks("local-manpages")
    assert len(manpages.corpus) == len(manpages.queries) == 1000  # a seeded 1,000 of 1,010
    (small,) = build_offline_tasks("local-manpages", limit=25, seed=3)
    assert len(small.corpus) == 25
    assert build_offline_tasks("local-manpages", limit=25, seed=3)[0].corpus == small.corpus


def test_passkey_past_the_window_first_is_blind_maxsim_is_not(minilm_encoder):
    (task,) = build_offline_tasks("local-passkey-1024", count_tokens=minilm_encoder.count_tokens, limit=12)
    session = Session(minilm_encoder)
    run = run_task(session, task, ["first", "maxsim"])
    first = run.modes["first"].metrics["ndcg@1"]
    maxsim = run.modes["maxsim"].metrics["ndcg@1"]
    # `first` sees 254 of 1024 tokens: it can only find keys placed in that window, plus luck (1 in 12).
    window, _ = session.window("first")
    doc_of = {qid: next(iter(rels)) for qid, rels in task.qrels.items()}
    visible = np.mean([task.meta["depth"][doc_of[q]] * task.meta["doc_tokens"][doc_of[q]] < window for q in doc_of])
    assert first <= visible + 1 / len(task.corpus) + 0.1
    assert first <= 0.4
    assert maxsim >= 0.75 and maxsim >= first + 0.4
    assert run.modes["first"].cost.truncated == len(task.corpus)


def _shortest(task: RetrievalTask, n: int) -> RetrievalTask:
    """The ``n`` pairs with the shortest documents (by characters), same ids, in the task's order."""
    keep = sorted(task.corpus, key=lambda did: (len(task.corpus[did]), did))[:n]
    keep = [did for did in task.corpus if did in set(keep)]  # back in file order
    queries = {qid: task.queries[qid] for qid, rels in task.qrels.items() if next(iter(rels)) in keep}
    return RetrievalTask(
        name=task.name,
        queries=queries,
        corpus={did: task.corpus[did] for did in keep},
        qrels={qid: task.qrels[qid] for qid in queries},
        metric=task.metric,
    )


def test_minilm_with_chunking_beats_bm25_on_pydocs(minilm_encoder):
    """The 20 shortest library pages (two 254-token windows each on average): a CPU-sized subset, measured at
    10-20 s on a busy two-core machine, where the full 255 pages (about 6,400 windows) take about an hour."""
    (task,) = build_offline_tasks("local-pydocs")
    subset = _shortest(task, 20)
    session = Session(minilm_encoder)
    run = run_task(session, subset, ["mean", "maxsim"])
    floor = bm25_metrics(subset)["ndcg@10"]
    for mode in ("mean", "maxsim"):
        assert run.modes[mode].metrics["ndcg@10"] > floor, (mode, run.modes[mode].metrics, floor)
    assert run.modes["mean"].cost.rows >= 2 * len(subset.corpus)  # chunked, not truncated
