"""What a training run writes: the adapter folder (PEFT files + `diffemb.json`) and resumable checkpoints.

The output folder receives only the adapter (`adapter_config.json`, `adapter_model.safetensors`) and
`diffemb.json` (written by `diffemb.adapter_settings`). Checkpoints (adapter + optimiser state) go to
`folder/checkpoints/`; a run refuses to start over an earlier one unless told to resume or overwrite it.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from diffemb.adapter_settings import ADAPTER_SETTINGS_FILE, write_adapter_settings
from diffemb.training.data import INSTRUCTION_COLUMN

if TYPE_CHECKING:
    from diffemb.training.model import DiffEmbedModule

logger = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", ADAPTER_SETTINGS_FILE)


def save_adapter(module: DiffEmbedModule, folder: str | os.PathLike[str]) -> Path:
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
    write_adapter_settings(folder, module.profile, module.training_info)
    return folder


def trainer_class() -> type:
    """sentence-transformers' trainer, saving adapters only (built on first use: it imports the trainer)."""
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


def check_output(output: Path, checkpoints: Path, resume: bool, overwrite: bool) -> Path | None:
    """The checkpoint to resume from (or None); refuses to train over an earlier run by accident."""
    if resume:
        found = last_checkpoint(checkpoints)
        if found is None:
            raise FileNotFoundError(
                f"nothing to resume: {checkpoints} holds no checkpoint-N folder (runs keep their checkpoints with "
                "keep_checkpoints=True / --keep-checkpoints, and while they are running)"
            )
        return found
    earlier = [name for name in ADAPTER_FILES if (output / name).exists()]
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
