"""Shared fixtures: config composition, toy data, the shared real data when present."""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from mtfsl.config import TrainConfig
from mtfsl.data.readers import READERS
from mtfsl.data.readers.conll import ConllReaderConfig
from mtfsl.data.splits import Split
from mtfsl.kinds import KINDS
from mtfsl.kinds.classification import ClassificationTaskConfig
from mtfsl.kinds.tagging import TaggingTaskConfig
from mtfsl.resolve import compose_config, register_configs

FIXTURES = Path(__file__).parent / "fixtures"
# Absolute, because end-to-end tests run the CLI from temporary working directories.
SHARED_DATA = Path(
    os.environ.get("MTFSL_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared/data")
).resolve()
TOY_TASK = [
    "task.conll.files.train=toy_conll/toy.train",
    "task.conll.files.dev=toy_conll/toy.dev",
    "task.conll.files.test=toy_conll/toy.test",
]

# Banking77-shaped intent task on the toy CSV files (9 train / 3 dev / 4 test examples).
TOY_INTENTS = [
    "model=tiny",
    "hardware=cpu",
    "task=banking77",
    f"data.root={FIXTURES / 'toy_intents'}",
    "task.banking77.files.train=toy_train.csv",
    "task.banking77.files.test=toy_test.csv",
    "task.banking77.labels_file=categories.json",
    "task.banking77.dev_fraction=0.25",
]

register_configs()


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "conll2003" / "train.txt").is_file():
        pytest.skip(f"real CoNLL-2003 data not found at {SHARED_DATA} (set MTFSL_SHARED_DATA)")
    return SHARED_DATA


def compose_dict(overrides: list[str] | None = None) -> DictConfig:
    with initialize_config_module(version_base="1.3", config_module="mtfsl.configs"):
        return compose("train", overrides=overrides or [])


def compose_cfg(overrides: list[str] | None = None) -> TrainConfig:
    cfg = compose_config(overrides or [])
    assert isinstance(cfg, TrainConfig)
    return cfg


@pytest.fixture
def toy_cfg(tmp_path: Path) -> TrainConfig:
    """Tiny model on the toy CoNLL files, caching under tmp_path."""
    return compose_cfg(
        [
            "model=tiny",
            "hardware=cpu",
            f"data.root={FIXTURES}",
            f"data.cache_dir={tmp_path / 'cache'}",
            *TOY_TASK,
        ]
    )


def tagging_task(**fields: object) -> TaggingTaskConfig:
    """A tagging task read from CoNLL columns (token first, tag last unless given)."""
    task = TaggingTaskConfig(**fields)  # type: ignore[arg-type]
    if not isinstance(task.reader, ConllReaderConfig):
        task.reader = ConllReaderConfig()
    return task


def classification_task(fmt: str = "csv", **fields: object) -> ClassificationTaskConfig:
    """A classification task read with reader ``fmt`` (default CSV with a header)."""
    task = ClassificationTaskConfig(**fields)  # type: ignore[arg-type]
    task.reader = READERS[fmt].schema()
    return task


def read_texts(path: Path, text: str = "text", label: str = "label", fmt: str = "csv") -> Split:
    """A delimited file read as a classification split (texts, labels, lines)."""
    kind = KINDS["classification"]
    task = classification_task(fmt, text_column=text, label_column=label)
    records = READERS[fmt].read(Path(path), task.reader, kind.columns("task.t", task))
    return kind.to_split(records, task)


@dataclass
class Completed:
    """What a command left: its exit code, standard output and standard error."""

    returncode: int
    stdout: str
    stderr: str


def predict_in_process(*argv: str) -> Completed:
    """``mtfsl-predict ARGV`` run by its ``main`` in this process, as the console script
    runs it: a subprocess would spend about 3 s importing torch and transformers, and the
    suite predicts some twenty times (the installed script itself is run elsewhere)."""
    from mtfsl.predict import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(argv))
        except SystemExit as stop:  # sys.exit("message") prints it and exits 1
            if isinstance(stop.code, str):
                err.write(stop.code + "\n")
                code = 1
            else:
                code = stop.code or 0
    return Completed(code, out.getvalue(), err.getvalue())
