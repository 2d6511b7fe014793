"""The package's layers (pyproject.toml's import-linter contracts) and the one place a task's
kind is looked up by name."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "mtfsl"
_BESIDE = Path(sys.executable).parent / "lint-imports"
LINT_IMPORTS = str(_BESIDE) if _BESIDE.is_file() else shutil.which("lint-imports")


def test_import_contracts_are_kept() -> None:
    assert LINT_IMPORTS, "lint-imports is not installed: pip install '.[dev]'"
    root = SRC.parents[1]
    proc = subprocess.run([LINT_IMPORTS], cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "5 kept, 0 broken" in proc.stdout


def test_a_kind_is_looked_up_only_by_its_registry_and_the_resolution_step() -> None:
    found = sorted(
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if re.search(r"\bget_kind\(", path.read_text(encoding="utf-8"))
    )
    assert found == ["kinds/__init__.py", "resolve.py"]
