"""Load a finished run (its config and best checkpoint) and predict on new inputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from accelerate.utils import set_seed
from transformers import PreTrainedTokenizerBase

from mtfsl.config import TrainConfig
from mtfsl.data.context import document_ids
from mtfsl.data.splits import Split
from mtfsl.errors import ConfigError
from mtfsl.model.multitask import MultiTaskModel
from mtfsl.pipeline.build import build_model
from mtfsl.pipeline.evaluate import predict_ids
from mtfsl.pipeline.prepare import EvalSet, collator_for, split_features
from mtfsl.resolve import Task, load_run_config, resolve_tasks, settle
from mtfsl.training.checkpoint import heal_checkpoint, is_partial, load_weights
from mtfsl.training.loop import build_accelerator
from mtfsl.utils.files import read_json


@dataclass
class LoadedRun:
    cfg: TrainConfig
    tasks: dict[str, Task]
    model: MultiTaskModel
    tokenizer: PreTrainedTokenizerBase
    labels: dict[str, list[str]]
    accelerator: Accelerator
    checkpoint: Path  # the best checkpoint's folder, as loaded
    # what computes the scores when not ``model`` (an ONNX Runtime graph: mtfsl.inference.ort)
    backend: Any = None

    def task(self, name: str | None) -> str:
        """The task to predict: ``name``, or the run's only task."""
        if name is None:
            if len(self.cfg.task) > 1:
                raise ConfigError(f"--task: the run has several tasks {list(self.cfg.task)}")
            return next(iter(self.cfg.task))
        if name not in self.cfg.task:
            raise ConfigError(f"--task={name}: not a task of this run {list(self.cfg.task)}")
        return name


def load_run(run_dir: Path) -> LoadedRun:
    """Rebuild the model exactly as training built it, then load the best checkpoint."""
    cfg = settle(load_run_config(run_dir))
    best = heal_checkpoint(run_dir / "checkpoints" / "best")  # or its complete copy
    if best is None:
        raise ConfigError(
            f"{run_dir}: no best checkpoint (checkpoints/best): the run did not finish, or its "
            f"few_shot.method={cfg.few_shot.method} trains no model (in-context learning: its "
            "predictions are in predictions/; run it again with other texts as the test file)"
        )
    labels = read_json(best / "labels.json")
    # a checkpoint that holds every weight does not need the run it started from
    if not is_partial(best / "model.safetensors"):
        cfg.model.init_from = None
    set_seed(cfg.seed)  # a partial checkpoint loads over the same (seeded) base weights
    tasks = resolve_tasks(cfg)
    model, tokenizer, _ = build_model(cfg, tasks, labels)
    load_weights(best, model)
    accelerator = build_accelerator(cfg.hardware, 1)
    model.to(accelerator.device).eval()
    return LoadedRun(cfg, tasks, model, tokenizer, labels, accelerator, best)


def predict(
    run: LoadedRun,
    task: str,
    inputs: list[Any],
    source: Path,
    *,
    docs: list[int | None] | None = None,
    lines: list[int] | None = None,
    own: range | None = None,
    probabilities: list[Any] | None = None,
) -> list[Any]:
    """Predicted labels for word lists (token tasks; a tag per word) or texts (one label).
    ``probabilities``: a list to fill with each input's probability of its predicted
    label(s), where the task's head gives one.

    ``docs`` (a document index per input, as CoNLL files give) lets a run trained with
    ``data.context`` see the neighbouring sentences; without them each input stands alone.
    ``lines`` number the inputs in error messages (default 1, 2, ...). ``own``: predict only
    these inputs, the others being there as their neighbours (a chunk of a stream).
    """
    labels, resolved = run.labels[task], run.tasks[task]
    task_cfg, kind = resolved.cfg, resolved.kind
    dummy = [kind.placeholder(x, labels) for x in inputs]
    ids = document_ids(docs) if docs else []  # per chunk of a stream: see data/context.py
    split = Split(source, inputs, dummy, lines or list(range(1, len(inputs) + 1)), ids)
    kind.attach_context(split, run.cfg.data.context, task)
    if own is not None:
        split = split.subset(list(own))
    feats = split_features(split, resolved, labels, run.tokenizer, run.cfg, cache=False)
    collator = collator_for([run.tasks[task].kind], run.tokenizer, run.cfg.hardware)
    ids = predict_ids(
        run.backend or run.model,
        resolved,
        EvalSet(feats, split),
        run.accelerator,
        collator,
        run.cfg.trainer.eval_batch_size,
        probabilities=probabilities,
    )
    return kind.to_labels(task_cfg, ids, labels)
