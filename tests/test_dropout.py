"""FastDropout: the distribution of its masks, gradients, and where it replaces nn.Dropout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mtfsl.config import ModelConfig, ModelSource
from mtfsl.model.dropout import (
    ATTENTION,
    FastDropout,
    fast_dropout_attention,
    keep_mask,
    use_fast_dropout,
)
from mtfsl.model.encoder import build_encoder

N = 1 << 20


@pytest.mark.parametrize(("p", "drop"), [(0.1, 6554), (0.5, 32768), (0.25, 16384)])
def test_keep_mask_drops_p_rounded_to_16_bits_and_keeps_the_mean(p: float, drop: int) -> None:
    torch.manual_seed(0)
    mask = keep_mask(torch.empty(N // 8, 8), p)
    assert mask.shape == (N // 8, 8) and mask.dtype == torch.float32
    scale = 65536 / (65536 - drop)
    assert mask.unique().tolist() == [0.0, pytest.approx(scale)]
    dropped = (mask == 0).double()
    sd = (p * (1 - p) / N) ** 0.5
    assert abs(dropped.mean().item() - drop / 65536) < 5 * sd
    # each of the four 16-bit lanes of a 64-bit draw is unbiased on its own
    lanes = dropped.view(-1, 4).mean(0)
    assert (lanes - drop / 65536).abs().max().item() < 5 * 2 * sd
    assert abs(mask.double().mean().item() - 1.0) < 5 * sd * scale


def test_keep_mask_handles_sizes_not_divisible_by_four_and_other_dtypes() -> None:
    mask = keep_mask(torch.empty(3, 5, dtype=torch.bfloat16), 0.1)
    assert mask.shape == (3, 5) and mask.dtype == torch.bfloat16


def test_fast_dropout_is_seeded_scales_kept_values_and_masks_the_gradient() -> None:
    x = torch.randn(64, 384, requires_grad=True)
    drop = FastDropout(0.1)
    torch.manual_seed(3)
    y = drop(x)
    torch.manual_seed(3)
    assert torch.equal(drop(x), y)
    kept = y != 0
    assert torch.allclose(y[kept], x[kept] * 65536 / (65536 - 6554))
    y.sum().backward()
    assert torch.equal(x.grad != 0, kept)
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 65536 / 58982))


def test_fast_dropout_is_identity_in_eval_and_like_nn_dropout_at_0_and_1() -> None:
    x = torch.randn(10, 10)
    assert torch.equal(FastDropout(0.1).eval()(x), x)
    assert torch.equal(FastDropout(0.0)(x), x)
    assert torch.equal(FastDropout(1.0)(x), torch.zeros_like(x))
    y = x.clone()
    torch.manual_seed(0)
    out = FastDropout(0.5, inplace=True)(y)
    assert out is y and 30 < int((y == 0).sum()) < 70


def test_use_fast_dropout_replaces_every_dropout_and_keeps_p() -> None:
    encoder, _ = build_encoder(ModelConfig(source=ModelSource.TINY, name_or_path="tiny"))
    before = [(n, m.p) for n, m in encoder.named_modules() if isinstance(m, nn.Dropout)]
    assert use_fast_dropout(encoder) == len(before) == 1 + 3 * 2  # embeddings + 3 per layer
    after = [(n, m.p) for n, m in encoder.named_modules() if isinstance(m, FastDropout)]
    assert after == before
    assert use_fast_dropout(encoder) == 0  # already replaced


class _Module(nn.Module):
    is_causal = False


def _qkv(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    q, k, v = (torch.randn(2, 3, 5, 4, requires_grad=True) for _ in range(3))
    mask = torch.ones(2, 1, 5, 5, dtype=torch.bool)
    mask[1, :, :, 3:] = False  # the second row has 3 tokens and 2 padding positions
    return q, k, v, mask


def test_fast_dropout_attention_without_dropout_is_sdpa() -> None:
    q, k, v, mask = _qkv()
    out, weights = fast_dropout_attention(_Module(), q, k, v, mask, dropout=0.0, scaling=0.3)
    expected = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.3)
    assert weights is None and out.shape == (2, 5, 3, 4)
    assert torch.allclose(out, expected.transpose(1, 2), atol=1e-6)


def test_fast_dropout_attention_drops_probabilities_with_keep_mask() -> None:
    q, k, v, mask = _qkv()
    torch.manual_seed(7)
    out, _ = fast_dropout_attention(_Module(), q, k, v, mask, dropout=0.25)
    scores = (q @ k.transpose(-2, -1) / 2).masked_fill(~mask, float("-inf"))  # scale 4 ** -0.5
    probs = scores.softmax(-1)
    torch.manual_seed(7)
    drop = keep_mask(probs, 0.25)
    assert drop.unique().tolist() == [0.0, pytest.approx(4 / 3)]
    assert torch.allclose(out, (probs * drop @ v).transpose(1, 2), atol=1e-6)
    # padding keys get no attention: changing their values changes nothing
    v2 = v.detach().clone()
    v2[1, :, 3:] = 100.0
    torch.manual_seed(7)
    assert torch.allclose(fast_dropout_attention(_Module(), q, k, v2, mask, dropout=0.25)[0], out)
    out.sum().backward()
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in (q, k, v))


def test_fast_dropout_attention_takes_additive_masks() -> None:
    q, k, v, mask = _qkv()
    additive = torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min)
    torch.manual_seed(1)
    a = fast_dropout_attention(_Module(), q, k, v, mask, dropout=0.1)[0]
    torch.manual_seed(1)
    b = fast_dropout_attention(_Module(), q, k, v, additive, dropout=0.1)[0]
    assert torch.allclose(a, b, atol=1e-6)


def test_use_fast_dropout_switches_sdpa_encoders_to_fast_attention() -> None:
    encoder, _ = build_encoder(ModelConfig(source=ModelSource.TINY, name_or_path="tiny"))
    assert encoder.config._attn_implementation == "sdpa"
    ids = torch.tensor([[2, 5, 6, 7, 3], [2, 8, 3, 0, 0]])
    attention = (ids != 0).long()
    encoder.eval()
    before = encoder(input_ids=ids, attention_mask=attention).last_hidden_state
    use_fast_dropout(encoder)
    assert encoder.config._attn_implementation == ATTENTION
    encoder.eval()  # the new dropout layers start in training mode, as any new module
    after = encoder(input_ids=ids, attention_mask=attention).last_hidden_state
    assert torch.allclose(before, after, atol=1e-5)  # evaluation: SDPA itself
    encoder.train()
    torch.manual_seed(0)
    first = encoder(input_ids=ids, attention_mask=attention).last_hidden_state
    torch.manual_seed(0)
    assert torch.equal(encoder(input_ids=ids, attention_mask=attention).last_hidden_state, first)
    assert not torch.allclose(first, before, atol=1e-3)  # dropout is on in training


def test_use_fast_dropout_leaves_other_attention_implementations_alone() -> None:
    encoder, _ = build_encoder(ModelConfig(source=ModelSource.TINY, name_or_path="tiny"))
    encoder.set_attn_implementation("eager")
    use_fast_dropout(encoder)
    assert encoder.config._attn_implementation == "eager"
