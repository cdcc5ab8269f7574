"""The DiffEmbed training recipes, one per task family, as plain data in one place.

Sources, named per field in `Recipe.sources`:

- "paper": Zhang et al., "Diffusion vs. Autoregressive Language Models: A Text Embedding Perspective",
  EMNLP 2025, arXiv 2505.15045, as summarised in the project's recipe notes: one LoRA adapter per task family,
  rank 16 / alpha 32 (32 / 64 for instruction following), dropout 0.05 on the q, k, v, o, gate, up and down
  projections; in-batch + hard-negative InfoNCE on cosine similarity × 20; 16k Public-E5 pairs (long
  documents), 10k ReasonAug (reasoning), 16k MS MARCO with instructions (instruction following); max length
  4096 tokens, 304 (query) / 196 (document) for instruction following; the query instructions.
- "authors-config": the authors' public training configs (github.com/siyue-zhang/DiffEmbed,
  `train_configs/supervised/Dream_long.json`, `Dream_reason.json`, `Dream_if.json`): learning rate, scheduler,
  warm-up, per-device batch size, gradient accumulation, epochs and the step cap (`stop_after_n_steps`). The
  paper does not say on how many devices those per-device batches ran.
- "diffemb": our defaults where neither says anything (held-out fraction, hard negatives per row, seed, …).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from diffemb.profiles import REASONING_INSTRUCTION, RETRIEVAL_INSTRUCTION

PAPER = (
    "Zhang et al., Diffusion vs. Autoregressive Language Models: A Text Embedding Perspective, EMNLP 2025, "
    "arXiv 2505.15045"
)
AUTHORS_CONFIGS = "github.com/siyue-zhang/DiffEmbed train_configs/supervised/Dream_{long,reason,if}.json"

DECODER_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""The paper's LoRA targets, named as in Qwen2/Llama-shaped models (Dream, LLaDA after renaming, AR decoders)."""
BERT_TARGETS = ("query", "key", "value", "dense")
"""The same projections in BERT-family encoders (attention q/k/v, attention output and both MLP layers)."""


@dataclass(frozen=True)
class Recipe:
    """The hyper-parameters of one task family. `sources` says where each number comes from."""

    name: str
    description: str
    train_data: str
    """The paper's training set for this family (a hub dataset name or a description)."""
    train_samples: int
    instruction: str
    """Query instruction; documents get none. Rows of the data may carry their own."""
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    loss_scale: float
    """InfoNCE logits are cosine similarity × this (a temperature of 1/scale)."""
    learning_rate: float
    lr_scheduler: str
    warmup_steps: int
    batch_size: int
    """Pairs per device and step; every other pair's positive and hard negatives are in-batch negatives."""
    gradient_accumulation_steps: int
    epochs: int
    max_steps: int
    """Cap on optimiser steps (the authors' `stop_after_n_steps`); a run ends at whichever comes first."""
    max_query_length: int
    max_document_length: int
    hard_negatives: int = 1
    """Hard negatives per row used in the loss (rows with more are cut, rows with fewer are topped up)."""
    eval_fraction: float = 0.05
    seed: int = 42
    sources: Mapping[str, str] = field(default_factory=dict)

    def with_overrides(self, **overrides: Any) -> Recipe:
        """A copy with the given fields replaced (None keeps the recipe's value); replaced fields are marked
        "user" in `sources`."""
        given = {key: value for key, value in overrides.items() if value is not None}
        unknown = set(given) - set(self.__dataclass_fields__)
        if unknown:
            raise TypeError(f"unknown recipe fields {sorted(unknown)}")
        check_overrides(given)
        sources = dict(self.sources)
        sources.update(dict.fromkeys(given, "user"))
        return replace(self, **given, sources=MappingProxyType(sources))

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (what `diffemb.json` records)."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["sources"] = dict(self.sources)
        return data


# Checked up front (train() and `diffemb train`): a 0 batch divides by zero, a negative step count reaches the
# trainer as "warmup_steps = -1", a step count of 0 used to mean "one epoch".
POSITIVE_FIELDS = (
    "lora_r", "lora_alpha", "batch_size", "gradient_accumulation_steps", "epochs", "max_steps", "max_query_length",
    "max_document_length", "learning_rate", "loss_scale",
)  # fmt: skip
NON_NEGATIVE_FIELDS = ("warmup_steps", "hard_negatives", "train_samples")


def check_overrides(given: Mapping[str, Any]) -> None:
    """A ValueError naming the first recipe value out of range (positive counts and rates, fractions in [0, 1))."""
    for name, value in given.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if name in POSITIVE_FIELDS and (not number or value <= 0):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
        if name in NON_NEGATIVE_FIELDS and (not number or value < 0):
            raise ValueError(f"{name} must be zero or more, got {value!r}")
        if name in ("eval_fraction", "lora_dropout") and (not number or not 0 <= value < 1):
            raise ValueError(f"{name} must be in [0, 1), got {value!r}")


def _sources(paper: tuple[str, ...], authors: tuple[str, ...], diffemb: tuple[str, ...]) -> Mapping[str, str]:
    table = {**dict.fromkeys(paper, "paper"), **dict.fromkeys(authors, "authors-config")}
    table.update(dict.fromkeys(diffemb, "diffemb"))
    return MappingProxyType(table)


_PAPER_FIELDS = (
    "train_data", "train_samples", "instruction", "lora_r", "lora_alpha", "lora_dropout", "loss_scale",
    "max_query_length", "max_document_length",
)  # fmt: skip
_AUTHOR_FIELDS = (
    "learning_rate", "lr_scheduler", "warmup_steps", "batch_size", "gradient_accumulation_steps", "epochs",
    "max_steps",
)  # fmt: skip
_DIFFEMB_FIELDS = ("hard_negatives", "eval_fraction", "seed")

RECIPES: Mapping[str, Recipe] = MappingProxyType(
    {
        "long": Recipe(
            name="long",
            description="long-document retrieval (LongEmbed) and MTEB",
            train_data="Public-E5 pairs (llm2vec's E5 mix)",
            train_samples=16_000,
            instruction=RETRIEVAL_INSTRUCTION,
            lora_r=16,
            lora_alpha=32,
            lora_dropout=0.05,
            loss_scale=20.0,
            learning_rate=5e-5,
            lr_scheduler="linear",  # the config sets none: the transformers Trainer's default
            warmup_steps=100,
            batch_size=4,
            gradient_accumulation_steps=1,
            epochs=1,
            max_steps=4000,
            max_query_length=4096,
            max_document_length=4096,
            sources=_sources(_PAPER_FIELDS, _AUTHOR_FIELDS, _DIFFEMB_FIELDS),
        ),
        "reasoning": Recipe(
            name="reasoning",
            description="reasoning-intensive retrieval (BRIGHT)",
            train_data="siyue/ReasonAug",
            train_samples=10_000,
            instruction=REASONING_INSTRUCTION,
            lora_r=16,
            lora_alpha=32,
            lora_dropout=0.05,
            loss_scale=20.0,
            learning_rate=1e-5,
            lr_scheduler="constant",
            warmup_steps=100,  # set in the config, but a "constant" schedule has no warm-up
            batch_size=4,
            gradient_accumulation_steps=1,
            epochs=1,
            max_steps=3000,
            max_query_length=4096,
            max_document_length=4096,
            sources=_sources(_PAPER_FIELDS, _AUTHOR_FIELDS, _DIFFEMB_FIELDS),
        ),
        "instructions": Recipe(
            name="instructions",
            description="instruction-following retrieval (FollowIR)",
            train_data="samaya-ai/msmarco-w-instructions",
            train_samples=16_000,
            instruction=RETRIEVAL_INSTRUCTION,
            lora_r=32,
            lora_alpha=64,
            lora_dropout=0.05,
            loss_scale=20.0,
            learning_rate=1e-4,
            lr_scheduler="linear",
            warmup_steps=100,
            batch_size=8,
            gradient_accumulation_steps=4,
            epochs=1,
            max_steps=1000,
            max_query_length=304,
            max_document_length=196,
            sources=_sources(_PAPER_FIELDS, _AUTHOR_FIELDS, _DIFFEMB_FIELDS),
        ),
    }
)


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}: use one of {', '.join(RECIPES)}") from None
