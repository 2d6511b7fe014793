"""Your own task and data: JSONL, TSV/CSV and `datasets` sources, a task defined only on the
command line or in a folder of your own ($MTFSL_CONFIG_DIR), label renaming, and keys that
do not apply to a task's kind or reader."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from mtfsl.config import DataConfig
from mtfsl.data.splits import load_task
from mtfsl.errors import ConfigError, DataError
from mtfsl.job import run
from mtfsl.resolve import compose_config, resolve_task
from tests.conftest import FIXTURES, classification_task, read_texts

JSONL = FIXTURES / "toy_jsonl"
TYPES = ["LOC", "MISC", "ORG", "PER"]
BIO = ["O", *(f"{p}-{t}" for t in TYPES for p in "BI")]


def cli_task(name: str, body: str) -> list[str]:
    """Overrides that replace the default task by one defined on the command line."""
    return ["~task", f"+task.{name}={{{body}}}"]


def jsonl_task(name: str = "wnut") -> list[str]:
    """The toy CoNLL data in run_ner's JSON-lines layout, as a task of the command line."""
    files = f"files: {{train: {JSONL}/train.json, dev: {JSONL}/dev.json, test: {JSONL}/test.json}}"
    return cli_task(name, f"kind: tagging, reader: {{format: jsonl}}, {files}")


def test_a_task_defined_only_on_the_command_line_reads_the_run_ner_layout() -> None:
    cfg = compose_config(jsonl_task())
    data = load_task(resolve_task("wnut", cfg.task["wnut"]), cfg.data)
    assert data.labels == BIO
    train = data.splits["train"]
    assert (len(train), len(data.splits["dev"]), len(data.splits["test"])) == (11, 4, 4)
    assert train.inputs[1] == ["Peter", "Blackburn"] and train.targets[1] == ["B-PER", "I-PER"]
    assert train.lines[:3] == [1, 2, 3]  # a record per line


def test_jsonl_task_trains_and_scores_like_the_same_conll_task(tmp_path: Path) -> None:
    common = [
        "model=tiny",
        "hardware=cpu",
        f"data.cache_dir={tmp_path / 'cache'}",
        "trainer.max_steps=6",
        "trainer.batch_size=4",
    ]
    conll = compose_config(
        [
            *common,
            f"data.root={FIXTURES}",
            "task.conll.files.train=toy_conll/toy.train",
            "task.conll.files.dev=toy_conll/toy.dev",
            "task.conll.files.test=toy_conll/toy.test",
        ]
    )
    ours = compose_config([*common, *jsonl_task("conll")])
    a = run(conll, tmp_path / "conll")
    b = run(ours, tmp_path / "jsonl")
    scores = [k for k in a if k.startswith(("dev/", "test/"))]
    assert scores and {k: b[k] for k in scores} == {k: a[k] for k in scores}
    assert (tmp_path / "jsonl" / "predictions" / "test_conll.conll").read_text() == (
        tmp_path / "conll" / "predictions" / "test_conll.conll"
    ).read_text()


def test_a_task_yaml_in_your_own_folder_adds_to_and_replaces_shipped_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "my_configs" / "task"
    folder.mkdir(parents=True)
    yaml = (
        "defaults:\n  - /schema/kind/tagging@_here_\n  - /schema/reader/jsonl@reader\n"
        "  - _self_\n\nfiles:\n  train: {root}/train.json\n  test: {root}/test.json\n"
    )
    (folder / "wnut.yaml").write_text("# @package task.wnut\n" + yaml.format(root=JSONL))
    (folder / "conll.yaml").write_text("# @package task.conll\n" + yaml.format(root=JSONL))
    monkeypatch.setenv("MTFSL_CONFIG_DIR", str(tmp_path / "my_configs"))
    added = compose_config(["task=wnut"]).task["wnut"]
    assert added.reader.format == "jsonl" and added.files.train == f"{JSONL}/train.json"
    replaced = compose_config([]).task["conll"]  # the default task, now the user's file
    assert replaced.reader.format == "jsonl" and replaced.files.dev is None
    monkeypatch.delenv("MTFSL_CONFIG_DIR")
    assert compose_config([]).task["conll"].reader.format == "conll"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["task=banking77", "+task.banking77.crf=true"],
            "task.banking77.crf: not a key of a classification task",
        ),
        (["+task.conll.text_column=x"], "task.conll.text_column: not a key of a tagging task"),
        (
            ["+task.conll.reader.delimiter=x"],
            "task.conll.reader.delimiter: not a key of the conll reader",
        ),
        (cli_task("w", "kind: taging, reader: {format: jsonl}"), "task.w.kind=taging: expected"),
        (cli_task("w", "kind: tagging, reader: {format: xml}"), "task.w.reader.format=xml:"),
        (cli_task("w", "kind: tagging"), "task.w.reader.format=None: expected a reader"),
    ],
)
def test_a_key_that_does_not_apply_is_an_error_at_compose(
    overrides: list[str], message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        compose_config(overrides)
    assert str(err.value).startswith(message)


def test_the_conll_reader_fits_tagging_only() -> None:
    cfg = compose_config(cli_task("c", "kind: classification, reader: {format: conll}"))
    from mtfsl.resolve import validate

    with pytest.raises(ConfigError, match=r"task\.c\.reader\.format=conll: reads one token per"):
        validate(cfg)


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (['{"tokens": ["a"], "ner_tags": ["O"]}', "{oops"], ":2: not a JSON object"),
        (['{"tokens": ["a"]}'], ":1: no field 'ner_tags' (task.t.label_column)"),
        (['{"tokens": ["a", "b"], "ner_tags": ["O"]}'], ":1: 2 words but tags 1"),
        (['{"tokens": ["a"], "ner_tags": ["X-PER"]}'], ":1 (token 1): invalid tag 'X-PER'"),
        (['{"tokens": ["a"], "ner_tags": [3]}'], ":1 (token 1): invalid tag '3'"),
        (["[1, 2]"], ":1: expected a JSON object, found list"),
        (["", " "], ": no JSON objects found"),
    ],
)
def test_jsonl_errors_name_file_and_line(tmp_path: Path, rows: list[str], message: str) -> None:
    path = tmp_path / "train.json"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    cfg = compose_config(
        cli_task("t", f"kind: tagging, reader: {{format: jsonl}}, files: {{train: {path}}}")
    )
    with pytest.raises(DataError) as err:
        load_task(resolve_task("t", cfg.task["t"]), cfg.data)
    assert str(err.value).startswith(f"{path}{message}")


def test_integer_tags_with_names_and_a_label_renaming(tmp_path: Path) -> None:
    names = ["O", "B-creative_work", "I-creative_work"]
    path = write_jsonl(tmp_path / "t.json", [{"words": ["Star", "Wars", "!"], "tags": [1, 2, 0]}])
    body = (
        f"kind: tagging, reader: {{format: jsonl}}, files: {{train: {path}}}, "
        f"token_column: words, label_column: tags, label_names: [{', '.join(names)}], "
        "label_map: {creative_work: creative-work}"
    )
    cfg = compose_config(cli_task("t", body))
    data = load_task(resolve_task("t", cfg.task["t"]), cfg.data)
    assert data.splits["train"].targets == [["B-creative-work", "I-creative-work", "O"]]
    assert data.labels == ["O", "B-creative-work", "I-creative-work"]


def test_tsv_without_quoting_keeps_stray_quotes_and_columns_by_name(tmp_path: Path) -> None:
    path = tmp_path / "dev.tsv"
    path.write_text('sentence\tlabel\n"a quote\t1\nplain text\t0\n', encoding="utf-8")
    split = read_texts(path, "sentence", "label", fmt="tsv")
    assert split.inputs == ['"a quote', "plain text"] and split.targets == ["1", "0"]
    assert split.lines == [2, 3]


def test_headerless_csv_by_column_index(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("gj,1,x,a fine sentence\ngj,0,y,bad one\n")
    task = classification_task(text_column="3", label_column="1")
    task.reader.header = False
    task.files.train = "train.csv"
    data = load_task(resolve_task("cola", task), DataConfig(root=str(tmp_path)))
    assert data.splits["train"].inputs == ["a fine sentence", "bad one"]
    assert data.labels == ["0", "1"]


def test_a_saved_dataset_with_classlabel_tags(tmp_path: Path) -> None:
    features = datasets.Features(
        {
            "tokens": datasets.Sequence(datasets.Value("string")),
            "ner_tags": datasets.Sequence(datasets.ClassLabel(names=["O", "B-PER", "I-PER"])),
        }
    )
    rows = {"tokens": [["Ann", "Lee"], ["hi"]], "ner_tags": [[1, 2], [0]]}
    dataset = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(rows, features=features),
            "validation": datasets.Dataset.from_dict(rows, features=features),
        }
    )
    dataset.save_to_disk(str(tmp_path / "saved"))
    body = f"kind: tagging, reader: {{format: datasets, source: {tmp_path / 'saved'}}}"
    cfg = compose_config(cli_task("d", body))
    data = load_task(resolve_task("d", cfg.task["d"]), cfg.data)
    assert sorted(data.splits) == ["dev", "train"]  # no "test" split in the dataset
    assert data.splits["train"].targets == [["B-PER", "I-PER"], ["O"]]
    assert data.splits["dev"].at(1) == f"{tmp_path / 'saved'}[validation][1]"
    bad = datasets.DatasetDict(
        {"train": datasets.Dataset.from_dict({"tokens": [["a"]], "tags": [["O"]]})}
    )
    bad.save_to_disk(str(tmp_path / "bad"))
    cfg = compose_config(
        cli_task("d", f"kind: tagging, reader: {{format: datasets, source: {tmp_path / 'bad'}}}")
    )
    with pytest.raises(
        DataError, match=r"bad\[train\]: no column 'ner_tags' \(task\.d\.label_column\)"
    ):
        load_task(resolve_task("d", cfg.task["d"]), cfg.data)


@pytest.mark.parametrize("builder", ["json", "csv", "parquet"])
def test_load_dataset_with_local_files(tmp_path: Path, builder: str) -> None:
    train = datasets.Dataset.from_dict(
        {"text": ["top up", "card late", "rate?"], "label": [0, 1, 1]}
    )
    test = datasets.Dataset.from_dict({"text": ["card lost"], "label": [1]})
    for name, table in (("train", train), ("test", test)):
        getattr(table, f"to_{builder}")(str(tmp_path / f"{name}.{builder}"))
    body = (
        f"kind: classification, reader: {{format: datasets, source: {builder}}}, "
        f"files: {{train: train.{builder}, test: test.{builder}}}, label_names: [top_up, card]"
    )
    cfg = compose_config([*cli_task("i", body), f"data.root={tmp_path}"])
    data = load_task(resolve_task("i", cfg.task["i"]), cfg.data)
    assert data.splits["train"].targets == ["top_up", "card", "card"]
    assert data.splits["test"].inputs == ["card lost"] and data.labels == ["card", "top_up"]
    assert data.splits["train"].at(2) == f"{builder}[train][2]"


def test_a_datasets_task_trains_and_predict_reads_the_tasks_own_format(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in (JSONL / "train.json").read_text().splitlines()]
    names = ["O", *(f"{p}-{t}" for t in TYPES for p in "BI")]
    features = datasets.Features(
        {
            "tokens": datasets.Sequence(datasets.Value("string")),
            "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names)),
        }
    )
    table = {
        "tokens": [r["tokens"] for r in rows],
        "ner_tags": [[names.index(t) for t in r["ner_tags"]] for r in rows],
    }
    saved = tmp_path / "saved"
    split = datasets.Dataset.from_dict(table, features=features)
    datasets.DatasetDict({"train": split, "test": split}).save_to_disk(str(saved))
    cfg = compose_config(
        [
            *cli_task("d", f"kind: tagging, reader: {{format: datasets, source: {saved}}}"),
            "model=tiny",
            "hardware=cpu",
            f"data.cache_dir={tmp_path / 'cache'}",
            "trainer.max_steps=4",
        ]
    )
    metrics = run(cfg, tmp_path / "run")
    assert metrics["train/d/examples"] == 11 and "test/d/f1" in metrics
    # mtfsl-predict on a JSON-lines file, read by the jsonl reader with the task's columns
    from mtfsl.predict import main as predict

    out = tmp_path / "pred.conll"
    predict(
        [
            str(tmp_path / "run"),
            str(JSONL / "train.json"),
            "--format",
            "jsonl",
            "--output",
            str(out),
        ]
    )
    assert out.read_text() == (tmp_path / "run" / "predictions" / "test_d.conll").read_text()


def test_a_dataset_row_of_the_wrong_type_names_source_split_and_row(tmp_path: Path) -> None:
    table = {"text": ["fine", "", "ok"], "label": ["a", "b", "a"]}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(table)}).save_to_disk(
        str(tmp_path / "s")
    )
    body = f"kind: classification, reader: {{format: datasets, source: {tmp_path / 's'}}}"
    cfg = compose_config(cli_task("c", body))
    with pytest.raises(DataError, match=rf"^{tmp_path / 's'}\[train\]\[1\]: empty text$"):
        load_task(resolve_task("c", cfg.task["c"]), cfg.data)


def test_a_prompt_file_in_your_own_folder_is_a_prompt_choice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "my_configs" / "prompt"
    folder.mkdir(parents=True)
    (folder / "terse.yaml").write_text(
        '# @package prompt\nbanking77:\n  query: "Q: {{ text }}\\nA:"\n'
        "  verbalizer: {card_arrival: arrival}\n"
    )
    monkeypatch.setenv("MTFSL_CONFIG_DIR", str(tmp_path / "my_configs"))
    from mtfsl.icl.prompts import prompt_config

    prompts = compose_config(["task=banking77", "prompt=terse"]).prompt
    assert list(prompts) == ["banking77"]
    mine = prompt_config("banking77", prompts["banking77"])
    assert mine.query == "Q: {{ text }}\nA:" and mine.verbalizer == {"card_arrival": "arrival"}
    assert mine.separator == "\n\n"  # the schema's default for what the file leaves out
    both = compose_config(["task=banking77", "prompt=[default,terse]"]).prompt
    assert both["banking77"]["query"] == "Q: {{ text }}\nA:" and "sst2" in both  # yours wins
    with pytest.raises(ConfigError, match=r"^prompt\.banking77\.querry: "):
        prompt_config("banking77", {"querry": "x"})
