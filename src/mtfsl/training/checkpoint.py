"""Save and restore the best model: weights, tokenizer, encoder config and label maps."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from safetensors.torch import load_model, save_model
from transformers import PreTrainedTokenizerBase

from mtfsl.errors import MtfslError
from mtfsl.model.multitask import MultiTaskModel

_STATE_PREFIX = "state-"


def save_checkpoint(
    folder: Path,
    model: MultiTaskModel,
    tokenizer: PreTrainedTokenizerBase,
    labels: dict[str, list[str]],
    state: dict[str, object],
) -> None:
    """Write into a temporary folder, then swap it in, so ``folder`` is always complete."""
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_model(model, str(tmp / "model.safetensors"))
    model.encoder.config.save_pretrained(tmp / "encoder")
    tokenizer.save_pretrained(tmp / "tokenizer")
    (tmp / "labels.json").write_text(json.dumps(labels, indent=1) + "\n")
    (tmp / "trainer_state.json").write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
    old = folder.with_name(f".{folder.name}.old")
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def load_weights(folder: Path, model: MultiTaskModel) -> dict[str, object]:
    """Load the checkpoint's weights into ``model``; return its trainer state."""
    load_model(model, str(folder / "model.safetensors"))
    return json.loads((folder / "trainer_state.json").read_text())


def _states(run_dir: Path) -> list[Path]:
    folder = run_dir / "checkpoints"
    found = [p for p in folder.glob(f"{_STATE_PREFIX}*") if (p / "trainer.json").is_file()]
    return sorted(found, key=lambda p: int(p.name[len(_STATE_PREFIX) :]))


def save_training_state(
    accelerator: Accelerator, run_dir: Path, step: int, extra: dict[str, Any], keep_last: int
) -> Path:
    """Write a resumable state (accelerate: model, optimizer, scheduler, RNGs; plus the loop's
    own counters in ``trainer.json``, written last so its presence marks a complete state),
    then delete all but the newest ``keep_last`` states. Every process calls this (each saves
    its own RNG states); only the main process writes the rest."""
    folder = run_dir / "checkpoints" / f"{_STATE_PREFIX}{step}"
    if accelerator.is_main_process:
        shutil.rmtree(folder, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(folder))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        tmp = folder / ".trainer.json.tmp"
        tmp.write_text(json.dumps(extra, indent=1))
        tmp.rename(folder / "trainer.json")
        for old in _states(run_dir)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return folder


def latest_state(run_dir: Path) -> Path:
    states = _states(run_dir)
    if not states:
        raise MtfslError(f"resume={run_dir}: no resumable state under {run_dir / 'checkpoints'}")
    return states[-1]


def load_training_state(accelerator: Accelerator, folder: Path) -> dict[str, Any]:
    accelerator.load_state(str(folder))
    return json.loads((folder / "trainer.json").read_text())
