"""``mtfsl-train``: compose the config, validate it, build everything, train, report."""

from __future__ import annotations

import contextlib
import logging
import platform
import signal
import sys
import time
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from mtfsl import __version__
from mtfsl.config import AugMethod, TrainConfig, apply_few_shot_budget
from mtfsl.data.splits import TaskData, data_root, load_task
from mtfsl.errors import ConfigError, MtfslError
from mtfsl.evaluation.report import atomic_write, write_json
from mtfsl.resolve import Task, register_configs, resolve_tasks, to_train_config
from mtfsl.self_training import pool_for, self_train
from mtfsl.utils.console import library_bars

# torch, transformers, accelerate and datasets are imported inside the functions that run a
# job, after Hydra has read the command line: --help, --cfg and shell completion would
# otherwise wait seconds for them (scripts/bench_cli.py measures it).

log = logging.getLogger("mtfsl")
register_configs()


def to_config(dcfg: DictConfig) -> TrainConfig:
    """The one conversion from Hydra's DictConfig to the typed schema, plus validation, and
    a K-shot run's own step budget (``few_shot.max_steps``) where the trainer sets none."""
    cfg = to_train_config(dcfg)
    if note := apply_few_shot_budget(cfg):
        log.info(note)
    if cfg.model.init_from is not None:  # as config.yaml records it: from any folder
        cfg.model.init_from = str(Path(cfg.model.init_from).expanduser().resolve())
    return cfg


def _log_to(run_dir: Path) -> None:
    """Also append this process's log lines to the resumed run's own train.log."""
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    logging.getLogger().addHandler(handler)


def _augment(task: Task, data: TaskData, cfg: TrainConfig, translate, run_dir: Path | None) -> None:
    """Replace the task's training split by itself plus its augmented copies."""
    aug, name, kind = cfg.augmentation, task.name, task.kind
    seed = cfg.seed if aug.seed is None else aug.seed
    train = data.splits["train"]
    from mtfsl.data.augment import check_methods

    check_methods(aug.methods, kind.augmentations(task.cfg), kind.name, name)
    augmented, counts = kind.augment(train, aug, seed, translate)
    data.splits["train"] = augmented
    log.info(
        "augmentation %s: %d -> %d training examples %s", name, len(train), len(augmented), counts
    )
    if run_dir is not None:
        record = {
            "methods": [m.value for m in aug.methods],
            **{"copies": aug.copies, "p": aug.p, "seed": seed, "counts": counts},
            **{"before": len(train), "after": len(augmented)},
        }
        write_json(run_dir / "augmentation" / f"{name}.json", record)


def load_data(
    cfg: TrainConfig, tasks: dict[str, Task], run_dir: Path | None
) -> dict[str, TaskData]:
    """Every task's splits: few-shot version when ``few_shot.k`` is set, training split
    augmented when ``augmentation.methods`` are. What was drawn and made is recorded under
    ``run_dir/few_shot/`` and ``run_dir/augmentation/``."""
    from mtfsl.data.backtranslate import BackTranslator
    from mtfsl.pipeline.fewshot import apply_few_shot

    aug = cfg.augmentation
    bt = AugMethod.BACK_TRANSLATION in aug.methods
    translate = BackTranslator(aug.back_translation) if bt else None
    out = {}
    for name, task in tasks.items():
        full = load_task(task, cfg.data)
        root = data_root(cfg.data) if cfg.data.root is not None else None
        data, record = apply_few_shot(full, task, cfg.few_shot, cfg.seed, root)
        if record is not None and run_dir is not None:
            write_json(run_dir / "few_shot" / f"{name}.json", record)
        pool_for(data, full.splits["train"], task, cfg)
        if aug.methods:
            _augment(task, data, cfg, translate, run_dir)
        _limit(data, cfg.data.limit_train, cfg.data.limit_eval)
        out[name] = data
    return out


def _limit(data: TaskData, train: int | None, evaluation: int | None) -> None:
    """``data.limit_train`` / ``limit_eval``: keep the first examples of each split."""
    for split, examples in list(data.splits.items()):
        limit = train if split == "train" else evaluation
        if limit is not None and len(examples) > limit:
            data.splits[split] = examples.subset(list(range(limit)))
            log.warning(
                "%s %s: the first %d of %d examples only (data.limit_%s): a debugging run; "
                "its scores are not the task's",
                data.name,
                split,
                limit,
                len(examples),
                "train" if split == "train" else "eval",
            )


def run(cfg: TrainConfig, run_dir: Path, resume: bool = False) -> dict[str, Any]:
    """Train and evaluate; write metrics.json, reports, predictions and the best checkpoint.

    With ``resume``, continue from ``run_dir``'s latest resumable state instead of step 0.
    """
    from accelerate.utils import set_seed

    from mtfsl.model.dropout import use_fast_dropout
    from mtfsl.pipeline.build import build_model
    from mtfsl.pipeline.prepare import prepare_task
    from mtfsl.training import tracking
    from mtfsl.training.loop import Trainer, TrainingInterrupted, build_accelerator
    from mtfsl.training.run_folder import start_attempt
    from mtfsl.utils.memory import peak_memory_mb

    accelerator = build_accelerator(
        cfg.hardware,
        cfg.trainer.grad_accum_steps,
        multi_task=len(cfg.task) > 1,
        log_with=tracking.log_with(cfg.tracking),
        project_dir=run_dir,
    )
    main = accelerator.is_main_process
    library_bars(cfg.trainer.library_progress_bars)
    if not resume and main:
        run_dir.mkdir(parents=True, exist_ok=True)
        config_yaml = OmegaConf.to_yaml(OmegaConf.structured(cfg))
        start_attempt(run_dir, config_yaml)  # moves an earlier attempt's states aside
        atomic_write(run_dir / "config.yaml", config_yaml)
    accelerator.wait_for_everyone()  # every process reads the attempt the main one started
    params = OmegaConf.to_container(OmegaConf.structured(cfg), enum_to_str=True)
    tracking.start(accelerator, cfg.tracking, run_dir, params)
    if resume and cfg.few_shot.self_training.rounds:
        raise ConfigError(
            "resume: a self-training run (few_shot.self_training.rounds > 0) cannot be resumed "
            "(its teacher and students share the run folder's states); start it again"
        )
    resolved = resolve_tasks(cfg)
    data = load_data(cfg, resolved, run_dir if main else None)
    labels = {n: d.labels for n, d in data.items()}

    def build():
        set_seed(cfg.seed)
        model, tokenizer, counts = build_model(cfg, resolved, labels)
        if cfg.hardware.fast_dropout:
            use_fast_dropout(model)
        if cfg.hardware.compile:  # in place, so parameter names (and checkpoints) stay the same
            model.encoder.compile(dynamic=True)
        if accelerator.num_processes > 1:  # same weights everywhere, different dropout masks
            set_seed(cfg.seed, device_specific=True)
        return model, tokenizer, counts

    model, tokenizer, (trainable, total) = build()
    # The main process fills the tokenisation cache; the others then read it.
    with accelerator.main_process_first():
        tasks = {name: prepare_task(resolved[name], d, cfg, tokenizer) for name, d in data.items()}
    for task in tasks.values():
        log.info(
            "task %s: %d labels, %d train examples -> %d rows",
            task.name,
            len(task.labels),
            len(task.train_split),
            len(task.train),
        )
    trainer = Trainer(cfg, model, tokenizer, tasks, run_dir, accelerator)
    if resume:
        trainer.resume()
    state = trainer.fit()
    rounds: dict[str, float] = {}
    if cfg.few_shot.self_training.rounds:
        trainer.restore_best()  # the teacher
        trainer, state, rounds = self_train(
            cfg, run_dir, accelerator, trainer, tasks, lambda: build()[:2]
        )
    try:
        best = trainer.restore_best()
        metrics: dict[str, Any] = {}
        for split in ("dev", "test"):
            start = time.perf_counter()
            if split == "dev" and trainer.best_dev is not None:  # the best checkpoint's own
                results, predictions = trainer.best_dev  # evaluation: same weights, same scores
                metrics.update(results)
                trainer.write_outputs("dev", predictions)
                trainer.predict_seconds = 0.0
            else:
                metrics.update(trainer.evaluate(split, write=True))
            metrics[f"time/eval_{split}_seconds"] = time.perf_counter() - start  # + files
            metrics[f"time/predict_{split}_seconds"] = trainer.predict_seconds
    except JobInterrupted as err:  # training is complete: keep it, resume only evaluates
        trainer.save_state()
        raise TrainingInterrupted(
            f"{err} during the final evaluation (training complete at step {state.step}); "
            f"state saved. Resume with: mtfsl-train resume={run_dir}"
        ) from None
    if (score := trainer.selection_score(metrics)) is not None:
        metrics["dev/selection_score"] = score  # the model-selection metric, for sweeps
    metrics.update(
        {
            "train/steps": state.step,
            "train/best_step": best["step"],
            "train/tokens": state.train_tokens,
            "train/padding_fraction": 1 - state.train_tokens / max(state.train_positions, 1),
            "train/attention_positions": state.train_attention,
            "train/skipped_steps": state.skipped_steps,
            "time/train_seconds": state.train_seconds,
            "time/train_tokens_per_second": state.train_tokens / max(state.train_seconds, 1e-9),
        }
    )
    metrics.update({f"train/{n}/examples": len(t.train_split) for n, t in trainer.tasks.items()})
    metrics.update(rounds)
    metrics.update(peak_memory_mb())
    metrics["train/processes"] = accelerator.num_processes
    metrics["train/trainable_parameters"], metrics["train/parameters"] = trainable, total
    # dev curves were logged during training; the final dev scores are the best checkpoint's
    final = {(k if k.startswith("test/") else f"best/{k}"): v for k, v in metrics.items()}
    accelerator.log(final, step=state.step)
    # Not accelerator.end_training(): it destroys the process group, which the next job of a
    # sweep needs (process_group_teardown destroys it when the process exits).
    accelerator.wait_for_everyone()
    tracking.finish(accelerator, cfg.tracking, params, final)
    if main:
        write_json(run_dir / "metrics.json", metrics)
        write_json(run_dir / "dev_history.json", {"history": state.history})
    log.info(
        "test: %s", " ".join(f"{k} {v:.2f}" for k, v in metrics.items() if k.startswith("test/"))
    )
    return metrics


def _status(run_dir: Path, status: str, **extra: Any) -> None:
    """Write ``status.json``. When that fails (a full disk), say so on stderr and remove the
    old file rather than leave one that says something no longer true."""
    from mtfsl.training.distributed import is_main_process

    if not is_main_process():
        return
    path = run_dir / "status.json"
    try:
        write_json(path, {"status": status, **extra})
    except OSError as err:
        path.with_name(f".{path.name}.tmp").unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        print(
            f"mtfsl-train: warning: cannot write {path} ({err.strerror or err}); the run "
            f"{status}, and its folder holds no status",
            file=sys.stderr,
        )


class JobInterrupted(MtfslError):
    """SIGINT/SIGTERM outside the training steps (reading, tokenising, evaluating)."""


def _interrupt(signum: int, frame: object) -> None:
    raise JobInterrupted(f"interrupted by {signal.Signals(signum).name}")


@hydra.main(version_base="1.3", config_path="pkg://mtfsl.configs", config_name="train")
def main(dcfg: DictConfig) -> float | None:
    from mtfsl.provenance import provenance
    from mtfsl.resume import resume_config
    from mtfsl.training.distributed import (
        check_shared_run_dir,
        is_main_process,
        process_group_teardown,
        quiet_other_processes,
    )
    from mtfsl.training.loop import TrainingInterrupted
    from mtfsl.training.run_folder import RunFolderBusy, lock_run_folder

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    about = {"version": __version__, "host": platform.node()}
    quiet_other_processes()
    process_group_teardown.job_started()
    try:
        check_shared_run_dir(hydra_cfg.overrides.hydra, hydra_cfg.mode == RunMode.MULTIRUN)
        cfg = to_config(dcfg)
        resume = cfg.resume is not None
        if resume:  # errors here concern this invocation, not the run it names
            cfg = resume_config(Path(cfg.resume), dcfg, list(hydra_cfg.overrides.task))
    except MtfslError as err:
        _status(run_dir, "failed", reason=str(err), **about)
        print(f"mtfsl-train: error: {err}", file=sys.stderr)
        sys.exit(2)
    if resume:
        run_dir = Path(str(dcfg.resume))
    try:  # one run per folder: a second one refuses and writes nothing there
        lock = lock_run_folder(run_dir) if is_main_process() else None
    except RunFolderBusy as err:
        print(f"mtfsl-train: error: {err}", file=sys.stderr)
        sys.exit(2)
    try:
        if resume:
            if is_main_process():
                _log_to(run_dir)
            log.info(
                "resuming %s (this invocation's own log folder: %s)",
                run_dir,
                hydra_cfg.runtime.output_dir,
            )
        _status(run_dir, "running", **about)
        log.info("run folder: %s", run_dir)
        record = provenance()
        if is_main_process():  # a resumed run keeps its first attempt's record beside it
            stamp = time.strftime("%Y%m%d-%H%M%S")
            name = f"provenance-resume-{stamp}.json" if resume else "provenance.json"
            write_json(run_dir / name, record)
        handlers = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:  # the training steps have their own handler, which saves a resumable state
            metrics = run(cfg, run_dir, resume)
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        if is_main_process():
            ended = {**record, "ended": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            write_json(run_dir / name, ended)
        _status(run_dir, "finished", **about)
        log.info("finished; run folder: %s (metrics.json, reports/, predictions/)", run_dir)
    except (TrainingInterrupted, JobInterrupted) as err:
        reason = str(err)
        if isinstance(err, JobInterrupted):  # outside the steps: no state of its own
            reason += (
                " outside the training steps (reading, tokenising or setting up); run the same "
                "command again, or resume= from a state that trainer.save_every wrote"
            )
        _status(run_dir, "interrupted", reason=reason, **about)
        print(f"mtfsl-train: {reason}", file=sys.stderr)
        sys.exit(130)
    except MtfslError as err:
        _status(run_dir, "failed", reason=str(err), **about)
        print(f"mtfsl-train: error: {err}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:  # the machine's, not the run's: a full disk, a lost mount, ...
        _status(run_dir, "failed", reason=f"{type(err).__name__}: {err}", **about)
        print(f"mtfsl-train: error: {err}", file=sys.stderr)
        sys.exit(1)
    except BaseException as err:  # a bug or an interrupt: never leave "running" behind
        _status(run_dir, "failed", reason=f"{type(err).__name__}: {err}", **about)
        raise
    finally:
        if lock is not None:
            lock.close()
    process_group_teardown.job_finished()
    return metrics.get("dev/selection_score")  # the sweep objective (e.g. for Optuna)


def cli() -> None:
    """The ``mtfsl-train`` command: ``--help`` answered at once (``cli_help``), everything
    else by Hydra (``main``)."""
    args = sys.argv[1:]
    if "--help" in args or "-h" in args:
        from mtfsl.cli_help import help_text

        sys.stdout.write(help_text())
        return
    main()


if __name__ == "__main__":
    cli()
