"""Self-training (few_shot.self_training, mtfsl/self_training.py): the confidence filter,
the unlabelled pool, and a run whose pool labels provably go unread."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mtfsl.config import SelfTrainingConfig
from mtfsl.data.splits import Split
from mtfsl.errors import ConfigError
from mtfsl.job import run
from mtfsl.kinds import get_kind
from mtfsl.resolve import validate
from mtfsl.self_training import select, unlabelled_pool
from tests.conftest import FIXTURES, TOY_INTENTS, compose_cfg


def test_the_filter_keeps_examples_whose_every_label_is_sure() -> None:
    # per word for a tagger: the least sure word decides
    pred = [["B-PER", "O"], ["O", "O"], ["B-LOC"]]
    keep, least = select(pred, [[0.95, 0.99], [0.5, 0.99], [0.9]], 0.9)
    assert (keep, least) == ([0, 2], [0.95, 0.5, 0.9])
    # one probability per text for a classifier
    assert select(["a", "b"], [0.89, 0.91], 0.9)[0] == [1]


def test_the_pool_is_the_training_split_without_the_draw_and_without_labels() -> None:
    words = [["a", "b"], ["c"], ["d", "e"], ["f"], ["g"]]
    full = Split(
        "train.txt", words, [["B-X", "O"], ["O"], ["O", "O"], ["B-X"], ["O"]], [1, 4, 6, 9, 11]
    )
    support = full.subset([1, 3])
    labels = ["B-X", "O"]
    kind = get_kind("tagging")
    pool = unlabelled_pool(full, support, kind, labels, SelfTrainingConfig(rounds=1), 0)
    assert pool.inputs == [["a", "b"], ["d", "e"], ["g"]] and pool.lines == [1, 6, 11]
    assert pool.targets == [["B-X", "B-X"], ["B-X", "B-X"], ["B-X"]]  # placeholders only
    capped = unlabelled_pool(full, support, kind, labels, SelfTrainingConfig(1, pool=2), 0)
    assert len(capped) == 2 and set(map(tuple, capped.inputs)) <= set(map(tuple, pool.inputs))


def test_kinds_without_probabilities_cannot_self_train() -> None:
    with pytest.raises(ConfigError, match=r"few_shot\.k=None: expected K for self-training"):
        validate(compose_cfg([*TOY_INTENTS, "few_shot.self_training.rounds=1"]))
    cfg = compose_cfg(["task=stsb", "few_shot.k=4", "few_shot.self_training.rounds=1"])
    with pytest.raises(ConfigError, match="kind regression gives no label probabilities"):
        validate(cfg)


def _data_root(tmp_path: Path, name: str, blank: bool) -> Path:
    """The toy CoNLL files and published-style splits; with ``blank`` every training tag is O."""
    root = tmp_path / name
    shutil.copytree(FIXTURES / "toy_conll", root / "toy_conll")
    shutil.copytree(FIXTURES / "fewshot", root / "fewshot")
    if blank:
        train = root / "toy_conll" / "toy.train"
        lines = [
            " ".join([*line.split()[:-1], "O"]) if line.split() else line
            for line in train.read_text().splitlines()
        ]
        train.write_text("\n".join(lines) + "\n")
    return root


def _self_trained(tmp_path: Path, blank: bool) -> tuple[dict, dict, str]:
    root = _data_root(tmp_path, f"data_{blank}", blank)
    labels = "[B-LOC,B-MISC,B-ORG,B-PER,I-LOC,I-MISC,I-ORG,I-PER,O]"
    cfg = compose_cfg(
        [
            "model=tiny",
            "hardware=cpu",
            f"data.root={root}",
            f"data.cache_dir={tmp_path / 'cache'}",
            "task.conll.files.train=toy_conll/toy.train",
            "task.conll.files.dev=toy_conll/toy.dev",
            "task.conll.files.test=toy_conll/toy.test",
            f"task.conll.labels={labels}",
            "task.conll.label_scheme=IOB2",
            "few_shot=huang2020",
            "few_shot.files='fewshot/toy_{k}_{split}'",
            "few_shot.k=1",
            "few_shot.self_training.rounds=2",
            "few_shot.self_training.threshold=0.05",
            "few_shot.self_training.max_steps=4",
            "trainer.max_steps=3",
            "trainer.lr=5e-3",
        ]
    )
    out = tmp_path / f"run_{blank}"
    metrics = run(cfg, out)
    rounds = {n: json.loads((out / f"self_training/round{n}.json").read_text()) for n in (1, 2)}
    return metrics, rounds, (out / "predictions/test_conll.conll").read_text()


def test_self_training_never_reads_the_pool_labels(tmp_path: Path) -> None:
    metrics, rounds, predictions = _self_trained(tmp_path, blank=False)
    support = 4  # sentences of the published-style split fewshot/toy_1_0
    pool = 10  # toy.train's 11 sentences, less the one the split shares with it
    for n in (1, 2):
        record = rounds[n]["tasks"]["conll"]
        assert record["pool"] == pool and record["threshold"] == 0.05
        assert metrics[f"self_training/conll/round{n}/kept"] == record["kept"]
        assert 0 < record["kept"] <= pool
    assert metrics["train/conll/examples"] == support + rounds[2]["tasks"]["conll"]["kept"]
    assert metrics["train/steps"] == 4  # the last student's budget
    # every gold tag of the training file replaced by O: the same pseudo-labels, the same
    # students, the same test predictions
    blank = _self_trained(tmp_path, blank=True)
    assert blank[1] == rounds and blank[2] == predictions
    assert blank[0]["test/conll/f1"] == metrics["test/conll/f1"]
