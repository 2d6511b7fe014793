"""Start a model from an earlier run (``model.init_from``): its fine-tuned encoder, and the
heads of the tasks that have the same name and label set in both runs.

This is what tag-set extension needs (Yang & Katiyar 2020): a source run trained on the full
data of some entity types, then a few-shot run on held-out types that starts from the source
run's encoder with a new head. Loading goes through safetensors directly, as
``training/checkpoint.py`` does, because the checkpoint is the runner's own layout.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mtfsl.config import checkpoint_folder
from mtfsl.errors import ConfigError
from mtfsl.model.fingerprint import check_base
from mtfsl.utils.files import read_json, weights_file
from mtfsl.utils.manifest import verify_manifest

if TYPE_CHECKING:
    from mtfsl.model.multitask import MultiTaskModel

log = logging.getLogger(__name__)


def init_from(model: MultiTaskModel, source: str, labels: dict[str, list[str]]) -> list[str]:
    """Load the source checkpoint's encoder tensors, and its heads where the task name and
    labels match; returns the names of the heads loaded. A partial checkpoint (a head-only
    or BitFit run) holds only what it trained: the rest stays as built (pretrained)."""
    from safetensors.torch import load_file

    folder = checkpoint_folder(source)
    verify_manifest(folder)
    with weights_file(folder / "model.safetensors"):
        stored = load_file(str(folder / "model.safetensors"))
    check_base(folder, model.state_dict(), stored)  # a partial one loads over this encoder
    their_labels = read_json(folder / "labels.json")
    heads = sorted(t for t in labels if t in their_labels and their_labels[t] == labels[t])
    own = model.state_dict()
    take = {}
    for name, tensor in stored.items():
        if name.startswith("heads."):
            if name.split(".")[1] in heads:
                take[name] = tensor
            continue
        if name not in own or own[name].shape != tensor.shape:
            what = "absent from" if name not in own else f"of shape {tuple(own[name].shape)} in"
            why = (
                "the source run's tasks had case_features: set task.NAME.case_features=true"
                if name.startswith("input_embeddings.")
                else "a different encoder, or LoRA adapters: start from a full, head-only or "
                "BitFit run with the same model"
            )
            raise ConfigError(
                f"model.init_from={source}: its tensor {name} {tuple(tensor.shape)} is {what} "
                f"this run's model ({why})"
            )
        take[name] = tensor
    model.load_state_dict(take, strict=False)
    encoder = sum(1 for n in take if not n.startswith("heads."))
    log.info(
        "model.init_from %s: %d encoder tensors; heads %s (others start anew: a different "
        "name or label set)",
        folder,
        encoder,
        heads or "none",
    )
    return heads
