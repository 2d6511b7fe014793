"""The one registration pattern of mtfsl's plug-ins (task kinds, readers, task samplers, loss
weightings): a ``Registry`` by name, filled by the built-in modules and by the modules that
installed packages name in the registry's entry-point group (``mtfsl.kinds``,
``mtfsl.readers``, ``mtfsl.task_samplers``, ``mtfsl.weightings``); a config names a plug-in
and ``Registry.named`` gives it, or a one-line error listing the names there are."""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from mtfsl.errors import ConfigError

T = TypeVar("T")
log = logging.getLogger(__name__)


class Registry(dict[str, T], Generic[T]):
    """Plug-ins by name (each has a ``name`` attribute); ``what`` names them in errors."""

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    def add(self, item: T) -> T:
        name = item.name  # type: ignore[attr-defined]
        if name in self and type(self[name]) is not type(item):
            raise ValueError(f"two plug-ins are named {name!r} ({self.what})")
        self[name] = item
        return item

    def named(self, name: Any, key: str) -> T:
        """The plug-in called ``name``; a ConfigError naming the config ``key`` otherwise (and
        the installed plug-ins that failed to load, which may be the one meant)."""
        if name not in self:
            broken = "".join(f"; {p} failed to load ({err})" for p, err in BROKEN.items())
            raise ConfigError(f"{key}={name}: expected {self.what}, one of {sorted(self)}{broken}")
        return self[name]


def discover(package: str, path: Iterable[str], group: str, skip: tuple[str, ...]) -> None:
    """Import every module of ``package`` (each registers what it defines), then the
    entry-point group's."""
    for module in pkgutil.iter_modules(path):
        if module.name not in skip:
            importlib.import_module(f"{package}.{module.name}")
    load_entry_points(group)


# Installed plug-ins whose module failed to import: "group:name (value)" -> the error.
BROKEN: dict[str, str] = {}


def load_entry_points(group: str) -> None:
    """Import the modules that installed packages name in ``group``; each registers its
    plug-ins on import. One that fails to import is a warning naming it, not the end of
    every command: only a config that asks for what it would have registered fails."""
    for entry in entry_points(group=group):
        try:
            entry.load()
        except Exception as err:  # any error of a third-party module's import
            where = f"plug-in {entry.name} ({entry.value}, entry-point group {group})"
            reason = f"{type(err).__name__}: {err}".splitlines()[0]
            if where not in BROKEN:
                log.warning("%s failed to load and is skipped: %s", where, reason)
            BROKEN[where] = reason
