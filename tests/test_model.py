import numpy as np
import pytest
import torch
from accelerate.utils import set_seed

from mtfsl.config import ModelConfig, ModelSource, TrainerConfig
from mtfsl.constants import IGNORE_INDEX
from mtfsl.data.batching import LengthGroupedBatchSampler, PaddingCollator
from mtfsl.data.features import WindowFeaturizer
from mtfsl.data.splits import Split
from mtfsl.kinds import KINDS, get_kind
from mtfsl.losses import StaticWeighting
from mtfsl.model.encoder import build_encoder
from mtfsl.model.multitask import MultiTaskModel
from mtfsl.pipeline.build import task_model
from mtfsl.resolve import resolve_task
from mtfsl.training.optim import build_optimizer, param_groups
from tests.conftest import tagging_task


def tiny_model(num_labels: int = 5) -> tuple[MultiTaskModel, object]:
    set_seed(0)
    encoder, tok = build_encoder(ModelConfig(source=ModelSource.TINY, name_or_path="tiny"))
    weighting = StaticWeighting(["ner"], {})
    return task_model(
        encoder, {"ner": (resolve_task("ner", tagging_task()), num_labels)}, 0.0, weighting
    ), tok


def batch(tok: object, pad_to_multiple_of: int | None = None) -> dict[str, torch.Tensor]:
    feat = WindowFeaturizer(tok, max_length=32, stride=4)
    rows = feat(
        {
            "words": [["peter", "lives", "in", "rome"], ["eu", "rejects", "it"]],
            "label_ids": [[1, 0, 0, 3], [2, 0, 0]],
            "sentence": [0, 1],
        }
    )
    collate = PaddingCollator(tok.pad_token_id, pad_to_multiple_of, KINDS["tagging"].pad_values)
    return collate([{k: rows[k][i] for k in rows} for i in range(2)])


def test_collator_pads_and_masks() -> None:
    _, tok = tiny_model()
    b = batch(tok)
    assert b["input_ids"].shape == (2, 18)  # [CLS] + 16 chars + [SEP]
    assert b["attention_mask"].sum(1).tolist() == [18, 13]
    assert (b["labels"][1, 13:] == IGNORE_INDEX).all() and (b["word_index"][1, 13:] == -1).all()
    assert (b["labels"] != IGNORE_INDEX).sum().item() == 7
    assert {k: v.dtype for k, v in b.items()} == {
        "input_ids": torch.long,
        "labels": torch.long,
        "word_index": torch.long,
        "sentence": torch.long,
        "attention_mask": torch.long,
    }


def test_predictions_are_placed_per_word_from_rows_in_any_order() -> None:
    split = Split("dev.txt", [["a", "b", "c"], [], ["d"]], [["O"] * 3, [], ["O"]], [1, 5, 7])
    kind = get_kind("tagging")
    rows = np.array([[2, 0, 4], [0, 2, 1], [0, 0, 3], [0, 1, 0]])
    assert [p.tolist() for p in kind.collect(None, rows, split)] == [[3, 0, 1], [], [4]]
    probs = kind.collect_probabilities(np.array([[2, 0, 0.5], [0, 1, 0.25]]), split)
    assert probs[0][1] == 0.25 and probs[2] == [0.5] and np.isnan(probs[0][0])
    with pytest.raises(RuntimeError, match=r"1 items of dev\.txt received no prediction"):
        kind.collect(None, rows[1:], split)
    with pytest.raises(RuntimeError, match="falls outside its example"):
        kind.collect(None, np.array([*rows, [2, 1, 0]]), split)


def test_padding_to_a_multiple_changes_no_prediction() -> None:
    model, tok = tiny_model()
    model.eval()
    plain, padded = batch(tok), batch(tok, pad_to_multiple_of=8)
    assert padded["input_ids"].shape == (2, 24)  # 18 rounded up to a multiple of 8
    assert padded["attention_mask"].sum(1).tolist() == [18, 13]
    assert (padded["labels"][:, 18:] == IGNORE_INDEX).all()
    assert (padded["word_index"][:, 18:] == -1).all()
    with torch.no_grad():
        a, b = model("ner", plain), model("ner", padded)
    for row, length in enumerate([18, 13]):  # the extra pad positions are masked out
        assert torch.allclose(a[row, :length], b[row, :length], atol=1e-5)
    assert model.loss("ner", b, padded).item() == pytest.approx(
        model.loss("ner", a, plain).item(), abs=1e-5
    )


def test_head_shape_and_loss_falls_when_overfitting() -> None:
    model, tok = tiny_model()
    b = batch(tok)
    logits = model("ner", b)
    assert logits.shape == (2, 18, 5)
    opt = build_optimizer(model, TrainerConfig(lr=1e-2, weight_decay=0.0))
    losses = []
    for _ in range(30):
        loss = model.loss("ner", model("ner", b), b)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 1.0 and losses[-1] < 0.05 * losses[0]


def test_param_groups_split_lr_and_decay() -> None:
    model, _ = tiny_model()
    groups = param_groups(model, TrainerConfig(lr=1e-4, head_lr=1e-3, weight_decay=0.1))
    by_key = {(g["lr"], g["weight_decay"]): len(g["params"]) for g in groups}
    assert by_key[(1e-3, 0.1)] == 1 and by_key[(1e-3, 0.0)] == 1  # head weight, head bias
    n_params = sum(len(g["params"]) for g in groups)
    assert n_params == len(list(model.parameters()))


def test_length_grouped_sampler_is_a_seeded_permutation() -> None:
    lengths = [(i * 7) % 23 + 1 for i in range(200)]
    sampler = LengthGroupedBatchSampler(lengths, batch_size=8, seed=3, pool_batches=5)
    first = list(sampler)
    assert sorted(i for b in first for i in b) == list(range(200))
    assert first == list(LengthGroupedBatchSampler(lengths, 8, seed=3, pool_batches=5))
    sampler.set_epoch(1)
    assert list(sampler) != first
    # batches are length-homogeneous: far less spread than random batches
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in first)
    plain = list(LengthGroupedBatchSampler(lengths, 8, seed=3, group_by_length=False))
    assert spread < 0.5 * sum(
        max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in plain
    )


def test_fused_adamw_is_the_default_and_matches_the_loop() -> None:
    """The fused kernel is only a faster implementation: same update as the per-tensor loop."""
    params = {}
    for fused in (True, False):
        model, tok = tiny_model()
        cfg = TrainerConfig(lr=1e-2, weight_decay=0.01)
        cfg.optimizer.fused = fused
        opt = build_optimizer(model, cfg)
        assert opt.defaults["fused"] is fused
        b = batch(tok)
        for _ in range(3):
            opt.zero_grad()
            model.loss("ner", model("ner", b), b).backward()
            opt.step()
        params[fused] = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert TrainerConfig().optimizer.fused is True
    start = torch.cat([p.detach().flatten() for p in tiny_model()[0].parameters()])
    moved = (params[False] - start).abs().max()
    # three steps of lr 1e-2 move weights by ~3e-2; the kernels differ only in rounding
    assert moved > 1e-2
    assert (params[True] - params[False]).abs().max() < 1e-2 * moved
