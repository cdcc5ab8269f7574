"""`train(...)`: the DiffEmbed contrastive LoRA recipe on sentence-transformers' trainer.

The backbone is loaded through `DiffEmbedEncoder.from_pretrained` (so attention, template, instruction and
pooling are the encoder's), wrapped with a PEFT LoRA on the family's projections, and trained with in-batch +
hard-negative InfoNCE (`MultipleNegativesRankingLoss`, cosine × 20; `CachedMultipleNegativesRankingLoss` for
batches larger than `mini_batch_size`). Batches never hold one text twice (sentence-transformers'
no-duplicates sampler), so no pair's positive is another pair's false negative.

The output folder receives only the adapter (`adapter_config.json`, `adapter_model.safetensors`) and
`diffemb.json`: base model, recipe, hyper-parameters, metrics and the "encoder" settings that
`DiffEmbedEncoder.from_pretrained(base, adapter=folder)` applies, so loading reproduces the training-time
encoding. Checkpoints (adapter + optimiser state) go to `folder/checkpoints/` and `resume=True` continues from the
last one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import time
import types
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sentence_transformers.base.evaluation.evaluator import BaseEvaluator

from diffemb.encoder import ADAPTER_SETTINGS_FILE, DiffEmbedEncoder
from diffemb.encoder import DEFAULT as DEFAULT_INSTRUCTION
from diffemb.profiles import Attention, Pooling
from diffemb.training.data import INSTRUCTION_COLUMN, Pair, load_pairs, split_pairs, to_dataset
from diffemb.training.recipes import AUTHORS_CONFIGS, BERT_TARGETS, DECODER_TARGETS, PAPER, Recipe, get_recipe

logger = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
SETTINGS_FORMAT = 1
_ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", ADAPTER_SETTINGS_FILE)


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Any = _Default()
"""The recipe's query instruction (for families without an instruction convention: none)."""


@dataclass
class TrainResult:
    output: Path
    """The adapter folder: pass it as `adapter=` to `DiffEmbedEncoder.from_pretrained`."""
    steps: int
    losses: list[tuple[int, float]]
    """(step, mean training loss since the previous log)."""
    metrics_before: dict[str, float] = field(default_factory=dict)
    metrics_after: dict[str, float] = field(default_factory=dict)
    evaluations: list[dict[str, float]] = field(default_factory=list)
    """Periodic held-out evaluations logged by the trainer (with their step)."""
    settings: dict[str, Any] = field(default_factory=dict)
    """What was written to `diffemb.json`."""
    seconds: float = 0.0


# -- LoRA targets ------------------------------------------------------------------------------------------


def target_modules_for(model: torch.nn.Module) -> list[str]:
    """The paper's LoRA targets named as this model names them.

    Qwen2/Llama-shaped decoders (Dream, LLaDA, AR baselines): q/k/v/o and gate/up/down projections. BERT-family
    encoders: query/key/value and every `dense` (attention output and both MLP layers). Anything else: every
    linear layer's name, which PEFT matches by suffix.
    """
    names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    if {"q_proj", "k_proj", "v_proj"} <= names:
        return [name for name in DECODER_TARGETS if name in names]
    if {"query", "key", "value"} <= names:
        return [name for name in BERT_TARGETS if name in names]
    if not names:
        raise ValueError(f"{type(model).__name__} has no linear layers for a LoRA adapter")
    return sorted(names)


# -- held-out evaluation -----------------------------------------------------------------------------------


class HeldOutEvaluator(BaseEvaluator):  # type: ignore[misc]
    """Retrieval over held-out pairs, embedded by the `DiffEmbedEncoder` itself (the LoRA, still unmerged, is
    live in its backbone): each query against every held-out positive and negative.

    Metrics: accuracy@1, MRR@10 and nDCG@10 (one relevant document per query); the primary one is accuracy@1.
    """

    def __init__(self, encoder: DiffEmbedEncoder, pairs: Sequence[Pair], name: str = "heldout") -> None:
        super().__init__()
        self.encoder = encoder
        self.name = name
        self.primary_metric = "accuracy@1"
        self.queries = [pair.query for pair in pairs]
        self.instructions = [pair.instruction for pair in pairs]
        corpus: dict[str, int] = {}
        for pair in pairs:
            for text in (pair.positive, *pair.negatives):
                corpus.setdefault(text, len(corpus))
        self.corpus = list(corpus)
        self.relevant = np.array([corpus[pair.positive] for pair in pairs])

    def scores(self) -> np.ndarray:
        """(queries, corpus) cosine similarities under the encoder's current weights."""
        encoder = self.encoder
        queries = np.zeros((len(self.queries), encoder.dimension), dtype=np.float32)
        for instruction in dict.fromkeys(self.instructions):
            rows = [i for i, value in enumerate(self.instructions) if value == instruction]
            chosen = DEFAULT_INSTRUCTION if instruction is None else instruction
            vectors = encoder.encode([self.queries[i] for i in rows], role="query", instruction=chosen)
            queries[rows] = vectors
        documents = encoder.encode_documents(self.corpus)
        return _cosine(queries, documents)

    def compute(self) -> dict[str, float]:
        model = self.encoder.model
        was_training = model.training
        model.eval()
        try:
            scores = self.scores()
        finally:
            model.train(was_training)
        return retrieval_metrics(scores, self.relevant)

    def __call__(self, model: Any = None, output_path: str | None = None, epoch: int = -1, steps: int = -1) -> dict:
        metrics = self.compute()
        logger.info("held-out retrieval at step %d: %s", steps, metrics)
        return self.prefix_name_to_metrics(metrics, self.name)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T


def retrieval_metrics(scores: np.ndarray, relevant: np.ndarray) -> dict[str, float]:
    """accuracy@1, MRR@10 and nDCG@10 for one relevant document per query (ties count against the query)."""
    own = scores[np.arange(len(relevant)), relevant][:, None]
    rank = (scores > own).sum(axis=1) + (scores == own).sum(axis=1)  # 1-based, pessimistic on ties
    within = rank <= 10
    return {
        "accuracy@1": float((rank == 1).mean()),
        "mrr@10": float(np.where(within, 1.0 / rank, 0.0).mean()),
        "ndcg@10": float(np.where(within, 1.0 / np.log2(rank + 1), 0.0).mean()),
    }


# -- saving and resuming -----------------------------------------------------------------------------------


def encoder_settings(module: Any) -> dict[str, Any]:
    """The "encoder" block of `diffemb.json`: the profile fields `DiffEmbedEncoder.from_pretrained` applies.

    A missing instruction is written as "" (explicitly none) so that loading cannot fall back to a default.
    """
    profile = module.profile
    return {
        "attention": profile.attention,
        "pooling": profile.pooling,
        "max_length": int(profile.max_length),
        "query_instruction": profile.query_instruction or "",
        "document_instruction": profile.document_instruction or "",
        "exclude_instruction": bool(profile.exclude_instruction),
        "normalize": bool(profile.normalize),
    }


def save_adapter(module: Any, folder: str | os.PathLike[str]) -> Path:
    """Write the module's LoRA adapter (PEFT layout) and `diffemb.json` into `folder`."""
    from peft import PeftModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    peft_model = module.model
    if not isinstance(peft_model, PeftModel):
        raise TypeError("this DiffEmbedModule holds no LoRA adapter to save (its model is not a PeftModel)")
    card = folder / "README.md"
    had_card = card.exists()
    # No embedding layers (LoRA touches none) and so no look-up of the base model's config on the hub.
    peft_model.save_pretrained(str(folder), save_embedding_layers=False)
    if not had_card:
        card.unlink(missing_ok=True)  # PEFT's generic model card; diffemb.json describes the adapter
    settings = {**module.training_info, "encoder": encoder_settings(module)}
    (folder / ADAPTER_SETTINGS_FILE).write_text(json.dumps(settings, indent=2, default=str) + "\n", "utf-8")
    return folder


def _trainer_class() -> type:
    from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer
    from transformers.trainer import TRAINING_ARGS_NAME

    class DiffEmbedTrainer(SentenceTransformerTrainer):  # type: ignore[misc]
        """Checkpoints hold the adapter only (plus the trainer's optimiser and scheduler state)."""

        module: Any = None

        def add_model_card_callback(self, default_args_dict: dict[str, Any]) -> None:
            """No model card: the output is an adapter described by diffemb.json, not a sentence-transformers
            folder (and the card's widget examples would embed part of the data at start-up)."""

        def _save(self, output_dir: str | None = None, state_dict: Any = None) -> None:
            target = str(output_dir if output_dir is not None else self.args.output_dir)
            save_adapter(self.module, target)
            torch.save(self.args, os.path.join(target, TRAINING_ARGS_NAME))

        def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
            from peft.utils import load_peft_weights, set_peft_model_state_dict

            device = str(next(self.module.model.parameters()).device)
            weights = load_peft_weights(resume_from_checkpoint, device=device)
            result = set_peft_model_state_dict(self.module.model, weights)
            unexpected = getattr(result, "unexpected_keys", [])
            if unexpected:
                raise ValueError(f"checkpoint {resume_from_checkpoint} does not fit this model: {unexpected[:3]}")
            logger.info("resumed the adapter from %s", resume_from_checkpoint)

        def get_batch_sampler(self, dataset: Any, batch_size: int, drop_last: bool, valid_label_columns: Any = None,
                              generator: Any = None, seed: int = 0) -> Any:  # fmt: skip
            # The instruction column is metadata: many rows share one, which must not keep them out of a batch.
            ignored = [*(valid_label_columns or []), INSTRUCTION_COLUMN]
            return super().get_batch_sampler(dataset, batch_size, drop_last, ignored, generator, seed)

    return DiffEmbedTrainer


def last_checkpoint(folder: Path) -> Path | None:
    from transformers.trainer_utils import get_last_checkpoint

    if not folder.is_dir():
        return None
    found = get_last_checkpoint(str(folder))
    return Path(found) if found else None


# -- the recipe --------------------------------------------------------------------------------------------


def _resolve_instruction(instruction: Any, recipe: Recipe, encoder: DiffEmbedEncoder) -> str:
    if instruction is not DEFAULT:
        return instruction or ""
    # Families whose profile has no query instruction (plain encoders, sentence-transformers folders without
    # prompts) have no convention for one; the paper's instructions are for instruction-tuned LMs.
    return recipe.instruction if encoder.profile.query_instruction else ""


def train(
    model: str | os.PathLike[str],
    data: str | os.PathLike[str] | Sequence[Any],
    output: str | os.PathLike[str],
    *,
    recipe: str | Recipe = "long",
    attention: Attention | None = None,
    pooling: Pooling | None = None,
    max_steps: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    lora_r: int | None = None,
    lora_alpha: int | None = None,
    lora_dropout: float | None = None,
    target_modules: Sequence[str] | None = None,
    instruction: str | None = DEFAULT,
    max_query_length: int | None = None,
    max_document_length: int | None = None,
    hard_negatives: int | None = None,
    eval_fraction: float | None = None,
    eval_data: str | os.PathLike[str] | Sequence[Any] | None = None,
    eval_steps: int | None = None,
    save_steps: int | None = None,
    logging_steps: int | None = None,
    warmup_steps: int | None = None,
    gradient_accumulation_steps: int | None = None,
    mini_batch_size: int = 32,
    gradient_checkpointing: bool | None = None,
    seed: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    keep_checkpoints: bool = False,
    device: str = "auto",
    dtype: str = "auto",
    show_progress: bool = True,
) -> TrainResult:
    """Fine-tune `model` (hub id or folder) with a LoRA adapter on query/positive pairs; save it to `output`.

    `data`: a JSONL file of {"query", "positive", "negatives"?, "instruction"?} rows, a hub dataset name, or a
    list of such rows. Every hyper-parameter left as None comes from `recipe` (see `diffemb.training.recipes`);
    `instruction=""` trains without a query instruction; `lora_r` alone sets `lora_alpha` to twice it (the
    paper's ratio). A held-out `eval_fraction` of the pairs (or
    `eval_data`) is scored before training, every `eval_steps` and at the end. `gradient_checkpointing` and
    bf16 are used on GPUs only (None: on CUDA). `resume=True` continues from the last checkpoint in
    `output/checkpoints`. `attention` and `pooling` override the model family's defaults (e.g. a decoder
    trained bidirectionally with mean pooling, the paper's LLM2Vec-style baseline); the adapter records them,
    so loading it runs the model the same way.
    """
    started = time.perf_counter()
    from peft import LoraConfig, get_peft_model
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MultipleNegativesRankingLoss,
    )
    from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments
    from transformers import set_seed

    from diffemb.training.model import DiffEmbedCollator, DiffEmbedModule

    base = get_recipe(recipe) if isinstance(recipe, str) else recipe
    if lora_r is not None and lora_alpha is None:
        lora_alpha = 2 * lora_r  # the paper's ratio (16/32, 32/64)
    chosen = base.with_overrides(
        max_steps=max_steps, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, lora_r=lora_r,
        lora_alpha=lora_alpha, lora_dropout=lora_dropout, max_query_length=max_query_length,
        max_document_length=max_document_length, hard_negatives=hard_negatives, eval_fraction=eval_fraction,
        warmup_steps=warmup_steps, gradient_accumulation_steps=gradient_accumulation_steps, seed=seed,
    )  # fmt: skip
    output = Path(output)
    checkpoints = output / CHECKPOINTS_DIR
    resume_from = _check_output(output, checkpoints, resume, overwrite)

    # Data first: a bad file should fail before minutes of model loading.
    pairs = load_pairs(data)
    if eval_data is not None:
        train_pairs, held_out = pairs, load_pairs(eval_data)
    else:
        train_pairs, held_out = split_pairs(pairs, chosen.eval_fraction, chosen.seed)
    set_seed(chosen.seed)

    # A private copy of the weights (shared=False): LoRA layers are injected into this model in place.
    encoder = DiffEmbedEncoder.from_pretrained(
        model, device=device, dtype=dtype, attention=attention, pooling=pooling, shared=False
    )
    query_instruction = _resolve_instruction(instruction, chosen, encoder)
    window = min(max(chosen.max_query_length, chosen.max_document_length), encoder.profile.max_length)
    encoder = encoder.with_settings(max_length=window, query_instruction=query_instruction)
    profile = encoder.profile
    on_gpu = encoder.device.type == "cuda"
    backbone_model = encoder.backbone.model

    targets = list(target_modules) if target_modules else target_modules_for(backbone_model)
    lora = LoraConfig(
        r=chosen.lora_r, lora_alpha=chosen.lora_alpha, lora_dropout=chosen.lora_dropout, target_modules=targets,
        bias="none",
    )  # fmt: skip
    with warnings.catch_warnings():  # PEFT probes a deprecated transformers attribute
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        peft_model = get_peft_model(backbone_model, lora)  # injects LoRA layers into the backbone in place
    for config in peft_model.peft_config.values():
        config.base_model_name_or_path = str(model)
    use_checkpointing = on_gpu if gradient_checkpointing is None else gradient_checkpointing
    if use_checkpointing:
        enable = backbone_model.gradient_checkpointing_enable
        enable(gradient_checkpointing_kwargs={"use_reentrant": False})  # type: ignore[operator]

    module = DiffEmbedModule(encoder, chosen.max_query_length, chosen.max_document_length, model=peft_model)
    st_model = SentenceTransformer(
        modules=[module],
        device=str(encoder.device),
        prompts={"query": profile.query_instruction or "", "document": profile.document_instruction or ""},
    )
    train_dataset, layout = to_dataset(train_pairs, chosen.hard_negatives, chosen.seed)
    evaluator = HeldOutEvaluator(encoder, held_out) if held_out else None

    per_step = chosen.batch_size * chosen.gradient_accumulation_steps
    steps_per_epoch = math.ceil(len(train_pairs) / per_step)
    total_steps = max_steps or min(chosen.max_steps, chosen.epochs * steps_per_epoch)
    warmup = chosen.warmup_steps if warmup_steps is not None else min(chosen.warmup_steps, total_steps // 10)
    eval_every = eval_steps or max(1, min(500, total_steps // 4))
    hyper = {
        **chosen.as_dict(),
        "max_steps": total_steps,
        "warmup_steps": warmup,
        "target_modules": targets,
        "loss": "CachedMultipleNegativesRankingLoss" if chosen.batch_size > mini_batch_size else
                "MultipleNegativesRankingLoss",
        "mini_batch_size": mini_batch_size,
        "batch_sampler": "no_duplicates",
        "gradient_checkpointing": use_checkpointing,
        "dtype": encoder.settings.dtype,
        "max_query_length": module.max_query_length,
        "max_document_length": module.max_document_length,
    }  # fmt: skip
    module.training_info = {
        "format": SETTINGS_FORMAT,
        "base_model": str(model),
        "recipe": chosen.name,
        "paper": PAPER,
        "authors_configs": AUTHORS_CONFIGS,
        "hyperparameters": hyper,
        "data": {
            "source": data if isinstance(data, (str, os.PathLike)) else "in-memory rows",
            "train_pairs": len(train_pairs),
            "eval_pairs": len(held_out),
            **layout,
        },
        "training_text": {
            "template": _jsonable(profile.template),
            "note": "queries and documents are truncated to max_query_length / max_document_length in training",
        },
    }

    loss: torch.nn.Module
    if chosen.batch_size > mini_batch_size:
        loss = CachedMultipleNegativesRankingLoss(st_model, scale=chosen.loss_scale, mini_batch_size=mini_batch_size)
    else:
        loss = MultipleNegativesRankingLoss(st_model, scale=chosen.loss_scale)
    half = encoder.settings.dtype
    args = SentenceTransformerTrainingArguments(
        output_dir=str(checkpoints),
        max_steps=total_steps,
        per_device_train_batch_size=chosen.batch_size,
        gradient_accumulation_steps=chosen.gradient_accumulation_steps,
        learning_rate=chosen.learning_rate,
        lr_scheduler_type=chosen.lr_scheduler,
        warmup_steps=warmup,
        seed=chosen.seed,
        data_seed=chosen.seed,
        bf16=on_gpu and half == "bfloat16",
        fp16=on_gpu and half == "float16",
        eval_strategy="steps" if evaluator is not None else "no",
        eval_steps=eval_every,
        save_strategy="steps",
        save_steps=save_steps or eval_every,
        save_total_limit=2,
        logging_steps=logging_steps or max(1, min(20, total_steps // 10)),
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        remove_unused_columns=False,
        dataloader_pin_memory=on_gpu,
        use_cpu=encoder.device.type == "cpu",  # else the trainer moves the model to a GPU it finds
        disable_tqdm=not show_progress,
        report_to="none",
    )
    collator = DiffEmbedCollator(preprocess_fn=module.preprocess, module=module)
    trainer_class = _trainer_class()
    trainer = trainer_class(
        model=st_model,
        args=args,
        train_dataset=train_dataset,
        loss=loss,
        evaluator=evaluator,
        data_collator=collator,
    )
    trainer.module = module

    metrics_before = evaluator.compute() if evaluator is not None and resume_from is None else {}
    if metrics_before:
        logger.info("held-out retrieval before training: %s", metrics_before)
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    history = trainer.state.log_history
    losses = [(int(entry["step"]), float(entry["loss"])) for entry in history if "loss" in entry]
    prefix = "eval_heldout_"
    evaluations = [
        {"step": int(entry["step"]), **{k[len(prefix) :]: float(v) for k, v in entry.items() if k.startswith(prefix)}}
        for entry in history
        if any(key.startswith(prefix) for key in entry)
    ]
    metrics_after: dict[str, float] = {}
    if evaluations and evaluations[-1]["step"] == trainer.state.global_step:  # the trainer just evaluated
        metrics_after = {k: v for k, v in evaluations[-1].items() if k != "step"}
    elif evaluator is not None:
        metrics_after = evaluator.compute()
    module.training_info["metrics"] = {"before": metrics_before, "after": metrics_after, "during": evaluations}
    module.training_info["losses"] = [{"step": step, "loss": value} for step, value in losses]
    module.training_info["steps"] = int(trainer.state.global_step)
    module.training_info["truncated_texts"] = module.truncated
    save_adapter(module, output)
    if not keep_checkpoints:
        shutil.rmtree(checkpoints, ignore_errors=True)
    settings = json.loads((output / ADAPTER_SETTINGS_FILE).read_text("utf-8"))
    return TrainResult(
        output=output,
        steps=int(trainer.state.global_step),
        losses=losses,
        metrics_before=metrics_before,
        metrics_after=metrics_after,
        evaluations=evaluations,
        settings=settings,
        seconds=time.perf_counter() - started,
    )


def _check_output(output: Path, checkpoints: Path, resume: bool, overwrite: bool) -> Path | None:
    """The checkpoint to resume from (or None); refuses to train over an earlier run by accident."""
    if resume:
        found = last_checkpoint(checkpoints)
        if found is None:
            raise FileNotFoundError(
                f"nothing to resume: {checkpoints} holds no checkpoint-N folder (runs keep their checkpoints with "
                "keep_checkpoints=True / --keep-checkpoints, and while they are running)"
            )
        return found
    earlier = [name for name in _ADAPTER_FILES if (output / name).exists()]
    if checkpoints.exists():
        earlier.append(CHECKPOINTS_DIR)
    if earlier and not overwrite:
        raise FileExistsError(
            f"{output} already holds a training run ({', '.join(earlier)}): pass resume=True (--resume) to continue "
            "it, overwrite=True (--overwrite) to replace it, or choose another folder"
        )
    if overwrite and checkpoints.exists():
        shutil.rmtree(checkpoints)
    return None


def _jsonable(value: Any) -> Any:
    from dataclasses import asdict, is_dataclass

    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else value


class _CallableModule(types.ModuleType):
    """`diffemb.training.train` is both this module and its `train` function: importing the module binds its name
    on the package, where users expect the function, so the module itself can be called like the function."""

    def __call__(self, *args: Any, **kwargs: Any) -> TrainResult:
        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
