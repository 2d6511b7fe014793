"""Behaviour unchanged: five tiny fixed-seed runs (CoNLL with a CRF, Banking77, RTE, STS-B,
SQuAD) write the metrics and predictions files recorded in ``fixtures/behaviour.json``, byte
for byte (``scripts/behaviour.py``). A change that means to change them records them again:
``python scripts/behaviour.py --record tests/fixtures/behaviour.json``, and says why."""

from __future__ import annotations

import json

import pytest

from tests.conftest import FIXTURES
from tests.test_scripts import load_script

behaviour = load_script("behaviour")


def test_tiny_runs_write_the_recorded_metrics_and_predictions() -> None:
    recorded = json.loads((FIXTURES / "behaviour.json").read_text())
    if recorded["cpu"] != behaviour.cpu_family():
        pytest.skip(f"recorded on an {recorded['cpu']} CPU; float kernels differ on this one")
    assert sorted(recorded["runs"]) == ["banking77", "conll_crf", "rte", "squad", "stsb"]
    now = behaviour.collect(list(recorded["runs"]))
    assert behaviour.differences(recorded, now) == []


def test_a_changed_prediction_is_named() -> None:
    recorded = {"runs": {"rte": {"metrics": {"a": 1.0}, "predictions": {"test_rte.tsv": "x"}}}}
    now = {"runs": {"rte": {"metrics": {"a": 1.5}, "predictions": {"test_rte.tsv": "y"}}}}
    assert behaviour.differences(recorded, now) == [
        "rte: metrics.json a: recorded 1.0, now 1.5",
        "rte: predictions/test_rte.tsv differs",
    ]
