"""The regression kind (STS-B): correlations on hand-checked values, metrics that equal
scipy's on the predictions file, selection in the metric's direction, a K-shot draw, export
to a pipeline that gives mtfsl-predict's scores, and bad scores named by file and line."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest
from scipy.stats import pearsonr, spearmanr

from mtfsl.errors import ConfigError, DataError
from mtfsl.job import run
from mtfsl.kinds.regression import correlations
from mtfsl.resolve import compose_config, resolve_task, validate
from tests.conftest import FIXTURES
from tests.test_predict_export import PREDICT

TOY = [
    "task=stsb",
    "model=tiny",
    "hardware=cpu",
    f"data.root={FIXTURES / 'toy_stsb'}",
    "task.stsb.files.train=train.tsv",
    "task.stsb.files.test=test.tsv",
    "task.stsb.dev_fraction=0.3",
    "trainer.max_steps=24",
    "trainer.batch_size=4",
    "trainer.lr=3e-3",
    "trainer.warmup_ratio=0",
    "trainer.log_every_steps=4",
]


def read_predictions(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))


def test_correlations_by_hand() -> None:
    # pred swaps the two largest: Pearson = Spearman = 0.5; squared errors 0, 1, 1
    scores = correlations([1.0, 2.0, 3.0], [1.0, 3.0, 2.0])
    assert scores == pytest.approx({"pearson": 50.0, "spearman": 50.0, "mse": 2 / 3})
    # a constant prediction has no correlation: scored 0, not NaN in metrics.json
    assert correlations([1.0, 2.0], [0.5, 0.5]) == {"pearson": 0.0, "spearman": 0.0, "mse": 1.25}


def test_stsb_trains_and_its_metrics_equal_scipys_on_the_predictions(tmp_path: Path) -> None:
    cfg = compose_config([*TOY, f"data.cache_dir={tmp_path / 'cache'}", "metrics.select=mse"])
    metrics = run(cfg, tmp_path / "run")
    rows = read_predictions(tmp_path / "run" / "predictions" / "test_stsb.tsv")
    gold, pred = [float(r["gold"]) for r in rows], [float(r["pred"]) for r in rows]
    assert gold == [4.75, 0.25, 4.9, 3.2] and rows[0]["text_pair"] == "A man eats an apple."
    assert metrics["test/stsb/pearson"] == pytest.approx(100 * pearsonr(gold, pred).statistic)
    assert metrics["test/stsb/spearman"] == pytest.approx(100 * spearmanr(gold, pred).statistic)
    mse = sum((g - p) ** 2 for g, p in zip(gold, pred, strict=True)) / 4
    assert metrics["test/stsb/mse"] == pytest.approx(mse)
    # MSE is lower-is-better: the kept checkpoint is the one with the smallest dev MSE, and
    # the selection score is its negation
    history = json.loads((tmp_path / "run" / "dev_history.json").read_text())["history"]
    best = min(history, key=lambda h: h["dev/stsb/mse"])
    assert metrics["train/best_step"] == best["step"]
    assert metrics["dev/selection_score"] == pytest.approx(-metrics["dev/stsb/mse"])
    train_history = json.loads((tmp_path / "run/train_history.json").read_text())["history"]
    losses = [h["loss/stsb"] for h in train_history]
    assert losses[-1] < 0.5 * losses[0]  # the regression head learns the scores' scale
    # mtfsl-predict reads tab-separated pairs and gives the score the evaluation wrote
    out = subprocess.run(
        [PREDICT, str(tmp_path / "run"), "--out-format", "jsonl"],
        input="A man is eating an apple.\tA man eats an apple.\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    record = json.loads(out)
    assert record["text_pair"] == "A man eats an apple."
    assert record["score"] == pytest.approx(pred[0], abs=1e-5)

    from transformers import pipeline

    from mtfsl.export import export

    hf_dir = export(tmp_path / "run", tmp_path / "hf")
    config = json.loads((hf_dir / "config.json").read_text())
    assert config["problem_type"] == "regression" and config["id2label"] == {"0": "score"}
    scorer = pipeline("text-classification", model=str(hf_dir), device="cpu")
    inputs = [{"text": r["text"], "text_pair": r["text_pair"]} for r in rows]
    assert [o["score"] for o in scorer(inputs)] == pytest.approx(pred, abs=1e-5)


def test_a_k_shot_draw_of_a_regression_task_takes_k_examples(tmp_path: Path, caplog) -> None:
    cfg = compose_config([*TOY, f"data.cache_dir={tmp_path / 'c'}", "few_shot.k=4"])
    cfg.trainer.max_steps = 2
    with caplog.at_level("WARNING"):
        metrics = run(cfg, tmp_path / "run")
    assert "this run trains only 2 optimizer steps" in caplog.text
    record = json.loads((tmp_path / "run" / "few_shot" / "stsb.json").read_text())
    assert record["sampler"] == "random" and record["train_counts"] == {"examples": 4}
    assert metrics["train/stsb/examples"] == 4 and len(record["ids"]) == 4


def test_regression_keys_and_scores_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"task\.stsb\.labels: a regression task has no label"):
        validate(compose_config([*TOY, "task.stsb.labels=[a,b]"]))
    with pytest.raises(ConfigError, match=r"task\.stsb\.select_metric=f1: expected null or one of"):
        validate(compose_config([*TOY, "task.stsb.select_metric=f1"]))
    bad = tmp_path / "bad.tsv"
    text = (FIXTURES / "toy_stsb" / "train.tsv").read_text().replace("3.800", "high")
    bad.write_text(text)
    from mtfsl.data.splits import load_task

    cfg = compose_config([*TOY, f"task.stsb.files.train={bad}"])
    with pytest.raises(DataError, match=r"bad\.tsv:3: expected a finite number .* 'high'"):
        load_task(resolve_task("stsb", cfg.task["stsb"]), cfg.data)


def test_the_glue_files_read_with_their_shipped_yamls(shared_data: Path) -> None:
    from mtfsl.data.splits import load_task

    sizes = {"stsb": (5174, 575, 1500), "sst2": (66473, 876, 872), "cola": (7696, 855, 1043)}
    for name, expected in sizes.items():
        cfg = compose_config([f"task={name}", f"data.root={shared_data}"])
        data = load_task(resolve_task(name, cfg.task[name]), cfg.data)
        assert tuple(len(data.splits[s]) for s in ("train", "dev", "test")) == expected
    assert data.splits["test"].inputs[0] == "The sailors rode the breeze clear of the rocks."
    assert data.splits["test"].targets[0] == "1"
