"""SHA-256 manifests of what mtfsl writes and later loads (checkpoints, resumable states,
exports): a ``SHA256SUMS`` file in ``sha256sum`` format, so ``sha256sum -c SHA256SUMS`` in
the folder checks it too. mtfsl checks it before loading; a file changed or damaged since it
was written is refused in one line, unless ``MTFSL_TRUST_CHANGED_FILES=1`` (or a command's
``--trust-changed-files``) says to load it anyway, which is logged."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from mtfsl.errors import MtfslError
from mtfsl.utils.digest import sha256

MANIFEST = "SHA256SUMS"
TRUST_ENV = "MTFSL_TRUST_CHANGED_FILES"
_SKIP = {MANIFEST, ".complete", "trainer.json"}  # the markers written after the manifest
log = logging.getLogger(__name__)


def write_manifest(folder: Path) -> None:
    """Checksums of every file under ``folder`` (the markers written last excepted)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in _SKIP)
    lines = [f"{sha256(p)}  {p.relative_to(folder).as_posix()}\n" for p in files]
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text("".join(lines), encoding="utf-8")
    tmp.rename(folder / MANIFEST)


def verify_manifest(folder: Path) -> None:
    """Check every file the folder's manifest lists; a folder written before manifests
    existed (none there) is loaded as it is."""
    path = folder / MANIFEST
    if not path.is_file():
        return
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            _refuse(f"{path}:{number}: not a 'SHA256  FILE' line")
            continue
        target = folder / name
        if not target.is_file():
            _refuse(f"{target}: listed in {path} but missing")
        elif sha256(target) != digest:
            _refuse(
                f"{target}: changed or damaged since it was written (its SHA-256 is not the one "
                f"in {path})"
            )


def _refuse(problem: str) -> None:
    if os.environ.get(TRUST_ENV) == "1":
        log.warning("%s; loaded anyway (%s=1)", problem, TRUST_ENV)
        return
    raise MtfslError(
        f"{problem}; restore the original, or load it anyway with {TRUST_ENV}=1 "
        "(mtfsl-predict and mtfsl-export: --trust-changed-files)"
    )
