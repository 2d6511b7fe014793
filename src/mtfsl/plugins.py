"""Plug-in discovery shared by the registries of task kinds and readers: every module of the
registry's package is imported (each registers what it defines), then the modules that
installed packages name in the registry's entry-point group."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from importlib.metadata import entry_points


def discover(package: str, path: Iterable[str], group: str, skip: tuple[str, ...]) -> None:
    for module in pkgutil.iter_modules(path):
        if module.name not in skip:
            importlib.import_module(f"{package}.{module.name}")
    for entry in entry_points(group=group):
        entry.load()  # the module registers its plug-in on import
