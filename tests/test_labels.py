from pathlib import Path

import pytest

from mtfsl.config import DataConfig, LabelScheme
from mtfsl.data.labels import bio_labels, detect_scheme, entity_types, iob1_to_iob2, to_iob2
from mtfsl.data.splits import load_task
from mtfsl.errors import ConfigError, DataError
from mtfsl.kinds.tagging import TaggingTaskConfig
from mtfsl.resolve import resolve_task
from tests.conftest import tagging_task


def test_iob1_to_iob2() -> None:
    assert iob1_to_iob2(["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG", "I-ORG"]) == [
        "B-PER",
        "I-PER",
        "B-PER",
        "O",
        "B-LOC",
        "B-ORG",
        "I-ORG",
    ]


def test_detect_scheme() -> None:
    assert detect_scheme([["B-PER", "I-PER", "O"], ["O"]]) is LabelScheme.IOB2
    assert detect_scheme([["O", "I-PER"], ["O"]]) is LabelScheme.IOB1
    assert detect_scheme([["B-PER", "I-LOC"]]) is LabelScheme.IOB1


def test_labels_from_types() -> None:
    assert entity_types([["B-PER", "O"], ["I-LOC", "B-PER"]]) == ["LOC", "PER"]
    assert bio_labels(["LOC", "PER"]) == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


@pytest.mark.parametrize("bad", ["B-", "X-PER", "b-PER", "PER", "I"])
def test_invalid_tag_names_file_and_line(bad: str) -> None:
    with pytest.raises(DataError, match=rf"^f.txt:12: invalid tag '{bad}'"):
        to_iob2([["O"], ["O", bad]], LabelScheme.AUTO, "f.txt", [3, 11])


def test_declared_iob2_with_inside_start_is_an_error() -> None:
    with pytest.raises(DataError, match=r"f\.txt:8: label_scheme=IOB2 but the chunk at 'I-PER'"):
        to_iob2([["O", "I-PER"]], LabelScheme.IOB2, "f.txt", [7])


def task(train: str, dev: str, test: str, scheme: LabelScheme) -> TaggingTaskConfig:
    cfg = tagging_task(label_column="-1", label_scheme=scheme)
    cfg.files.train, cfg.files.dev, cfg.files.test = train, dev, test
    return cfg


def test_iob1_files_give_identical_examples(fixtures: Path) -> None:
    data = DataConfig(root=str(fixtures / "toy_conll"), cache_dir="")
    iob2 = load_task(
        resolve_task("t", task("toy.train", "toy.dev", "toy.test", LabelScheme.AUTO)), data
    )
    iob1 = load_task(
        resolve_task(
            "t", task("toy_iob1.train", "toy_iob1.dev", "toy_iob1.test", LabelScheme.IOB1)
        ),
        data,
    )
    auto = load_task(
        resolve_task(
            "t", task("toy_iob1.train", "toy_iob1.dev", "toy_iob1.test", LabelScheme.AUTO)
        ),
        data,
    )
    for split in ("train", "dev", "test"):
        assert iob1.splits[split].inputs == iob2.splits[split].inputs
        assert iob1.splits[split].targets == iob2.splits[split].targets
        assert auto.splits[split].targets == iob2.splits[split].targets
    assert iob2.labels == bio_labels(["LOC", "MISC", "ORG", "PER"])
    assert iob2.splits["train"].targets[-1] == ["O", "O", "B-PER", "B-PER", "O"]


def test_unknown_tag_in_test_split(tmp_path: Path) -> None:
    (tmp_path / "train").write_text("A NN B-PER\n")
    (tmp_path / "test").write_text("A NN O\n\nB NN B-FOO\n")
    with pytest.raises(DataError, match=r"test:3: label 'B-FOO' is not in the label set"):
        load_task(
            resolve_task("t", task("train", None, "test", LabelScheme.AUTO)),
            DataConfig(root=str(tmp_path), cache_dir=""),
        )


def test_missing_split_and_root(tmp_path: Path) -> None:
    (tmp_path / "train").write_text("A NN B-PER\n")
    with pytest.raises(DataError, match=r"dev split of task 't' not found \(task.t.files.dev=dv"):
        load_task(
            resolve_task("t", task("train", "dv", None, LabelScheme.AUTO)),
            DataConfig(root=str(tmp_path), cache_dir=""),
        )
    with pytest.raises(ConfigError, match=r"data\.root is not set"):
        load_task(
            resolve_task("t", task("train", None, None, LabelScheme.AUTO)), DataConfig(root=None)
        )
    with pytest.raises(ConfigError, match="no such folder"):
        load_task(
            resolve_task("t", task("train", None, None, LabelScheme.AUTO)),
            DataConfig(root=str(tmp_path / "x")),
        )


def test_real_iob1_files_equal_iob2_copy(shared_data: Path) -> None:
    data = DataConfig(root=str(shared_data / "conll2003"), cache_dir="")
    folder = "iob1_glample_tagger/"
    iob2 = load_task(
        resolve_task("t", task("train.txt", "valid.txt", "test.txt", LabelScheme.AUTO)), data
    )
    iob1 = load_task(
        resolve_task(
            "t",
            task(
                folder + "eng.train", folder + "eng.testa", folder + "eng.testb", LabelScheme.AUTO
            ),
        ),
        data,
    )
    counts = {"train": (14041, 203621), "dev": (3250, 51362), "test": (3453, 46435)}
    for split, (n_sent, n_tok) in counts.items():
        tokens = sum(map(len, iob2.splits[split].inputs))
        assert (len(iob2.splits[split]), tokens) == (n_sent, n_tok)
        assert iob1.splits[split].inputs == iob2.splits[split].inputs
        assert iob1.splits[split].targets == iob2.splits[split].targets
