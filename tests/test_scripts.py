import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from mtfsl.data.readers import read_conll
from tests.conftest import FIXTURES, TOY_TASK

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str) -> ModuleType:
    """Import ``scripts/NAME.py`` (not a package) as the module ``NAME``."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


compare_tasks = load_script("compare_tasks")
profile_step = load_script("profile_step")
bench_train = load_script("bench_train")
bench_gpu = load_script("bench_gpu")
profile_onnx = load_script("profile_onnx")
Op = profile_step.Op


def job(sweep: Path, num: int, task: str, metrics: dict[str, float] | None) -> None:
    folder = sweep / str(num)
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(f"- task={task}\n- seed=1\n")
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))


def test_single_vs_multi_table(tmp_path: Path) -> None:
    job(tmp_path, 0, "conll", {"test/conll/f1": 80.0, "test/conll/accuracy": 97.0})
    job(tmp_path, 1, "conll_pos", {"test/conll_pos/accuracy": 92.5})
    job(tmp_path, 2, "conll_mtl", {"test/conll/f1": 81.25, "test/conll_pos/accuracy": 92.0})
    job(tmp_path, 3, "conll_banking", None)
    assert compare_tasks.table(tmp_path).splitlines() == [
        "| task (test metric) | alone | conll_mtl | ",
        "|---|---|---|",
        "| conll (f1) | 80.00 | 81.25 |",
        "| conll_pos (accuracy) | 92.50 | 92.00 |",
        "",
        "Unfinished jobs (not in the table): conll_banking",
    ]


def test_matmul_flops_follow_from_input_shapes() -> None:
    assert profile_step.matmul_flop(Op("aten::mm", 1.0, (), ((4, 3), (3, 8)))) == 192
    addmm = Op("aten::addmm", 1.0, (), ((8,), (4, 3), (3, 8), (), ()))
    assert profile_step.matmul_flop(addmm) == 192  # the bias comes first
    assert profile_step.matmul_flop(Op("aten::bmm", 1.0, (), ((2, 4, 3), (2, 3, 8)))) == 384
    assert profile_step.matmul_flop(Op("aten::mm", 1.0, (), ())) == 0  # no shapes recorded


def test_operations_fall_into_their_own_or_an_enclosing_category() -> None:
    category = profile_step.category
    assert category(Op("aten::mm", 1, ("AddmmBackward0",))) == "matmul"
    assert category(Op("aten::fill_", 1, ("aten::embedding_dense_backward",))) == (
        "embedding gradient"
    )
    assert category(Op("aten::mul_", 1, ("Optimizer.step#AdamW.step",))) == "optimizer"
    assert category(Op("aten::gelu_backward", 1, ())) == "activation and layer norm"
    assert category(Op("aten::random_", 1, ())) == "dropout masks"
    assert category(Op("aten::add", 1, ("aten::linear",))) == profile_step.OTHER


def test_breakdown_sums_time_per_category_and_bounds_the_speed_up() -> None:
    ops = [
        Op("aten::addmm", 400.0, (), ((8,), (4, 3), (3, 8))),
        Op("aten::mm", 200.0, (), ((4, 3), (3, 8))),
        Op("aten::gelu", 150.0, ()),
        Op("aten::copy_", 250.0, ()),
    ]
    parts = profile_step.breakdown(ops)
    assert parts == {
        "matmul": 600.0,
        "matmul_flop": 384.0,
        "activation and layer norm": 150.0,
        profile_step.OTHER: 250.0,
    }
    assert profile_step.ceiling(parts) == 1000 / 600


def test_collect_keeps_ops_inside_ranges_after_the_warmup_steps() -> None:
    from types import SimpleNamespace as Event

    def event(name, id_, start, self_us, parent=None, shapes=None):
        return Event(
            name=name,
            id=id_,
            time_range=Event(start=start),
            self_cpu_time_total=self_us,
            cpu_parent=parent,
            input_shapes=shapes,
        )

    first = event("mtfsl.train_step", 1, 0.0, 5.0)
    second = event("mtfsl.train_step", 2, 10.0, 7.0)
    linear = event("aten::linear", 5, 11.0, 1.0, second)
    predict = event("mtfsl.predict", 8, 20.0, 3.0)
    events = [
        first,
        event("aten::mm", 3, 1.0, 50.0, first, [[4, 3], [3, 8]]),
        second,
        linear,
        event("aten::addmm", 6, 11.5, 60.0, linear, [[8], [4, 3], [3, 8]]),
        event("aten::copy_", 7, 15.0, 2.0, None),  # outside any range
        predict,
        event("aten::gelu", 9, 21.0, 4.0, predict),
    ]
    phases = profile_step.collect(events, warmup=1)
    assert phases["train"] == [
        Op("mtfsl.train_step", 7.0, ()),  # Python time inside the step
        Op("aten::linear", 1.0, ()),
        Op("aten::addmm", 60.0, ("aten::linear",), ((8,), (4, 3), (3, 8))),
    ]
    assert phases["predict"] == [Op("mtfsl.predict", 3.0, ()), Op("aten::gelu", 4.0, ())]


TRAIN_FILE = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O

Peter NNP B-NP B-PER

-DOCSTART- -X- -X- O

Bonn NNP B-NP B-LOC
, , O O

Fine JJ B-NP O
"""


def test_training_subset_keeps_the_first_sentences_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "conll2003").mkdir()
    (tmp_path / "conll2003" / "train.txt").write_text(TRAIN_FILE)
    out = tmp_path / "out"
    out.mkdir()
    path, count = bench_train.training_subset(str(tmp_path), 3, out)
    assert count == 3
    # the second document's marker comes before sentence 3, so it is kept; sentence 4 is cut
    kept = read_conll(path)
    assert [s.column(0) for s in kept] == [["EU", "rejects"], ["Peter"], ["Bonn", ","]]
    assert [s.doc for s in kept] == [0, 0, 1]
    assert bench_train.training_subset(str(tmp_path), 0, out) == (
        tmp_path / "conll2003" / "train.txt",
        4,
    )
    monkeypatch.chdir(tmp_path)  # a relative data root (make bench's default) gives the same
    assert bench_train.training_subset(".", 0, out)[0] == tmp_path / "conll2003" / "train.txt"
    assert bench_train.training_subset(str(tmp_path), 9, out)[1] == 4


def test_bench_gpu_reports_time_and_f1(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "result.json"
    overrides = ["model=tiny", "hardware=cpu", f"data.root={FIXTURES}", *TOY_TASK]
    cache = f"data.cache_dir={tmp_path / 'cache'}"
    assert bench_gpu.main(["--out", str(out), *overrides, cache, "trainer.epochs=2"]) == 0
    result = json.loads(out.read_text())
    assert result["steps"] == 2  # 2 epochs of one batch (the toy train file has 6 sentences)
    assert result["overrides"][:2] == ["model=mpnet", "hardware=gpu"]
    assert result["overrides"][-1] == "trainer.epochs=2"
    assert 0 < result["train_seconds"] < result["run_seconds"]
    assert 0 <= result["test_f1"] <= 100 and result["peak_cuda_mb"] is None
    printed = capsys.readouterr().out
    assert "train seconds: " in printed and "target: under 60 s" in printed
    assert f"test F1: {result['test_f1']:,.2f}" in printed


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without GPU")
def test_bench_gpu_without_gpu_says_so(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    overrides = ["model=tiny", f"data.root={FIXTURES}", *TOY_TASK]
    assert bench_gpu.main(["--out", str(tmp_path / "r.json"), *overrides]) == 2
    assert capsys.readouterr().err == (
        "bench_gpu: error: hardware.device=CUDA but no CUDA device is available\n"
    )
    assert not (tmp_path / "r.json").exists()


def test_prediction_flops_of_length_sorted_padded_batches() -> None:
    # batches of 2, longest first: [5, 4] padded to 5, [3]: 13 positions, 2 x 25 + 9 = 59
    # attention positions; MiniLM: 6 x (4 x 384^2 + 2 x 384 x 1536) = 10,616,832 parameters
    flops = 2 * 10_616_832 * 13 + 4 * 6 * 384 * 59
    assert bench_train.prediction_flops([3, 5, 4], batch=2) == flops == 276_581_376


def test_prediction_flops_of_another_encoder_from_its_config() -> None:
    # bench_predict.py's bound uses the run's encoder: H 4, FF 8, 2 layers -> 2 x (4 x 16 +
    # 2 x 4 x 8) = 256 parameters; the same batches as above: 13 positions, 59 attention
    from types import SimpleNamespace

    config = SimpleNamespace(hidden_size=4, intermediate_size=8, num_hidden_layers=2)
    flops = bench_train.prediction_flops([3, 5, 4], batch=2, config=config)
    assert flops == 2 * 256 * 13 + 4 * 2 * 4 * 59 == 8_544


def _kernel(op: str, inputs: list, outputs: list, us: float, ts: float = 0) -> dict:
    """One ONNX Runtime profile event of a kernel, shaped as the profiler writes it."""
    shapes = lambda rows: [{"float": shape} for shape in rows]  # noqa: E731
    args = {"op_name": op, "input_type_shape": shapes(inputs), "output_type_shape": shapes(outputs)}
    return {"cat": "Node", "name": f"{op}_kernel_time", "dur": us, "ts": ts, "args": args}


def test_onnx_profile_sums_kernel_time_and_product_flops_per_operator() -> None:
    events = [
        # the same feed-forward product twice: 2 x (2 x 3) x 384 x 1536 FLOPs each call
        _kernel("MatMul", [[2, 3, 384]], [[2, 3, 1536]], 1000),
        _kernel("MatMul", [[2, 3, 384]], [[2, 3, 1536]], 500),
        # Q/K/V projection 2 x 2 x 3 x 4 x 12 = 576, scores and mixing 4 x 2 x 9 x 4 = 288
        _kernel("Attention", [[2, 3, 4], [12], [2]], [[2, 3, 4]], 250),
        _kernel("LayerNormalization", [[2, 3, 4], [4], [4]], [[2, 3, 4]], 40),
        {"cat": "Node", "name": "MatMul_fence_before", "dur": 0, "args": {"op_name": "MatMul"}},
        {"cat": "Session", "name": "model_run", "ts": 0, "dur": 9000, "args": {}},
    ]
    table = profile_onnx.op_table(events)
    assert table == {
        "MatMul 384x1536": {"seconds": 0.0015, "gflop": 2 * 2 * 6 * 384 * 1536 / 1e9},
        "Attention": {"seconds": 0.00025, "gflop": (576 + 288) / 1e9},
        "LayerNormalization": {"seconds": 0.00004, "gflop": 0.0},
    }
    # a warm-up run's kernels (before the second model_run starts) are left out
    runs = [
        {"cat": "Session", "name": "model_run", "ts": ts, "dur": 1, "args": {}} for ts in (0, 10)
    ]
    warm = _kernel("Add", [[2, 3, 4], [2, 3, 4]], [[2, 3, 4]], 70, ts=5)
    timed = _kernel("Add", [[2, 3, 4], [2, 3, 4]], [[2, 3, 4]], 30, ts=12)
    assert profile_onnx.op_table([*runs, warm, timed], skip_runs=1) == {
        "Add": {"seconds": 0.00003, "gflop": 0.0}
    }


def test_the_configuration_reference_is_generated_from_the_current_schema() -> None:
    reference = load_script("config_reference")
    text = reference.reference()
    assert (SCRIPTS.parent / "docs" / "configuration.md").read_text() == text, (
        "docs/configuration.md is stale: run python scripts/config_reference.py"
    )
    assert "| `task.NAME.stride` | int | `128` | Sub-tokens of context that consecutive" in text
    assert "| `few_shot.max_steps` | int \\| None | `200` |" in text


def test_results_table_means_and_stds_over_seeds(tmp_path: Path) -> None:
    table = load_script("results_table")
    for seed, acc in ((1, 60.0), (2, 64.0)):
        folder = tmp_path / "glue" / "rte" / f"seed{seed}"
        folder.mkdir(parents=True)
        metrics = {"test/rte/accuracy": acc, "time/train_seconds": 100.0 * seed}
        (folder / "metrics.json").write_text(json.dumps(metrics))
    text = table.glue_table(tmp_path)
    assert "| rte | acc | 62.00 ± 2.83 | 2 | 60.00, 64.00 | 150 | – | | – | |" in text
    assert "| cola | MCC | – | 0 |  |  | – | | – | |" in text
