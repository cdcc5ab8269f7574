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

import torch

from diffemb.extras import require

# Every package of the training extra, checked before anything else: a missing one names the extra to install.
for _package in ("sentence_transformers", "datasets", "accelerate"):
    require(_package, "train", "diffemb train")

from diffemb.adapter_settings import read_adapter_record  # noqa: E402
from diffemb.encoder import DiffEmbedEncoder  # noqa: E402
from diffemb.profiles import Attention, Pooling  # noqa: E402
from diffemb.training.data import check_contrast, check_loss_moved, load_pairs, split_pairs, to_dataset  # noqa: E402
from diffemb.training.evaluator import HeldOutEvaluator, retrieval_metrics  # noqa: E402
from diffemb.training.model import DiffEmbedCollator, DiffEmbedModule  # noqa: E402
from diffemb.training.output import CHECKPOINTS_DIR, check_output, save_adapter, trainer_class  # noqa: E402
from diffemb.training.recipes import (  # noqa: E402
    AUTHORS_CONFIGS,
    BERT_TARGETS,
    DECODER_TARGETS,
    PAPER,
    Recipe,
    get_recipe,
)

__all__ = ["DEFAULT", "HeldOutEvaluator", "TrainResult", "retrieval_metrics", "target_modules_for", "train"]

logger = logging.getLogger(__name__)


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
    resume_from = check_output(output, checkpoints, resume, overwrite)

    # Data first: a bad file should fail before minutes of model loading.
    pairs = load_pairs(data)
    if eval_data is not None:
        train_pairs, held_out = pairs, load_pairs(eval_data)
    else:
        train_pairs, held_out = split_pairs(pairs, chosen.eval_fraction, chosen.seed)
    check_contrast(train_pairs, chosen.batch_size, chosen.hard_negatives)
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
    trainer = trainer_class()(
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
    check_loss_moved(losses)
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
    settings = read_adapter_record(output)
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


def _jsonable(value: Any) -> Any:
    from dataclasses import asdict, is_dataclass

    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else value


class _CallableModule(types.ModuleType):
    """`diffemb.training.train` is both this module and its `train` function: importing the module binds its name
    on the package, where users expect the function, so the module itself can be called like the function."""

    def __call__(self, *args: Any, **kwargs: Any) -> TrainResult:
        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
