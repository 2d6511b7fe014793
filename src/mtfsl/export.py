"""``mtfsl-export RUN_DIR OUT_DIR``: one task of a run as a standard Hugging Face folder.

The task's kind picks the class: tagging runs (linear token head) become
``AutoModelForTokenClassification``; classification runs with ``pooling: POOLER`` (BERT's
dense + tanh over [CLS]) become ``AutoModelForSequenceClassification``. Both carry
``id2label``, so ``transformers.pipeline(..., model=OUT_DIR)`` loads them with no mtfsl code.
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mtfsl.errors import ConfigError, MtfslError
from mtfsl.kinds import get_kind

if TYPE_CHECKING:  # torch, peft and transformers load after the arguments are read
    from torch import nn
    from transformers import PreTrainedModel

    from mtfsl.inference import LoadedRun

log = logging.getLogger(__name__)


def _plain_encoder(run: LoadedRun) -> PreTrainedModel:
    from peft import PeftModel

    encoder = run.model.encoder
    if isinstance(encoder, PeftModel):  # LoRA: fold the adapters into the weights
        encoder = encoder.merge_and_unload()
    return encoder


def copy_into(target: nn.Module, source: nn.Module, what: str) -> None:
    """Load ``source``'s weights into ``target`` (an HF model's part); the layouts must fit."""
    missing, unexpected = target.load_state_dict(source.state_dict(), strict=False)
    if unexpected or [k for k in missing if "pooler" not in k]:
        raise ConfigError(
            f"export: the {what} does not fit the HF layout ({missing or unexpected})"
        )


def to_hf(run: LoadedRun, task: str) -> PreTrainedModel:
    """The task's encoder and head as one HF model with the same weights (the task's kind
    chooses the class and copies its head)."""
    cfg, labels = run.cfg.task[task], run.labels[task]
    encoder = _plain_encoder(run)
    config = copy.deepcopy(encoder.config)
    config.num_labels = len(labels)
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: i for i, label in enumerate(labels)}
    kind = get_kind(cfg.kind)
    model = kind.export_model(cfg, task, run.model.heads[task], encoder, config)
    copy_into(model.base_model, encoder, "encoder")
    return model.eval()


def export(run_dir: Path, out_dir: Path, task: str | None = None) -> Path:
    from mtfsl.inference import load_run

    run = load_run(run_dir)
    name = run.task(task)
    model = to_hf(run, name)
    model.save_pretrained(out_dir)
    run.tokenizer.save_pretrained(out_dir)
    if run.cfg.data.context:
        log.warning(
            "%s was trained with data.context=%d (neighbouring sentences as input); a "
            "pipeline sees each text alone, so its predictions can differ from mtfsl-predict's",
            run_dir,
            run.cfg.data.context,
        )
    return out_dir


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="mtfsl-export", description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--task", help="which task of a multi-task run")
    args = p.parse_args(argv)
    try:
        out = export(args.run_dir, args.out_dir, args.task)
    except (MtfslError, OSError) as err:
        sys.exit(f"mtfsl-export: error: {err}")
    print(f"exported to {out}; load with transformers.pipeline(..., model='{out}')")


if __name__ == "__main__":
    main()
