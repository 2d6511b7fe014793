"""Registry of task kinds: every module of this package registers one, and installed
packages may add more through the ``mtfsl.kinds`` entry-point group."""

from __future__ import annotations

from typing import Any

from mtfsl.kinds.base import TaskKind
from mtfsl.plugins import Registry, discover

KINDS: Registry[TaskKind] = Registry("a task kind")
# Make a kind available as ``task.NAME.kind: KIND`` (and ``schema/kind/KIND``).
register_kind = KINDS.add


def get_kind(name: Any, key: str = "task.kind") -> TaskKind:
    return KINDS.named(name, key)


discover(__name__, __path__, "mtfsl.kinds", skip=("base",))
