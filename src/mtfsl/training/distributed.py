"""What ``mtfsl-train`` needs to know before the process group exists.

``torchrun`` and ``accelerate launch`` start one process per device and tell each its rank
through the environment; the accelerator joins the group later, in ``run``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from mtfsl.errors import ConfigError


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def check_shared_run_dir(hydra_overrides: Sequence[str]) -> None:
    """Every process must write into the same run folder. Hydra's default folder name is a
    timestamp taken in each process separately, so a multi-process run has to name it."""
    if world_size() > 1 and not any(o.startswith("hydra.run.dir=") for o in hydra_overrides):
        raise ConfigError(
            f"hydra.run.dir: a run with {world_size()} processes needs an explicit, shared run "
            "folder (e.g. hydra.run.dir=outputs/ddp-run); the default one is a timestamp that "
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
