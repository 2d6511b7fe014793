"""The package's layers (pyproject.toml's import-linter contracts), the kinds' declared
protocols (mypy), and the one place a task's kind is looked up by name."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "mtfsl"


def _tool(name: str) -> str | None:
    """The console script installed beside this interpreter (a venv's bin/), else on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name)


LINT_IMPORTS, MYPY = _tool("lint-imports"), _tool("mypy")


def test_import_contracts_are_kept() -> None:
    assert LINT_IMPORTS, "lint-imports is not installed: pip install '.[dev]'"
    proc = subprocess.run([LINT_IMPORTS], cwd=SRC.parents[1], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "7 kept, 0 broken" in proc.stdout


def test_every_kind_has_the_declared_protocols() -> None:
    """mypy on src/mtfsl/kinds (pyproject.toml): each registered kind against ``Kind``."""
    assert MYPY, "mypy is not installed: pip install '.[dev]'"
    proc = subprocess.run([MYPY], cwd=SRC.parents[1], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_a_kind_is_looked_up_only_by_its_registry_and_the_resolution_step() -> None:
    found = sorted(
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if re.search(r"\bget_kind\(", path.read_text(encoding="utf-8"))
    )
    assert found == ["kinds/__init__.py", "resolve.py"]
