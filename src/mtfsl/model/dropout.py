"""Dropout whose random mask is cheaper to draw on the CPU.

torch's CPU dropout draws one number from the global generator per element, one element at a
time, then divides and multiplies. Deciding one element needs far fewer than 32 random bits,
so here one 64-bit draw decides four elements through 16-bit uniform values
(``scripts/bench_dropout.py`` on the 2-core machine, forward + backward: 10.75 against 3.91
ns per element; about 5% of a MiniLM training step). The drop probability is rounded to a
multiple of 1/65,536 (0.1 becomes 0.100006) and the kept values are scaled by the exact
inverse of the resulting keep probability, so the output's expectation is the input, as with
``nn.Dropout``. Masks come from torch's seeded generator, so runs stay reproducible. Other
devices keep torch's own fused kernel.

The attention probabilities' dropout happens inside ``scaled_dot_product_attention``, which on
the CPU draws its mask the slow way; ``fast_dropout_attention`` is a Hugging Face attention
function that computes the same attention with ``keep_mask`` when a CPU model trains, and is
SDPA itself otherwise (``scripts/bench_dropout.py``, forward + backward with 12 heads: 1.03x
faster at 22 sub-tokens, 1.31x at 60).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

_LEVELS = 1 << 16  # values of one 16-bit draw
ATTENTION = "mtfsl_sdpa"  # the name ``fast_dropout_attention`` is registered under


def keep_where(like: torch.Tensor, p: float) -> tuple[torch.Tensor, float]:
    """(a boolean mask shaped like ``like``, False with probability ``round(p * 65536) /
    65536``; the inverse of the keep probability)."""
    drop = round(p * _LEVELS)
    n = like.numel()
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(1 << 63), None)  # all 64 bits
    draws = words.view(torch.int16)[:n].view(like.shape)  # uniform over [-32768, 32767]
    return draws >= drop - _LEVELS // 2, _LEVELS / (_LEVELS - drop)


def keep_mask(like: torch.Tensor, p: float) -> torch.Tensor:
    """A mask shaped and typed like ``like``: 0 with probability ``round(p * 65536) / 65536``,
    else the inverse of the keep probability."""
    keep, scale = keep_where(like, p)
    return keep.to(like.dtype).mul_(scale)


class FastDropout(nn.Dropout):
    """``nn.Dropout`` with ``keep_mask`` on the CPU; a subclass, so code that reads ``.p`` (a
    Hugging Face attention layer passes it to its attention kernel) still works."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not _draws_fast(x, self.p):
            return super().forward(x)  # eval, other devices, and p of (almost) 0 or 1
        # torch.where keeps only the boolean mask for backward (1 byte per element, as torch's
        # own dropout), where x * float_mask would keep a float mask: 4x the memory, which
        # adds up over LoRA's dropout before every adapted layer of a decoder
        keep, scale = keep_where(x, self.p)
        if self.inplace:
            return x.mul_(scale).masked_fill_(~keep, 0.0)
        return torch.where(keep, x * scale, 0.0)


def _draws_fast(x: torch.Tensor, p: float) -> bool:
    return x.device.type == "cpu" and round(p * _LEVELS) not in (0, _LEVELS)


def fast_dropout_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: object,
) -> tuple[torch.Tensor, None]:
    """transformers' SDPA attention, except that CPU training with attention dropout (the model
    passes ``dropout`` > 0 only in training) spells the attention out, as SDPA's own CPU path
    for dropout does, with its mask from ``keep_mask``. Masks (boolean: True attends, or
    additive) and shapes are SDPA's; query, key and value are (batch, heads, length, dim)."""
    # SDPA's own reading: a module's causal flag counts only when no mask is given
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    causal = causal and attention_mask is None and query.shape[2] > 1
    grouped = getattr(module, "num_key_value_groups", 1) > 1  # SDPA repeats key/value heads
    extras = kwargs.get("position_bias") is not None or kwargs.get("softcap") is not None
    if not _draws_fast(query, dropout) or causal or grouped or extras:  # SDPA handles these
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout, scaling, is_causal, **kwargs
        )
    scale = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query, key.transpose(-2, -1)).mul_(scale)
    if attention_mask is not None and attention_mask.dtype == torch.bool:
        scores = scores.masked_fill_(~attention_mask, float("-inf"))
    elif attention_mask is not None:
        scores = scores + attention_mask
    probs = torch.softmax(scores, dim=-1)
    out = torch.matmul(probs * keep_mask(probs, dropout), value)
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register(ATTENTION, fast_dropout_attention)
AttentionMaskInterface.register(ATTENTION, sdpa_mask)  # the masks SDPA takes


def use_fast_dropout(model: nn.Module) -> int:
    """Replace every ``nn.Dropout`` inside ``model`` with a ``FastDropout`` of the same ``p``,
    and switch its Hugging Face models that attend with SDPA to ``fast_dropout_attention``;
    return how many dropout layers were replaced."""
    for module in model.modules():
        if isinstance(module, PreTrainedModel) and module.config._attn_implementation == "sdpa":
            module.set_attn_implementation(ATTENTION)
    swaps = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child) is nn.Dropout
    ]
    for parent, name, child in swaps:
        setattr(parent, name, FastDropout(child.p, child.inplace))
    return len(swaps)
