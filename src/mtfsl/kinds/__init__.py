"""Registry of task kinds: every module of this package registers one, and installed
packages may add more through the ``mtfsl.kinds`` entry-point group."""

from __future__ import annotations

from typing import Any

from mtfsl.errors import ConfigError
from mtfsl.kinds.base import TaskKind
from mtfsl.plugins import discover

KINDS: dict[str, TaskKind] = {}


def register_kind(kind: TaskKind) -> TaskKind:
    """Make ``kind`` available as ``task.NAME.kind: KIND`` (and ``schema/kind/KIND``)."""
    if kind.name in KINDS and type(KINDS[kind.name]) is not type(kind):
        raise ValueError(f"two task kinds are named {kind.name!r}")
    KINDS[kind.name] = kind
    return kind


def get_kind(name: Any, key: str = "task.kind") -> TaskKind:
    """The registered kind called ``name``; a ConfigError naming ``key`` otherwise."""
    if name not in KINDS:
        raise ConfigError(f"{key}={name}: expected a task kind, one of {sorted(KINDS)}")
    return KINDS[name]


discover(__name__, __path__, "mtfsl.kinds", skip=("base",))
