"""Hydra search-path plugin: config folders named in ``$MTFSL_CONFIG_DIR`` come before
mtfsl's own, so their files (e.g. ``task/mytask.yaml``) add to the shipped options or replace
the ones of the same name. Several folders are separated by ``os.pathsep`` (``:``); the first
wins. Hydra finds this module through the ``hydra_plugins`` namespace package.
"""

from __future__ import annotations

import os
from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath, SearchPathQuery
from hydra.plugins.search_path_plugin import SearchPathPlugin

ENV = "MTFSL_CONFIG_DIR"


class MtfslUserConfigs(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        folders = [f for f in os.environ.get(ENV, "").split(os.pathsep) if f]
        for folder in reversed(folders):  # each prepended: the first listed ends up first
            path = Path(folder).expanduser().resolve()
            search_path.prepend(
                provider="mtfsl-user",
                path=f"file://{path}",
                anchor=SearchPathQuery(provider="main"),
            )
