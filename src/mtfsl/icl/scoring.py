"""Log-likelihood of label continuations after a prompt, as lm-evaluation-harness defines it:
the sum of the continuation's token log-probabilities given the prompt (``acc``), and that sum
over the continuation's length in UTF-8 bytes (``acc_norm``).

Hand-written because the point is speed with the exact definition: every label shares the
prompt, so the prompt runs through the model once and its KV cache is reused by all label
continuations, batched (``reuse_prefix``); the plain way (one whole forward per label, as the
harness does) is kept for comparison and tests. On a right-padded batch of continuations a
causal model's real tokens never see the padding, so no attention mask is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase


def encode(tokenizer: PreTrainedTokenizerBase, prompt: str, continuations: Sequence[str]):
    """The prompt's token ids and each continuation's, split as lm-evaluation-harness does:
    the prompt and continuation are encoded together and the prompt's tokens cut off, so a
    boundary merge is the continuation's; where that does not leave the prompt's own tokens
    as a prefix, the continuation is encoded alone."""
    # one batched call (the fast tokenizer's Rust side), not one per label
    prefix, *wholes = tokenizer([prompt, *(prompt + text for text in continuations)])["input_ids"]
    out = []
    for text, whole in zip(continuations, wholes, strict=True):
        if whole[: len(prefix)] == prefix and len(whole) > len(prefix):
            out.append(whole[len(prefix) :])
        else:
            out.append(tokenizer(text, add_special_tokens=False)["input_ids"])
    return prefix, out


class PrefixScorer:
    """Log-likelihoods of continuations after prompts, one prompt after another, reusing
    KV caches twice: every continuation of a prompt shares the prompt's forward, and a prompt
    shares its leading tokens with the previous prompt's (the instruction and, with
    ``icl.selection=FIXED``, every demonstration), so only the rest of it runs. Comparing
    token ids, not templates, finds what is shared, so a chat template changes nothing."""

    def __init__(self, model: PreTrainedModel, batch_size: int = 32) -> None:
        self.model, self.batch_size = model, batch_size
        self._ids: list[int] = []
        self._layers: list[tuple[torch.Tensor, torch.Tensor]] = []

    @torch.no_grad()
    def score(self, prefix: list[int], continuations: Sequence[list[int]]) -> list[float]:
        """Sum of log P(continuation token | prompt, earlier continuation tokens), per
        continuation, in fp32."""
        shared = 0  # leading tokens in common with the previous prompt; at least one runs
        limit = min(len(prefix), len(self._ids)) - 1 if self._ids else 0
        while shared < limit and prefix[shared] == self._ids[shared]:
            shared += 1
        cache = _cache([(k[:, :, :shared], v[:, :, :shared]) for k, v in self._layers])
        rest = torch.tensor([prefix[shared:]], device=self.model.device)
        positions = torch.arange(shared, len(prefix), device=self.model.device)[None]
        # logits of the last position only: the vocabulary projection of every prompt token
        # would cost as much as a fifth of a small model's forward
        out = self.model(
            input_ids=rest, cache=cache, position_ids=positions, use_cache=True, logits_to_keep=1
        )
        self._ids = list(prefix)
        self._layers = [(layer.keys, layer.values) for layer in out.cache.layers]
        first = out.logits[0, -1].float().log_softmax(-1)  # predicts each continuation's first
        scores: list[float] = []
        for start in range(0, len(continuations), self.batch_size):
            chunk = continuations[start : start + self.batch_size]
            scores += _chunk(self.model, self._layers, len(prefix), first, chunk)
        return scores


def continuation_logprobs(
    model: PreTrainedModel,
    prefix: list[int],
    continuations: Sequence[list[int]],
    batch_size: int = 32,
    reuse_prefix: bool = True,
) -> list[float]:
    """One prompt's continuations scored (``PrefixScorer``), or without any reuse: one whole
    forward per continuation (the plain way)."""
    if reuse_prefix:
        return PrefixScorer(model, batch_size).score(prefix, continuations)
    with torch.no_grad():
        return [_whole(model, prefix, c) for c in continuations]


def _cache(layers: Sequence[tuple[torch.Tensor, torch.Tensor]], n: int = 1) -> DynamicCache:
    """A cache holding ``layers``' keys and values for ``n`` rows (expand: no copy; the
    model's next forward concatenates onto new tensors, so ``layers`` stay as they are)."""
    cache = DynamicCache()
    for index, (keys, values) in enumerate(layers):
        cache.update(keys.expand(n, -1, -1, -1), values.expand(n, -1, -1, -1), index)
    return cache


def _chunk(model, layers, offset: int, first: torch.Tensor, chunk: Sequence[list[int]]):
    n, width = len(chunk), max(len(c) for c in chunk)
    ids = torch.zeros((n, width), dtype=torch.long, device=model.device)  # 0: padding
    for i, c in enumerate(chunk):
        ids[i, : len(c)] = torch.tensor(c)
    cache = _cache(layers, n)  # the prompt's, shared
    positions = torch.arange(offset, offset + width, device=model.device).expand(n, -1)
    logits = model(input_ids=ids, cache=cache, position_ids=positions).logits
    logprobs = logits[:, :-1].float().log_softmax(-1).gather(-1, ids[:, 1:, None])[..., 0]
    out = []
    for i, c in enumerate(chunk):
        out.append(float(first[c[0]] + logprobs[i, : len(c) - 1].sum()))
    return out


def _whole(model: PreTrainedModel, prefix: list[int], continuation: list[int]) -> float:
    """One forward over the prompt and continuation (the plain way)."""
    ids = torch.tensor([prefix + continuation], device=model.device)
    logprobs = model(input_ids=ids).logits[0, len(prefix) - 1 : -1].float().log_softmax(-1)
    return float(logprobs.gather(-1, ids[0, len(prefix) :, None]).sum())


def byte_normalised(logprob: float, continuation: str) -> float:
    """``acc_norm``'s score: the log-likelihood per UTF-8 byte of the continuation."""
    return logprob / max(len(continuation.encode("utf-8")), 1)


class GenerationCache:
    """The previous prompt's ids and KV cache: a generation reuses what its prompt shares with
    the previous one (the instruction; with ``icl.selection=FIXED``, every demonstration), as
    ``PrefixScorer`` does for scoring."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.layers: list[tuple[torch.Tensor, torch.Tensor]] = []

    def shared(self, prefix: list[int]) -> DynamicCache | None:
        """A cache of the leading tokens ``prefix`` shares with the previous prompt (at least
        one token of it left to run), or None."""
        shared, limit = 0, min(len(prefix), len(self.ids)) - 1
        while shared < limit and prefix[shared] == self.ids[shared]:
            shared += 1
        if not shared:
            return None
        return _cache([(k[:, :, :shared], v[:, :, :shared]) for k, v in self.layers])

    def keep(self, prefix: list[int], cache: DynamicCache) -> None:
        """After a generation: the prompt's part of its cache (views, no copy)."""
        n = len(prefix)
        self.ids = list(prefix)
        self.layers = [(layer.keys[:, :, :n], layer.values[:, :, :n]) for layer in cache.layers]


@torch.no_grad()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prefix: list[int],
    max_new_tokens: int,
    prompter: Any,
    reuse: GenerationCache | None = None,
) -> str:
    """Greedy continuation of the prompt, cut where the model starts the next demonstration
    (the prompt's separator) or ends its text; with ``reuse``, the leading tokens it shares
    with the previous prompt are not run again."""
    stop = prompter.cfg.separator
    out = model.generate(
        torch.tensor([prefix], device=model.device),
        attention_mask=torch.ones((1, len(prefix)), dtype=torch.long, device=model.device),
        cache=reuse.shared(prefix) if reuse is not None else None,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        stop_strings=[stop] if stop.strip(" ") else None,
        tokenizer=tokenizer,
        pad_token_id=tokenizer.pad_token_id,
        return_dict_in_generate=True,
    )
    if reuse is not None:
        reuse.keep(prefix, out.cache)
    text = tokenizer.decode(out.sequences[0, len(prefix) :], skip_special_tokens=True)
    return text.split(stop)[0] if stop else text
