"""What a tokenizer adds around one text, found by asking it (data features and backbone
families both need it; neither may import the other)."""

from __future__ import annotations

from typing import Any


def special_tokens_around(tokenizer: Any) -> tuple[list[int], list[int]]:
    """Ids the tokenizer puts before and after a single sequence (e.g. [CLS] ... [SEP])."""
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for i in range(len(full) - len(bare) + 1):
        if full[i : i + len(bare)] == bare:
            return full[:i], full[i + len(bare) :]
    raise ValueError("cannot locate the special tokens of this tokenizer")
