"""Reliability, third round (issue #46): what a careless or hostile user hands over is named
in one line, before any work."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file

from mtfsl.config_dirs import check_user_configs
from mtfsl.data.readers import READERS
from mtfsl.data.splits import Split, TaskData
from mtfsl.errors import ConfigError, DataError, MtfslError
from mtfsl.inference.ort import Backend, attach_onnx
from mtfsl.job import _check_something_to_evaluate
from mtfsl.kinds import KINDS
from mtfsl.kinds.qa import QATaskConfig
from mtfsl.kinds.tagging import TaggingTaskConfig
from mtfsl.resolve import load_run_config, register_configs
from mtfsl.train import cli
from mtfsl.training.checkpoint import load_training_state, read_weights
from mtfsl.utils.files import read_json
from mtfsl.utils.manifest import verify_manifest, write_manifest
from tests.conftest import FIXTURES, TOY_TASK, compose_cfg
from tests.test_faults import train_patched
from tests.test_train_e2e import CLI, non_timing


def test_a_missing_config_dir_is_named_instead_of_ignored(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MTFSL_CONFIG_DIR", f"{tmp_path}:{tmp_path / 'nope'}")
    with pytest.raises(ConfigError, match=rf"^MTFSL_CONFIG_DIR={tmp_path / 'nope'}: no such"):
        check_user_configs()


def test_a_yaml_syntax_error_is_one_line_with_file_line_and_column(
    monkeypatch, tmp_path: Path, capsys
) -> None:
    task = tmp_path / "task" / "mine.yaml"
    task.parent.mkdir()
    task.write_text("kind: classification\nreader:\n  format: jsonl\n  files: [a, b\nlabels: x\n")
    monkeypatch.setenv("MTFSL_CONFIG_DIR", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["mtfsl-train", "task=mine"])
    with pytest.raises(SystemExit) as stop:
        cli()
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"mtfsl-train: error: {task}:5:7: not valid YAML (while parsing a ")


def test_the_users_valid_yaml_passes(monkeypatch, tmp_path: Path) -> None:
    (tmp_path / "task").mkdir()
    (tmp_path / "task" / "ok.yaml").write_text("kind: classification\n")
    monkeypatch.setenv("MTFSL_CONFIG_DIR", str(tmp_path))
    check_user_configs()


def test_a_broken_plugin_is_a_warning_and_named_where_it_is_wanted(tmp_path: Path) -> None:
    # an installed package whose mtfsl.kinds entry point names a module that fails to import
    site = tmp_path / "site"
    info = site / "broken_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[mtfsl.kinds]\nbroken = broken_plugin_kinds\n")
    (site / "broken_plugin_kinds.py").write_text("raise ImportError('needs libfoo 2')\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run([CLI, "--help"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "classification" in proc.stdout  # the kinds that did load are listed
    assert "plug-in broken (broken_plugin_kinds, entry-point group mtfsl.kinds) failed to load" in (
        proc.stderr
    )
    code = (
        "from mtfsl.kinds import KINDS\n"
        "try:\n    KINDS.named('mine', 'task.x.kind')\n"
        "except Exception as err:\n    print(err)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.stdout.strip().endswith(
        "; plug-in broken (broken_plugin_kinds, entry-point group mtfsl.kinds) failed to load "
        "(ImportError: needs libfoo 2)"
    )


def _split(kind: str, schema: type, path: Path, fmt: str):
    task = schema()
    task.reader = READERS[fmt].schema()
    records = READERS[fmt].read(path, task.reader, KINDS[kind].columns("task.t", task))
    return KINDS[kind].to_split(records, task)


@pytest.mark.parametrize(
    ("tokens", "bad", "problem"),
    [
        (["New York", "is"], 1, "'New York' contains whitespace (one word per token)"),
        (["a\tb"], 1, "'a\\tb' contains whitespace (one word per token)"),
        (["EU", ""], 2, "'' is empty or invisible"),
        (["EU", "\u200b"], 2, "'\\u200b' is empty or invisible"),
    ],
)
def test_a_token_a_prediction_file_could_not_write_is_refused_with_file_and_line(
    tmp_path: Path, tokens: list[str], bad: int, problem: str
) -> None:
    path = tmp_path / "t.jsonl"
    good = {"tokens": ["EU", "rejects"], "ner_tags": ["B-ORG", "O"]}
    line = {"tokens": tokens, "ner_tags": ["O"] * len(tokens)}
    path.write_text(f"{json.dumps(good)}\n{json.dumps(line)}\n")
    with pytest.raises(DataError) as err:
        _split("tagging", TaggingTaskConfig, path, "jsonl")
    assert str(err.value) == f"{path}:2 (token {bad}): {problem}"


def _squad(tmp_path: Path, questions: list[dict], context: str = "Paris is in France.") -> Path:
    path = tmp_path / "q.json"
    data = {"data": [{"paragraphs": [{"context": context, "qas": questions}]}]}
    path.write_text(json.dumps(data))
    return path


def _question(qid: object) -> dict:
    return {"id": qid, "question": "Where?", "answers": [{"text": "France", "answer_start": 12}]}


def test_qa_ids_are_unique_and_both_places_are_named(tmp_path: Path) -> None:
    path = _squad(tmp_path, [_question("a"), _question("b"), _question("a")])
    with pytest.raises(DataError) as err:
        _split("qa", QATaskConfig, path, "squad")
    assert str(err.value) == (
        f"{path}[3]: question id 'a' is also the id of {path}[1]; ids must be unique within a file"
    )
    assert len(_split("qa", QATaskConfig, _squad(tmp_path, [_question("a")]), "squad")) == 1


@pytest.mark.parametrize("qid", [None, "", "  "])
def test_a_missing_or_empty_qa_id_is_refused(tmp_path: Path, qid: object) -> None:
    path = _squad(tmp_path, [_question(qid)])
    with pytest.raises(DataError, match=r"q\.json\[1\]: expected a non-empty question id, found "):
        _split("qa", QATaskConfig, path, "squad")


@pytest.mark.parametrize("context", ["", "\u200b", " \u200b\t"])
def test_an_empty_or_invisible_context_is_refused_at_reading(tmp_path: Path, context: str) -> None:
    question = {"id": "a", "question": "Where?", "answers": [{"text": "x", "answer_start": 0}]}
    path = _squad(tmp_path, [question], context)
    with pytest.raises(DataError, match=r"q\.json\[1\]: expected a non-empty context"):
        _split("qa", QATaskConfig, path, "squad")


def test_a_run_with_nothing_to_evaluate_stops_before_training() -> None:
    train = Split(Path("t.jsonl"), [["a"]], [["O"]], [1])
    only_train = {"conll": TaskData("conll", ["O"], {"train": train})}
    with pytest.raises(ConfigError) as err:
        _check_something_to_evaluate(only_train)
    assert str(err.value) == (
        "nothing to evaluate: no task has a dev or test split (conll: ['train']); give one a "
        "test or dev file (task.conll.files.test=..., or the reader's split) or carve a dev "
        "set from its training data with task.conll.dev_fraction=0.1"
    )
    empty_dev = Split(Path("d.jsonl"), [], [], [])
    with pytest.raises(ConfigError):
        _check_something_to_evaluate(
            {"conll": TaskData("conll", ["O"], {"train": train, "dev": empty_dev})}
        )
    second = TaskData("pos", ["O"], {"train": train, "test": train})
    _check_something_to_evaluate({**only_train, "pos": second})  # one task to score is enough


def test_a_run_folders_config_runs_no_resolver(tmp_path: Path) -> None:
    register_configs()  # mtfsl.sqlite is registered, as in every mtfsl command
    evil = tmp_path / "made" / "by" / "resolver"
    config = OmegaConf.to_yaml(OmegaConf.structured(compose_cfg([])))  # as training writes it
    config = config.replace("mlflow_uri: null", f"mlflow_uri: ${{mtfsl.sqlite:{evil}}}")
    (tmp_path / "config.yaml").write_text(config)
    with pytest.raises(ConfigError) as err:
        load_run_config(tmp_path)
    assert str(err.value) == (
        f"{tmp_path / 'config.yaml'}: tracking.mlflow_uri is an interpolation "
        f"(${{mtfsl.sqlite:{evil}}}); a run folder's config.yaml holds plain values only: put "
        "the value there instead"
    )
    assert not (tmp_path / "made").exists()
    (tmp_path / "config.yaml").write_text(config.replace(f"${{mtfsl.sqlite:{evil}}}", "x.db"))
    assert load_run_config(tmp_path).tracking.mlflow_uri == "x.db"


class _Accelerator:
    process_index = 0

    def __init__(self) -> None:
        self.loaded: list[str] = []

    def load_state(self, folder: str) -> None:
        self.loaded.append(folder)


def test_damaged_random_states_stop_a_resume_unless_continued_knowingly(
    tmp_path: Path, caplog
) -> None:
    state = tmp_path / "state-4"
    state.mkdir()
    (state / "trainer.json").write_text('{"train_state": {"step": 4}}')
    (state / "random_states_0.pkl").write_bytes(b"\x80\x04damaged")
    acc = _Accelerator()
    with pytest.raises(MtfslError) as err:
        load_training_state(acc, state)
    assert str(err.value) == (
        f"{state / 'random_states_0.pkl'}: the saved random states cannot be read "
        "(UnpicklingError), so the run cannot continue bit-exact; to continue anyway with "
        "fresh random states, resume with trainer.resume_damaged_rng=true"
    )
    assert acc.loaded == []  # nothing was restored
    assert load_training_state(acc, state, damaged_rng_ok=True) == {"train_state": {"step": 4}}
    assert acc.loaded == [str(state)]
    assert "continuing with fresh random states (not bit-exact)" in caplog.text


def test_a_truncated_checkpoint_is_one_line_naming_the_file(tmp_path: Path) -> None:
    best = tmp_path / "best"
    best.mkdir()
    weights = best / "model.safetensors"
    save_file({"w": torch.ones(64, 64)}, str(weights))
    (best / "trainer_state.json").write_text('{"step": 3}')
    tensors, partial, state = read_weights(best)
    assert (tensors["w"].sum().item(), partial, state) == (4096.0, False, {"step": 3})
    weights.write_bytes(weights.read_bytes()[:1000])  # cut short, as by a full disk
    with pytest.raises(MtfslError) as err:
        read_weights(best)
    assert str(err.value).startswith(f"{weights}: damaged or not a safetensors file (")
    assert str(err.value).endswith("); restore it from a copy, or train the run again")
    assert "\n" not in str(err.value)
    weights.write_text("not weights")
    with pytest.raises(MtfslError, match=r"model\.safetensors: damaged or not a safetensors"):
        read_weights(best)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"step": 3', ":1:11: damaged, not valid JSON (Expecting ',' delimiter); restore it"),
        ("", ":1:1: damaged, not valid JSON (Expecting value); restore it"),
        (b"\xff\xfe{", ": cannot be read ("),
    ],
)
def test_a_damaged_json_file_of_a_run_is_one_line(
    tmp_path: Path, text: str | bytes, message: str
) -> None:
    path = tmp_path / "labels.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(MtfslError) as err:
        read_json(path)
    assert str(err.value).startswith(f"{path}{message}")
    with pytest.raises(MtfslError, match=r"nope\.json: missing; restore it from a copy"):
        read_json(tmp_path / "nope.json")


def test_a_damaged_resumable_state_names_its_folder_and_the_way_out(tmp_path: Path) -> None:
    state = tmp_path / "state-4"
    state.mkdir()
    torch.save({"step": 4}, state / "random_states_0.pkl")
    (state / "trainer.json").write_text("{")
    with pytest.raises(MtfslError, match=r"state-4/trainer\.json:1:2: damaged, not valid JSON"):
        load_training_state(_Accelerator(), state)

    class Broken(_Accelerator):
        def load_state(self, folder: str) -> None:
            raise RuntimeError("PytorchStreamReader failed reading zip archive\nmore")

    (state / "trainer.json").write_text("{}")
    with pytest.raises(MtfslError) as err:
        load_training_state(Broken(), state)
    assert str(err.value) == (
        f"{state}: the resumable state cannot be read (RuntimeError: PytorchStreamReader failed "
        "reading zip archive); delete this state folder to resume from the one before it "
        "(trainer.keep_last are kept), or start the run again"
    )


def test_a_file_changed_after_it_was_written_is_refused_unless_trusted(
    tmp_path: Path, monkeypatch, caplog
) -> None:
    folder = tmp_path / "onnx"
    (folder / "sub").mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"graph" * 100)
    (folder / "sub" / "config.json").write_text("{}")
    (folder / "onnx_export.json").write_text('{"task": "conll"}')
    write_manifest(folder)
    sums = (folder / "SHA256SUMS").read_text().splitlines()
    assert [line.split("  ")[1] for line in sums] == [
        "model.onnx",
        "onnx_export.json",
        "sub/config.json",
    ]
    assert sums[0].split("  ")[0] == hashlib.sha256(b"graph" * 100).hexdigest()
    verify_manifest(folder)
    (folder / "model.onnx").write_bytes(b"grapH" * 100)  # altered, same size
    message = (
        f"{folder / 'model.onnx'}: changed or damaged since it was written (its SHA-256 is not "
        f"the one in {folder / 'SHA256SUMS'}); restore the original, or load it anyway with "
        "MTFSL_TRUST_CHANGED_FILES=1 (mtfsl-predict and mtfsl-export: --trust-changed-files)"
    )
    with pytest.raises(MtfslError) as err:
        verify_manifest(folder)
    assert str(err.value) == message
    # predict's ONNX backend checks before it reads anything else of the export
    with pytest.raises(MtfslError, match=r"model\.onnx: changed or damaged"):
        attach_onnx(None, tmp_path, "conll", Backend.ONNX, folder)
    monkeypatch.setenv("MTFSL_TRUST_CHANGED_FILES", "1")
    verify_manifest(folder)
    assert "model.onnx: changed or damaged" in caplog.text and "loaded anyway" in caplog.text
    monkeypatch.delenv("MTFSL_TRUST_CHANGED_FILES")
    (folder / "model.onnx").write_bytes(b"graph" * 100)
    (folder / "sub" / "config.json").unlink()
    with pytest.raises(MtfslError, match=r"sub/config\.json: listed in .*SHA256SUMS but missing"):
        verify_manifest(folder)


def test_a_checkpoint_carries_checksums_that_loading_checks(tmp_path: Path) -> None:
    best = tmp_path / "best"
    best.mkdir()
    save_file({"w": torch.ones(8)}, str(best / "model.safetensors"))
    (best / "trainer_state.json").write_text('{"step": 1}')
    write_manifest(best)
    read_weights(best)
    data = bytearray((best / "model.safetensors").read_bytes())
    data[-1] ^= 1  # one bit of one weight
    (best / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(MtfslError, match=r"best/model\.safetensors: changed or damaged"):
        read_weights(best)


_TWO_SIGNALS = """
import os, signal, sys
import mtfsl.train as t
from mtfsl.training import loop
step, save, status = loop.Trainer.train_step, loop.Trainer.save_state, t._status
def kill():
    os.kill(os.getpid(), signal.SIGTERM)
def train_step(self, batches):  # the first SIGTERM, in step 2
    if self.state.step == 1:
        kill()
    return step(self, batches)
def save_state(self):  # a second one while the state is written
    kill()
    return save(self)
def _status(run_dir, value, **extra):  # and a third while the stop writes its status
    if value == "interrupted":
        kill()
    return status(run_dir, value, **extra)
loop.Trainer.train_step, loop.Trainer.save_state, t._status = train_step, save_state, _status
sys.argv = ["mtfsl-train", *sys.argv[1:]]
t.main()
"""


def test_more_signals_during_the_graceful_stop_end_it_as_the_first_one_would(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    args = ["model=tiny", "hardware=cpu", f"data.root={FIXTURES}", *TOY_TASK]
    args += ["trainer.max_steps=6", "trainer.batch_size=4", f"hydra.run.dir={run}"]
    env = {**os.environ, "MTFSL_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-c", _TWO_SIGNALS, *args], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 130, proc.stderr[-2000:]  # not 143: the stop was not cut short
    status = json.loads((run / "status.json").read_text())
    assert (status["status"], status["reason"][:32]) == (
        "interrupted",
        "interrupted by SIGTERM at step 2",
    )
    state = run / "checkpoints" / "state-2"
    assert (state / "trainer.json").is_file()  # the complete new state
    verify_manifest(state)


# -- the same faults at LLM scale: a LoRA run of the tiny decoder -------------------------------
LORA_ARGS = [
    "model=tiny_decoder",
    "finetune=lora",
    "hardware=cpu",
    "seed=3",
    "trainer.max_steps=6",
    "trainer.batch_size=3",
    "trainer.lr=3e-3",
    "trainer.eval_every_steps=2",
    "trainer.save_every=2",
    "trainer.keep_last=3",
    "metrics.select=accuracy",  # improves at steps 2 and 4 (the tiny model's F1 stays 0)
    f"data.root={FIXTURES}",
    *TOY_TASK,
]


def killed_in_a_write(patch: str, call: int, args: list[str], cwd: Path):
    """mtfsl-train in a subprocess killed with SIGKILL half way through the ``call``-th write
    by ``patch`` (``module:name``, a function whose second argument is the file it writes):
    the file is written, cut to half its size, and the process killed, as a kill -9 or a
    power cut during the write would leave it."""
    module, name = patch.split(":")
    code = (
        "import importlib, os, signal\n"
        f"m = importlib.import_module({module!r})\n"
        f"real, calls = m.{name}, []\n"
        "def write(obj, path, *a, **k):\n"
        "    real(obj, path, *a, **k)\n"
        "    calls.append(path)\n"
        f"    if len(calls) == {call}:\n"
        "        os.truncate(path, os.path.getsize(path) // 2)\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        f"m.{name} = write\n"
    )
    return train_patched(code, args, cwd)


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory) -> Path:
    """The uninterrupted LoRA run the killed ones must end equal to."""
    from mtfsl.job import run

    folder = tmp_path_factory.mktemp("lora")
    run(compose_cfg([*LORA_ARGS, f"data.cache_dir={folder / 'cache'}"]), folder / "run")
    return folder / "run"


@pytest.mark.parametrize(
    ("patch", "what"),
    [
        # the adapters (best checkpoint) of the second evaluation's new best
        ("mtfsl.training.checkpoint:save_file", "adapters"),
        # the model of the second resumable state (accelerate writes it)
        ("accelerate.utils.other:safe_save_file", "state"),
    ],
)
def test_a_kill_during_an_adapter_save_resumes_bit_exact(
    lora_run: Path, tmp_path: Path, patch: str, what: str
) -> None:
    from mtfsl.job import run
    from mtfsl.resume import resume_config
    from tests.conftest import compose_dict

    run_dir = tmp_path / "run"
    proc = killed_in_a_write(patch, 2, [*LORA_ARGS, f"hydra.run.dir={run_dir}"], tmp_path)
    assert proc.returncode == -9, proc.stderr[-2000:]
    complete = sorted(p.parent.name for p in (run_dir / "checkpoints").glob("state-*/trainer.json"))
    # killed at step 4, in the new best's adapters or in the state written after them
    assert complete == ["state-2"]
    assert what != "adapters" or (run_dir / "checkpoints" / ".best.tmp").is_dir()
    overrides = [f"resume={run_dir}"]
    run(resume_config(run_dir, compose_dict(overrides), overrides), run_dir, resume=True)
    best = Path("checkpoints/best/model.safetensors")
    assert (run_dir / best).read_bytes() == (lora_run / best).read_bytes()
    ours, theirs = (read_json(folder / "metrics.json") for folder in (run_dir, lora_run))
    assert non_timing(ours) == non_timing(theirs)
    history = [read_json(f / "dev_history.json")["history"] for f in (run_dir, lora_run)]
    assert history[0] == history[1] and [h["step"] for h in history[0]] == [2, 4, 6]


def test_adapters_over_another_base_model_are_refused_in_one_line(lora_run: Path) -> None:
    from mtfsl.inference.run import load_run

    best = lora_run / "checkpoints" / "best"
    base = read_json(best / "base.json")
    assert base["model"] == "random llama" and len(base["fingerprint"]) == 64
    assert load_run(lora_run).cfg.seed == 3  # its own base (the seeded tiny decoder) loads
    # the same run folder whose base model now has other weights of the same shapes: the
    # tiny decoder's random weights come from the seed
    config = lora_run / "config.yaml"
    text = config.read_text()
    try:
        config.write_text(text.replace("seed: 3\n", "seed: 4\n", 1))
        with pytest.raises(MtfslError) as err:
            load_run(lora_run)
    finally:
        config.write_text(text)
    assert str(err.value).startswith(
        f"{best}: these adapters (a partial checkpoint: only what trained) were trained over "
        "other pretrained weights (random llama) than the model built now holds (base fingerprint "
        f"{base['fingerprint'][:12]} saved, "
    )
    assert str(err.value).endswith("model.name_or_path must be the model that run started from")


def test_head_only_weights_over_another_encoder_are_refused_by_init_from(tmp_path: Path) -> None:
    """model.init_from with a partial (head-only) source loads over this run's encoder: the
    source's fingerprint must match it."""
    from mtfsl.model.init_from import init_from
    from mtfsl.pipeline.build import build_model
    from mtfsl.resolve import resolve_tasks
    from mtfsl.training.checkpoint import save_checkpoint

    cfg = compose_cfg(["model=tiny", "finetune=head_only", *TOY_TASK])
    tasks, labels = resolve_tasks(cfg), {"conll": ["O", "B-PER", "I-PER"]}

    def built(seed: int):
        torch.manual_seed(seed)  # the tiny encoder's random weights: another base per seed
        return build_model(cfg, tasks, labels)

    model, tok, _ = built(1)
    folder = tmp_path / "best"
    save_checkpoint(folder, model, tok, labels, {"step": 1}, trainable_only=True)
    assert init_from(built(1)[0], str(folder), labels) == ["conll"]
    with pytest.raises(MtfslError, match=rf"^{folder}: these adapters .* were trained over"):
        init_from(built(2)[0], str(folder), labels)


def test_readers_share_one_string_per_repeated_word_and_tag() -> None:
    """Case 13 (memory of a large JSONL task): both readers intern what they read, so a
    corpus's repeated words and tags are one object each (scripts/bench_jsonl_memory.py
    measures the whole data path)."""
    from mtfsl.data.splits import load_task
    from mtfsl.resolve import resolve_task
    from tests.test_own_data import JSONL

    for fmt, files in (
        ("jsonl", f"{{train: {JSONL}/train.json, test: {JSONL}/test.json}}"),
        (
            "conll",
            f"{{train: {FIXTURES}/toy_conll/toy.train, test: {FIXTURES}/toy_conll/toy.test}}",
        ),
    ):
        body = f"kind: tagging, reader: {{format: {fmt}}}, files: {files}"
        cfg = compose_cfg(["~task", f"+task.t={{{body}}}"])
        split = load_task(resolve_task("t", cfg.task["t"]), cfg.data).splits["train"]
        words = [w for sentence in split.inputs for w in sentence]
        tags = [t for sentence in split.targets for t in sentence]
        assert len({id(w) for w in words}) == len(set(words)) < len(words), fmt
        assert len({id(t) for t in tags}) == len(set(tags)) < len(tags), fmt


@pytest.mark.slow  # two mtfsl-train runs over 20,000 sentences (about 2 min)
def test_a_jsonl_task_takes_no_more_memory_than_the_same_conll_task(
    tmp_path: Path, shared_data: Path
) -> None:
    script = Path(__file__).parents[1] / "scripts" / "bench_jsonl_memory.py"
    out = tmp_path / "memory.json"
    cmd = [sys.executable, str(script), "--data", str(shared_data), "--sentences", "20000"]
    subprocess.run([*cmd, "--out", str(out)], check=True, capture_output=True, cwd=tmp_path)
    assert json.loads(out.read_text())["ratio"] <= 1.5
