"""Trackers (TensorBoard, MLflow) get the curves; Hydra plugin configs compose and run."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from mtfsl.job import run
from tests.test_train_e2e import TOY, train_cli


def tracked(toy_cfg, tmp_path: Path, kind: str) -> tuple[Path, dict]:
    from mtfsl.config import Tracker

    toy_cfg.tracking.kind = Tracker[kind]
    toy_cfg.trainer.max_steps, toy_cfg.trainer.log_every_steps = 6, 2
    toy_cfg.trainer.eval_every_steps = 3
    return tmp_path / "run", run(toy_cfg, tmp_path / "run")


def test_tensorboard_gets_losses_dev_and_test_metrics(toy_cfg, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, metrics = tracked(toy_cfg, tmp_path, "TENSORBOARD")
    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    scalars = events.Tags()["scalars"]
    assert [e.step for e in events.Scalars("train/loss/conll")] == [2, 4, 6]
    assert [e.step for e in events.Scalars("dev/conll/f1")] == [3, 6]
    assert {"train/lr", "train/weight/conll", "test/conll/f1"} <= set(scalars)
    assert events.Scalars("test/conll/f1")[0].value == pytest.approx(metrics["test/conll/f1"])
    history = json.loads((run_dir / "train_history.json").read_text())["history"]
    losses = [e.value for e in events.Scalars("train/loss/conll")]
    assert losses == pytest.approx([h["loss/conll"] for h in history])
    # hyperparameters with the final metrics, in the same run (no sub-run of their own), so
    # TensorBoard's HParams view compares runs
    from tensorboard.plugins.hparams import plugin_data_pb2

    assert [p.name for p in (run_dir / "tensorboard").iterdir() if p.is_dir()] == []
    content = events.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    names = {m.name.tag for m in experiment.experiment.metric_infos}
    assert {"test/conll/f1", "best/dev/conll/f1"} <= names
    start = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]
    ).session_start_info
    assert start.hparams["trainer.max_steps"].number_value == 6
    assert start.hparams["task.conll.kind"].string_value == "tagging"
    assert events.Scalars("best/dev/conll/f1")[0].value == pytest.approx(metrics["dev/conll/f1"])


def test_mlflow_gets_params_and_metrics(toy_cfg, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    run_dir, metrics = tracked(toy_cfg, tmp_path, "MLFLOW")
    client = MlflowClient(f"sqlite:///{run_dir / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "mtfsl"]
    (record,) = client.search_runs([experiment.experiment_id])
    assert record.data.metrics["test/conll/f1"] == pytest.approx(metrics["test/conll/f1"])
    assert record.data.params["trainer.max_steps"] == "6"
    steps = [m.step for m in client.get_metric_history(record.info.run_id, "train/loss/conll")]
    assert steps == [2, 4, 6]


def test_wandb_offline_gets_params_and_metrics(toy_cfg, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run_dir, metrics = tracked(toy_cfg, tmp_path, "WANDB")
    (offline,) = (run_dir / "wandb").glob("offline-run-*")  # what `wandb sync` uploads
    (records,) = offline.glob("run-*.wandb")
    # wandb's service process may still be writing the offline file after finish() returned
    # (seen once in a clean-clone CI run: only the 9-byte header there): wait for it
    deadline = time.monotonic() + 30
    while b"test/conll/f1" not in records.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.2)
    data = records.read_bytes()  # protobuf records; each value is stored as its JSON text
    for key in ("test/conll/f1", "best/dev/conll/f1", "train/loss/conll", "trainer.max_steps"):
        assert key.encode() in data
    at = data.index(b"\rtest/conll/f1\x82\x01") + 16  # the key, then the value's length
    assert float(data[at + 1 : at + 1 + data[at]]) == pytest.approx(metrics["test/conll/f1"])


def _span(run_dir: Path) -> tuple[datetime, datetime]:
    stamps = [line[1:24] for line in (run_dir / "train.log").read_text().splitlines()]
    times = [datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f") for s in stamps if s[:2] == "20"]
    return times[0], times[-1]


# The sweep extra's Hydra plug-ins (joblib, Optuna) run several command-line jobs each: slow,
# so the default suite stays under its 10 minutes; `make test-all` runs them.
@pytest.mark.slow
def test_joblib_launcher_runs_two_jobs_in_parallel(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    train_cli(
        [
            "-m",
            "hydra/launcher=parallel",
            *TOY,
            "seed=1,2",
            # long enough that the jobs overlap even when one worker finishes importing
            # seconds after the other (2 cores, two imports of torch at once)
            "trainer.max_steps=150",
            "hardware.threads=1",
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
    )
    (a0, a1), (b0, b1) = _span(sweep / "0"), _span(sweep / "1")
    assert a0 < b1 and b0 < a1  # the two jobs' training overlapped in time
    for job in ("0", "1"):
        assert json.loads((sweep / job / "status.json").read_text())["status"] == "finished"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("hydra/launcher=slurm", "SlurmLauncher"),
        ("hydra/launcher=parallel", "JoblibLauncher"),
        ("hydra/sweeper=tune", "OptunaSweeper"),
    ],
)
def test_plugin_configs_compose(tmp_path: Path, override: str, expected: str) -> None:
    proc = train_cli([override, "--cfg", "hydra", "--package", "hydra"], tmp_path)
    assert expected in proc.stdout


@pytest.mark.slow  # as the joblib test above
def test_optuna_searches_the_space_given_on_the_command_line(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    space = [
        "hydra/sweeper=tune",
        "trainer.lr=interval(1e-4, 1e-2)",  # the search space, from the command line
        "trainer.batch_size=4",  # fixed: no longer searched
        "trainer.warmup_ratio=0.0",
        "hydra.sweeper.n_trials=2",
        "trainer.max_steps=2",
    ]
    train_cli(["-m", *space, *TOY, f"hydra.sweep.dir={sweep}"], tmp_path)
    for job in ("0", "1"):
        cfg = yaml.safe_load((sweep / job / "config.yaml").read_text())
        assert 1e-4 <= cfg["trainer"]["lr"] <= 1e-2 and cfg["trainer"]["batch_size"] == 4
    # every sweep, not only the shipped experiments, ends with a summary
    assert "test/conll/f1" in (sweep / "summary.md").read_text()

    # the study is stored in the sweep folder; the same command continues it, numbering
    # its jobs after the stored trials, and fails a trial an interrupted sweep left running
    import optuna

    storage = f"sqlite:///{sweep / 'optuna.db'}"
    study = optuna.load_study(study_name="mtfsl", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert [t.params["trainer.lr"] for t in study.trials] == [
        yaml.safe_load((sweep / j / "config.yaml").read_text())["trainer"]["lr"] for j in ("0", "1")
    ]
    study.ask()  # trial 2: started by a sweep that was then killed
    first = (sweep / "0" / "config.yaml").read_text()
    more = [a.replace("n_trials=2", "n_trials=1") for a in space]
    train_cli(["-m", *more, *TOY, f"hydra.sweep.dir={sweep}"], tmp_path)
    study = optuna.load_study(study_name="mtfsl", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE"]
    assert (sweep / "0" / "config.yaml").read_text() == first  # not overwritten
    assert not (sweep / "2").exists()
    lr = yaml.safe_load((sweep / "3" / "config.yaml").read_text())["trainer"]["lr"]
    assert study.trials[3].params["trainer.lr"] == lr
