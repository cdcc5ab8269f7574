"""The backbone as a sentence-transformers module that embeds exactly as `DiffEmbedEncoder` does.

`DiffEmbedModule` wraps a loaded `DiffEmbedEncoder`'s backbone: `preprocess` frames and tokenises texts with the
encoder's own `TextTokenizer` (template, instruction, the instruction's white space glued to the body) and cuts
rows with `diffemb.rows.plan_rows`; `forward` pads as `diffemb.forward.BatchForward` does (right padding,
attention mask, position ids that count real tokens) and pools with `diffemb.pooling.pool` in fp32. So a text
that fits in the model's window gets the same vector here as from `encode_queries` / `encode_documents`, and a
LoRA trained through this module reproduces its training-time encoding once merged by the encoder.

Only texts longer than the window differ, by design: training truncates them (as the paper does), where the
encoder splits documents into windows.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from diffemb.extras import require

require("sentence_transformers", "train", "DiffEmbedModule (training)")

from sentence_transformers.base.modules.input_module import InputModule  # noqa: E402
from sentence_transformers.sentence_transformer.data_collator import SentenceTransformerDataCollator  # noqa: E402

from diffemb.chunking import ChunkingConfig  # noqa: E402
from diffemb.encoder import DiffEmbedEncoder  # noqa: E402
from diffemb.forward import pad_rows  # noqa: E402
from diffemb.pooling import pool  # noqa: E402
from diffemb.rows import plan_rows  # noqa: E402
from diffemb.training.data import INSTRUCTION_COLUMN  # noqa: E402
from diffemb.training.output import save_adapter  # noqa: E402

logger = logging.getLogger(__name__)

_QUERY_TASKS = ("query",)
_ROLES = ("query", "document")
# Truncation, not windows: one row per text, cut to the role's max length.
_TRUNCATE = ChunkingConfig(aggregation="first")


class DiffEmbedModule(InputModule):
    """A trainable sentence-transformers input module over a `DiffEmbedEncoder`'s backbone.

    Use it as the only module of a `SentenceTransformer`; its output's `sentence_embedding` is the pooled
    (and, where the profile says so, L2-normalised) fp32 vector.
    """

    config_keys: list[str] = ["max_query_length", "max_document_length"]  # noqa: RUF012
    save_in_root = True

    def __init__(
        self,
        encoder: DiffEmbedEncoder,
        max_query_length: int | None = None,
        max_document_length: int | None = None,
        model: torch.nn.Module | None = None,
    ) -> None:
        """`model` is the network to run, by default the encoder's backbone; pass the `PeftModel` that wraps
        the backbone to train (and save) a LoRA adapter."""
        super().__init__()
        profile = encoder.profile
        self.encoder = encoder
        self.model = model if model is not None else encoder.backbone.model
        self.tokenizer = encoder.backbone.tokenizer
        self.text = encoder.text
        self.profile = profile
        self.max_query_length = min(max_query_length or profile.max_length, profile.max_length)
        self.max_document_length = min(max_document_length or profile.max_length, profile.max_length)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        self.pad_token_id = int(pad or 0)
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model  # type: ignore[operator]
        accepted = inspect.signature(base.forward).parameters
        self._extra: dict[str, Any] = {"use_cache": False} if "use_cache" in accepted else {}
        self._takes_positions = encoder.backbone.explicit_positions and "position_ids" in accepted
        self.truncated = 0
        """Texts cut to their role's max length so far (logged once, counted always)."""
        self.training_info: dict[str, Any] = {}
        """What `save` writes to `diffemb.json` beside the adapter (filled in by `diffemb.training.train`)."""

    # -- texts to features ---------------------------------------------------------------------------------

    def preprocess(  # type: ignore[override]
        self,
        inputs: Sequence[str],
        prompt: str | None = None,
        task: str | None = None,
        role: str | None = None,
        instructions: Sequence[str | None] | None = None,
        **kwargs: Any,
    ) -> dict[str, torch.Tensor]:
        """Token ids, masks, positions and pooling ranges for `inputs`, framed as `DiffEmbedEncoder` frames them.

        The role is `role`, else "query" when sentence-transformers passes `task="query"`, else "document".
        Each text's instruction is `instructions[i]` when given and not None, else `prompt` when not None
        (sentence-transformers' prompts are diffemb instructions), else the profile's instruction for the role.
        """
        texts = list(inputs)
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"item {index} is {type(text).__name__}, expected str")
        role = role or ("query" if task in _QUERY_TASKS else "document")
        if role not in _ROLES:
            raise ValueError(f"role must be 'query' or 'document', got {role!r}")
        default = self.profile.query_instruction if role == "query" else self.profile.document_instruction
        fallback = prompt if prompt is not None else default
        given = list(instructions) if instructions else [None] * len(texts)
        if len(given) != len(texts):
            raise ValueError(f"{len(given)} instructions for {len(texts)} texts")
        per_text = [fallback if value is None else value for value in given]
        max_length = self.max_query_length if role == "query" else self.max_document_length
        rows: list[tuple[list[int], int, int]] = [([], 0, 0)] * len(texts)
        for instruction in dict.fromkeys(per_text):
            indices = [i for i, value in enumerate(per_text) if value == instruction]
            frame = self.text.frame(instruction)
            tokenized = self.text.tokenize([texts[i] for i in indices], frame.lead)
            plan = plan_rows(tokenized, frame, max_length, _TRUNCATE, self.profile.exclude_instruction)
            self._count_truncated(plan.truncated, role, max_length - frame.overhead)
            for index, row in zip(indices, plan.rows, strict=True):
                ((start, end),) = row.segments
                rows[index] = (row.ids, start, end)
        return self._pad(rows)

    def _pad(self, rows: Sequence[tuple[list[int], int, int]]) -> dict[str, torch.Tensor]:
        """Right-padded tensors, as `diffemb.forward.BatchForward` builds them."""
        ids, mask, positions, _ = pad_rows([row for row, _, _ in rows], self.pad_token_id)
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "position_ids": positions,
            "pool_start": torch.tensor([start for _, start, _ in rows], dtype=torch.long),  # (B,)
            "pool_end": torch.tensor([end for _, _, end in rows], dtype=torch.long),  # (B,)
        }

    def _count_truncated(self, count: int, role: str, capacity: int) -> None:
        if count and not self.truncated:
            logger.warning(
                "training truncates %ss longer than %d text tokens (this batch: %d); the count so far is kept in "
                "DiffEmbedModule.truncated", role, capacity, count,
            )  # fmt: skip
        self.truncated += count

    # -- forward -------------------------------------------------------------------------------------------

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        inputs: dict[str, Any] = {
            "input_ids": features["input_ids"],
            "attention_mask": features["attention_mask"],
            **self._extra,
        }
        if self._takes_positions:
            inputs["position_ids"] = features["position_ids"]
        hidden = self.model(**inputs).last_hidden_state  # (B, T, D)
        starts = features["pool_start"].tolist()
        ends = features["pool_end"].tolist()
        segments = [[(s, e)] for s, e in zip(starts, ends, strict=True)]
        pooled = pool(hidden, segments, [0] * len(segments), self.profile.pooling)  # (B, D) fp32
        if self.profile.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=-1)
        features["token_embeddings"] = hidden
        features["sentence_embedding"] = pooled
        return features

    def get_embedding_dimension(self) -> int:
        return self.encoder.dimension

    def get_max_seq_length(self) -> int:
        return max(self.max_query_length, self.max_document_length)

    @property
    def max_seq_length(self) -> int:
        return self.get_max_seq_length()

    # -- saving --------------------------------------------------------------------------------------------

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        """The LoRA adapter (PEFT files) and `diffemb.json`: what `DiffEmbedEncoder.from_pretrained(base,
        adapter=output_path)` loads. The base weights are never written."""
        save_adapter(self, output_path)


@dataclass
class DiffEmbedCollator(SentenceTransformerDataCollator):
    """Batches rows of (query, positive, negative_1..k, instruction) for the loss.

    The first text column holds queries (framed with the row's instruction, or the recipe's), every other text
    column holds documents; the instruction column is consumed here, never embedded.
    """

    module: DiffEmbedModule | None = field(default=None, repr=False)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        if not features:
            return {}
        if self.module is None:
            raise ValueError("DiffEmbedCollator needs the DiffEmbedModule it prepares batches for")
        columns = [c for c in features[0] if c not in (INSTRUCTION_COLUMN, "dataset_name", *self.valid_label_columns)]
        instructions = [row.get(INSTRUCTION_COLUMN) for row in features]
        batch: dict[str, Any] = {}
        if "dataset_name" in features[0]:
            batch["dataset_name"] = features[0]["dataset_name"]
        for position, column in enumerate(columns):
            role = "query" if position == 0 else "document"
            prepared = self.module.preprocess(
                [row[column] for row in features],
                role=role,
                instructions=instructions if role == "query" else None,
            )
            for key, value in prepared.items():
                batch[f"{column}_{key}"] = value
        return batch
