"""Hydra callbacks: checks that have to run before Hydra creates the output folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from mtfsl.evaluation.report import atomic_write, write_json
from mtfsl.summary import group_jobs, markdown, read_sweep, summary_json
from mtfsl.training.distributed import is_main_process
from mtfsl.training.run_folder import busy_reason


def unwritable_reason(folder: Path) -> str | None:
    """Why ``folder`` cannot be created or written, or None when it can."""
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def _check(key: str, folder: str) -> None:
    reason = unwritable_reason(Path(folder))
    if reason is None:
        try:  # what os.access cannot tell (e.g. /proc): create it, as Hydra is about to
            Path(folder).mkdir(parents=True, exist_ok=True)
        except OSError as err:
            reason = err.strerror or str(err)
    if reason:
        print(f"mtfsl-train: error: {key}={folder}: cannot write there: {reason}", file=sys.stderr)
        sys.exit(2)


class OutputDirCheck(Callback):
    """A one-line error for an output folder that cannot be written (Hydra would otherwise
    fail with a traceback while creating it)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check("hydra.run.dir", config.hydra.run.dir)
        busy = busy_reason(Path(config.hydra.run.dir)) if is_main_process() else None
        if busy:  # before Hydra writes .hydra/ and train.log into another run's folder
            print(f"mtfsl-train: error: {busy}", file=sys.stderr)
            sys.exit(2)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check("hydra.sweep.dir", config.hydra.sweep.dir)


class SweepSummary(Callback):
    """After a multirun: ``summary.md`` / ``summary.json`` in the sweep folder with mean +-
    std of the test metrics over seeds/splits, printed as well."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(config.hydra.sweep.dir)
        groups = group_jobs(read_sweep(sweep))
        table = markdown(groups)
        atomic_write(sweep / "summary.md", table)
        write_json(sweep / "summary.json", summary_json(groups))
        print(f"\nSummary of {sweep} (mean +- sample std over seeds/splits):\n\n{table}")
