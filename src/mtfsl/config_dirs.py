"""The user's config folders (``$MTFSL_CONFIG_DIR``), checked before Hydra reads them.

Hydra would ignore a folder that does not exist and answer a YAML syntax error with a long
traceback from inside its composition; both are the user's files, so they are checked here
first and named in one line.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from mtfsl.errors import ConfigError

ENV = "MTFSL_CONFIG_DIR"


def user_config_dirs() -> list[Path]:
    """The folders ``$MTFSL_CONFIG_DIR`` names (``os.pathsep``-separated), first one first."""
    return [Path(p).expanduser() for p in os.environ.get(ENV, "").split(os.pathsep) if p]


def check_user_configs() -> None:
    """Every named folder exists and every YAML file in it parses.

    Raises:
        ConfigError: the folder, or ``file:line:column`` and the parser's complaint.
    """
    for folder in user_config_dirs():
        if not folder.is_dir():
            raise ConfigError(
                f"{ENV}={folder}: no such folder (set it to a folder of config groups, "
                "e.g. one with task/mytask.yaml, or unset it)"
            )
        for path in sorted(folder.rglob("*.yaml")):
            _check_yaml(path)


def _check_yaml(path: Path) -> None:
    try:
        yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        what = ": ".join(str(p) for p in (err.context, err.problem) if p)
        raise ConfigError(f"{where}: not valid YAML ({what})") from None
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as err:
        raise ConfigError(f"{path}: cannot be read as YAML ({err})") from None
