"""Training on IO tags (``task.NAME.train_tags=IO``), predicting and scoring IOB2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mtfsl.config import MetricMode
from mtfsl.data.labels import bio_labels, to_io
from mtfsl.data.splits import Split
from mtfsl.errors import ConfigError
from mtfsl.kinds import get_kind
from mtfsl.kinds.tagging import TrainTags
from mtfsl.model.encoder import tiny_tokenizer
from mtfsl.resolve import compose_config, validate
from tests.conftest import FIXTURES, tagging_task
from tests.test_predict_export import predict_cli, trained
from tests.test_train_e2e import read_conll_pred

KIND = get_kind("tagging")
LABELS = bio_labels(["LOC", "ORG", "PER"])  # O B-LOC I-LOC B-ORG I-ORG B-PER I-PER
IO = tagging_task(train_tags=TrainTags.IO)


def test_to_io() -> None:
    assert [to_io(t) for t in ["O", "B-PER", "I-PER", "I-LOC"]] == ["O", "I-PER", "I-PER", "I-LOC"]


def test_io_training_targets_read_b_as_i_and_keep_the_iob2_label_set(tmp_path: Path) -> None:
    words = [["New", "York", "Stock", "Exchange", "in", "Paris", "Ann"]]
    tags = [["B-ORG", "I-ORG", "I-ORG", "I-ORG", "O", "B-LOC", "B-PER"]]
    split = Split(Path("x.txt"), words, tags, [1])
    assert KIND.derive_labels(IO, split) == LABELS
    assert KIND.label_ids(split, LABELS) == [[3, 4, 4, 4, 0, 1, 5]]
    assert KIND.label_ids(split, LABELS, io=True) == [[4, 4, 4, 4, 0, 2, 6]]
    feats = KIND.features(
        split, IO, "ner", LABELS, tiny_tokenizer(), compose_config([]).model, None
    )
    first = [x for x in feats[0]["labels"] if x >= 0]
    assert first == [4, 4, 4, 4, 0, 2, 6]  # every word's first sub-token: no B- target


def test_io_predictions_become_iob2_runs() -> None:
    # I-PER I-PER O I-LOC I-ORG I-ORG  ->  one PER, one LOC, one ORG entity
    ids = [np.array([6, 6, 0, 2, 4, 4])]
    assert KIND.to_labels(IO, ids, LABELS) == [["B-PER", "I-PER", "O", "B-LOC", "B-ORG", "I-ORG"]]
    # trained on IOB2, predictions are left as the head gave them
    assert KIND.to_labels(tagging_task(), ids, LABELS) == [
        ["I-PER", "I-PER", "O", "I-LOC", "I-ORG", "I-ORG"]
    ]
    gold = [["B-PER", "I-PER", "O", "B-LOC", "B-ORG", "I-ORG"]]
    pred = KIND.to_labels(IO, ids, LABELS)
    assert KIND.score(IO, gold, pred, MetricMode.STRICT)["f1"] == 100.0


def test_io_with_structshot_or_without_chunks_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="train_tags=IO: STRUCTSHOT's abstract transitions"):
        validate(compose_config(["task.conll.train_tags=IO", "task.conll.decoder=STRUCTSHOT"]))
    with pytest.raises(ConfigError, match="train_tags=IO: entity types need a chunk scheme"):
        validate(
            compose_config(
                [
                    "task.conll.train_tags=IO",
                    "task.conll.label_scheme=NONE",
                    "task.conll.metric=TAG_ACCURACY",
                ]
            )
        )


def test_an_io_run_writes_iob2_and_predict_agrees(toy_cfg, tmp_path: Path) -> None:
    toy_cfg.task["conll"].train_tags = TrainTags.IO
    toy_cfg.trainer.epochs = 20
    run_dir = trained(toy_cfg, tmp_path)
    reference = read_conll_pred(run_dir / "predictions" / "test_conll.conll")
    predicted = [[p for _, _, p in sentence] for sentence in reference]
    assert any(t.startswith("B-") for s in predicted for t in s)
    for s in predicted:  # valid IOB2: an I- tag only continues its type
        for before, tag in zip(["O", *s], s, strict=False):
            assert not tag.startswith("I-") or before[2:] == tag[2:]
    out = tmp_path / "pred.conll"
    predict_cli(run_dir, str(FIXTURES / "toy_conll" / "toy.test"), "conll", out)
    assert read_conll_pred(out) == reference
