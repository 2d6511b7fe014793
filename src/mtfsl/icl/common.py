"""What every in-context scorer uses: the model and settings, fitting a prompt into the
context window, and a progress bar."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtfsl.errors import ConfigError


@dataclass
class IclContext:
    """The model and the method's settings, shared by every task."""

    model: Any
    tokenizer: Any
    cfg: Any  # IclConfig
    window: int  # the context window in tokens


def fitted(ctx, prompter, demos, chosen, fields, words, where: str, reserve: int = 0):
    """The prompt's and continuations' token ids, and the demonstrations kept: dropped from
    the far end until the prompt and its longest continuation (or ``reserve`` tokens to
    generate) fit the context window."""
    from mtfsl.icl.scoring import encode

    while True:
        shown = [demos.texts[j] for j in chosen]
        text = prompter.prompt(shown, prompter.query(fields), ctx.tokenizer)
        prefix, conts = encode(ctx.tokenizer, text, words)
        excess = len(prefix) + max(map(len, conts), default=0) + reserve - ctx.window
        if excess <= 0:
            return prefix, conts, chosen
        if not chosen:
            raise ConfigError(
                f"{where}: the prompt without demonstrations takes {len(prefix)} tokens, over "
                f"the context window of {ctx.window} (few_shot.icl.max_length)"
            )
        chosen = chosen[_far_ones(demos.token_lengths(ctx.tokenizer), chosen, excess) :]


def _far_ones(lengths: list[int], chosen: list[int], excess: int) -> int:
    """How many demonstrations from the far end cover ``excess`` tokens by their own lengths
    (then checked on the whole prompt): one at a time, a window of hundreds of Banking77
    demonstrations took hundreds of tokenisations of the whole prompt per example."""
    drop, covered = 1, lengths[chosen[0]]
    while covered < excess and drop < len(chosen):
        covered += lengths[chosen[drop]]
        drop += 1
    return drop


def progress(examples: list[Any], split: Any):
    """A progress bar on a terminal (an evaluation may take minutes on a CPU)."""
    import sys

    from tqdm.auto import tqdm

    name = Path(str(split.path)).name
    return tqdm(examples, desc=f"icl {name}", leave=False, disable=not sys.stderr.isatty())


def generated(ctx, prompter, demos, split, fields_of):
    """Per example: its record so far and the generated text, the demonstrations fitted to
    leave ``max_new_tokens`` of room."""
    from mtfsl.icl.scoring import GenerationCache, generate

    reuse = GenerationCache() if ctx.cfg.reuse_prefix else None
    for i, example in enumerate(progress(split.inputs, split)):
        order = demos.order(ctx.cfg.selection, i)
        fields, room = fields_of(example), ctx.cfg.max_new_tokens
        prefix, _, chosen = fitted(ctx, prompter, demos, order, fields, [], split.at(i), room)
        text = generate(ctx.model, ctx.tokenizer, prefix, room, prompter, reuse)
        yield example, demos.shown(chosen, prefix), text
