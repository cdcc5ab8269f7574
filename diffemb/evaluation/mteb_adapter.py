"""A `DiffEmbedEncoder` as an mteb 2.x model, the paper's per-task-family settings, and the hub suites.

``pip install "diffemb[eval]"`` (tested with mteb 2.26.24). mteb is imported only when one of these is used.

The settings follow the DiffEmbed recipe (Zhang et al., arXiv 2505.15045): queries get the family's
instruction, documents none; 4096 tokens per pass (304 query / 196 document tokens for FollowIR), capped by
what the model itself allows; documents longer than a pass are handled by the chosen document mode
(``mean`` by default; ``first`` is the paper's truncation, ``maxsim`` scores the best window).

The hub suites (``longembed``, ``bright``, ``followir``, ``mteb-eng-retrieval``) download their data from the
Hugging Face hub. :func:`require_hub` checks first, so an offline machine gets one line instead of a hang.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from diffemb.evaluation.scoring import MODES, Session, check_modes

MTEB_REQUIREMENT = "mteb==2.26.24"
_INSTALL_HINT = f'pip install "diffemb[eval]"  (tested with {MTEB_REQUIREMENT})'

LONGEMBED_INSTRUCTION = "Retrieve text based on user query:"
FOLLOWIR_INSTRUCTION = "Retrieve text based on user query:"
BRIGHT_INSTRUCTION = (
    "Given this reasoning-intensive query, find relevant documents that could help answer the question:"
)
# The E5-Mistral per-task query instructions (Wang et al. 2024, arXiv 2401.00368), which the paper uses for
# MTEB; tasks not listed fall back to the task's own mteb prompt, then to the LongEmbed instruction.
E5_INSTRUCTIONS: dict[str, str] = {
    "ArguAna": "Given a claim, find documents that refute the claim",
    "ClimateFEVER": "Given a claim about climate change, retrieve documents that support or refute the claim",
    "CQADupstackRetrieval": "Given a question, retrieve detailed question descriptions from Stackexchange that "
    "are duplicates to the given question",
    "DBPedia": "Given a query, retrieve relevant entity descriptions from DBPedia",
    "FEVER": "Given a claim, retrieve documents that support or refute the claim",
    "FiQA2018": "Given a financial question, retrieve user replies that best answer the question",
    "HotpotQA": "Given a multi-hop question, retrieve documents that can help answer the question",
    "MSMARCO": "Given a web search query, retrieve relevant passages that answer the query",
    "NFCorpus": "Given a question, retrieve relevant documents that best answer the question",
    "NQ": "Given a question, retrieve Wikipedia passages that answer the question",
    "QuoraRetrieval": "Given a question, retrieve questions that are semantically equivalent to the given question",
    "SCIDOCS": "Given a scientific paper title, retrieve paper abstracts that are cited by the given paper",
    "SciFact": "Given a scientific claim, retrieve documents that support or refute the claim",
    "Touche2020": "Given a question, retrieve detailed and persuasive arguments that answer the question",
    "TRECCOVID": "Given a query on COVID-19, retrieve documents that answer the query",
}

SUITES: dict[str, tuple[str, ...]] = {
    "longembed": (
        "LEMBNarrativeQARetrieval",
        "LEMBQMSumRetrieval",
        "LEMBWikimQARetrieval",
        "LEMBSummScreenFDRetrieval",
        "LEMBPasskeyRetrieval",
        "LEMBNeedleRetrieval",
    ),
    # The reasoning domains (math and code, what ReasonAug trains for) under mteb 2's names.
    "bright": (
        "BrightTheoremQAQuestionsRetrieval",
        "BrightTheoremQATheoremsRetrieval",
        "BrightAopsRetrieval",
        "BrightLeetcodeRetrieval",
    ),
    "bright-all": (
        "BrightBiologyRetrieval",
        "BrightEarthScienceRetrieval",
        "BrightEconomicsRetrieval",
        "BrightPsychologyRetrieval",
        "BrightRoboticsRetrieval",
        "BrightStackoverflowRetrieval",
        "BrightSustainableLivingRetrieval",
        "BrightLeetcodeRetrieval",
        "BrightPonyRetrieval",
        "BrightAopsRetrieval",
        "BrightTheoremQAQuestionsRetrieval",
        "BrightTheoremQATheoremsRetrieval",
    ),
    "followir": ("Core17InstructionRetrieval", "Robust04InstructionRetrieval", "News21InstructionRetrieval"),
    "mteb-eng-retrieval": tuple(E5_INSTRUCTIONS),
}


@dataclass(frozen=True)
class FamilySettings:
    """The paper's settings for one task family."""

    family: str
    query_instruction: str | None  # None: per task (E5 table / task prompt)
    query_max_length: int
    document_max_length: int


FAMILIES: dict[str, FamilySettings] = {
    "longembed": FamilySettings("longembed", LONGEMBED_INSTRUCTION, 4096, 4096),
    "bright": FamilySettings("bright", BRIGHT_INSTRUCTION, 4096, 4096),
    "followir": FamilySettings("followir", FOLLOWIR_INSTRUCTION, 304, 196),
    "mteb": FamilySettings("mteb", None, 4096, 4096),
}


def family_of(task_name: str) -> FamilySettings:
    if task_name.startswith("LEMB"):
        return FAMILIES["longembed"]
    if task_name.startswith("Bright"):
        return FAMILIES["bright"]
    if task_name.endswith("InstructionRetrieval"):
        return FAMILIES["followir"]
    return FAMILIES["mteb"]


def query_instruction(task_name: str, task_prompt: Any = None) -> str:
    """The query instruction the paper's recipe gives a task."""
    settings = family_of(task_name)
    if settings.query_instruction is not None:
        return settings.query_instruction
    if task_name in E5_INSTRUCTIONS:
        return E5_INSTRUCTIONS[task_name]
    if task_name.startswith("CQADupstack"):
        return E5_INSTRUCTIONS["CQADupstackRetrieval"]
    if isinstance(task_prompt, dict) and task_prompt.get("query"):
        return str(task_prompt["query"])
    if isinstance(task_prompt, str) and task_prompt:
        return task_prompt
    return LONGEMBED_INSTRUCTION


def expand_hub_tasks(names: Sequence[str]) -> list[str]:
    """Suite names replaced by their mteb task names, in order, without repeats."""
    out: list[str] = []
    for name in names:
        for task in SUITES.get(name, (name,)):
            if task not in out:
                out.append(task)
    return out


# -- the hub ---------------------------------------------------------------------------------------------------


class HubUnavailable(RuntimeError):
    """A hub-backed task was asked for where the Hugging Face hub cannot be reached."""


def _offline_flag() -> str | None:
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            return name
    return None


def hub_reachable(timeout: float = 3.0) -> tuple[bool, str]:
    """(reachable, why not): the offline switches, then one TCP connection to the hub, given ``timeout`` s
    in all (the name lookup included, so a dead resolver cannot hang the caller)."""
    flag = _offline_flag()
    if flag:
        return False, f"{flag} is set"
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = endpoint.split("://", 1)[-1].split("/", 1)[0]
    hostname, _, port = host.partition(":")
    outcome: list[str] = []

    def probe() -> None:
        try:
            with socket.create_connection((hostname, int(port or 443)), timeout=timeout):
                outcome.append("")
        except OSError as err:
            outcome.append(f"{hostname} is not reachable ({type(err).__name__}: {err})")

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        return False, f"{hostname} did not answer within {timeout:g} s"
    return outcome[0] == "", outcome[0]


def require_hub(tasks: Sequence[str], timeout: float = 3.0) -> None:
    ok, why = hub_reachable(timeout)
    if not ok:
        shown = ", ".join(tasks[:3]) + (f" and {len(tasks) - 3} more" if len(tasks) > 3 else "")
        raise HubUnavailable(
            f"{shown} need(s) data from the Hugging Face hub, which is unavailable here: {why}; "
            "run them where the hub is reachable, or use the offline tasks (local-passkey, local-needle, "
            "local-pydocs, local-manpages)"
        )


def import_mteb_auto() -> Any:
    """mteb, with the hub switched off first unless the hub answers (one probe per process)."""
    if "mteb" in sys.modules:
        return sys.modules["mteb"]
    return import_mteb(offline=not hub_reachable(2.0)[0])


def import_mteb(offline: bool = True) -> Any:
    """mteb, imported with the hub switched off when ``offline`` (so nothing in it waits on the network)."""
    if offline:
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
            os.environ.setdefault(name, "1")
    try:
        import mteb
    except ImportError as err:
        raise ImportError(f"the mteb integration needs mteb 2.x: {_INSTALL_HINT}") from err
    return mteb


# -- the model -------------------------------------------------------------------------------------------------


def _encoder_with_max_length(encoder: Any, max_length: int) -> Any:
    """The same loaded model under a different ``max_length`` (no copy of the weights)."""
    if max_length == encoder.profile.max_length:
        return encoder
    return encoder.with_settings(max_length=max_length)


def _abs_encoder_base() -> type:
    import_mteb_auto()
    from mteb.models.abs_encoder import AbsEncoder

    return AbsEncoder


def make_mteb_model(
    encoder: Any,
    *,
    mode: str = "mean",
    name: str | None = None,
    revision: str | None = None,
    max_length: int | None = None,
    instructions: dict[str, str] | None = None,
    show_progress: bool = False,
) -> Any:
    """A :class:`DiffEmbedMTEB` for ``encoder`` (built lazily so mteb is imported only here)."""
    cls = mteb_model_class()
    return cls(
        encoder,
        mode=mode,
        name=name,
        revision=revision,
        max_length=max_length,
        instructions=instructions,
        show_progress=show_progress,
    )


_CLASS: list[type] = []


def mteb_model_class() -> type:
    """The ``DiffEmbedMTEB`` class, a subclass of mteb's ``AbsEncoder`` (created on first use)."""
    if _CLASS:
        return _CLASS[0]
    base = _abs_encoder_base()
    from mteb.models import ModelMeta
    from mteb.types import PromptType

    class DiffEmbedMTEB(base):  # type: ignore[misc, valid-type]
        """A DiffEmbedEncoder as an mteb model: ``mteb.evaluate(DiffEmbedMTEB(encoder), tasks)``.

        Queries get the recipe's instruction for the task's family (``instructions`` maps task names to
        overrides), documents none. ``mode`` is a document mode of :mod:`diffemb.evaluation.scoring`; with
        ``maxsim`` documents are returned as their window vectors (NaN-padded) and ``similarity`` takes the
        best window. ``max_length`` caps every pass (default: the family's, capped by the model's own).
        """

        def __init__(
            self,
            encoder: Any,
            *,
            mode: str = "mean",
            name: str | None = None,
            revision: str | None = None,
            max_length: int | None = None,
            instructions: dict[str, str] | None = None,
            show_progress: bool = False,
        ) -> None:
            (self.mode,) = check_modes([mode])
            self.encoder = encoder
            self.max_length = max_length
            self.instructions = dict(instructions or {})
            self.show_progress = show_progress
            self._sessions: dict[int, Session] = {}
            self.calls: list[dict[str, Any]] = []
            model = str(encoder.settings.model)
            label = name or (model if "/" in model and not os.path.exists(model) else f"diffemb/{_basename(model)}")
            n_params = sum(p.numel() for p in encoder.model.parameters())
            self.mteb_model_meta = ModelMeta(
                loader=None,
                name=label,
                revision=revision or encoder.settings.revision or encoder.fingerprint,
                release_date=None,
                languages=None,
                n_parameters=int(n_params),
                memory_usage_mb=None,
                max_tokens=int(encoder.profile.max_length),
                embed_dim=int(encoder.dimension),
                license=None,
                open_weights=None,
                public_training_code=None,
                public_training_data=None,
                framework=["PyTorch"],
                similarity_fn_name=None,
                use_instructions=True,
                training_datasets=None,
                reference=None,
            )

        # The encoder's own limit caps the recipe's (a 256-token encoder cannot run 4096-token passes).
        def _session(self, max_length: int) -> Session:
            capped = min(max_length, int(self.encoder.profile.max_length))
            if capped not in self._sessions:
                encoder = _encoder_with_max_length(self.encoder, capped)
                self._sessions[capped] = Session(encoder, show_progress=self.show_progress)
            return self._sessions[capped]

        def settings_for(self, task_name: str, task_prompt: Any = None) -> dict[str, Any]:
            family = family_of(task_name)
            instruction = self.instructions.get(task_name) or query_instruction(task_name, task_prompt)
            query_len = self.max_length or family.query_max_length
            doc_len = self.max_length or family.document_max_length
            return {
                "family": family.family,
                "query_instruction": instruction,
                "query_max_length": min(query_len, int(self.encoder.profile.max_length)),
                "document_max_length": min(doc_len, int(self.encoder.profile.max_length)),
                "mode": self.mode,
            }

        def encode(
            self,
            inputs: Any,
            *,
            task_metadata: Any,
            hf_split: str,
            hf_subset: str,
            prompt_type: Any = None,
            **kwargs: Any,
        ) -> np.ndarray:
            texts = [text for batch in inputs for text in batch["text"]]
            settings = self.settings_for(task_metadata.name, getattr(task_metadata, "prompt", None))
            is_query = prompt_type == PromptType.query
            self.calls.append(
                {"task": task_metadata.name, "role": "query" if is_query else "document", "n": len(texts)}
            )
            if is_query:
                session = self._session(settings["query_max_length"])
                vectors, _ = session.queries(texts, settings["query_instruction"])
                session.cache.clear()
                return vectors[:, None, :] if self.mode == "maxsim" else vectors
            session = self._session(settings["document_max_length"])
            docs, _ = session.documents(texts, self.mode, "")  # documents: no instruction
            # Repeated windows are shared within one call; a corpus-sized cache would only cost memory.
            session.cache.clear()
            if self.mode == "maxsim":
                return _padded(docs, self.encoder.dimension)
            if self.mode == "norm-mean":
                return _norm_mean(docs)
            return np.asarray(docs, dtype=np.float32)

        def similarity(self, embeddings1: Any, embeddings2: Any) -> Any:
            import torch

            a = _as_numpy(embeddings1)
            b = _as_numpy(embeddings2)
            if a.ndim == 3 or b.ndim == 3:
                return torch.from_numpy(_maxsim(a, b))
            return torch.from_numpy(_cosine(a, b))

        def similarity_pairwise(self, embeddings1: Any, embeddings2: Any) -> Any:
            import torch

            a, b = _as_numpy(embeddings1), _as_numpy(embeddings2)
            if a.ndim == 3 or b.ndim == 3:
                return torch.from_numpy(np.array([_maxsim(x[None], y[None])[0, 0] for x, y in zip(a, b, strict=True)]))
            a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
            b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
            return torch.from_numpy((a * b).sum(axis=1))

    DiffEmbedMTEB.__module__ = __name__
    _CLASS.append(DiffEmbedMTEB)
    return DiffEmbedMTEB


def _basename(model: str) -> str:
    return os.path.basename(os.path.normpath(model)) or "model"


def _as_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T


def _padded(chunks: Any, dim: int) -> np.ndarray:
    """Window vectors of each document in one (n, K, dim) array, missing windows NaN."""
    width = max((len(c) for c in chunks), default=1)
    out = np.full((len(chunks), width, dim), np.nan, dtype=np.float32)
    for i, c in enumerate(chunks):
        out[i, : len(c)] = c.vectors
    return out


def _norm_mean(chunks: Any) -> np.ndarray:
    """Token-weighted mean of each document's unit window vectors, normalised."""
    means = []
    for c in chunks:
        w = np.asarray(c.token_counts, dtype=np.float64)
        m = (w[:, None] * c.vectors.astype(np.float64)).sum(0) / w.sum()
        means.append(m / max(np.linalg.norm(m), 1e-12))
    return np.asarray(means, dtype=np.float32)


def _maxsim(queries: np.ndarray, docs: np.ndarray) -> np.ndarray:
    """Best cosine between each query's vectors and each document's (NaN-padded) window vectors."""
    q = queries if queries.ndim == 3 else queries[:, None, :]
    d = docs if docs.ndim == 3 else docs[:, None, :]
    qn = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
    dn = d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-12)
    sims = np.einsum("qad,nbd->qnab", np.nan_to_num(qn, nan=0.0), np.nan_to_num(dn, nan=0.0))
    valid = ~np.isnan(d).any(axis=-1)  # (n, b)
    sims = np.where(valid[None, :, None, :], sims, -np.inf)
    return sims.max(axis=(2, 3))


# -- running ---------------------------------------------------------------------------------------------------


def as_mteb_task(task: Any, name: str | None = None) -> Any:
    """A :class:`diffemb.tasks.RetrievalTask` as an in-memory mteb retrieval task (no download, no disk).

    Its main score is the task's metric (``ndcg_at_1`` or ``ndcg_at_10``); documents have no title.
    """
    import_mteb_auto()
    from datasets import Dataset
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
    from mteb.abstasks.task_metadata import TaskMetadata

    label = name or "".join(part.capitalize() for part in task.name.replace("-", " ").split()) + "Retrieval"
    main_score = task.metric.replace("@", "_at_")
    metadata = TaskMetadata(
        type="Retrieval",
        name=label,
        main_score=main_score,
        description=f"diffemb offline task {task.name}, held in memory.",
        reference="https://github.com/embeddings-benchmark/mteb",
        dataset={"path": f"diffemb/{task.name}", "revision": "local"},
        category="t2t",
        eval_splits=["test"],
        eval_langs=["eng-Latn"],
        date=("2025-01-01", "2025-01-01"),
        dialect=["Written"],
        domains=[],
        task_subtypes=[],
        license="not specified",
        annotations_creators="derived",
        modalities=["text"],
        sample_creation="found",
        bibtex_citation="",
    )

    def load_data(self: Any, num_proc: int | None = None, **kwargs: Any) -> None:
        split = RetrievalSplitData(
            queries=Dataset.from_list([{"id": qid, "text": text} for qid, text in task.queries.items()]),
            corpus=Dataset.from_list([{"id": did, "text": text} for did, text in task.corpus.items()]),
            relevant_docs={qid: dict(rels) for qid, rels in task.qrels.items()},
            top_ranked=None,
        )
        self.dataset = {"default": {"test": split}}
        self.data_loaded = True

    cls = type(label, (AbsTaskRetrieval,), {"metadata": metadata, "load_data": load_data, "__module__": __name__})
    return cls()


def run_mteb(model: Any, tasks: Sequence[Any], *, show_progress: bool = False) -> dict[str, dict[str, Any]]:
    """Run mteb's own evaluation of ``model`` on task objects; per task its main score and every split's
    scores. No result cache (a rerun recomputes) and no CO2 tracking."""
    mteb = import_mteb_auto()
    result = mteb.evaluate(
        model,
        list(tasks),
        cache=None,
        co2_tracker=False,
        show_progress_bar=show_progress,
        raise_error=True,
    )
    out: dict[str, dict[str, Any]] = {}
    for task_result in result.task_results:
        out[task_result.task_name] = {
            "main_score": float(task_result.get_score()),
            "scores": task_result.scores,
        }
    return out


def load_hub_tasks(names: Sequence[str], *, timeout: float = 3.0) -> list[Any]:
    """mteb task objects for task or suite names; fails fast with :class:`HubUnavailable` when offline."""
    expanded = expand_hub_tasks(names)
    require_hub(expanded, timeout)
    mteb = import_mteb(offline=False)
    return list(mteb.get_tasks(tasks=expanded))


__all__ = [
    "E5_INSTRUCTIONS",
    "FAMILIES",
    "MODES",
    "SUITES",
    "FamilySettings",
    "HubUnavailable",
    "as_mteb_task",
    "expand_hub_tasks",
    "family_of",
    "hub_reachable",
    "import_mteb",
    "load_hub_tasks",
    "make_mteb_model",
    "mteb_model_class",
    "query_instruction",
    "require_hub",
    "run_mteb",
]
