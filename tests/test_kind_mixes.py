"""Mixes across task kinds: one encoder, a tagger, a pair classifier, a regression head and a
span head trained together with the shipped samplers; every task is scored and reported."""

from __future__ import annotations

from pathlib import Path

from mtfsl.job import run
from mtfsl.resolve import compose_config
from tests.conftest import FIXTURES


def test_a_mix_of_four_kinds_trains_and_reports_every_task(tmp_path: Path) -> None:
    pairs, stsb, squad = (FIXTURES / d for d in ("toy_pairs", "toy_stsb", "toy_squad"))
    conll = FIXTURES / "toy_conll"
    cfg = compose_config(
        [
            "task=conll_glue",
            "+task@task.squad=squad",
            "model=tiny",
            "hardware=cpu",
            "task_sampling=temperature",
            f"data.cache_dir={tmp_path / 'cache'}",
            f"task.conll.files.train={conll / 'toy.train'}",
            f"task.conll.files.dev={conll / 'toy.dev'}",
            f"task.conll.files.test={conll / 'toy.test'}",
            f"task.rte.files.train={pairs / 'train.tsv'}",
            f"task.rte.files.test={pairs / 'test.tsv'}",
            "task.rte.dev_fraction=0.2",
            f"task.stsb.files.train={stsb / 'train.tsv'}",
            f"task.stsb.files.test={stsb / 'test.tsv'}",
            "task.stsb.dev_fraction=0.3",
            f"task.squad.files.train={squad / 'train.json'}",
            f"task.squad.files.test={squad / 'test.json'}",
            "task.squad.max_length=48",
            "task.squad.stride=8",
            "trainer.max_steps=8",
            "trainer.batch_size=4",
        ]
    )
    metrics = run(cfg, tmp_path / "run")
    for task, metric in (
        ("conll", "f1"),
        ("rte", "accuracy"),
        ("stsb", "spearman"),
        ("squad", "f1"),
    ):
        assert f"test/{task}/{metric}" in metrics
        assert (tmp_path / "run" / "reports" / f"test_{task}.txt").is_file()
    # model selection averages the dev metrics of the tasks that have a dev split
    dev = [
        metrics[f"dev/{t}/{m}"]
        for t, m in (("conll", "f1"), ("rte", "accuracy"), ("stsb", "spearman"))
    ]
    assert metrics["dev/selection_score"] == sum(dev) / 3
    assert (tmp_path / "run" / "predictions" / "test_squad.json").is_file()
