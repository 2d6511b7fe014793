"""What produced a run: the code (mtfsl's version, and its git commit with a dirty flag when
it runs from a checkout), the library versions, the command line, the host and the times."""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mtfsl

LIBRARIES = ("mtfsl", "torch", "transformers", "datasets", "accelerate", "hydra-core", "peft")


def _git(folder: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def code_revision(folder: Path | None = None) -> dict[str, Any]:
    """The git commit of the folder mtfsl's code is in, and whether it has uncommitted
    changes; nulls for an installed package outside any checkout."""
    folder = folder or Path(mtfsl.__file__).resolve().parent
    commit = _git(folder, "rev-parse", "HEAD")
    status = _git(folder, "status", "--porcelain", "--untracked-files=no") if commit else None
    return {"git_commit": commit, "git_dirty": bool(status) if commit else None}


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def provenance() -> dict[str, Any]:
    return {
        **code_revision(),
        "code_path": str(Path(mtfsl.__file__).resolve().parent),
        "versions": {name: _version(name) for name in LIBRARIES},
        "python": platform.python_version(),
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "host": platform.node(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
