"""Few-shot text classification heads (model/metric_heads.py): the nearest class centroid,
SetFit's logistic-regression head and its pair objective, checked against hand-computed
values and scikit-learn."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch
from sklearn.linear_model import LogisticRegression

from mtfsl.config import Distance, Pooling
from mtfsl.errors import ConfigError
from mtfsl.job import run
from mtfsl.kinds.classification import TextDecoder
from mtfsl.model.metric_heads import MetricTextHead, pair_loss
from tests.conftest import TOY_INTENTS, compose_cfg
from tests.test_predict_export import PREDICT


def head(decoder: TextDecoder, n: int = 3, hidden: int = 2, pairs: bool = False):
    return MetricTextHead(hidden, n, 0.0, Pooling.CLS, decoder, Distance.EUCLIDEAN, pairs)


def as_hidden(states: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """States as one-token sequences: CLS pooling hands them to the head unchanged."""
    return states[:, None, :], {"attention_mask": torch.ones(len(states), 1)}


def test_nearest_centroid_by_hand() -> None:
    h = head(TextDecoder.CENTROID).eval()
    # class 0: (1,0) and (3,0) -> centroid (2,0); class 1: (0,2); class 2: no support
    h.remember(torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]]), torch.tensor([0, 0, 1]), [])
    scores = h(*as_hidden(torch.tensor([[2.0, 1.0]])))
    # squared distances from (2,1): 1 to (2,0), 4 + 1 = 5 to (0,2)
    assert scores.tolist() == [[-1.0, -5.0, float("-inf")]]
    assert h.decode(scores, {}).tolist() == [0]
    p = h.probabilities(scores, {}, torch.tensor([0]))
    assert p.item() == pytest.approx(1 / (1 + torch.e**-4))


@pytest.mark.parametrize(("classes", "c"), [(2, 1.0), (3, 1.0), (3, 100.0)])
def test_the_logistic_head_gives_scikit_learns_probabilities(classes: int, c: float) -> None:
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(30, 4, generator=g)
    tags = torch.arange(30) % classes
    raw[:, 0] += 2.0 * tags  # a learnable direction
    h = MetricTextHead(
        4, classes, 0.0, Pooling.CLS, TextDecoder.LOGISTIC, Distance.COSINE, False, c
    )
    h.eval()
    states = torch.nn.functional.normalize(raw, dim=-1)  # what support_rows gives
    hidden, batch = as_hidden(raw)
    assert torch.equal(h.support_rows(hidden, {**batch, "labels": tags})[0], states)
    h.remember(states, tags, [])
    expected = LogisticRegression(C=c, max_iter=1000).fit(states.numpy(), tags.numpy())
    probs = h(hidden, batch).softmax(-1)
    assert probs.numpy() == pytest.approx(expected.predict_proba(states.numpy()), abs=1e-5)


def test_a_class_the_support_lacks_is_never_predicted() -> None:
    h = MetricTextHead(2, 3, 0.0, Pooling.CLS, TextDecoder.LOGISTIC, Distance.COSINE, False)
    h.eval().remember(torch.eye(2).repeat(3, 1), torch.tensor([0, 2] * 3), [])
    scores = h(*as_hidden(torch.tensor([[1.0, 0.2], [0.1, 1.0]])))
    assert scores[:, 1].tolist() == [float("-inf")] * 2
    assert h.decode(scores, {}).tolist() == [0, 2]


def test_pair_loss_by_hand() -> None:
    states = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # pairs (0,1) same label: cos 0, target 1 -> 1, repeated to match the two others;
    # (0,2) and (1,2) different: cos 1/sqrt(2), target 0 -> 0.5 each
    loss = pair_loss(states, torch.tensor([0, 0, 1]))
    assert loss.item() == pytest.approx((1 + 1 + 0.5 + 0.5) / 4)
    assert pair_loss(states[:1], torch.tensor([0])).item() == 0.0


def test_the_pair_objective_pulls_classes_apart() -> None:
    g = torch.Generator().manual_seed(1)
    x, labels = torch.randn(12, 16, generator=g), torch.arange(12) % 3
    encoder = torch.nn.Linear(16, 4)  # 12 independent inputs: any layout is reachable
    optimizer = torch.optim.Adam(encoder.parameters(), lr=0.05)
    losses = []
    for _ in range(100):
        loss = pair_loss(encoder(x), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.05 * losses[0]
    h = head(TextDecoder.CENTROID, hidden=4).eval()
    with torch.no_grad():
        states = encoder(x)
    h.remember(states, labels, [])  # the centroids now tell the training texts apart
    assert h.decode(h(*as_hidden(states)), {}).tolist() == labels.tolist()


def test_the_pair_objective_needs_a_fitted_decoder() -> None:
    from mtfsl.resolve import validate

    with pytest.raises(ConfigError, match=r"task.banking77.objective=PAIRS trains no linear"):
        validate(compose_cfg([*TOY_INTENTS, "task.banking77.objective=PAIRS"]))


def test_a_setfit_run_predicts_from_its_checkpoint(tmp_path: Path) -> None:
    cfg = compose_cfg(
        [
            *TOY_INTENTS,
            f"data.cache_dir={tmp_path / 'cache'}",
            "task.banking77.objective=PAIRS",
            "task.banking77.decoder=LOGISTIC",
            "trainer.max_steps=6",
            "trainer.lr=5e-3",
        ]
    )
    metrics = run(cfg, tmp_path / "run")
    assert metrics["train/steps"] == 6
    # the linear layer takes no part: only the encoder (and the pooler-free head) trains
    assert metrics["train/trainable_parameters"] < metrics["train/parameters"]
    rows = (tmp_path / "run/predictions/test_banking77.tsv").read_text().splitlines()[1:]
    texts = [r.split("\t")[0] for r in rows]
    predicted = subprocess.run(
        [PREDICT, str(tmp_path / "run")],
        input="\n".join(texts) + "\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    # the regression fit on the support is stored with the checkpoint
    assert [p.split("\t")[-1] for p in predicted] == [r.split("\t")[2] for r in rows]
    export = subprocess.run(
        [str(Path(PREDICT).with_name("mtfsl-export")), str(tmp_path / "run"), str(tmp_path / "hf")],
        capture_output=True,
        text=True,
    )
    assert export.returncode != 0 and "LOGISTIC decoder" in export.stderr


def test_a_frozen_encoder_run_keeps_its_fitted_head(tmp_path: Path) -> None:
    """A head-only checkpoint holds the trainable tensors only, and the fitted centroids."""
    cfg = compose_cfg(
        [
            *TOY_INTENTS,
            f"data.cache_dir={tmp_path / 'cache'}",
            "finetune=head_only",
            "task.banking77.decoder=CENTROID",
            "trainer.max_steps=2",
        ]
    )
    run(cfg, tmp_path / "run")
    from safetensors import safe_open

    with safe_open(str(tmp_path / "run/checkpoints/best/model.safetensors"), "pt") as f:
        assert f.get_tensor("heads.banking77.fitted_weight").shape == (4, 32)
    rows = (tmp_path / "run/predictions/test_banking77.tsv").read_text().splitlines()[1:]
    predicted = subprocess.run(
        [PREDICT, str(tmp_path / "run")],
        input="\n".join(r.split("\t")[0] for r in rows) + "\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert [p.split("\t")[-1] for p in predicted] == [r.split("\t")[2] for r in rows]
