"""Experiment tracking through accelerate's trackers (TensorBoard, MLflow, W&B)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

from accelerate import Accelerator

from mtfsl.config import Tracker, TrackingConfig
from mtfsl.errors import ConfigError

_PACKAGES = {Tracker.TENSORBOARD: "tensorboard", Tracker.MLFLOW: "mlflow", Tracker.WANDB: "wandb"}


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
    if cfg.kind is Tracker.TENSORBOARD:
        # Not init_trackers(config=...): accelerate writes TensorBoard hyperparameters with no
        # metrics, into a sub-run of their own, so the HParams view cannot compare runs.
        # ``finish`` writes them with the final metrics into the run itself.
        accelerator.init_trackers("tensorboard")
        return
    # W&B: the run's files in the run folder, the run named after it
    init = {"wandb": {"dir": str(run_dir), "name": run_dir.name}}
    accelerator.init_trackers(cfg.experiment, config=flat_params(params), init_kwargs=init)


def finish(accelerator: Accelerator, cfg: TrackingConfig, params: dict, final: dict) -> None:
    """Log the final metrics (the best checkpoint's dev scores, the test scores) at ``step``
    was done by the caller; here TensorBoard also gets the hyperparameters with them (the
    HParams plugin's summaries in the same run), then every tracker is closed."""
    if cfg.kind is Tracker.TENSORBOARD and accelerator.is_main_process:
        from torch.utils.tensorboard.summary import hparams

        writer = accelerator.get_tracker("tensorboard", unwrap=True)
        metrics = {k: float(v) for k, v in final.items() if k.startswith(("test/", "best/dev/"))}
        for summary in hparams(flat_params(params), metrics):
            writer.file_writer.add_summary(summary)
        writer.flush()
    for tracker in accelerator.trackers:
        tracker.finish()
