"""Interrupt-and-resume exactness and NaN handling, with the tiny model on toy data."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

from mtfsl.callbacks import unwritable_reason
from mtfsl.config import NanPolicy
from mtfsl.job import run
from mtfsl.model.multitask import MultiTaskModel
from mtfsl.training.loop import NonFiniteLossError, Trainer, TrainingInterrupted
from tests.test_train_e2e import non_timing, train_cli


def test_interrupt_and_resume_equals_uninterrupted(toy_cfg, tmp_path: Path, monkeypatch) -> None:
    toy_cfg.trainer.max_steps, toy_cfg.trainer.batch_size = 9, 3
    toy_cfg.trainer.eval_every_steps, toy_cfg.trainer.lr = 3, 3e-3
    full = run(toy_cfg, tmp_path / "full")

    original = Trainer.train_step

    def interrupting(self: Trainer, batches):  # a real SIGTERM in the middle of step 5
        if self.state.step == 4:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, batches)

    monkeypatch.setattr(Trainer, "train_step", interrupting)
    run_dir = tmp_path / "cut"
    with pytest.raises(TrainingInterrupted, match=r"SIGTERM at step 5; state saved. Resume"):
        run(toy_cfg, run_dir)
    assert not (run_dir / "metrics.json").exists()
    assert (run_dir / "checkpoints" / "state-5" / "trainer.json").is_file()
    monkeypatch.setattr(Trainer, "train_step", original)

    train_cli([f"resume={run_dir}"], tmp_path)  # the installed CLI, reading config.yaml back
    resumed = json.loads((run_dir / "metrics.json").read_text())
    assert non_timing(resumed) == pytest.approx(non_timing(full), abs=0, rel=0)
    assert json.loads((run_dir / "status.json").read_text())["status"] == "finished"
    history = json.loads((run_dir / "dev_history.json").read_text())["history"]
    assert [h["step"] for h in history] == [3, 6, 9]
    assert history == json.loads((tmp_path / "full" / "dev_history.json").read_text())["history"]
    # the weights themselves are bit-identical, not only the scores
    best = Path("checkpoints/best/model.safetensors")
    assert (run_dir / best).read_bytes() == (tmp_path / "full" / best).read_bytes()


def test_periodic_states_keep_last(toy_cfg, tmp_path: Path) -> None:
    toy_cfg.trainer.max_steps, toy_cfg.trainer.batch_size = 6, 4
    toy_cfg.trainer.save_every, toy_cfg.trainer.keep_last = 2, 2
    run(toy_cfg, tmp_path / "run")
    states = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("state-*"))
    assert states == ["state-4", "state-6"]


def nan_at_call(monkeypatch, call: int) -> None:
    original = MultiTaskModel.loss
    calls = {"n": 0}

    def loss(self, task, scores, batch):
        calls["n"] += 1
        value = original(self, task, scores, batch)
        return value * torch.nan if calls["n"] == call else value

    monkeypatch.setattr(MultiTaskModel, "loss", loss)


def test_nan_stops_and_keeps_best_checkpoint(toy_cfg, tmp_path: Path, monkeypatch) -> None:
    toy_cfg.trainer.max_steps, toy_cfg.trainer.eval_every_steps = 6, 2
    nan_at_call(monkeypatch, 3)
    with pytest.raises(
        NonFiniteLossError, match=r"not finite at step 3 \(task conll: loss \[nan\]\)"
    ):
        run(toy_cfg, tmp_path / "run")
    best = tmp_path / "run" / "checkpoints" / "best"
    assert json.loads((best / "trainer_state.json").read_text())["step"] == 2
    assert (best / "model.safetensors").is_file()


def test_nan_skip_policy_finishes(toy_cfg, tmp_path: Path, monkeypatch) -> None:
    toy_cfg.trainer.max_steps = 5
    toy_cfg.trainer.nan_policy = NanPolicy.SKIP
    toy_cfg.trainer.max_skipped_share = 0.2  # 1 of 5 steps may be skipped (default 0.1)
    nan_at_call(monkeypatch, 2)
    metrics = run(toy_cfg, tmp_path / "run")
    assert metrics["train/steps"] == 5 and metrics["train/skipped_steps"] == 1


def test_unwritable_output_folder_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    proc = train_cli(
        ["model=tiny", f"hydra.run.dir={tmp_path / 'afile' / 'run'}"], tmp_path, check=False
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"mtfsl-train: error: hydra.run.dir={tmp_path / 'afile' / 'run'}: cannot write there: "
        f"{tmp_path / 'afile'} is a file, not a folder"
    )
    assert unwritable_reason(tmp_path / "new" / "deeper") is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_read_only_folder_is_reported(tmp_path: Path) -> None:
    (tmp_path / "ro").mkdir(mode=0o555)
    assert unwritable_reason(tmp_path / "ro" / "run") == f"{tmp_path / 'ro'} is not writable"
