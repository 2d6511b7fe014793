"""Tokenisation into model features: windows for token tasks, truncated texts for sequence
tasks, both through a batched, cached ``datasets.map``.

Every word of every sentence is *owned* by exactly one window: its first sub-token (its last
with ``last_piece``, for causal decoders, where only the last one has seen the whole word)
carries its label (training) and yields its prediction (evaluation). Sentences longer than
``max_length`` are cut into several windows, each with up to ``stride`` sub-tokens of
context on either side, so no word is ever dropped or truncated away. With document context
(``data.context``), the words of neighbouring sentences fill the rest of each window; they are
context only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
from datasets.fingerprint import Hasher
from transformers import PreTrainedTokenizerBase

from mtfsl.constants import IGNORE_INDEX
from mtfsl.data import cache
from mtfsl.data.casing import word_cases
from mtfsl.utils.tokens import special_tokens_around

_FEATURES_VERSION = "3"  # bump when the produced columns change, to invalidate caches


@dataclass(frozen=True)
class Window:
    """Words [start, end) are fed to the model; words [own_start, own_end) are labelled."""

    start: int
    end: int
    own_start: int
    own_end: int


def _reach(
    lengths: list[int], index: int, step: int, limit: int, stop: int | None = None
) -> tuple[int, int]:
    """Count words from ``index`` in direction ``step`` (not past ``stop``, default the end)
    whose lengths sum to <= ``limit``."""
    stop = len(lengths) if stop is None else stop
    count = total = 0
    while 0 <= index < stop and total + lengths[index] <= limit:
        total += lengths[index]
        count += 1
        index += step
    return count, total


def plan_windows(
    lengths: list[int], budget: int, stride: int, own: tuple[int, int] | None = None
) -> list[Window]:
    """Cut the words ``own`` = [lo, hi) (default: all) of a sequence whose words have
    ``lengths`` sub-tokens each into windows of ``budget`` sub-tokens.

    The owned spans partition [lo, hi) (each word is predicted exactly once) and take at
    most ``budget - 2 * stride`` sub-tokens; the rest of the window is filled with context
    from either side (words outside [lo, hi) too: document context), half on each side when
    both have enough, whole words only. Every length must be between 1 and ``budget``.
    """
    lo, hi = own if own is not None else (0, len(lengths))
    context = min(stride, budget // 4)  # keep at least half of each window for owned words
    windows: list[Window] = []
    start = lo
    while start < hi:
        owned, used = _reach(lengths, start, 1, budget - 2 * context, stop=hi)
        end = start + max(owned, 1)  # a single very long word still gets its own window
        room = budget - max(used, lengths[start])
        # half of the room to the right, more when the left has less than its half
        short_left = max(0, room // 2 - sum(lengths[:start]))
        right, right_used = _reach(lengths, end, 1, room // 2 + short_left)
        left, _ = _reach(lengths, start - 1, -1, room - right_used)
        windows.append(Window(start - left, end + right, start, end))
        start = end
    return windows


class WindowFeaturizer:
    """Batched ``datasets.map`` function: sentences in, one row per window out."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
        stride: int,
        casing: bool = False,
        last_piece: bool = False,
    ):
        self.tokenizer = tokenizer
        self.casing = casing  # also a ``case_ids`` column: each sub-token's word shape
        self.last_piece = last_piece
        self.prefix, self.suffix = special_tokens_around(tokenizer)
        self.budget = max_length - len(self.prefix) - len(self.suffix)
        if self.budget < 4:
            raise ValueError(f"model.max_length={max_length} leaves no room for words")
        self.stride = stride
        self.unk = [tokenizer.unk_token_id if tokenizer.unk_token_id is not None else 0]

    def word_pieces(self, words: list[list[str]]) -> list[list[list[int]]]:
        """Sub-token ids per word; a word the tokenizer erases becomes one unknown token."""
        encoded = self.tokenizer(words, is_split_into_words=True, add_special_tokens=False)
        result = []
        for b, words_b in enumerate(words):
            pieces: list[list[int]] = [[] for _ in words_b]
            for token_id, word in zip(encoded["input_ids"][b], encoded.word_ids(b), strict=True):
                if word is not None:
                    pieces[word].append(token_id)
            # A word longer than a window keeps its first sub-tokens; only the first matters.
            result.append([(p or self.unk)[: self.budget] for p in pieces])
        return result

    def window_row(
        self, pieces: list[list[int]], label_ids: list[int], w: Window, lo: int = 0
    ) -> tuple[list[int], list[int], list[int]]:
        """Input ids, labels and owned-word index of one window, special tokens included.

        ``pieces`` may start with ``lo`` words of document context, so sentence word i is
        ``pieces[lo + i]``. Only the first (``last_piece``: last) sub-token of an owned word
        gets a label and its word index; context words, other sub-tokens and special tokens
        get IGNORE_INDEX and -1.
        """
        ids = list(self.prefix)
        size = len(ids) + sum(len(pieces[i]) for i in range(w.start, w.end)) + len(self.suffix)
        labels, index = [IGNORE_INDEX] * size, [-1] * size
        for word in range(w.start, w.end):
            if w.own_start <= word < w.own_end:
                at = len(ids) + (len(pieces[word]) - 1 if self.last_piece else 0)
                labels[at], index[at] = label_ids[word - lo], word - lo
            ids += pieces[word]
        ids += self.suffix
        return ids, labels, index

    def window_cases(self, pieces: list[list[int]], cases: list[int], w: Window) -> list[int]:
        """The word shape (``data/casing.py``) of every sub-token of one window, aligned with
        ``window_row``'s ids: each sub-token gets its word's, special tokens NONE (0)."""
        out = [0] * len(self.prefix)
        for word in range(w.start, w.end):
            out += [cases[word]] * len(pieces[word])
        return out + [0] * len(self.suffix)

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        columns = ("input_ids", "labels", "word_index", "sentence", "length")
        if self.casing:
            columns += ("case_ids",)
        out: dict[str, list[Any]] = {k: [] for k in columns}
        empty = [[]] * len(batch["words"])
        left, right = batch.get("left", empty), batch.get("right", empty)
        words = [a + w + b for a, w, b in zip(left, batch["words"], right, strict=True)]
        pieces_batch = self.word_pieces(words)
        for i, (sid, pieces, label_ids) in enumerate(
            zip(batch["sentence"], pieces_batch, batch["label_ids"], strict=True)
        ):
            own = (len(left[i]), len(left[i]) + len(label_ids))
            cases = word_cases(words[i], own[0]) if self.casing else []
            for w in plan_windows([len(p) for p in pieces], self.budget, self.stride, own):
                ids, labels, index = self.window_row(pieces, label_ids, w, own[0])
                values = [ids, labels, index, sid, len(ids)]
                if self.casing:
                    values.append(self.window_cases(pieces, cases, w))
                for key, value in zip(columns, values, strict=True):
                    out[key].append(value)
        return out


class TextFeaturizer:
    """Batched ``datasets.map`` function for sequence tasks: one row per text.

    Texts longer than ``max_length`` sub-tokens are truncated (their label is kept); the
    ``truncated`` column counts them so the caller can report it.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_length: int):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.tail = len(special_tokens_around(tokenizer)[1])  # [SEP]; none for most decoders

    def cut(self, ids: list[int]) -> list[int]:
        """``ids`` cut to ``max_length``, keeping the tokenizer's closing special tokens."""
        if len(ids) <= self.max_length:
            return ids
        return ids[: self.max_length - self.tail] + ids[len(ids) - self.tail :]

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        full = self.tokenizer(batch["words"], add_special_tokens=True)["input_ids"]
        ids = [self.cut(x) for x in full]
        return {
            "input_ids": ids,
            "labels": batch["label_ids"],
            "sentence": batch["sentence"],
            "length": [len(x) for x in ids],
            "truncated": [len(x) > self.max_length for x in full],
        }


def cached_map(
    fn: Any, raw: datasets.Dataset, key_parts: list[Any], cache_dir: str | Path | None
) -> datasets.Dataset:
    """``raw.map(fn)``, batched, cached in ``cache_dir`` under a key that hashes
    ``key_parts`` (the examples, labels, tokenizer and settings) and checked (``data.cache``);
    in memory only when ``cache_dir`` is None."""
    key = Hasher.hash([_FEATURES_VERSION, *key_parts])
    path = cache.cache_file(cache_dir, f"features-{key}.arrow") if cache_dir is not None else None
    features = raw.map(
        fn,
        batched=True,
        batch_size=1000,
        remove_columns=raw.column_names,
        cache_file_name=str(path) if path is not None else None,
        new_fingerprint=key,
        load_from_cache_file=path is not None,
        desc="tokenising",
    )
    if path is not None:
        cache.seal(path)
    return features


def featurize_words(
    words: list[list[str]],
    label_ids: list[list[int]],
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    stride: int,
    cache_dir: str | Path | None,
    context: list[tuple[list[str], list[str]]] | None = None,
    casing: bool = False,
    last_piece: bool = False,
) -> datasets.Dataset:
    """Word sequences into windows (a row per window), with ``context`` (left and right words
    of document context per sentence) filling their free room, and with ``casing`` each
    sub-token's word shape (``case_ids``), with ``last_piece`` labels on each word's last
    sub-token; cached with a batched ``datasets.map``. The cache
    key hashes the examples, labels, context, tokenizer and settings, so a second run on the
    same data and tokenizer reuses the Arrow file."""
    fn = WindowFeaturizer(tokenizer, max_length, stride, casing, last_piece)
    columns = {"words": words, "label_ids": label_ids, "sentence": list(range(len(words)))}
    if context:
        columns["left"], columns["right"] = (list(side) for side in zip(*context, strict=True))
    raw = datasets.Dataset.from_dict(columns)
    vocab = tokenizer.backend_tokenizer.to_str()
    key = [words, label_ids, context or [], vocab, type(fn).__name__, max_length, stride]
    if casing:  # appended only when on, so the caches of earlier runs stay valid
        key.append("casing")
    if last_piece:
        key.append("last_piece")
    return cached_map(fn, raw, key, cache_dir)


def featurize_texts(
    texts: list[str],
    label_ids: list[int],
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    cache_dir: str | Path | None,
) -> datasets.Dataset:
    """Texts into one truncated row each (``truncated`` marks the cut ones); cached like
    ``featurize_words``."""
    fn = TextFeaturizer(tokenizer, max_length)
    columns = {"words": texts, "label_ids": label_ids, "sentence": list(range(len(texts)))}
    raw = datasets.Dataset.from_dict(columns)
    vocab = tokenizer.backend_tokenizer.to_str()
    key = [texts, label_ids, [], vocab, type(fn).__name__, max_length, None]
    return cached_map(fn, raw, key, cache_dir)
