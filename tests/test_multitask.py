"""Task samplers, loss weighting, heads (incl. CRF) and CSV tasks."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate.utils import set_seed

from mtfsl.config import (
    DataConfig,
    LossWeightsConfig,
    Pooling,
    TaskSamplingConfig,
)
from mtfsl.constants import IGNORE_INDEX
from mtfsl.data.multitask import AnnealedSampler, build_task_sampler
from mtfsl.data.splits import load_task
from mtfsl.errors import ConfigError, DataError
from mtfsl.kinds.classification import ClassificationTaskConfig
from mtfsl.losses import build_weighting
from mtfsl.model.crf import CRF
from mtfsl.model.heads import CRFTokenHead, SequenceClassificationHead, TokenClassificationHead
from mtfsl.resolve import resolve_task, validate
from tests.conftest import classification_task, compose_cfg, read_texts

SIZES = {"a": 100, "b": 400, "c": 1600}


def sampler(kind: str, **kw: float):
    return build_task_sampler(TaskSamplingConfig(kind=kind, **kw), SIZES, seed=0)


def test_a_third_party_sampler_and_weighting_register_as_the_built_in_ones_do() -> None:
    from mtfsl.data.multitask import TASK_SAMPLERS, ProportionalSampler, register_task_sampler
    from mtfsl.losses import WEIGHTINGS, StaticWeighting, register_weighting

    class Squared(ProportionalSampler):
        name = "squared"

        def alpha(self, progress: float) -> float:
            return 2.0

    class Halved(StaticWeighting):
        name = "halved"

        @classmethod
        def build(cls, cfg: LossWeightsConfig, tasks: list[str]) -> StaticWeighting:
            return cls(tasks, {t: 0.5 for t in tasks})

    register_task_sampler(Squared)
    register_weighting(Halved)
    try:
        # 1 : 16 : 256 over the sizes 100, 400, 1600; YAMLs may spell names in capitals
        assert np.allclose(sampler("SQUARED").probabilities(), [1 / 273, 16 / 273, 256 / 273])
        halved = build_weighting(LossWeightsConfig(kind="halved"), ["a", "b"])
        assert halved(losses()).item() == pytest.approx(0.5 * 2.0 + 0.5 * 0.5)
    finally:
        del TASK_SAMPLERS["squared"], WEIGHTINGS["halved"]
    with pytest.raises(ConfigError, match=r"task_sampling.kind=squared: expected a task sampler"):
        sampler("squared")


def test_sampler_probabilities_are_exact() -> None:
    assert np.allclose(sampler("uniform").probabilities(), [1 / 3] * 3)
    assert np.allclose(sampler("proportional").probabilities(), [1 / 21, 4 / 21, 16 / 21])
    # T=2: sqrt sizes 10, 20, 40
    assert np.allclose(
        sampler("temperature", temperature=2.0).probabilities(), [1 / 7, 2 / 7, 4 / 7]
    )
    assert np.allclose(
        sampler("temperature", temperature=1.0).probabilities(),
        [1 / 21, 4 / 21, 16 / 21],
    )


def test_annealed_schedule_values() -> None:
    s = AnnealedSampler(SIZES, seed=0, min_alpha=0.2)
    assert [s.alpha(p) for p in (0.0, 0.5, 1.0)] == pytest.approx([1.0, 0.6, 0.2])
    assert np.allclose(s.probabilities(0.0), [1 / 21, 4 / 21, 16 / 21])
    expected = np.array([100, 400, 1600]) ** 0.2
    assert np.allclose(s.probabilities(1.0), expected / expected.sum())
    assert np.allclose(AnnealedSampler(SIZES, 0, min_alpha=0.0).probabilities(1.0), [1 / 3] * 3)


def test_draws_follow_probabilities_and_round_robin_cycles() -> None:
    s = sampler("proportional")
    draws = [s.pop()[0] for _ in range(21000)]
    freq = np.array([draws.count(n) for n in "abc"]) / len(draws)
    assert np.allclose(freq, [1 / 21, 4 / 21, 16 / 21], atol=0.01)
    rr = sampler("round_robin")
    assert [rr.pop()[0] for _ in range(7)] == list("abcabca")
    assert sampler("all").pop() == ["a", "b", "c"]
    assert sampler("all").epoch_steps({"a": 3, "b": 5}) == 5
    assert sampler("uniform").epoch_steps({"a": 3, "b": 5}) == 8


def losses() -> dict[str, torch.Tensor]:
    return {"a": torch.tensor(2.0), "b": torch.tensor(0.5)}


def test_static_and_mean_weighting_values() -> None:
    static = build_weighting(LossWeightsConfig(weights={"a": 0.25}), ["a", "b"])
    assert static(losses()).item() == pytest.approx(0.25 * 2.0 + 1.0 * 0.5)
    assert static.weights() == {"a": 0.25, "b": 1.0}
    mean = build_weighting(LossWeightsConfig(kind="mean"), ["a", "b"])
    assert mean(losses()).item() == pytest.approx(1.25)


@pytest.mark.parametrize("kind", ["uncertainty", "softmax"])
def test_learned_weights_get_gradients(kind: str) -> None:
    weighting = build_weighting(LossWeightsConfig(kind=kind), ["a", "b"])
    total = weighting(losses())
    # at initialisation every weight is 1: the loss is the plain sum (+ sum of s_t = 0)
    assert total.item() == pytest.approx(2.5)
    assert weighting.weights() == pytest.approx({"a": 1.0, "b": 1.0})
    total.backward()
    (param,) = list(weighting.parameters())
    assert param.grad is not None and torch.all(param.grad != 0)
    if kind == "uncertainty":
        # d/ds [exp(-s) L + s] at s=0 is 1 - L
        assert param.grad.tolist() == pytest.approx([1 - 2.0, 1 - 0.5])


def brute_force(crf: CRF, emissions: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    n, c = emissions.shape
    scores = {}
    for path in itertools.product(range(c), repeat=n):
        t = torch.tensor(path)
        scores[path] = crf.gold_score(emissions[None], t[None], torch.ones(1, n, dtype=torch.bool))[
            0
        ]
    log_z = torch.logsumexp(torch.stack(list(scores.values())), 0)
    return log_z, list(max(scores, key=lambda p: scores[p].item()))


def test_crf_matches_brute_force() -> None:
    torch.manual_seed(0)
    crf = CRF(3)
    for p in crf.parameters():
        torch.nn.init.normal_(p)
    emissions = torch.randn(2, 4, 3)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    log_z = crf.log_partition(emissions, mask)
    paths = crf.viterbi(emissions, mask)
    for row, length in enumerate((4, 2)):
        ref_z, ref_path = brute_force(crf, emissions[row, :length])
        assert log_z[row].item() == pytest.approx(ref_z.item(), abs=1e-5)
        assert paths[row, :length].tolist() == ref_path
        assert paths[row, length:].tolist() == [0] * (4 - length)


def test_crf_marginals_match_brute_force() -> None:
    torch.manual_seed(1)
    crf = CRF(3)
    for p in crf.parameters():
        torch.nn.init.normal_(p)
    emissions = torch.randn(2, 3, 3)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    marginals = crf.marginals(emissions, mask)
    for row, length in enumerate((3, 2)):
        e = emissions[row, :length]
        ones = torch.ones(1, length, dtype=torch.bool)
        paths = list(itertools.product(range(3), repeat=length))
        scores = torch.stack(
            [crf.gold_score(e[None], torch.tensor(p)[None], ones)[0] for p in paths]
        )
        prob = torch.softmax(scores, 0)
        for i in range(length):
            for tag in range(3):
                ref = sum(prob[j] for j, p in enumerate(paths) if p[i] == tag)
                assert marginals[row, i, tag].item() == pytest.approx(ref.item(), abs=1e-5)
    assert marginals[:, :2].sum(-1).flatten().tolist() == pytest.approx([1.0] * 4)


def token_batch() -> dict[str, torch.Tensor]:
    labels = torch.tensor(
        [
            [IGNORE_INDEX, 1, IGNORE_INDEX, 2, 0, IGNORE_INDEX],
            [IGNORE_INDEX, 3, 0, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX],
        ]
    )
    word_index = torch.where(labels >= 0, torch.arange(6).expand(2, 6), -1)
    mask = torch.tensor([[1] * 6, [1, 1, 1, 1, 0, 0]])
    return {"labels": labels, "word_index": word_index, "attention_mask": mask}


@pytest.mark.parametrize("head_cls", [TokenClassificationHead, CRFTokenHead])
def test_token_heads_overfit_and_decode(head_cls: type) -> None:
    set_seed(0)
    head = head_cls(8, 4, 0.0)
    hidden = torch.randn(2, 6, 8)
    batch = token_batch()
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    first = None
    for _ in range(100):
        loss = head.loss(head(hidden, batch), batch)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05 * first
    pred = head.decode(head(hidden, batch), batch)
    owned = batch["word_index"] >= 0
    assert pred.shape == (2, 6) and torch.equal(pred[owned], batch["labels"][owned])


@pytest.mark.parametrize("pooling", [Pooling.CLS, Pooling.MEAN])
def test_sequence_head_overfits(pooling: Pooling) -> None:
    set_seed(0)
    head = SequenceClassificationHead(8, 3, 0.0, pooling)
    hidden = torch.randn(3, 5, 8)
    batch = {"labels": torch.tensor([2, 0, 1]), "attention_mask": torch.ones(3, 5)}
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(100):
        loss = head.loss(head(hidden, batch), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert head(hidden, batch).shape == (3, 3) and loss.item() < 0.05
    assert head.decode(head(hidden, batch), batch).tolist() == [2, 0, 1]


def test_csv_reader_quoted_newlines_and_lines(fixtures: Path) -> None:
    split = read_texts(fixtures / "toy_intents" / "toy_train.csv", "text", "category")
    assert len(split) == 12
    assert split.inputs[1] == "My card has not arrived\nand it has been two weeks"
    assert split.lines[:4] == [2, 3, 5, 6]
    assert split.inputs[4] == 'Can I add money with a "bank transfer"?'


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("text,label\nhi,x\n", ":1: no column 'category' (task.t.label_column)"),
        ("text,category\nhi\n", ":2: expected 2 fields like the header, found 1"),
        ("text,category\nhi,x,y\n", ":2: expected 2 fields like the header, found 3"),
        ("text,category\nhi,\n", ":2: empty label"),
        ("text,category\n", ": no rows found"),
    ],
)
def test_csv_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "f.csv"
    path.write_text(content)
    with pytest.raises(DataError) as err:
        read_texts(path, "text", "category")
    assert str(err.value).startswith(f"{path}{message}")


def intents_task(**kw: object) -> ClassificationTaskConfig:
    task = classification_task(text_column="text", label_column="category", **kw)
    task.files.train, task.files.test = "toy_train.csv", "toy_test.csv"
    return task


def test_csv_task_carves_a_seeded_dev_split(fixtures: Path) -> None:
    data = DataConfig(root=str(fixtures / "toy_intents"))
    loaded = load_task(resolve_task("intents", intents_task(dev_fraction=0.25)), data)
    train, dev = loaded.splits["train"], loaded.splits["dev"]
    assert (len(train), len(dev), len(loaded.splits["test"])) == (9, 3, 4)
    assert sorted(train.lines + dev.lines) == [2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
    again = load_task(resolve_task("intents", intents_task(dev_fraction=0.25)), data)
    assert again.splits["dev"].lines == dev.lines
    assert loaded.labels == ["card_arrival", "card_declined", "exchange_rate", "top_up"]


def test_unknown_label_in_test_csv(tmp_path: Path) -> None:
    (tmp_path / "toy_train.csv").write_text("text,category\na,x\nb,y\n")
    (tmp_path / "toy_test.csv").write_text("text,category\na,x\nc,z\n")
    with pytest.raises(DataError, match=r"toy_test.csv:3: label 'z' is not in the label set"):
        load_task(resolve_task("intents", intents_task()), DataConfig(root=str(tmp_path)))


def test_mix_presets_compose() -> None:
    assert list(compose_cfg(["task=conll_mtl"]).task) == ["conll", "conll_pos", "conll_chunk"]
    cfg = compose_cfg(["task=conll_banking"])
    assert list(cfg.task) == ["conll", "banking77"]
    assert isinstance(cfg.task["banking77"], ClassificationTaskConfig)
    adhoc = compose_cfg(["task=[conll,conll_pos]", "task.conll_pos.label_column=1"])
    assert list(adhoc.task) == ["conll", "conll_pos"]


def test_weight_for_task_not_in_mix_is_a_config_error() -> None:
    cfg = compose_cfg(["task=conll_mtl", "++loss_weights.weights={conll:1.0,banking77:2.0}"])
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert str(err.value) == (
        "loss_weights.weights.banking77=2.0: expected a weight for a task in the mix "
        "['conll', 'conll_chunk', 'conll_pos']"
    )
    cfg = compose_cfg(["task=conll", "metrics.select_task=conll_pos"])
    with pytest.raises(ConfigError, match=r"^metrics\.select_task=conll_pos: expected null or"):
        validate(cfg)


def test_mix_with_unknown_task_fails_at_compose() -> None:
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException, match="task/nope"):
        compose_cfg(["task=[conll,nope]"])
