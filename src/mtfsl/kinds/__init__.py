"""Registry of task kinds: every module of this package registers one, and installed
packages may add more through the ``mtfsl.kinds`` entry-point group."""

from __future__ import annotations

from typing import Any

from mtfsl.kinds.protocols import Kind
from mtfsl.plugins import Registry, discover

KINDS: Registry[Kind] = Registry("a task kind")
# Make a kind available as ``task.NAME.kind: KIND`` (and ``schema/kind/KIND``).
register_kind = KINDS.add


def get_kind(name: Any, key: str = "task.kind") -> Kind:
    return KINDS.named(name, key)


discover(__name__, __path__, "mtfsl.kinds", skip=("base", "parts", "protocols"))
