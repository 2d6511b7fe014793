"""ONNX export and ONNX Runtime prediction on tiny runs: each kind's graph gives PyTorch's
predictions, the runtime's fusions are applied and recorded, int8 is an explicit and checked
choice, and a graph exported from another checkpoint is refused."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoTokenizer

from mtfsl.errors import ConfigError
from mtfsl.export import export
from mtfsl.inference.onnx import KeepFp32, differing, export_onnx, int8_loss, quantise
from mtfsl.inference.ort import Backend, attach_onnx, session
from mtfsl.inference.run import load_run
from mtfsl.job import run
from mtfsl.training.loop import _DEFAULT_THREADS
from mtfsl.utils.manifest import write_manifest
from tests import test_pair, test_qa, test_regression
from tests.conftest import FIXTURES, TOY_INTENTS, Completed, compose_cfg, predict_in_process
from tests.test_predict_export import PREDICT, predict_cli, trained
from tests.test_train_e2e import read_conll_pred

ROOT = Path(__file__).resolve().parents[1]
EXPORT = str(Path(PREDICT).with_name("mtfsl-export"))


def test_differences_are_counted_per_word_or_per_example() -> None:
    assert differing([["O", "B-PER"], ["O"]], [["O", "O"], ["O"]]) == (1, 3)
    assert differing(["a", "b", "c"], ["a", "c", "c"]) == (1, 3)
    assert differing([0.5, 1.25], [0.5, 1.25]) == (0, 2)


def test_the_int8_loss_is_in_points_of_the_metric() -> None:
    check = {"torch": {"metrics": {"f1": 44.85}}, "onnx": {"metrics": {"f1": 44.85}}}
    assert int8_loss(check, "f1") == 0.0
    check["onnx-int8"] = {"metrics": {"f1": 37.35}}
    assert int8_loss(check, "f1") == pytest.approx(7.5)


class WithoutMtfsl:
    """The README's recipe for the exported folder alone: its tokenizer, config and graph
    under plain ONNX Runtime, each loaded once."""

    def __init__(self, folder: Path) -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.config = AutoConfig.from_pretrained(folder)
        self.graph = ort.InferenceSession(
            folder / "model.onnx",
            providers=["CPUExecutionProvider"],
            disabled_optimizers=["SkipLayerNormFusion"],
        )

    def logits(self, encoding) -> np.ndarray:
        zeros = np.zeros_like(encoding["input_ids"])  # segment ids, where the tokenizer has none
        (logits,) = self.graph.run(
            None, {i.name: encoding.get(i.name, zeros) for i in self.graph.get_inputs()}
        )
        return logits

    def first_logits(self, words: list[str]) -> np.ndarray:
        """(words, labels): each word's first sub-token's logits."""
        encoding = self.tokenizer(words, is_split_into_words=True, return_tensors="np")
        logits = self.logits(encoding)
        first: dict[int, int] = {}
        for position, word in enumerate(encoding.word_ids()):
            if word is not None:
                first.setdefault(word, position)
        return logits[0, [first[w] for w in range(len(words))]]

    def tags(self, words: list[str]) -> list[str]:
        """Each word takes its first sub-token's tag."""
        return [self.config.id2label[int(row.argmax())] for row in self.first_logits(words)]

    def crf_tags(self, words: list[str]) -> list[str]:
        """A CRF tagger's: Viterbi over the words with config.json's crf scores."""
        emissions = self.first_logits(words)
        crf = self.config.crf
        start, end, moves = (np.array(crf[k], np.float32) for k in ("start", "end", "transitions"))
        score, back = start + emissions[0], []
        for row in emissions[1:]:
            total = score[:, None] + moves  # [from, to]
            back.append(total.argmax(0))
            score = total.max(0) + row
        path = [int((score + end).argmax())]
        for pointers in reversed(back):
            path.append(int(pointers[path[-1]]))
        return [self.config.id2label[t] for t in reversed(path)]

    def label(self, texts: tuple[str, ...]) -> str | float:
        """A classifier's or a pair's label of the largest logit; a regression's one output."""
        logits = self.logits(self.tokenizer(*texts, return_tensors="np"))
        if self.config.problem_type == "regression":
            return float(logits[0, 0])
        return self.config.id2label[int(logits[0].argmax())]


def predict(run_dir: Path, *args: str) -> Completed:
    return predict_in_process(str(run_dir), *args)


def test_a_tagger_predicts_through_its_graph_exactly_as_through_pytorch(
    toy_cfg, tmp_path: Path
) -> None:
    run_dir = trained(toy_cfg, tmp_path)
    record = export_onnx(run_dir, run_dir / "onnx" / "conll", int8=True)
    # the tiny BERT's 2 layers fused: embeddings + LayerNorm, attention, bias + GELU; each
    # layer's two residual + LayerNorm stay Add + LayerNormalization (SkipLayerNormalization's
    # CPU kernel is the slower), in the file and in the session that predicts
    assert record["fused_operators"] == {
        "EmbedLayerNormalization": 1,
        "Attention": 2,
        "BiasGelu": 2,
        "LayerNormalization": 4,
    }
    assert record["session_disabled_optimizers"] == ["SkipLayerNormFusion"]
    for graph in ("model.onnx", "model_int8.onnx"):
        optimised = tmp_path / f"session_{graph}"
        session(run_dir / "onnx" / "conll" / graph, optimised)
        ops = Counter(node.op_type for node in onnx.load(str(optimised)).graph.node)
        assert "SkipLayerNormalization" not in ops and ops["LayerNormalization"] == 4
    # --int8-keep-fp32 ffn-out: the map each layer's GELU feeds stays fp32, the rest is int8
    assert record["int8_keep_fp32"] == {"choice": "none", "matmuls": []}
    kept = quantise(
        run_dir / "onnx" / "conll" / "model.onnx", tmp_path / "k.onnx", KeepFp32.FFN_OUT
    )
    assert [name.split("/")[-4:] for name in kept] == [
        ["layer.0", "output", "dense", "MatMul"],
        ["layer.1", "output", "dense", "MatMul"],
    ]
    ops = Counter(node.op_type for node in onnx.load(str(tmp_path / "k.onnx")).graph.node)
    default = Counter(
        node.op_type
        for node in onnx.load(str(run_dir / "onnx" / "conll" / "model_int8.onnx")).graph.node
    )
    assert (ops["MatMul"], ops["MatMulInteger"]) == (2, default["MatMulInteger"] - 2)
    assert record["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    check = record["check"]
    # PyTorch's dev scores here are those of the evaluation that kept the best checkpoint
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert check["torch"]["metrics"] == {
        k.split("/")[-1]: v for k, v in metrics.items() if k.startswith("dev/conll/")
    }
    dev_words = sum(len(s) for s in read_conll_pred(run_dir / "predictions/dev_conll.conll"))
    assert check["onnx"]["predictions"] == check["onnx-int8"]["predictions"] == dev_words
    assert check["onnx"]["differ"] == 0 and check["onnx"]["max_abs_score_diff"] < 1e-4
    assert check["onnx"]["metrics"] == check["torch"]["metrics"]
    assert 0 < check["onnx-int8"]["max_abs_score_diff"] < 0.5  # int8 is near, not equal

    test = str(FIXTURES / "toy_conll" / "toy.test")
    reference = read_conll_pred(run_dir / "predictions" / "test_conll.conll")
    out = tmp_path / "onnx.conll"
    predict_cli(run_dir, test, "conll", out, "--backend", "onnx")
    assert read_conll_pred(out) == reference  # words, gold and predicted tags
    # the folder alone, without mtfsl: its config names the head's class and the labels
    folder = run_dir / "onnx" / "conll"
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"]
    alone = WithoutMtfsl(folder)
    for sentence in reference:
        words = [word for word, _, _ in sentence]
        assert alone.tags(words) == [tag for _, _, tag in sentence]
    assert any(tag != "O" for sentence in reference for _, _, tag in sentence)
    predict_cli(run_dir, test, "conll", out, "--backend", "onnx-int8", "--chunk-size", "2")
    assert [len(s) for s in read_conll_pred(out)] == [len(s) for s in reference]
    report = ("--output", str(tmp_path / "report.txt"))
    scored = predict(run_dir, test, "--format", "conll", "--score", "--backend", "onnx", *report)
    assert json.loads(scored.stdout) == {
        k.replace("test/", "toy.test/"): v for k, v in metrics.items() if k.startswith("test/")
    }
    # probabilities from the graph's logits, through the head's own softmax
    text = "EU rejects German call\n"
    records = [
        json.loads(
            subprocess.run(
                [PREDICT, str(run_dir), "--out-format", "jsonl", "--backend", backend],
                input=text,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for backend in ("torch", "onnx")
    ]
    assert records[1]["tags"] == records[0]["tags"]
    assert records[1]["scores"] == pytest.approx(records[0]["scores"], abs=1e-5)


@pytest.mark.slow  # two scripts in subprocesses (12 s): the default suite keeps its 10 minutes
def test_the_predict_benchmark_and_kernel_profile_agree_with_the_run(
    toy_cfg, tmp_path: Path
) -> None:
    run_dir = trained(toy_cfg, tmp_path)
    export_onnx(run_dir, run_dir / "onnx" / "conll", int8=True)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # the benchmark's sides predict the same 30 test words (HF's baseline included)
    out = tmp_path / "bench.json"
    bench = [sys.executable, str(ROOT / "scripts" / "bench_predict.py"), str(run_dir)]
    subprocess.run([*bench, "--backends", "--rounds", "1", "--out", str(out)], check=True)
    results = json.loads(out.read_text())
    sides, bound = results["sides"], results["fp32_bound"]
    # the fp32 bound: the products' least time at the matmul rate, and torch's time over it
    assert bound["floor_seconds"] == pytest.approx(bound["gflop"] / bound["matmul_gflops"])
    torch_seconds = sides["torch"]["median_seconds"]
    assert bound["max_ratio_vs_torch"] == pytest.approx(torch_seconds / bound["floor_seconds"])
    # the kernel profile counts the same encoder products from the graph's own shapes (the
    # classifier's 32 x labels map aside): Attention (Q/K/V and core), 32x32, 32x37, 37x32
    profile = tmp_path / "profile.json"
    script = str(ROOT / "scripts" / "profile_onnx.py")
    subprocess.run([sys.executable, script, str(run_dir), "--out", str(profile)], check=True)
    ops = json.loads(profile.read_text())["operators"]
    encoder = ("Attention", "MatMul 32x32", "MatMul 32x37", "MatMul 37x32")
    assert sum(ops[name]["gflop"] for name in encoder) == pytest.approx(bound["gflop"])
    assert {name: side["predictions"] for name, side in sides.items()} == {
        "torch": 30,
        "onnx": 30,
        "onnx-int8": 30,
        "hf_trainer_predict": 30,
    }
    assert sides["onnx"]["differ_from_torch"] == 0
    assert (
        sides["onnx"]["scores"]
        == sides["torch"]["scores"]
        == {k.split("/")[-1]: v for k, v in metrics.items() if k.startswith("test/")}
    )


def test_a_missing_or_stale_graph_is_refused_with_the_command_to_fix_it(
    toy_cfg, tmp_path: Path
) -> None:
    run_dir = trained(toy_cfg, tmp_path)
    test = str(FIXTURES / "toy_conll" / "toy.test")
    missing = predict(run_dir, test, "--format", "conll", "--backend", "onnx")
    assert missing.returncode != 0
    assert f"mtfsl-export {run_dir} {run_dir}/onnx/conll --format onnx" in missing.stderr
    export_onnx(run_dir, run_dir / "onnx" / "conll", check_split=None)
    no_int8 = predict(run_dir, test, "--format", "conll", "--backend", "onnx-int8")
    assert "model_int8.onnx not found (export with --int8" in no_int8.stderr
    alone = subprocess.run(
        [EXPORT, str(run_dir), "--format", "onnx", "--int8-keep-fp32", "ffn-out"],
        capture_output=True,
        text=True,
    )
    assert alone.returncode != 0
    assert "--int8-keep-fp32 applies to the int8 graph: add --int8" in alone.stderr
    # the best checkpoint changes (a resumed run): the old graph is not used
    labels = run_dir / "checkpoints" / "best" / "labels.json"
    labels.write_text(json.dumps(json.loads(labels.read_text()), indent=1))
    write_manifest(labels.parent)  # as a new save writes it
    stale = predict(run_dir, test, "--format", "conll", "--backend", "onnx")
    assert stale.returncode != 0 and "exported from a different checkpoint" in stale.stderr


def test_a_crf_tagger_is_decoded_with_its_crf_through_mtfsl_and_from_the_folder_alone(
    toy_cfg, tmp_path: Path
) -> None:
    toy_cfg.task["conll"].crf = True
    run_dir = trained(toy_cfg, tmp_path)
    with pytest.raises(ConfigError, match=r"has a CRF head.*--format onnx exports it"):
        export(run_dir, tmp_path / "hf")
    # transitions strong enough to overrule the tiny model's emissions, so that decoding
    # without the CRF gives other tags
    weights = run_dir / "checkpoints" / "best" / "model.safetensors"
    tensors = load_file(weights)
    (key,) = [k for k in tensors if k.endswith("crf.transitions")]
    tensors[key] = 5 * torch.randn(tensors[key].shape, generator=torch.Generator().manual_seed(0))
    save_file(tensors, weights)
    write_manifest(weights.parent)  # a checkpoint with these weights, as a save writes it
    export_onnx(run_dir, run_dir / "onnx" / "conll", check_split=None)
    test = str(FIXTURES / "toy_conll" / "toy.test")
    pytorch, graph = tmp_path / "torch.conll", tmp_path / "onnx.conll"
    predict_cli(run_dir, test, "conll", pytorch)
    predict_cli(run_dir, test, "conll", graph, "--backend", "onnx")
    reference = read_conll_pred(pytorch)
    assert read_conll_pred(graph) == reference
    alone = WithoutMtfsl(run_dir / "onnx" / "conll")
    assert alone.config.crf["transitions"] == tensors[key].tolist()
    sentences = [([w for w, _, _ in s], [t for _, _, t in s]) for s in reference]
    assert [alone.crf_tags(words) for words, _ in sentences] == [tags for _, tags in sentences]
    without = [alone.tags(words) for words, _ in sentences]
    assert without != [tags for _, tags in sentences]  # the CRF decides
    # the benchmark times the CRF run's graphs; HF's side, which would tag without the CRF,
    # is left out with the reason
    out = tmp_path / "bench.json"
    bench = [sys.executable, str(ROOT / "scripts" / "bench_predict.py"), str(run_dir)]
    done = subprocess.run(
        [*bench, "--backends", "--rounds", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "no HF side: export: task 'conll' has a CRF head" in done.stdout
    sides = json.loads(out.read_text())["sides"]
    assert set(sides) == {"torch", "onnx", "onnx-int8"}
    assert sides["onnx"]["differ_from_torch"] == 0
    assert sides["onnx"]["predictions"] == sum(len(tags) for _, tags in sentences)


def test_the_graph_runs_on_the_runs_threads_as_pytorch_does(toy_cfg, tmp_path: Path) -> None:
    """hardware.threads holds for ONNX Runtime too (it would take every core otherwise)."""
    run_dir = trained(toy_cfg, tmp_path)
    export_onnx(run_dir, run_dir / "onnx" / "conll", check_split=None)
    config = run_dir / "config.yaml"  # not part of the checkpoint: the graph stays valid
    stored = OmegaConf.load(config)
    try:
        for threads in (1, 2):
            stored.hardware.threads = threads
            OmegaConf.save(stored, config)
            loaded = load_run(run_dir)
            attach_onnx(loaded, run_dir, "conll", Backend.ONNX, run_dir / "onnx" / "conll")
            options = loaded.backend.session.get_session_options()
            assert torch.get_num_threads() == options.intra_op_num_threads == threads
    finally:
        torch.set_num_threads(_DEFAULT_THREADS)  # as the next run's null would


KINDS = {  # a tiny run of each other kind, its test file, and the graph's HF class
    # Banking77's mean pooling, which no HF class holds: the run's own head in the graph
    "classification": (
        [*TOY_INTENTS, "trainer.max_steps=10"],
        "toy_intents/toy_test.csv",
        None,
    ),
    "pair": (test_pair.TOY, "toy_pairs/test.tsv", "BertForSequenceClassification"),
    # the first token's state (no HF class either), to one score
    "regression": (
        [*test_regression.TOY, "task.stsb.pooling=CLS"],
        "toy_stsb/test.tsv",
        None,
    ),
    # trained on its two test questions, so that their best spans are clear of the rest
    "qa": (
        [*test_qa.TOY, "task.squad.files.train=test.json", "trainer.max_steps=40"],
        "toy_squad/test.json",
        "BertForQuestionAnswering",
    ),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_scores_a_file_through_its_graph_as_through_pytorch(
    tmp_path: Path, kind: str
) -> None:
    overrides, test, hf_class = KINDS[kind]
    cfg = compose_cfg([*overrides, f"data.cache_dir={tmp_path / 'cache'}"])
    metrics = run(cfg, tmp_path / "run")
    (name,) = cfg.task
    record = export_onnx(tmp_path / "run", tmp_path / "onnx", check_split="test")
    config = json.loads((tmp_path / "onnx" / "config.json").read_text())
    assert config.get("architectures") == ([hf_class] if hf_class else None)
    own = "mtfsl.model.pooled_graph.PooledSequenceModel (no HF class holds this head)"
    assert record["model"] == (hf_class or own)
    if kind != "qa":  # the folder alone gives the run's own test predictions
        rows = (tmp_path / "run" / "predictions" / f"test_{name}.tsv").read_text().splitlines()
        alone = WithoutMtfsl(tmp_path / "onnx")
        for row in rows[1:]:
            *texts, _, pred = row.split("\t")
            label = alone.label(tuple(texts))
            if kind == "regression":
                assert label == pytest.approx(float(pred), abs=1e-5)
            else:
                assert label == pred
    check = record["check"]
    assert check["onnx"]["max_abs_score_diff"] < 1e-4
    if kind == "regression":  # scores, not labels: equal to float32 rounding (the tiny
        # model's near-constant scores make the correlations sensitive to it)
        assert check["onnx"]["metrics"] == pytest.approx(check["torch"]["metrics"], rel=1e-3)
    else:
        assert check["onnx"]["differ"] == 0
        assert check["onnx"]["metrics"] == check["torch"]["metrics"]
    fmt = cfg.task[name].reader.format
    scored = predict(
        tmp_path / "run",
        *(str(FIXTURES / test), "--format", fmt, "--score", "--backend", "onnx"),
        *("--onnx-dir", str(tmp_path / "onnx"), "--output", str(tmp_path / "report.txt")),
    )
    assert scored.returncode == 0, scored.stderr
    expected = {k.split("/", 1)[1]: v for k, v in metrics.items() if k.startswith("test/")}
    got = {k.split("/", 1)[1]: v for k, v in json.loads(scored.stdout).items()}
    assert got == pytest.approx(expected, rel=1e-3, abs=1e-3)
