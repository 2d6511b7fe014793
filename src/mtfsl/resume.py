"""``resume=RUN``: continue a run folder with the config it was started with. Overrides on
the resuming command line are applied when they are safe to change mid-run and refused
otherwise, so none is ignored in silence."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mtfsl.config import TrainConfig
from mtfsl.errors import ConfigError
from mtfsl.resolve import load_run_config
from mtfsl.training.run_folder import config_hash, current_attempt

# Keys that change how a run is executed or reported, never what it computes.
SAFE_ON_RESUME = (
    "hardware.threads",
    "hardware.num_workers",
    "trainer.log_every_steps",
    "trainer.save_every",
    "trainer.keep_last",
    "trainer.eval_batch_size",
    "trainer.resume_damaged_rng",
    "tracking.",
)


def override_key(override: str) -> str:
    """The config key of a Hydra override (``+a.b=1`` -> ``a.b``)."""
    return override.split("=", 1)[0].lstrip("+~")


def resume_config(run_dir: Path, composed: DictConfig, overrides: list[str]) -> TrainConfig:
    """The run's own config, with this command line's safe overrides applied.

    Raises:
        ConfigError: not a run folder, an already finished run, or an override that would
            change what the run computes (named, with the keys that may change).
    """
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"resume={run_dir}: not an mtfsl run folder (no config.yaml there)")
    status_file = run_dir / "status.json"
    status = json.loads(status_file.read_text()).get("status") if status_file.is_file() else None
    if status == "finished":
        raise ConfigError(f"resume={run_dir}: the run has finished; there is nothing to resume")
    attempt = current_attempt(run_dir)
    if attempt and attempt["config"] != config_hash((run_dir / "config.yaml").read_text()):
        raise ConfigError(
            f"resume={run_dir}: config.yaml was changed after the run started (its hash is not "
            f"attempt {attempt['id']}'s); a resumed run must continue the config it began with"
        )
    keys = [override_key(o) for o in overrides if override_key(o) != "resume"]
    refused = [k for k in keys if not k.startswith(SAFE_ON_RESUME) and k != "data.root"]
    if refused:
        raise ConfigError(
            f"resume={run_dir}: {', '.join(refused)} cannot change when resuming (the run "
            f"continues with its own config.yaml); keys that may: {', '.join(SAFE_ON_RESUME)}"
        )
    cfg = load_run_config(run_dir)
    merged = OmegaConf.structured(cfg)
    for key in keys:
        OmegaConf.update(merged, key, OmegaConf.select(composed, key), merge=False)
    out = OmegaConf.to_object(merged)
    assert isinstance(out, TrainConfig)
    return out
