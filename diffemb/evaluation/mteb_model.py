"""A `DiffEmbedEncoder` as an mteb 2.x model (``pip install "diffemb[eval]"``; mteb is imported on first use).

Queries get the task's instruction under the model's own policy (see
:func:`diffemb.evaluation.mteb_suites.model_query_instruction`; ``instructions`` overrides it per task, ``""``
meaning none), documents none. Long documents are handled by the chosen document mode of
:mod:`diffemb.evaluation.scoring` (``mean`` by default; ``first`` is the paper's truncation, ``maxsim`` scores
the best window). Similarities come from :mod:`diffemb.similarity`, as everywhere else in diffemb.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from diffemb.evaluation.mteb_suites import family_of, import_mteb_auto, model_query_instruction
from diffemb.evaluation.scoring import Session, check_modes, token_weighted_means
from diffemb.similarity import cosine_scores, maxsim_scores, unit_rows


def make_mteb_model(encoder: Any, **options: Any) -> Any:
    """A ``DiffEmbedMTEB`` for ``encoder`` (the class is built lazily, so mteb is imported only here); the options
    are the class's: ``mode``, ``name``, ``revision``, ``max_length``, ``instructions``, ``show_progress``."""
    return mteb_model_class()(encoder, **options)


_CLASS: list[type] = []


def mteb_model_class() -> type:
    """The ``DiffEmbedMTEB`` class, a subclass of mteb's ``AbsEncoder`` (created on first use)."""
    if _CLASS:
        return _CLASS[0]
    import_mteb_auto()
    from mteb.models import ModelMeta
    from mteb.models.abs_encoder import AbsEncoder
    from mteb.types import PromptType

    class DiffEmbedMTEB(AbsEncoder):  # type: ignore[misc]
        """A DiffEmbedEncoder as an mteb model: ``mteb.evaluate(DiffEmbedMTEB(encoder), tasks)``.

        ``instructions`` maps task names to query instructions (``""``: none; a task not listed, or given
        ``None``, follows the model's own policy). ``mode`` is a document mode of
        :mod:`diffemb.evaluation.scoring`; with ``maxsim`` documents are returned as their window vectors
        (NaN-padded) and ``similarity`` takes the best window. ``max_length`` caps every pass (default: the
        family's, capped by the model's own).
        """

        def __init__(
            self,
            encoder: Any,
            *,
            mode: str = "mean",
            name: str | None = None,
            revision: str | None = None,
            max_length: int | None = None,
            instructions: dict[str, str | None] | None = None,
            show_progress: bool = False,
        ) -> None:
            (self.mode,) = check_modes([mode])
            self.encoder = encoder
            self.max_length = max_length
            self.instructions = dict(instructions or {})
            for task, value in self.instructions.items():
                if value is not None and not isinstance(value, str):
                    raise TypeError(f"instructions[{task!r}] must be a string ('' for none) or None, got {value!r}")
            self.show_progress = show_progress
            self.sessions: dict[int, Session] = {}
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

        def session(self, max_length: int) -> Session:
            """The scoring session for passes of ``max_length`` tokens: a view of the same loaded weights."""
            # The encoder's own limit caps the recipe's (a 256-token encoder cannot run 4096-token passes).
            capped = min(max_length, int(self.encoder.profile.max_length))
            if capped not in self.sessions:
                encoder = self.encoder
                if capped != encoder.profile.max_length:
                    encoder = encoder.with_settings(max_length=capped)
                self.sessions[capped] = Session(encoder, show_progress=self.show_progress)
            return self.sessions[capped]

        def settings_for(self, task_name: str, task_prompt: Any = None) -> dict[str, Any]:
            family = family_of(task_name)
            given = self.instructions.get(task_name)
            instruction = model_query_instruction(self.encoder, task_name, task_prompt) if given is None else given
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
                session = self.session(settings["query_max_length"])
                vectors, _ = session.queries(texts, settings["query_instruction"])
                session.cache.clear()
                return vectors[:, None, :] if self.mode == "maxsim" else vectors
            session = self.session(settings["document_max_length"])
            docs, _ = session.documents(texts, self.mode, "")  # documents: no instruction
            # Repeated windows are shared within one call; a corpus-sized cache would only cost memory.
            session.cache.clear()
            if self.mode == "maxsim":
                return _padded(docs, self.encoder.dimension)
            if self.mode == "norm-mean":
                return unit_rows(token_weighted_means(docs)).astype(np.float32)  # type: ignore[arg-type]
            return np.asarray(docs, dtype=np.float32)

        def similarity(self, embeddings1: Any, embeddings2: Any) -> Any:
            import torch

            return torch.from_numpy(similarity_matrix(_as_numpy(embeddings1), _as_numpy(embeddings2)))

        def similarity_pairwise(self, embeddings1: Any, embeddings2: Any) -> Any:
            import torch

            a, b = _as_numpy(embeddings1), _as_numpy(embeddings2)
            if a.ndim == 2 and b.ndim == 2:
                return torch.from_numpy((unit_rows(a) * unit_rows(b)).sum(axis=1))
            pairs = [similarity_matrix(x[None], y[None])[0, 0] for x, y in zip(a, b, strict=True)]
            return torch.from_numpy(np.asarray(pairs, dtype=np.float64))

    DiffEmbedMTEB.__module__ = __name__
    _CLASS.append(DiffEmbedMTEB)
    return DiffEmbedMTEB


def similarity_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Scores of mteb's embeddings: cosine for (n, dim) arrays, max-sim when either side is (n, K, dim) window
    vectors, NaN-padded (a query with several vectors scores as its best one)."""
    if a.ndim == 2 and b.ndim == 2:
        return cosine_scores(a, b)
    queries = a if a.ndim == 3 else a[:, None, :]
    windows = _unpadded(b if b.ndim == 3 else b[:, None, :])
    best = np.full((len(queries), len(windows)), -np.inf)
    for slot in range(queries.shape[1]):
        present = ~np.isnan(queries[:, slot]).any(axis=-1)
        if present.any():
            scores, _ = maxsim_scores(queries[present, slot], windows)
            best[present] = np.maximum(best[present], scores)
    return best


def _unpadded(padded: np.ndarray) -> list[np.ndarray]:
    """Each document's window vectors without the NaN rows that pad it to the widest document."""
    return [document[~np.isnan(document).any(axis=-1)] for document in padded]


def _basename(model: str) -> str:
    return os.path.basename(os.path.normpath(model)) or "model"


def _as_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _padded(chunks: Any, dim: int) -> np.ndarray:
    """Window vectors of each document in one (n, K, dim) array, missing windows NaN."""
    width = max((len(c) for c in chunks), default=1)
    out = np.full((len(chunks), width, dim), np.nan, dtype=np.float32)
    for i, c in enumerate(chunks):
        out[i, : len(c)] = c.vectors
    return out
