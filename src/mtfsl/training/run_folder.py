"""A run folder belongs to one run: an OS lock while a process trains in it, and the identity
of the attempt (its id and config hash) that its resumable states must carry.

The lock is ``flock`` on ``RUN/.lock``: the kernel drops it when the process dies, ``kill -9``
included, so a folder is never left locked. A fresh run into a folder that already holds
resumable states (an attempt killed without SIGTERM, whose status stayed ``running``) moves
them aside and says so, so it never resumes from, keeps or deletes another attempt's states.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import platform
import time
import uuid
from pathlib import Path
from typing import IO, Any

from mtfsl.errors import MtfslError
from mtfsl.utils.files import read_json

log = logging.getLogger(__name__)
ATTEMPT_FILE = "attempt.json"


class RunFolderBusy(MtfslError):
    """Another live process trains in this run folder."""


def lock_run_folder(run_dir: Path) -> IO[str]:
    """Hold ``RUN/.lock`` until the returned handle is closed (or the process ends).

    Raises:
        RunFolderBusy: another process holds it; the message names its pid and host.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    handle = (run_dir / ".lock").open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunFolderBusy(
            f"{run_dir}: {holder} is training in this run folder; wait for it or use another "
            "hydra.run.dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"mtfsl-train pid {os.getpid()} on {platform.node()}\n")
    handle.flush()
    return handle


def busy_reason(run_dir: Path) -> str | None:
    """Why ``run_dir`` cannot take a new run now (a live holder of its lock), or None. Checked
    before Hydra writes its own files into the folder; ``lock_run_folder`` then holds it."""
    path = run_dir / ".lock"
    if not path.is_file():
        return None
    try:
        lock_run_folder(run_dir).close()
    except RunFolderBusy as err:
        return str(err)
    except OSError:
        return None  # not writable: the output-folder check says so
    return None


def config_hash(config_yaml: str) -> str:
    return hashlib.sha256(config_yaml.encode("utf-8")).hexdigest()[:16]


def start_attempt(run_dir: Path, config_yaml: str) -> dict[str, Any]:
    """A fresh run's identity, written to ``RUN/attempt.json``; states left by an earlier
    attempt are moved to ``checkpoints/earlier-attempt-*`` first."""
    states = sorted((run_dir / "checkpoints").glob("state-*"))
    if states:
        aside = run_dir / "checkpoints" / f"earlier-attempt-{time.strftime('%Y%m%d-%H%M%S')}"
        aside.mkdir(parents=True)
        for state in states:
            state.rename(aside / state.name)
        log.warning(
            "%s held %d resumable states of an earlier attempt (%s); moved to %s: this fresh "
            "run neither resumes from nor deletes them (resume=%s continues an attempt)",
            run_dir,
            len(states),
            ", ".join(s.name for s in states),
            aside,
            run_dir,
        )
    attempt = {"id": uuid.uuid4().hex[:12], "config": config_hash(config_yaml)}
    (run_dir / ATTEMPT_FILE).write_text(json.dumps(attempt, indent=1) + "\n")
    return attempt


def current_attempt(run_dir: Path) -> dict[str, Any] | None:
    """The attempt that wrote the run's config.yaml (None for runs from before attempts)."""
    path = run_dir / ATTEMPT_FILE
    return read_json(path) if path.is_file() else None
