"""Registry of task kinds: every module of this package registers one, and installed
packages may add more through the ``mtfsl.kinds`` entry-point group."""

from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import entry_points
from typing import Any

from mtfsl.errors import ConfigError
from mtfsl.kinds.base import TaskKind

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


def _discover() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base":
            importlib.import_module(f"{__name__}.{module.name}")
    for entry in entry_points(group="mtfsl.kinds"):
        entry.load()  # the module registers its kind on import


_discover()
