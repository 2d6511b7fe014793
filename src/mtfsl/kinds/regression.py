"""Regression on text pairs (semantic similarity: STS-B): both texts in one input, the pooled
state through a linear layer to one score, MSE loss; Pearson and Spearman correlation (x100,
as GLUE reports them) and the MSE; predictions files with the gold and the predicted score."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mtfsl.config import MetricMode, Pooling, TaskConfig
from mtfsl.data.splits import Split
from mtfsl.errors import ConfigError, DataError
from mtfsl.kinds import register_kind
from mtfsl.kinds.base import TaskKind
from mtfsl.kinds.parts import PooledExport, TextPairs

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# A regression task's one output, named in the checkpoint's labels.json and the export's
# id2label, where a classification task names its classes.
SCORE = "score"


@dataclass
class RegressionTaskConfig(TaskConfig):
    kind: str = "regression"
    # Where the two texts and the gold score are (names or indices); null = the fields
    # "text", "text_pair" and "label".
    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    pooling: Pooling = Pooling.AUTO  # the backbone family's: CLS for encoders, LAST for decoders


def score_text(value: float) -> str:
    """A predicted score as written: the shortest decimal that reads back as the float32 the
    model computed. Scores are computed on these decimals (``finish_predictions``), so
    metrics recomputed from a predictions file equal metrics.json exactly."""
    return str(np.float32(value))


def correlations(gold: list[float], pred: list[float]) -> dict[str, float]:
    """Pearson and Spearman (x100) and the MSE. A correlation is undefined when either side is
    constant (an untrained model can predict one value): it is scored 0 and logged."""
    from scipy.stats import pearsonr, spearmanr

    g, p = np.asarray(gold, np.float64), np.asarray(pred, np.float64)
    mse = float(np.mean((g - p) ** 2)) if len(g) else math.nan
    if len(g) < 2 or np.ptp(g) == 0 or np.ptp(p) == 0:
        log.warning("regression: constant gold or predicted scores; correlations scored 0")
        return {"pearson": 0.0, "spearman": 0.0, "mse": mse}
    return {
        "pearson": 100.0 * float(pearsonr(g, p).statistic),
        "spearman": 100.0 * float(spearmanr(g, p).statistic),
        "mse": mse,
    }


class RegressionKind(TextPairs, PooledExport, TaskKind):
    """Text pairs (``TextPairs``) with a score each; exported as a pooled head."""

    name = "regression"
    schema = RegressionTaskConfig
    pseudo_labels = False  # no label probabilities

    def validate(self, key: str, task: RegressionTaskConfig) -> None:
        for field in ("labels", "labels_file", "label_names", "label_map"):
            if getattr(task, field):
                raise ConfigError(f"{key}.{field}: a regression task has no label set")

    def metric_names(self, task: Any) -> frozenset[str]:
        return frozenset({"pearson", "spearman", "mse"})

    def default_metric(self, task: Any) -> str:
        return "spearman"  # what GLUE papers lead with for STS-B

    def lower_is_better(self, metric: str) -> bool:
        return metric == "mse"

    # -- data ----------------------------------------------------------------------------
    def to_split(self, records: Any, task: RegressionTaskConfig) -> Split:
        texts, scores, lines = [], [], []
        for record in records.rows:
            where = records.at(record)
            texts.append(self.example_input(record.values, where))
            scores.append(self._score(record.values["label"], where))
            lines.append(record.line)
        return Split(records.path, texts, scores, lines, rows=records.by_row)

    @staticmethod
    def _score(value: Any, where: str) -> float:
        try:
            score = float(value)
        except (TypeError, ValueError):
            score = math.nan
        if isinstance(value, bool) or not math.isfinite(score):
            raise DataError(f"{where}: expected a finite number (the score), found {value!r:.80}")
        return score

    def derive_labels(self, task: Any, train: Split) -> list[str]:
        return [SCORE]

    def labelled(self, split: Split):
        return iter(())  # no classes: nothing to check against a label set

    def label_counts(self, split: Split) -> dict[str, int]:
        return {"examples": len(split)}

    def samplers(self, task: Any) -> frozenset[str]:
        return frozenset({"random"})

    def default_sampler(self, task: Any) -> str | None:
        return "random"

    # -- model ---------------------------------------------------------------------------
    def head(self, task, hidden, num_labels, dropout, context):
        from mtfsl.model.heads import RegressionHead

        return RegressionHead(hidden, dropout, task.pooling)

    def label_ids(self, split: Split, labels: list[str]) -> list[Any]:
        return list(split.targets)

    # -- evaluation ----------------------------------------------------------------------
    def owned(self, batch, ids) -> np.ndarray:
        import torch

        sentence = batch["sentence"].double()
        rows = [sentence, torch.zeros_like(sentence), ids.double()]
        return torch.stack(rows, dim=1).cpu().numpy()

    def empty_predictions(self, split: Split) -> list[np.ndarray]:
        return [np.full(1, np.nan) for _ in split.inputs]

    def unpredicted(self, preds: list[np.ndarray]) -> int:
        return sum(int(np.isnan(p).sum()) for p in preds)

    def finish_predictions(self, preds: list[np.ndarray]) -> list[Any]:
        return [float(score_text(p[0])) for p in preds]

    def to_labels(self, task: Any, ids: list[Any], labels: list[str]) -> list[Any]:
        return list(ids)

    def score(self, task: Any, gold, pred, mode: MetricMode) -> dict:
        return correlations(gold, pred)

    def report(self, task, split, name, gold, pred, labels, mode) -> str:
        s = correlations(gold, pred)
        g, p = np.asarray(gold), np.asarray(pred)
        lines = [
            f"# {split} / {name}: {len(g)} pairs\n",
            f"Pearson {s['pearson']:.2f}  Spearman {s['spearman']:.2f}  MSE {s['mse']:.4f}  "
            f"MAE {np.mean(np.abs(g - p)):.4f}\n",
            "## By gold score (5 equal-width bins)",
            f"{'gold in':>16} {'n':>6} {'mean gold':>10} {'mean pred':>10} {'MAE':>8}",
        ]
        edges = np.linspace(g.min(), g.max(), 6)
        bins = np.clip(np.digitize(g, edges[1:-1]), 0, 4)
        for b in range(5):
            sel = bins == b
            if sel.any():
                span = f"[{edges[b]:.2f}, {edges[b + 1]:.2f}{']' if b == 4 else ')'}"
                lines.append(
                    f"{span:>16} {int(sel.sum()):>6} {g[sel].mean():>10.3f} "
                    f"{p[sel].mean():>10.3f} {np.abs(g[sel] - p[sel]).mean():>8.3f}"
                )
        return "\n".join(lines) + "\n"

    def write_predictions(self, path: Path, split: Split, pred: list[Any]) -> None:
        gold = [repr(g) for g in split.targets]
        self.write_pairs(path, split, gold, [score_text(p) for p in pred])

    # -- export and prediction -----------------------------------------------------------
    def export_model(self, task, name, head, encoder, config):
        # HF's regression layout: one output, no activation (a pipeline applies none either)
        config.problem_type = "regression"
        return self.export_pooled(task, name, head, config)

    def onnx_model(self, task, name, head, encoder, config):
        config.problem_type = "regression"
        return self.onnx_pooled(task, name, head, config)

    def scores_from_outputs(self, outputs: list[np.ndarray]) -> torch.Tensor:
        import torch

        return torch.from_numpy(outputs[0]).squeeze(-1)  # HF's (batch, 1): the head's (batch,)

    def placeholder(self, item: Any, labels: list[str]) -> Any:
        return 0.0

    def prediction_record(self, example: Any, pred: Any, prob: Any = None) -> dict[str, Any]:
        first, second = example.item
        return {"text": first, "text_pair": second, "score": pred}

    def tsv_fields(self, example: Any, pred: Any) -> list[str]:
        return [*example.item, score_text(pred)]


register_kind(RegressionKind())
