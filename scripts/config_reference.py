"""Write docs/configuration.md: every config key of mtfsl-train, its type, default and the
comment above it in the schema (``mtfsl/config.py``, each kind's and reader's module), from
the dataclasses themselves, so the reference cannot drift from the code.

    python scripts/config_reference.py [--check]     (--check: fail if the file is stale)
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import sys
import textwrap
from enum import Enum
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def field_comments(cls: type) -> dict[str, str]:
    """Per field of a dataclass, the comment lines right above it (and a trailing comment)."""
    source = textwrap.dedent(inspect.getsource(cls))
    lines = source.splitlines()
    out: dict[str, str] = {}
    for node in ast.parse(source).body[0].body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            above, row = [], node.lineno - 2
            while row >= 0 and lines[row].strip().startswith("#"):
                above.insert(0, lines[row].strip().lstrip("#").strip())
                row -= 1
            line = lines[node.lineno - 1]
            if "  # " in line:
                above.append(line.split("  # ", 1)[1].strip())
            out[node.target.id] = " ".join(above)
    return out


def default_of(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "(required)"
    if dataclasses.is_dataclass(value):
        return ""
    if isinstance(value, Enum):
        return value.name
    return "null" if value is None else repr(value) if isinstance(value, str) else str(value)


def type_of(f: dataclasses.Field, hints: dict[str, Any]) -> str:
    hint = hints.get(f.name, f.type)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return " / ".join(m.name for m in hint)
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def rows(cls: type, prefix: str, seen: set[type], skip: frozenset[str] = frozenset()) -> list[str]:
    import typing

    hints = typing.get_type_hints(cls)
    comments = {}
    for base in reversed(cls.__mro__):
        if dataclasses.is_dataclass(base):
            comments.update(field_comments(base))
    out = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        hint = hints.get(f.name)
        key = f"{prefix}{f.name}"
        if isinstance(hint, type) and dataclasses.is_dataclass(hint) and hint not in seen:
            out += rows(hint, f"{key}.", seen | {hint})
            continue
        note = comments.get(f.name, "").replace("|", "\\|")
        kind = type_of(f, hints).replace("|", "\\|")
        default = default_of(f).replace("|", "\\|")
        out.append(f"| `{key}` | {kind} | `{default}` | {note} |")
    return out


def table(title: str, cls: type, prefix: str, skip: frozenset[str] = frozenset()) -> str:
    head = "| key | type | default | meaning |\n|---|---|---|---|"
    return f"## {title}\n\n{head}\n" + "\n".join(rows(cls, prefix, {cls}, skip)) + "\n"


def reference() -> str:
    from mtfsl.config import ReaderConfig, TaskConfig, TrainConfig
    from mtfsl.data.readers import READERS
    from mtfsl.kinds import KINDS

    shared = frozenset(f.name for f in dataclasses.fields(TaskConfig)) - {"kind"}
    reader_shared = frozenset(f.name for f in dataclasses.fields(ReaderConfig))

    parts = [
        "# Configuration reference\n\n"
        "Generated from the schema by `python scripts/config_reference.py`; every key can be "
        "set on the command line (`KEY=VALUE`) or in a YAML file. Task keys live under "
        "`task.NAME.` and depend on the task's kind; reader keys under `task.NAME.reader.`.\n",
        table("mtfsl-train", TrainConfig, ""),
        table("Every task (any kind)", TaskConfig, "task.NAME.", frozenset({"kind"})),
    ]
    parts += [
        table(f"Task kind `{n}` (its own keys)", k.schema, "task.NAME.", shared)
        for n, k in sorted(KINDS.items())
    ]
    parts += [
        table(f"Reader `{n}` (besides `format`)", r.schema, "task.NAME.reader.", reader_shared)
        for n, r in sorted(READERS.items())
    ]
    return "\n".join(parts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="fail if docs/configuration.md is stale")
    text = reference()
    if p.parse_args().check:
        if OUT.read_text() != text:
            sys.exit(f"{OUT} is stale: run python scripts/config_reference.py")
        return
    OUT.write_text(text)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
