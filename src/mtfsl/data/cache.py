"""The tokenisation cache checks itself: each Arrow file of features has a SHA-256 beside it,
written after the file and verified before the file is used. A damaged, truncated or altered
file is reported with its path, removed and rebuilt; a cache folder that cannot be written
falls back to memory with a warning."""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

from mtfsl.utils.digest import sha256

log = logging.getLogger(__name__)


def _sums(path: Path) -> Path:
    return path.with_name(f"{path.name}.sha256")


@functools.cache  # once per folder and process
def _warn_unwritable(folder: str, reason: str) -> None:
    log.warning(
        "data.cache_dir=%s: cannot write there (%s); features stay in memory", folder, reason
    )


def cache_file(folder: str | Path, name: str) -> Path | None:
    """The path for a cached features file in ``folder`` (created if missing), after a
    damaged copy there was removed; None when the folder cannot be written."""
    path = Path(folder).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        _warn_unwritable(str(path), err.strerror or str(err))
        return None
    if not os.access(path, os.W_OK | os.X_OK):
        _warn_unwritable(str(path), "not writable")
        return None
    target = path / name
    if target.exists() and not verified(target):
        log.warning(
            "%s: damaged tokenisation cache file (checksum mismatch); rebuilding it", target
        )
        target.unlink(missing_ok=True)
        _sums(target).unlink(missing_ok=True)
    return target


def verified(path: Path) -> bool:
    """The file's content is the one its checksum was taken of."""
    sums = _sums(path)
    try:
        return sums.read_text().strip() == sha256(path)
    except OSError:
        return False


def seal(path: Path) -> None:
    """Record the checksum of a newly written cache file (once; an existing one stays)."""
    sums = _sums(path)
    if path.is_file() and not sums.is_file():
        tmp = sums.with_name(f".{sums.name}.tmp")
        tmp.write_text(sha256(path) + "\n")
        os.replace(tmp, sums)
