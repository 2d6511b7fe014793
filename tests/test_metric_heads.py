"""Metric-based NER decoders (ProtoBERT, NNShot, StructShot): distances, centroids, nearest
labels and transitions computed by hand, and a run whose support travels with its checkpoint."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest
import torch

from mtfsl.errors import ConfigError
from mtfsl.job import run
from mtfsl.kinds.tagging import Distance, TagDecoder
from mtfsl.model.metric_heads import MetricTokenHead, abstract_transitions, distances
from tests.conftest import FIXTURES
from tests.test_predict_export import PREDICT, predict_cli
from tests.test_train_e2e import read_conll_pred

SUPPORT = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
TAGS = torch.tensor([0, 0, 1])  # tag 2 has no support word


def head(decoder: TagDecoder, distance: Distance = Distance.EUCLIDEAN) -> MetricTokenHead:
    h = MetricTokenHead(2, ["B-PER", "I-PER", "O"], 0.0, decoder, distance, tau=0.5).eval()
    h.remember(SUPPORT, TAGS, [[2, 0, 1, 2]])
    return h


def test_distances_by_hand() -> None:
    q = torch.tensor([[1.0, 1.0]])
    assert distances(q, SUPPORT, Distance.EUCLIDEAN).tolist() == [[2.0, 2.0, 2.0]]
    cosine = distances(
        torch.tensor([[1.0, 0.0]]), torch.tensor([[3.0, 0.0], [0.0, 1.0]]), Distance.COSINE
    )
    assert cosine[0].tolist() == pytest.approx([0.0, 1.0])


def test_prototypes_and_nearest_neighbours_by_hand() -> None:
    hidden = torch.tensor([[[1.0, 1.0], [2.0, 1.0]]])  # one sentence of two words
    inf = float("-inf")
    # centroids: tag 0 at (1, 0), tag 1 at (0, 2)
    proto = head(TagDecoder.PROTOTYPE).scores(hidden)
    assert proto.tolist() == [[[-1.0, -2.0, inf], [-2.0, -5.0, inf]]]
    # nearest support word of each tag: (2, 1) is 1 from (2, 0), 5 from (0, 2)
    nearest = head(TagDecoder.NEAREST).scores(hidden)
    assert nearest.tolist() == [[[-2.0, -2.0, inf], [-1.0, -5.0, inf]]]


def test_abstract_transitions_by_hand() -> None:
    # one support sentence O B-PER I-PER O: counts + 1 smoothing give O->O 1, O->B 2,
    # X->O 2, X->B same 1, X->B other 1, X->I same 2 (X: B or I of a type)
    table = abstract_transitions([[2, 0, 1, 2]], ["B-PER", "I-PER", "O"]).exp()
    o, b, i = 2, 0, 1
    assert table[o, o] == pytest.approx(1 / 3) and table[o, b] == pytest.approx(2 / 3)
    assert table[o, i] == 0  # I after O: impossible in IOB2
    for x in (b, i):
        assert table[x, o] == pytest.approx(2 / 6)
        assert table[x, b] == pytest.approx(1 / 6)
        assert table[x, i] == pytest.approx(2 / 6)


def test_structshot_viterbi_obeys_the_transitions() -> None:
    h = head(TagDecoder.STRUCTSHOT)
    # word 1 prefers I-PER, but a sentence starts as after O, where I is impossible
    scores = torch.tensor([[[-1.0, -0.5, -3.0], [-2.0, -0.1, -3.0]]])
    batch = {"word_index": torch.tensor([[0, 1]])}
    assert scores.argmax(-1).tolist() == [[1, 1]]
    assert h.decode(scores, batch).tolist() == [[0, 1]]
    # probabilities: the emissions' softmax at temperature tau
    p = h.probabilities(scores, batch, torch.tensor([[0, 1]]))
    expected = torch.softmax(scores / 0.5, -1)
    assert p[0].tolist() == pytest.approx([expected[0, 0, 0].item(), expected[0, 1, 1].item()])
    assert not math.isnan(p.sum().item())


def test_a_crf_and_a_metric_decoder_are_refused_together() -> None:
    from mtfsl.resolve import compose_config, validate

    with pytest.raises(ConfigError, match="decoder=NEAREST: decodes without the CRF"):
        validate(compose_config(["task.conll.decoder=NEAREST", "task.conll.crf=true"]))


def test_a_nearest_neighbour_run_tags_its_training_words_as_their_gold(
    toy_cfg, tmp_path: Path
) -> None:
    toy_cfg.task["conll"].decoder = TagDecoder.NEAREST
    toy_cfg.trainer.max_steps, toy_cfg.trainer.lr, toy_cfg.trainer.batch_size = 10, 5e-3, 4
    run(toy_cfg, tmp_path / "run")
    best = tmp_path / "run" / "checkpoints" / "best"
    from safetensors import safe_open

    with safe_open(best / "model.safetensors", "pt") as f:
        stored = f.get_tensor("heads.conll.support_tags")
    train = FIXTURES / "toy_conll" / "toy.train"
    from mtfsl.data.readers import read_conll

    gold_words = sum(len(s.column(0)) for s in read_conll(train))
    assert len(stored) == gold_words == 72  # every training word is in the support
    # every training word's nearest support word is itself: its own gold tag, from the
    # support stored with the checkpoint (mtfsl-predict has no training data)
    out = tmp_path / "train.conll"
    predict_cli(tmp_path / "run", str(train), "conll", out)
    assert all(gold == pred for s in read_conll_pred(out) for _, gold, pred in s)
    # and the test predictions are training's own
    predict_cli(tmp_path / "run", str(FIXTURES / "toy_conll" / "toy.test"), "conll", out)
    assert read_conll_pred(out) == read_conll_pred(tmp_path / "run/predictions/test_conll.conll")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["train/best_step"] > 0
    export = subprocess.run(
        [str(Path(PREDICT).with_name("mtfsl-export")), str(tmp_path / "run"), str(tmp_path / "hf")],
        capture_output=True,
        text=True,
    )
    assert export.returncode != 0 and "NEAREST decoder" in export.stderr


def test_supervised_contrastive_loss_by_hand() -> None:
    from mtfsl.model.metric_heads import supervised_contrastive_loss

    states = torch.tensor([[2.0, 0.0], [1.0, 0.0], [0.0, 3.0]])  # normalised: (1,0) (1,0) (0,1)
    loss = supervised_contrastive_loss(states, torch.tensor([0, 0, 1]), tau=1.0)
    # words 0 and 1: log(e^1 / (e^1 + e^0)) each; word 2 has no other of its tag
    assert loss.item() == pytest.approx(math.log(1 + math.e) - 1)
    alone = supervised_contrastive_loss(states, torch.tensor([0, 1, 2]), tau=1.0)
    assert alone.item() == 0.0


def test_contrastive_token_learning_separates_the_tags() -> None:
    from mtfsl.model.metric_heads import supervised_contrastive_loss

    g = torch.Generator().manual_seed(2)
    x, tags = torch.randn(15, 24, generator=g), torch.arange(15) % 3
    encoder = torch.nn.Linear(24, 8)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=0.05)
    losses = []
    for _ in range(80):
        loss = supervised_contrastive_loss(encoder(x), tags, tau=0.1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    h = MetricTokenHead(8, ["B-PER", "I-PER", "O"], 0.0, TagDecoder.PROTOTYPE, Distance.COSINE, 0.1)
    with torch.no_grad():
        states = encoder(x)
    h.eval().remember(states, tags, [])
    assert h(states[None], {}).argmax(-1)[0].tolist() == tags.tolist()


def test_the_contrastive_objective_needs_a_metric_decoder() -> None:
    from mtfsl.resolve import compose_config, validate

    with pytest.raises(ConfigError, match="objective=CONTRASTIVE trains no linear layer"):
        validate(compose_config(["task.conll.objective=CONTRASTIVE"]))


def test_a_contrastive_run_trains_the_encoder_only(toy_cfg, tmp_path: Path) -> None:
    from mtfsl.kinds.tagging import TagObjective

    toy_cfg.task["conll"].decoder = TagDecoder.NEAREST
    toy_cfg.task["conll"].objective = TagObjective.CONTRASTIVE
    toy_cfg.trainer.max_steps, toy_cfg.trainer.lr, toy_cfg.trainer.batch_size = 8, 5e-3, 4
    metrics = run(toy_cfg, tmp_path / "run")
    # the linear layer (hidden 32 x 9 tags + 9) takes no part
    assert metrics["train/parameters"] - metrics["train/trainable_parameters"] == 32 * 9 + 9
    history = json.loads((tmp_path / "run/dev_history.json").read_text())["history"]
    assert history and all(0 <= h["dev/conll/f1"] <= 100 for h in history)
