"""Sweep summaries: exact means and stds, failed jobs listed; the few-shot protocol command."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from mtfsl.summary import group_jobs, markdown, read_sweep, summary_json
from mtfsl.sweep_report import write_report
from tests.conftest import compose_cfg
from tests.test_train_e2e import CLI, TOY, train_cli

DEFAULT_CONFIG = OmegaConf.to_yaml(OmegaConf.structured(compose_cfg([])))


def fake_job(sweep: Path, num: int, overrides: list[str], status: str, f1: float | None) -> None:
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / "status.json").write_text(json.dumps({"status": status}))
    (job / "config.yaml").write_text(DEFAULT_CONFIG)  # task conll: its primary metric is f1
    if f1 is not None:
        (job / "metrics.json").write_text(json.dumps({"test/conll/f1": f1, "dev/x": 1.0}))


def test_groups_means_stds_and_unfinished_jobs(tmp_path: Path) -> None:
    for i, (lr, split, status, f1) in enumerate(
        [
            ("1e-4", 0, "finished", 50.0),
            ("1e-4", 1, "finished", 54.0),
            ("1e-4", 2, "finished", 58.0),
            ("3e-4", 0, "finished", 40.0),
            ("3e-4", 1, "failed", None),
            ("3e-4", 2, "running", 99.0),  # metrics of a job not marked finished: excluded
        ]
    ):
        fake_job(tmp_path, i, [f"trainer.lr={lr}", f"few_shot.split={split}", "k=5"], status, f1)
    groups = group_jobs(read_sweep(tmp_path))
    assert [g.name for g in groups] == ["trainer.lr=1e-4", "trainer.lr=3e-4"]
    assert groups[0].stats("test/conll/f1") == (54.0, 4.0, 3)  # sample std of 50, 54, 58
    assert groups[1].stats("test/conll/f1") == (40.0, 0.0, 1)
    assert math.isnan(groups[1].stats("test/other")[0])
    table = markdown(groups)
    assert table.splitlines()[0] == "Overrides of all jobs: k=5"
    assert "| trainer.lr=1e-4 | test/conll/f1 | 54.00 | 4.00 | 3 |" in table
    assert "| trainer.lr=3e-4 | test/conll/f1 | 40.00 | 0.00 | 1 |" in table
    assert "dev/x" not in table
    assert "- 4: failed (trainer.lr=3e-4 few_shot.split=1 k=5)" in table
    assert "- 5: running (trainer.lr=3e-4 few_shot.split=2 k=5)" in table
    summary = summary_json(groups)
    assert summary["trainer.lr=3e-4"]["not_finished"] == {"4": "failed", "5": "running"}
    assert summary["trainer.lr=1e-4"]["metrics"]["test/conll/f1"]["std"] == 4.0


def test_fewshot_protocol_is_one_command(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = train_cli(
        [
            "-m",
            "experiment=fewshot_conll_huang",
            *TOY,
            "few_shot.files='fewshot/toy_{k}_{split}'",
            "few_shot.k=1",
            "few_shot.split=0,1",
            "trainer.max_steps=2",
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
    )
    summary = json.loads((sweep / "summary.json").read_text())
    assert list(summary) == ["(all jobs)"]
    f1 = summary["(all jobs)"]["metrics"]["test/conll/f1"]
    assert f1["n"] == 2
    runs = [json.loads((sweep / str(i) / "metrics.json").read_text()) for i in (0, 1)]
    assert f1["mean"] == sum(r["test/conll/f1"] for r in runs) / 2
    assert "| (all jobs) | test/conll/f1 |" in proc.stdout
    for i in (0, 1):
        record = json.loads((sweep / str(i) / "few_shot" / "conll.json").read_text())
        assert record["split"] == i and record["num_train"] == 4 and record["dev"] == "none"
        assert "dev/conll/f1" not in runs[i]
    report = subprocess.run(
        [str(Path(CLI).with_name("mtfsl-report")), str(sweep)], capture_output=True, text=True
    )
    assert report.returncode == 0, report.stderr
    assert "| (all jobs) | test/conll/f1 |" in report.stdout
    assert (sweep / "report" / "curves_0.png").is_file()


def test_report_writes_tables_and_plots(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    rows = [(5, 1, 50.0), (5, 2, 54.0), (10, 1, 60.0), (10, 2, 62.0), (10, 3, None)]
    for i, (k, seed, f1) in enumerate(rows):
        status = "finished" if f1 is not None else "failed"
        fake_job(sweep, i, [f"few_shot.k={k}", f"seed={seed}"], status, f1)
    (sweep / "0" / "train_history.json").write_text(
        json.dumps({"history": [{"step": 1, "loss/conll": 2.0}, {"step": 2, "loss/conll": 1.0}]})
    )
    files = write_report(sweep, sweep / "report")
    assert (sweep / "report" / "report.csv").read_text().splitlines() == [
        "group,job,metric,mean,std,n",
        "few_shot.k=5,,test/conll/f1,52.0000,2.8284,2",
        "few_shot.k=10,,test/conll/f1,61.0000,1.4142,2",
        "few_shot.k=5,0,test/conll/f1,50.0000,,1",  # then each finished job's own value
        "few_shot.k=5,1,test/conll/f1,54.0000,,1",
        "few_shot.k=10,2,test/conll/f1,60.0000,,1",
        "few_shot.k=10,3,test/conll/f1,62.0000,,1",
    ]
    from mtfsl.sweep_report import varying

    labels = varying(read_sweep(sweep))  # legend labels: what differs, not folder numbers
    assert labels["0"] == "few_shot.k=5 seed=1" and labels["4"] == "few_shot.k=10 seed=3"
    report = (sweep / "report" / "report.md").read_text()
    assert "- 4: failed (few_shot.k=10 seed=3)" in report
    names = sorted(p.name for p in files if p.suffix == ".png")
    assert names == ["curves_0.png", "test_conll_f1_vs_k.png"]
    for name in names:
        assert (sweep / "report" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
