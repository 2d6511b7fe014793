"""Save and restore the best model: weights, tokenizer, encoder config and label maps."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from safetensors.torch import load_model, save_model
from transformers import PreTrainedTokenizerBase

from mtfsl.model.multitask import MultiTaskModel


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
