"""What ``mtfsl-train`` needs to know before the process group exists.

``torchrun`` and ``accelerate launch`` start one process per device and tell each its rank
through the environment; the accelerator joins the group later, in ``run``.
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Sequence

import torch

from mtfsl.errors import ConfigError


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def check_shared_run_dir(hydra_overrides: Sequence[str], multirun: bool = False) -> None:
    """Every process must write into the same run folder. Hydra's default folder name is a
    timestamp taken in each process separately, so a multi-process run has to name it (a
    sweep its sweep folder: the jobs' subfolders are numbered the same in every process)."""
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    if world_size() > 1 and not any(o.startswith(f"{key}=") for o in hydra_overrides):
        what = "sweep" if multirun else "run"
        raise ConfigError(
            f"{key}: a {what} with {world_size()} processes needs an explicit, shared {what} "
            f"folder (e.g. {key}=outputs/ddp-{what}); the default one is a timestamp that "
            "each process takes on its own"
        )


def quiet_other_processes() -> None:
    """Only the main process logs progress and writes the run folder's log file."""
    if is_main_process():
        return
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler):
            root.removeHandler(handler)
    logging.getLogger("mtfsl").setLevel(logging.WARNING)


class ProcessGroupTeardown:
    """Destroy the process group once, when the process exits after a finished job.

    A Hydra sweep runs its jobs one after another in one process, so a job must not destroy
    the group the next one trains in. All processes meet before the teardown: pytorch#75097
    reports hangs when one tears the group down while another still works. After a failed
    job nothing waits (the failing process may be the one missing), and the launcher stops
    the others.
    """

    def __init__(self) -> None:
        self.armed = False

    def job_started(self) -> None:
        self.armed = False

    def job_finished(self) -> None:
        self.armed = True

    def at_exit(self) -> None:
        if self.armed and torch.distributed.is_initialized():
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()


process_group_teardown = ProcessGroupTeardown()
atexit.register(process_group_teardown.at_exit)
