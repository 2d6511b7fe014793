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
from omegaconf import DictConfig

from mtfsl import __version__
from mtfsl.config import TrainConfig, apply_few_shot_budget
from mtfsl.errors import MtfslError
from mtfsl.evaluation.report import write_json
from mtfsl.job import JobInterrupted, run
from mtfsl.methods import method_named
from mtfsl.resolve import register_configs, to_train_config

# torch, transformers, accelerate and datasets are imported inside the functions that run a
# job, after Hydra has read the command line: --help, --cfg and shell completion would
# otherwise wait seconds for them (scripts/bench_cli.py measures it).

log = logging.getLogger("mtfsl")
register_configs()


def to_config(dcfg: DictConfig) -> TrainConfig:
    """The one conversion from Hydra's DictConfig to the typed schema, plus validation, and
    a K-shot run's own step budget (``few_shot.max_steps``) where the trainer sets none."""
    cfg = to_train_config(dcfg)
    if method_named(cfg.few_shot.method).trains and (note := apply_few_shot_budget(cfg)):
        log.info(note)
    if cfg.model.init_from is not None:  # as config.yaml records it: from any folder
        cfg.model.init_from = str(Path(cfg.model.init_from).expanduser().resolve())
    return cfg


def _log_to(run_dir: Path) -> None:
    """Also append this process's log lines to the resumed run's own train.log."""
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    logging.getLogger().addHandler(handler)


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


def _interrupt(signum: int, frame: object) -> None:
    ignore_signals()  # one interruption: a second signal does not cut the stop short
    raise JobInterrupted(f"interrupted by {signal.Signals(signum).name}")


def _interruption(err: BaseException) -> bool:
    from mtfsl.training.loop import TrainingInterrupted

    return isinstance(err, (TrainingInterrupted, JobInterrupted))


def ignore_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def _restore(handlers: dict) -> None:
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


def _configure(dcfg: DictConfig, hydra_cfg: Any, about: dict) -> tuple[TrainConfig, Path]:
    """The typed, checked config and the run folder (a resumed run's own); a config error
    is written to this invocation's folder and ends the command (exit 2)."""
    from mtfsl.resume import resume_config
    from mtfsl.training.distributed import check_shared_run_dir

    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        check_shared_run_dir(hydra_cfg.overrides.hydra, hydra_cfg.mode == RunMode.MULTIRUN)
        cfg = to_config(dcfg)
        if cfg.resume is not None:  # errors here concern this invocation, not the run it names
            cfg = resume_config(Path(cfg.resume), dcfg, list(hydra_cfg.overrides.task))
            run_dir = Path(str(dcfg.resume))
    except MtfslError as err:
        _status(run_dir, "failed", reason=str(err), **about)
        print(f"mtfsl-train: error: {err}", file=sys.stderr)
        sys.exit(2)
    return cfg, run_dir


def _job(cfg: TrainConfig, run_dir: Path, about: dict, own_dir: str) -> dict[str, Any]:
    """``run`` with the run folder's status, provenance record and log, and SIGINT/SIGTERM
    outside the training steps raising ``JobInterrupted`` (the steps have their own handler,
    which saves a resumable state)."""
    from mtfsl.provenance import provenance
    from mtfsl.training.distributed import is_main_process

    resume = cfg.resume is not None
    if resume:
        if is_main_process():
            _log_to(run_dir)
        log.info("resuming %s (this invocation's own log folder: %s)", run_dir, own_dir)
    _status(run_dir, "running", **about)
    log.info("run folder: %s", run_dir)
    record = provenance()
    # a resumed run keeps its first attempt's record beside it
    name = f"provenance-resume-{time.strftime('%Y%m%d-%H%M%S')}.json" if resume else None
    name = name or "provenance.json"
    if is_main_process():
        write_json(run_dir / name, record)
    handlers = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        metrics = run(cfg, run_dir, resume)
    except BaseException as err:
        if _interruption(err):
            # a stop for a signal is under way: what it saved is on disk and it ends with exit
            # 130; a second signal until then is ignored (not Python's default exit 143)
            ignore_signals()
        else:
            _restore(handlers)
        raise
    _restore(handlers)
    if is_main_process():
        write_json(run_dir / name, {**record, "ended": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    _status(run_dir, "finished", **about)
    log.info("finished; run folder: %s (metrics.json, reports/, predictions/)", run_dir)
    return metrics


def _stop(err: BaseException, run_dir: Path, about: dict) -> None:
    """The run folder's status and the command's exit code for what stopped the job: an
    interrupt 130, a run's error 2, the machine's (a full disk, a lost mount) 1; anything
    else (a bug) is recorded as failed and goes on up, so "running" is never left behind."""
    from mtfsl.training.loop import TrainingInterrupted

    if isinstance(err, (TrainingInterrupted, JobInterrupted)):
        reason = str(err)
        if isinstance(err, JobInterrupted):  # outside the steps: no state of its own
            reason += (
                " outside the training steps (reading, tokenising or setting up); run the same "
                "command again, or resume= from a state that trainer.save_every wrote"
            )
        _status(run_dir, "interrupted", reason=reason, **about)
        print(f"mtfsl-train: {reason}", file=sys.stderr)
        sys.exit(130)
    if isinstance(err, MtfslError):
        _status(run_dir, "failed", reason=str(err), **about)
        print(f"mtfsl-train: error: {err}", file=sys.stderr)
        sys.exit(2)
    _status(run_dir, "failed", reason=f"{type(err).__name__}: {err}", **about)
    if isinstance(err, OSError):
        print(f"mtfsl-train: error: {err}", file=sys.stderr)
        sys.exit(1)


@hydra.main(version_base="1.3", config_path="pkg://mtfsl.configs", config_name="train")
def main(dcfg: DictConfig) -> float | None:
    from mtfsl.training.distributed import (
        is_main_process,
        process_group_teardown,
        quiet_other_processes,
    )
    from mtfsl.training.run_folder import RunFolderBusy, lock_run_folder

    hydra_cfg = HydraConfig.get()
    about = {"version": __version__, "host": platform.node()}
    quiet_other_processes()
    process_group_teardown.job_started()
    cfg, run_dir = _configure(dcfg, hydra_cfg, about)
    try:  # one run per folder: a second one refuses and writes nothing there
        lock = lock_run_folder(run_dir) if is_main_process() else None
    except RunFolderBusy as err:
        print(f"mtfsl-train: error: {err}", file=sys.stderr)
        sys.exit(2)
    try:
        metrics = _job(cfg, run_dir, about, hydra_cfg.runtime.output_dir)
    except BaseException as err:
        _stop(err, run_dir, about)
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
    from mtfsl.config_dirs import check_user_configs

    try:
        check_user_configs()
    except MtfslError as err:
        print(f"mtfsl-train: error: {err}", file=sys.stderr)
        sys.exit(2)
    main()


if __name__ == "__main__":
    cli()
