"""Prediction through ONNX Runtime: a stand-in for the run's PyTorch model in ``predict_ids``.

The ONNX graph (``mtfsl-export RUN --format onnx``) computes what the encoder and the task's
head compute, up to the head's scores; decoding (argmax, Viterbi, the span search) and the
probabilities are the run's own heads' code, on those scores. So windows, batching, decoding
and every output file are the PyTorch path's: only the matrix work moves to the runtime.
"""

from __future__ import annotations

import hashlib
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtfsl.errors import ConfigError
from mtfsl.utils.files import read_json
from mtfsl.utils.manifest import verify_manifest

if TYPE_CHECKING:
    import torch

    from mtfsl.inference.run import LoadedRun
    from mtfsl.model.multitask import MultiTaskModel
    from mtfsl.resolve import Task

RECORD = "onnx_export.json"  # what mtfsl-export wrote and checked, beside the graphs

# ONNX Runtime's session-level fusions, but not this one: it merges each residual Add and the
# LayerNormalization after it into SkipLayerNormalization, whose CPU kernel (ORT 1.32) took
# 0.59 ms on a 700 x 384 input against 0.11 ms for Add + LayerNormalization (a Xeon, 2
# threads); over the CoNLL-2003 test set that was 0.70 s of the int8 graph's 2.27 s.
# mtfsl-export leaves the same fusion out of its offline optimisation (onnx_export.optimise).
DISABLED_FUSIONS = ("SkipLayerNormFusion",)


class Backend(str, Enum):
    """What runs the model in mtfsl-predict: PyTorch, or an exported ONNX graph."""

    TORCH = "torch"
    ONNX = "onnx"  # fp32, ONNX Runtime's BERT fusions applied
    ONNX_INT8 = "onnx-int8"  # dynamic int8 quantisation of the same graph

    @property
    def graph(self) -> str:
        return "model_int8.onnx" if self is Backend.ONNX_INT8 else "model.onnx"


def require_onnx() -> None:
    """A clear error, not an ImportError from deep inside, when the onnx extra is missing."""
    import importlib.util

    missing = [name for name in ("onnx", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(
            f"ONNX export and prediction need {' and '.join(missing)}: pip install 'mtfsl[onnx]'"
        )


def checkpoint_fingerprint(best: Path) -> str:
    """sha256 over every file of a checkpoint folder (names and bytes), so a graph exported
    from an older best checkpoint of a resumed or retrained run is refused, not used."""
    digest = hashlib.sha256()
    for path in sorted(p for p in best.rglob("*") if p.is_file()):
        digest.update(path.relative_to(best).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def session(path: Path, optimised_copy: Path | None = None, profile: Path | None = None) -> Any:
    """An ONNX Runtime CPU session with every graph optimisation on but DISABLED_FUSIONS, on
    as many intra-op threads as torch has now. ``optimised_copy``: where to write the graph as
    the session optimised it. ``profile``: a file-name prefix for ONNX Runtime's kernel
    profile (``session.end_profiling()`` writes it; scripts/profile_onnx.py)."""
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    # ONNX Runtime would take every physical core, ignoring hardware.threads and
    # OMP_NUM_THREADS; torch's count (set from them when the run was loaded) keeps both
    # backends on the same cores, so a thread cap holds and their speeds compare.
    options.intra_op_num_threads = torch.get_num_threads()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # warnings about unused initialisers are not the user's
    if optimised_copy is not None:
        options.optimized_model_filepath = str(optimised_copy)
    if profile is not None:
        options.enable_profiling, options.profile_file_prefix = True, str(profile)
    return ort.InferenceSession(
        str(path),
        options,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=list(DISABLED_FUSIONS),
    )


class OnnxTaskModel:
    """Scores of one task from an ONNX Runtime session; ``decode`` and ``probabilities`` are
    the PyTorch model's heads'. Has the part of ``MultiTaskModel``'s interface that
    ``predict_ids`` uses."""

    def __init__(
        self,
        model: MultiTaskModel,
        task: Task,
        graph: Path,
        profile: Path | None = None,
    ) -> None:
        """``profile``: ONNX Runtime's kernel profile on, written under this prefix."""
        self.model, self.task, self.kind = model, task.name, task.kind
        self.session = session(graph, profile=profile)
        self.inputs = [i.name for i in self.session.get_inputs()]

    def eval(self) -> OnnxTaskModel:
        return self

    def feeds(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        import numpy as np

        ids = batch["input_ids"].cpu().numpy()
        # single-text features carry no segment ids; the HF model then uses zeros, as here
        zeros = np.zeros_like(ids)
        return {n: batch[n].cpu().numpy() if n in batch else zeros for n in self.inputs}

    def __call__(self, task: str, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if task != self.task:
            raise ConfigError(f"the ONNX graph is task '{self.task}''s, not '{task}''s")
        outputs = self.session.run(None, self.feeds(batch))
        return self.kind.scores_from_outputs(outputs).to(batch["input_ids"].device)

    def decode(self, task: str, scores: torch.Tensor, batch: dict[str, torch.Tensor]):
        return self.model.decode(task, scores, batch)

    def probabilities(self, task: str, scores: torch.Tensor, batch: Any, ids: torch.Tensor):
        return self.model.probabilities(task, scores, batch, ids)


def onnx_dir(run_dir: Path, task: str) -> Path:
    """Where ``mtfsl-export RUN --format onnx`` writes by default: beside the checkpoints."""
    return run_dir / "onnx" / task


def attach_onnx(run: LoadedRun, run_dir: Path, task: str, backend: Backend, folder: Path) -> None:
    """Make ``run`` predict ``task`` through the exported graph of ``backend`` in ``folder``,
    after checking that the graph was exported from this run's best checkpoint."""
    require_onnx()
    record_path = folder / RECORD
    if not record_path.is_file():
        raise ConfigError(
            f"--backend {backend.value}: no ONNX export in {folder} (missing {RECORD}); run "
            f"mtfsl-export {run_dir} {folder} --format onnx"
            + (" --int8" if backend is Backend.ONNX_INT8 else "")
        )
    verify_manifest(folder)  # a graph changed after export predicts other labels
    record = read_json(record_path)
    graph = folder / backend.graph
    if not graph.is_file():
        raise ConfigError(
            f"--backend {backend.value}: {graph} not found (export with --int8 for onnx-int8)"
        )
    if record.get("task") != task:
        raise ConfigError(f"{folder}: exported for task '{record.get('task')}', not '{task}'")
    if record.get("checkpoint") != checkpoint_fingerprint(run.checkpoint):
        raise ConfigError(
            f"{folder}: exported from a different checkpoint than {run_dir}'s best one "
            "(the run was resumed or trained again); export it again"
        )
    run.backend = OnnxTaskModel(run.model, run.tasks[task], graph)
