"""Experiment tracking through accelerate's trackers (TensorBoard, MLflow)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

from accelerate import Accelerator

from mtfsl.config import Tracker, TrackingConfig
from mtfsl.errors import ConfigError

_PACKAGES = {Tracker.TENSORBOARD: "tensorboard", Tracker.MLFLOW: "mlflow"}


def flat_params(tree: Any, prefix: str = "") -> dict[str, str | int | float | bool]:
    """A nested config as ``{"a.b": value}`` with scalars only (what trackers accept)."""
    if isinstance(tree, dict):
        out: dict[str, str | int | float | bool] = {}
        for key, value in tree.items():
            out.update(flat_params(value, f"{prefix}{key}."))
        return out
    if isinstance(tree, Enum):
        tree = tree.name
    if tree is None or isinstance(tree, list | tuple):
        tree = str(tree)
    return {prefix[:-1]: tree}


def log_with(cfg: TrackingConfig) -> str | None:
    if cfg.kind is Tracker.NONE:
        return None
    package = _PACKAGES[cfg.kind]
    try:
        __import__(package)
    except ImportError:
        raise ConfigError(
            f"tracking.kind={cfg.kind.name}: the '{package}' package is not installed "
            "(pip install 'mtfsl[tracking]')"
        ) from None
    return cfg.kind.value


def start(accelerator: Accelerator, cfg: TrackingConfig, run_dir: Path, params: dict) -> None:
    """Open the tracker run (main process only; accelerate handles that)."""
    if cfg.kind is Tracker.NONE:
        return
    if cfg.kind is Tracker.MLFLOW and accelerator.is_main_process:
        import mlflow

        mlflow.set_tracking_uri(cfg.mlflow_uri or f"sqlite:///{(run_dir / 'mlflow.db').resolve()}")
    name = cfg.experiment if cfg.kind is Tracker.MLFLOW else "tensorboard"
    accelerator.init_trackers(name, config=flat_params(params))
