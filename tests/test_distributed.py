"""Data parallelism: sharded batches, and 2-process gloo runs (DDP, FSDP) equal to one process."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from subprocess import PIPE

import numpy as np
import psutil
import pytest
import torch
from safetensors.numpy import load_file

from mtfsl.data.batching import LengthGroupedBatchSampler
from mtfsl.errors import ConfigError
from mtfsl.resolve import validate
from mtfsl.training.distributed import check_shared_run_dir
from tests.conftest import compose_cfg
from tests.test_train_e2e import CLI, MIX, TOY, non_timing, train_cli


def shards(lengths: list[int], batch: int, replicas: int, epoch: int) -> list[list[list[int]]]:
    out = []
    for rank in range(replicas):
        sampler = LengthGroupedBatchSampler(
            lengths, batch, seed=5, pool_batches=2, num_replicas=replicas, rank=rank
        )
        sampler.set_epoch(epoch)
        out.append(list(sampler))
    return out


@pytest.mark.parametrize("epoch", [0, 1])
def test_ranks_split_the_single_process_batches(epoch: int) -> None:
    lengths = [3, 9, 4, 8, 1, 7, 2, 6, 5, 10, 11, 12, 13, 14, 15]  # batches of 6, 6, 3
    single = LengthGroupedBatchSampler(lengths, 6, seed=5, pool_batches=2)
    single.set_epoch(epoch)
    expected = list(single)
    rank0, rank1, rank2 = shards(lengths, 2, 3, epoch)
    assert len(rank0) == len(rank1) == len(rank2) == len(expected) == 3
    for whole, a, b, c in zip(expected, rank0, rank1, rank2, strict=True):
        assert sorted(a + b + c) == sorted(whole)
        assert (a, b, c) == (whole[0::3], whole[1::3], whole[2::3])


def test_a_too_small_last_batch_is_filled_from_the_start_of_the_pass() -> None:
    lengths = [5] * 7  # global batches of 3: 3, 3, 1 -> the last one needs 2 fillers
    rank0, rank1, rank2 = shards(lengths, 1, 3, epoch=0)
    order = np.random.default_rng([5, 0]).permutation(7)
    sizes = [len(a) + len(b) + len(c) for a, b, c in zip(rank0, rank1, rank2, strict=True)]
    assert sizes == [3, 3, 3]
    seen = [i for batches in (rank0, rank1, rank2) for batch in batches for i in batch]
    assert sorted(seen) == sorted([*range(7), *order[:2].tolist()])


def test_a_multi_process_run_must_name_its_run_folder(monkeypatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match=r"^hydra\.run\.dir: a run with 2 processes needs"):
        check_shared_run_dir(["hydra.job.name=x"])
    check_shared_run_dir(["hydra.run.dir=outputs/ddp"])
    with pytest.raises(ConfigError, match=r"^hydra\.sweep\.dir: a sweep with 2 processes needs"):
        check_shared_run_dir(["hydra.run.dir=outputs/ddp"], multirun=True)
    check_shared_run_dir(["hydra.sweep.dir=outputs/ddp"], multirun=True)
    monkeypatch.setenv("WORLD_SIZE", "1")
    check_shared_run_dir([])
    check_shared_run_dir([], multirun=True)


_STACK_LINES = ("Fatal Python error", "Thread 0x", "Current thread", '  File "/')


def torchrun(args: list[str], cwd: Path, timeout: float = 240) -> None:
    env = {**os.environ, "MTFSL_CACHE_DIR": str(cwd / "cache"), "OMP_NUM_THREADS": "1"}
    env.pop("MTFSL_DATA_ROOT", None)
    env["PYTHONFAULTHANDLER"] = "1"  # SIGABRT prints every thread's Python stack
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd = [*launcher, "--nproc_per_node", "2", CLI, *args]
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=PIPE, stderr=PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # A hang: have the workers and the launcher print where they wait, so the failure
        # names the call.
        agent = psutil.Process(proc.pid)
        for process in [*agent.children(recursive=True), agent]:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGABRT)
        try:
            out, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
        stacks = [line for line in err.splitlines() if line.startswith(_STACK_LINES)]
        pytest.fail(f"torchrun did not finish in {timeout} s\n{out[-3000:]}\n" + "\n".join(stacks))
    assert proc.returncode == 0, err[-4000:]


# No dropout anywhere, so one process and two see the same function; long windows, so each
# sentence is one row and no rank needs filler rows.
EXACT = ["model.dropout=0", "model.encoder_dropout=0", "model.max_length=512", "trainer.lr=3e-3"]


def best_weights_gap(one: Path, two: Path) -> float:
    """The largest difference between two runs' best checkpoints, parameter by parameter."""
    weights = Path("checkpoints/best/model.safetensors")
    a, b = load_file(str(one / weights)), load_file(str(two / weights))
    assert a.keys() == b.keys()
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


def compare(tmp_path: Path, args: list[str], global_batch: int) -> tuple[dict, dict]:
    one, two = tmp_path / "one", tmp_path / "two"
    train_cli([*args, f"trainer.batch_size={global_batch}", f"hydra.run.dir={one}"], tmp_path)
    torchrun([*args, f"trainer.batch_size={global_batch // 2}", f"hydra.run.dir={two}"], tmp_path)
    assert best_weights_gap(one, two) < 1e-5
    m1, m2 = (json.loads((d / "metrics.json").read_text()) for d in (one, two))
    assert (m1.pop("train/processes"), m2.pop("train/processes")) == (1, 2)
    for key in ("train/padding_fraction", "train/attention_positions"):  # per-process widths
        m1.pop(key), m2.pop(key)
    assert json.loads((two / "status.json").read_text())["status"] == "finished"
    return non_timing(m1), non_timing(m2)


@pytest.mark.slow  # the multi-task test below covers the same path in the default suite
def test_two_processes_equal_one_process_with_the_same_global_batch(tmp_path: Path) -> None:
    args = [*TOY, *EXACT, "trainer.max_steps=8", "trainer.eval_every_steps=4"]
    single, ddp = compare(tmp_path, [*args, "trainer.save_every=4"], global_batch=4)
    assert ddp == pytest.approx(single, abs=1e-6)
    assert ddp["train/tokens"] == single["train/tokens"]  # counted over both processes
    states = sorted(p.name for p in (tmp_path / "two" / "checkpoints").glob("state-*"))
    assert states == ["state-4", "state-8"]
    rng = sorted(p.name for p in (tmp_path / "two/checkpoints/state-8").glob("random_states_*"))
    assert rng == ["random_states_0.pkl", "random_states_1.pkl"]
    log = (tmp_path / "two" / "train.log").read_text()
    assert log.count("step 8/8 ") == 1  # one process logs


def test_two_processes_multi_task_crf_and_learned_weights(tmp_path: Path) -> None:
    args = [
        *TOY,
        *MIX,
        *EXACT,
        "task.conll.crf=true",
        "loss_weights=uncertainty",
        "loss_weights.lr=0.05",
        "trainer.max_steps=9",
        "trainer.eval_every_steps=9",
        "trainer.save_every=9",
    ]
    single, ddp = compare(tmp_path, args, global_batch=6)
    assert ddp == pytest.approx(single, abs=1e-6)
    assert ddp["train/tokens"] == single["train/tokens"]  # counted over both processes
    rng = sorted(p.name for p in (tmp_path / "two/checkpoints/state-9").glob("random_states_*"))
    assert rng == ["random_states_0.pkl", "random_states_1.pkl"]
    log = (tmp_path / "two" / "train.log").read_text()
    assert log.count("step 9/9 ") == 1  # one process logs
    w1, w2 = (
        json.loads((tmp_path / d / "loss_weights.json").read_text())["history"]
        for d in ("one", "two")
    )
    assert w2[-1] == pytest.approx(w1[-1], rel=1e-5)
    assert len({w2[-1][t] for t in ("conll", "conll_pos", "banking77")}) == 3


def test_a_sweep_runs_every_job_in_two_processes(tmp_path: Path) -> None:
    # Hydra runs a sweep's jobs one after another in the same processes: the second job
    # must find the process group the first one trained in. (That two processes train the
    # model one process does is test_two_processes_multi_task_crf_and_learned_weights'.)
    args = ["-m", *TOY, *EXACT, "trainer.max_steps=6", "seed=1,2"]
    two = tmp_path / "two"
    torchrun([*args, "trainer.batch_size=2", f"hydra.sweep.dir={two}"], tmp_path)
    for job in ("0", "1"):
        assert json.loads((two / job / "status.json").read_text())["status"] == "finished"
        metrics = json.loads((two / job / "metrics.json").read_text())
        assert metrics["train/processes"] == 2 and 0 <= metrics["test/conll/f1"] <= 100
    assert best_weights_gap(two / "0", two / "1") > 1e-3  # the seeds made different models


def test_fsdp_in_two_processes_equals_one_process_and_resumes_exactly(tmp_path: Path) -> None:
    # A decoder with LoRA, three tasks (CRF, learned loss weights), sharded over 2 processes:
    # the same model as one unsharded process, and a resume from the middle state is exact.
    args = [
        *TOY,
        *MIX,
        *EXACT,
        "model=tiny_decoder",
        "finetune=lora",
        "finetune.lora.dropout=0",
        "hardware.distributed=FSDP",  # in one process: nothing to shard, trained as usual
        "task.conll.crf=true",
        "loss_weights=uncertainty",
        "loss_weights.lr=0.05",
        "trainer.max_steps=6",
        "trainer.eval_every_steps=3",
        "trainer.save_every=3",
    ]
    single, fsdp = compare(tmp_path, args, global_batch=6)
    assert fsdp == pytest.approx(single, abs=1e-5)
    two = tmp_path / "two"
    log = (two / "train.log").read_text()
    assert "FSDP: the backbone sharded over 2 processes in 2 blocks (LlamaDecoderLayer)" in log
    state = two / "checkpoints" / "state-6" / "custom_checkpoint_0.pkl"  # full, unsharded
    saved = torch.load(state, weights_only=True)
    assert saved["model"]["encoder.base_model.model.embed_tokens.weight"].shape == (321, 32)
    # resume the 2-process run from step 3: the same weights and optimizer state at step 6
    again = tmp_path / "again"
    shutil.copytree(two, again, ignore=shutil.ignore_patterns("state-6", "metrics.json"))
    (again / "status.json").write_text('{"status": "interrupted"}')
    torchrun([f"resume={again}", f"hydra.run.dir={again}"], tmp_path)
    resumed = torch.load(again / "checkpoints/state-6/custom_checkpoint_0.pkl", weights_only=True)
    for key, value in saved["model"].items():
        assert torch.equal(resumed["model"][key], value), key
    for key, value in saved["optimizer"]["state"].items():
        assert torch.equal(resumed["optimizer"]["state"][key]["exp_avg_sq"], value["exp_avg_sq"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("hardware.precision=FP16", r"^hardware\.precision=FP16 \(use BF16\): not supported"),
        ("few_shot.self_training.rounds=1 few_shot.k=5", r"^few_shot\.self_training\.rounds=1"),
        ("hardware.compile=true", r"^hardware\.compile=true: not supported with hardware\.distr"),
    ],
)
def test_fsdp_refuses_what_it_does_not_cover_in_one_line(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate(compose_cfg(["hardware=fsdp", *override.split()]))
    validate(compose_cfg(["hardware=fsdp"]))
