"""``mtfsl-export RUN [OUT] --format onnx``: one task as an ONNX graph for ONNX Runtime.

The graph is the task's standard HF model (the kind's ``export_model``, as ``--format hf``
writes it), with that model's input and output names; where no HF class holds the head (a
text head pooling the first token or the mean), the run's own head over the encoder, with
the same names (the kind's ``onnx_model``). Beside it: ``config.json`` (its class
and ``id2label``), the tokenizer, and ``onnx_export.json``, which records the exporter, the
runtime's fusions, the checkpoint it came from, and the check below. The folder is all a
deployment needs: plain ONNX Runtime and the tokenizer predict from it without mtfsl
(README, tested on a tagger).

Written by hand on ``torch.onnx`` rather than optimum's exporter: optimum-onnx (0.1) requires
transformers < 4.58 and cannot be installed beside transformers 5.

The check: the graph (and the int8 one) predicts the run's dev split next to the PyTorch
model, on the same windows and batches; the scores, the number of predictions that differ and
the largest score difference are printed and recorded.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtfsl.errors import ConfigError, MtfslError
from mtfsl.inference.ort import (
    DISABLED_FUSIONS,
    RECORD,
    Backend,
    OnnxTaskModel,
    checkpoint_fingerprint,
    require_onnx,
)
from mtfsl.utils.manifest import write_manifest

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

    from mtfsl.inference.run import LoadedRun

log = logging.getLogger(__name__)

OPSET = 17  # LayerNormalization is an ONNX op from 17 on
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def input_names(model: PreTrainedModel) -> list[str]:
    """The inputs the model's forward takes (MPNet, for one, has no segment ids)."""
    import inspect

    accepted = inspect.signature(model.forward).parameters
    return [name for name in INPUTS if name in accepted]


def trace(model: PreTrainedModel, path: Path, inputs: list[str], outputs: list[str]) -> None:
    """Write ``model`` as an ONNX graph with dynamic batch and sequence axes.

    The TorchScript exporter on eager attention, because ONNX Runtime's BERT fusions match
    the graph it writes: measured on all-MiniLM-L6-v2 (ORT 1.32), all 6 attention blocks
    fused into Attention ops, against none for the dynamo exporter's graph or SDPA's."""
    import torch

    model.set_attn_implementation("eager")
    dummy = {name: torch.ones(2, 8, dtype=torch.long) for name in inputs}
    dummy["input_ids"] = torch.arange(16, dtype=torch.long).reshape(2, 8) + 1
    axes = {name: {0: "batch", 1: "sequence"} for name in inputs}
    axes |= {name: {0: "batch"} for name in outputs}
    with warnings.catch_warnings():  # the tracer's notes on Python control flow
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            tuple(dummy[name] for name in inputs),
            str(path),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )


@contextmanager
def _quiet() -> Iterator[None]:
    """Only errors from ONNX Runtime's tools, which log to the root logger or to loggers named
    after their own modules."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def optimise(path: Path, config: Any) -> dict[str, int]:
    """ONNX Runtime's transformer optimisations (attention, embedding + LayerNorm and bias +
    GELU fusions) applied in place; the fused operators, counted.

    Residual + LayerNorm stay two operators: the fused SkipLayerNormalization's CPU kernel is
    5x slower than Add + LayerNormalization (mtfsl.inference.ort.DISABLED_FUSIONS); without it
    the int8 graph's forward passes over the CoNLL-2003 test set took 1.69 s, not 2.36 s."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    fusions = FusionOptions("bert")
    fusions.enable_skip_layer_norm = False

    # its per-pattern notes (a tiny test vocabulary smaller than the position table...) are
    # not the user's; what fused is recorded instead
    with _quiet():
        optimised = optimize_model(
            str(path),
            model_type="bert",  # the encoder-only fusion set; MPNet gets those that match
            num_heads=config.num_attention_heads,
            hidden_size=config.hidden_size,
            optimization_options=fusions,
        )
    optimised.save_model_to_file(str(path))
    return {k: v for k, v in optimised.get_fused_operator_statistics().items() if v}


class KeepFp32(str, Enum):
    """Linear maps that ``--int8`` leaves in fp32."""

    NONE = "none"
    # each layer's feed-forward output projection. Its input, the GELU's output, is quantised
    # with one scale per batch. On all-mpnet-base-v2 (12 layers) int8 lost 0.88 dev F1 of a
    # CoNLL tagger trained one epoch and 7.48 of a 5-shot one; with these 12 maps in fp32,
    # +0.03 and +0.33, at 2.05x PyTorch's speed instead of 4.04x (docs/performance.md).
    # Smoothing their inputs (SmoothQuant, alpha 0.5) did not help the 5-shot one (-8.40).
    FFN_OUT = "ffn-out"


GELUS = ("Gelu", "BiasGelu", "FastGelu")  # as exported, or as ONNX Runtime's fusions write it


def ffn_out_matmuls(path: Path) -> list[str]:
    """The names of the MatMuls that a GELU feeds: each layer's feed-forward output map."""
    import onnx

    graph = onnx.load(str(path)).graph
    producer = {out: node.op_type for node in graph.node for out in node.output}
    names = [
        node.name
        for node in graph.node
        if node.op_type == "MatMul" and producer.get(node.input[0]) in GELUS
    ]
    if not names or not all(names):
        raise ConfigError(
            f"--int8-keep-fp32 ffn-out: {path} has no named MatMul fed by a GELU "
            f"({'/'.join(GELUS)}); this encoder's feed-forward maps cannot be found"
        )
    return names


def quantise(source: Path, target: Path, keep: KeepFp32 = KeepFp32.NONE) -> list[str]:
    """Dynamic int8 quantisation: int8 weights, activations quantised per batch at run time.
    Returns the names of the MatMuls left in fp32 (``keep``)."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    excluded = ffn_out_matmuls(source) if keep is KeepFp32.FFN_OUT else []
    # the fused ops (com.microsoft domain) defeat ONNX's shape inference; their outputs are
    # float, which the quantiser must then be told
    with _quiet():  # its advice to pre-process is for static quantisation
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            # a scale per output channel: -0.06 dev F1 on CoNLL-2003 against -0.88 with one
            # scale per tensor (all-MiniLM-L6-v2, docs/performance.md)
            per_channel=True,
            nodes_to_exclude=excluded,
            extra_options={"DefaultTensorType": TensorProto.FLOAT},
        )
    return excluded


class Compared:
    """In ``predict_ids``, the scores of ``graph``, compared batch by batch with the PyTorch
    model's. PyTorch's scores are kept (``reference``): given them, a second ``Compared``
    replays them instead of running PyTorch again (``graph=None``: PyTorch's predictions)."""

    def __init__(self, graph: OnnxTaskModel | None, model: Any, reference: list | None = None):
        self.graph, self.model = graph, model
        self.replay = reference is not None
        self.reference: list[torch.Tensor] = reference if reference is not None else []
        self.batches, self.max_diff = 0, 0.0

    def eval(self) -> Compared:
        return self

    def __call__(self, task: str, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.replay:
            expected = self.reference[self.batches]
        else:
            expected = self.model(task, batch)
            self.reference.append(expected)
        self.batches += 1
        if self.graph is None:
            return expected
        scores = self.graph(task, batch)
        self.max_diff = max(self.max_diff, float((scores.float() - expected.float()).abs().max()))
        return scores

    def decode(self, task: str, scores: torch.Tensor, batch: Any) -> torch.Tensor:
        return self.model.decode(task, scores, batch)

    def probabilities(self, task: str, scores: torch.Tensor, batch: Any, ids: Any) -> Any:
        return self.model.probabilities(task, scores, batch, ids)


def differing(a: list[Any], b: list[Any]) -> tuple[int, int]:
    """(predictions that differ, predictions): per word for word lists, else per example."""
    total = differ = 0
    for x, y in zip(a, b, strict=True):
        xs, ys = (x, y) if isinstance(x, list) else ([x], [y])
        total += len(xs)
        differ += sum(p != q for p, q in zip(xs, ys, strict=True))
    return differ, total


def _eval_set(run: LoadedRun, task: str, split: str, data_root: str | None) -> Any:
    from mtfsl.data.splits import load_task
    from mtfsl.pipeline.prepare import EvalSet, split_features

    data = replace(run.cfg.data, root=data_root) if data_root else run.cfg.data
    try:
        splits = load_task(run.tasks[task], data).splits
    except MtfslError as err:
        raise ConfigError(
            f"--check {split}: cannot read the run's data ({err}); pass --data-root, or "
            "--check none to skip the check"
        ) from None
    if split not in splits:
        raise ConfigError(f"--check {split}: task '{task}' has no {split} split ({list(splits)})")
    examples = splits[split]
    features = split_features(
        examples, run.tasks[task], run.labels[task], run.tokenizer, run.cfg, cache=False
    )
    return EvalSet(features, examples)


def check(
    run: LoadedRun, task: str, graphs: dict[Backend, Path], split: str, data_root: str | None
) -> dict[str, Any]:
    """Each graph's predictions and scores on ``split`` beside PyTorch's."""
    from mtfsl.pipeline.evaluate import predict_ids
    from mtfsl.pipeline.prepare import collator_for

    cfg, labels = run.cfg.task[task], run.labels[task]
    kind, eval_set = run.tasks[task].kind, _eval_set(run, task, split, data_root)
    collator = collator_for([run.tasks[task].kind], run.tokenizer, run.cfg.hardware)

    def predict(model: Compared) -> list[Any]:
        batch = run.cfg.trainer.eval_batch_size
        ids = predict_ids(model, run.tasks[task], eval_set, run.accelerator, collator, batch)
        return kind.to_labels(cfg, ids, labels)

    def score(pred: list[Any]) -> dict[str, float]:
        return kind.score(cfg, eval_set.split.targets, pred, run.cfg.metrics.mode)

    results: dict[str, Any] = {"split": split, "examples": len(eval_set.split)}
    reference: list | None = None
    for backend, graph in graphs.items():
        compared = Compared(OnnxTaskModel(run.model, run.tasks[task], graph), run.model, reference)
        pred = predict(compared)
        reference = compared.reference
        if "torch" not in results:  # PyTorch's predictions from the kept scores
            torch_pred = predict(Compared(None, run.model, reference))
            results["torch"] = {"metrics": score(torch_pred)}
        differ, total = differing(
            [kind.decision(p) for p in torch_pred], [kind.decision(p) for p in pred]
        )
        results[backend.value] = {
            "metrics": score(pred),
            "differ": differ,
            "predictions": total,
            "max_abs_score_diff": compared.max_diff,
        }
    return results


# points of the primary metric that int8 may lose on the check split before mtfsl-export
# suggests --int8-keep-fp32 (all-MiniLM-L6-v2 lost 0.2 F1 on CoNLL, 1.0 accuracy on Banking77)
INT8_HINT = 2.0


def change(check_result: dict[str, Any], backend: str, metric: str) -> float:
    """Points of ``metric`` that ``backend``'s graph gained over PyTorch on the check split."""
    torch_value = check_result["torch"]["metrics"][metric]
    return check_result[backend]["metrics"][metric] - torch_value


def int8_loss(check_result: dict[str, Any], metric: str) -> float:
    """Points of ``metric`` the int8 graph lost against PyTorch (0 when there is none)."""
    if Backend.ONNX_INT8.value not in check_result:
        return 0.0
    return -change(check_result, Backend.ONNX_INT8.value, metric)


def summary(check_result: dict[str, Any], metric: str) -> list[str]:
    """Lines for the console: each backend's headline score and differences."""
    torch_value = check_result["torch"]["metrics"][metric]
    lines = [f"{check_result['split']} {metric}: torch {torch_value:.2f}"]
    for name, result in check_result.items():
        if isinstance(result, dict) and "differ" in result:
            value, gain = result["metrics"][metric], change(check_result, name, metric)
            lines.append(
                f"{check_result['split']} {metric}: {name} {value:.2f} ({gain:+.2f});"
                f" {result['differ']} of {result['predictions']} predictions differ from "
                f"torch's, max |score difference| {result['max_abs_score_diff']:.2e}"
            )
    return lines


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    return {
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def _graphs(model: Any, folder: Path, outputs: list[str], int8_keep: KeepFp32 | None) -> tuple:
    """The traced, optimised graph (and, unless ``int8_keep`` is None, its int8 copy) in
    ``folder``; returns the graphs, the model's inputs, the fused operators and the linear
    maps kept in fp32."""
    inputs = input_names(model.base_model)
    trace(model, folder / Backend.ONNX.graph, inputs, outputs)
    fused = optimise(folder / Backend.ONNX.graph, model.config)
    graphs = {Backend.ONNX: folder / Backend.ONNX.graph}
    kept: list[str] = []
    if int8_keep is not None:
        kept = quantise(graphs[Backend.ONNX], folder / Backend.ONNX_INT8.graph, int8_keep)
        graphs[Backend.ONNX_INT8] = folder / Backend.ONNX_INT8.graph
    return graphs, inputs, fused, kept


def _save_config(model: Any, run: LoadedRun, folder: Path) -> bool:
    """The model's config and the tokenizer beside the graph; whether an HF class holds the
    model. save_pretrained on the model would name its class; on the config alone, the
    encoder's (BertModel) would stay. A head that no HF class holds names none."""
    from transformers import PreTrainedModel

    hf_class = isinstance(model, PreTrainedModel)
    model.config.architectures = [type(model).__name__] if hf_class else None
    model.config.save_pretrained(folder)
    run.tokenizer.save_pretrained(folder)
    return hf_class


def export_onnx(
    run_dir: Path,
    out_dir: Path,
    task: str | None = None,
    int8: bool = False,
    check_split: str | None = "dev",
    data_root: str | None = None,
    int8_keep: KeepFp32 = KeepFp32.NONE,
) -> dict[str, Any]:
    """Export, optimise (and quantise, leaving ``int8_keep`` in fp32) one task of a run into
    ``out_dir``; check the graphs on ``check_split`` unless it is None. Returns the record
    written as onnx_export.json."""
    require_onnx()
    from mtfsl.inference.hf import to_hf
    from mtfsl.inference.run import load_run

    run = load_run(run_dir)
    name = run.task(task)
    kind = run.tasks[name].kind
    model = to_hf(run, name, graph=True)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")  # a failure leaves no half export
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        outputs = list(kind.onnx_outputs)
        graphs, inputs, fused, kept = _graphs(model, tmp, outputs, int8_keep if int8 else None)
        hf_class = _save_config(model, run, tmp)
        own = f"{type(model).__module__}.{type(model).__name__} (no HF class holds this head)"
        record = {
            "task": name,
            "kind": kind.name,
            "checkpoint": checkpoint_fingerprint(run.checkpoint),
            "exporter": f"torch.onnx (TorchScript), opset {OPSET}, eager attention",
            "versions": _versions(),
            "model": type(model).__name__ if hf_class else own,
            "inputs": inputs,
            "outputs": outputs,
            "fused_operators": fused,
            # what mtfsl-predict's sessions leave out; other runtimes' users may too
            "session_disabled_optimizers": list(DISABLED_FUSIONS),
            "int8": "onnxruntime.quantization.quantize_dynamic, per-channel QInt8 weights"
            if int8
            else None,
            "int8_keep_fp32": {"choice": int8_keep.value, "matmuls": kept} if int8 else None,
            "check": check(run, name, graphs, check_split, data_root) if check_split else None,
        }
        (tmp / RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        write_manifest(tmp)  # mtfsl-predict --backend onnx checks the graphs against it
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return record
