"""One task of a loaded run as a standard Hugging Face model: the task's kind picks the class
and copies its head; the encoder (LoRA adapters folded in) is copied into the class's base
model. ``mtfsl-export`` writes it as a folder, and the ONNX export traces it."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch, peft and transformers load after the CLI's arguments are read
    from transformers import PreTrainedModel

    from mtfsl.inference.run import LoadedRun

from mtfsl.errors import ConfigError
from mtfsl.utils.manifest import write_manifest

log = logging.getLogger(__name__)


def _plain_encoder(run: LoadedRun) -> PreTrainedModel:
    from peft import PeftModel

    encoder = run.model.encoder
    if isinstance(encoder, PeftModel):  # LoRA: fold the adapters into the weights
        encoder = encoder.merge_and_unload()
    return encoder


def to_hf(run: LoadedRun, task: str, graph: bool = False) -> PreTrainedModel:
    """The task's encoder and head as one HF model with the same weights (the task's kind
    chooses the class and copies its head). ``graph``: the module the ONNX graph traces
    instead (the kind's ``onnx_model``), which may hold a head no HF class does."""
    from mtfsl.config import WordPiece
    from mtfsl.model.encoder import copy_into

    if run.model.full_mask:
        raise ConfigError(
            "export: this run's decoder attends both ways (model.attention=BIDIRECTIONAL), "
            "which transformers' classes and their graphs cannot; use mtfsl-predict on the run"
        )
    cfg, labels = run.cfg.task[task], run.labels[task]
    encoder = _plain_encoder(run)
    config = copy.deepcopy(encoder.config)
    config.num_labels = len(labels)
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: i for i, label in enumerate(labels)}
    if run.cfg.model.word_piece is WordPiece.LAST:  # where a word's tag is read (README)
        config.word_piece = "last"
    kind = run.tasks[task].kind
    build = kind.onnx_model if graph else kind.export_model
    model = build(cfg, task, run.model.heads[task], encoder, config)
    copy_into(model.base_model, encoder, "encoder")
    return model.eval()


def export(run_dir: Path, out_dir: Path, task: str | None = None) -> Path:
    from mtfsl.inference.run import load_run

    run = load_run(run_dir)
    name = run.task(task)
    model = to_hf(run, name)
    model.save_pretrained(out_dir)
    run.tokenizer.save_pretrained(out_dir)
    write_manifest(out_dir)  # sha256sum -c SHA256SUMS there checks it
    if run.cfg.data.context:
        log.warning(
            "%s was trained with data.context=%d (neighbouring sentences as input); a "
            "pipeline sees each text alone, so its predictions can differ from mtfsl-predict's",
            run_dir,
            run.cfg.data.context,
        )
    return out_dir
