"""Starting from an earlier run (model.init_from) and reading only some entity types
(task.NAME.only_types): the pieces of the tag-set extension protocol."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mtfsl.config import DataConfig
from mtfsl.data.splits import load_task
from mtfsl.errors import ConfigError
from mtfsl.job import run
from mtfsl.pipeline.build import build_model
from mtfsl.resolve import resolve_task, resolve_tasks, validate
from tests.conftest import FIXTURES, compose_cfg
from tests.test_predict_export import PREDICT
from tests.test_train_e2e import read_conll_pred

TOY = ["model=tiny", "hardware=cpu", f"data.root={FIXTURES}"]
FILES = [
    "task.conll.files.train=toy_conll/toy.train",
    "task.conll.files.dev=toy_conll/toy.dev",
    "task.conll.files.test=toy_conll/toy.test",
]


def test_only_types_reads_the_other_types_as_o() -> None:
    cfg = compose_cfg([*TOY, *FILES, "task.conll.only_types=[PER]"])
    data = load_task(resolve_task("conll", cfg.task["conll"]), DataConfig(root=str(FIXTURES)))
    assert data.labels == ["O", "B-PER", "I-PER"]
    train = data.splits["train"]
    # toy.train's 72 words: 6 B-PER, 4 I-PER, 44 O; its 18 tags of LOC, MISC and ORG
    # (5 + 5 + 5 B-, 1 + 2 I-) are read as O
    flat = [t for tags in train.targets for t in tags]
    assert (flat.count("B-PER"), flat.count("I-PER"), flat.count("O")) == (6, 4, 44 + 18)


def _source(tmp_path: Path) -> Path:
    cfg = compose_cfg(
        [
            *TOY,
            *FILES,
            f"data.cache_dir={tmp_path / 'cache'}",
            "task.conll.only_types=[LOC,ORG,MISC]",
        ]
    )
    cfg.trainer.max_steps, cfg.trainer.lr = 4, 5e-3
    run(cfg, tmp_path / "source")
    return tmp_path / "source"


def test_a_run_starts_from_another_runs_encoder(tmp_path: Path) -> None:
    source = _source(tmp_path)
    stored = load_file(str(source / "checkpoints/best/model.safetensors"))
    key = "encoder.encoder.layer.0.attention.self.query.weight"
    target = [*TOY, *FILES, f"data.cache_dir={tmp_path / 'cache'}", f"model.init_from={source}"]
    # held-out types: another label set, so the head starts anew
    cfg = compose_cfg([*target, "task.conll.only_types=[PER]"])
    model, _, _ = build_model(cfg, resolve_tasks(cfg), {"conll": ["O", "B-PER", "I-PER"]})
    assert torch.equal(model.state_dict()[key], stored[key])
    plain = compose_cfg([*TOY, *FILES])
    fresh, _, _ = build_model(plain, resolve_tasks(plain), {"conll": ["O", "B-PER", "I-PER"]})
    assert not torch.equal(fresh.state_dict()[key], stored[key])
    # the same task and labels: its head too
    labels = json.loads((source / "checkpoints/best/labels.json").read_text())["conll"]
    assert "B-PER" not in labels and "B-LOC" in labels
    cfg = compose_cfg([*target, "task.conll.only_types=[LOC,ORG,MISC]"])
    same, _, _ = build_model(cfg, resolve_tasks(cfg), {"conll": labels})
    head = "heads.conll.classifier.weight"
    assert torch.equal(same.state_dict()[head], stored[head])
    # a head-only K-shot run from the source: its partial checkpoint predicts over the
    # source's encoder, as it was scored
    cfg = compose_cfg(
        [*target, "task.conll.only_types=[PER]", "finetune=head_only", "few_shot.k=1"]
    )
    cfg.trainer.max_steps = 3
    run(cfg, tmp_path / "target")
    out = tmp_path / "test.conll"
    proc = subprocess.run(
        [
            PREDICT,
            str(tmp_path / "target"),
            str(FIXTURES / "toy_conll/toy.test"),
            "--format",
            "conll",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    # (the run's file has the gold tags as it read them: other types as O)
    ours = read_conll_pred(tmp_path / "target/predictions/test_conll.conll")
    assert [[w[-1] for w in s] for s in read_conll_pred(out)] == [[w[-1] for w in s] for s in ours]


def test_a_missing_source_run_stops_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model\.init_from=.*: no checkpoint there"):
        validate(compose_cfg([*TOY, f"model.init_from={tmp_path / 'nothing'}"]))
