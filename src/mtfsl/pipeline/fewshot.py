"""Turn a task's full data into its few-shot version: drawn or published training split,
the dev set the protocol asks for, and a record of exactly which examples were used."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from mtfsl.config import FewShotConfig, FewShotDev, Shortfall
from mtfsl.data.kshot import KSHOT_SAMPLERS, SPLIT_FILE, Short, raise_short, resolve_sampler
from mtfsl.data.readers import read_line_pairs
from mtfsl.data.readers.base import Record, Records
from mtfsl.data.splits import Split, TaskData, check_known
from mtfsl.errors import ConfigError, DataError
from mtfsl.resolve import Task

log = logging.getLogger(__name__)


def _short_handler(policy: Shortfall, notes: list[str], part: str) -> Short:
    def short(what: str, available: int, k: int) -> None:
        if policy is Shortfall.ERROR:
            raise_short(what, available, k)
        note = f"{part}: only {available} {what} (K={k}); capped"
        log.warning("few-shot %s", note)
        notes.append(note)

    return short


def split_file_paths(fs: FewShotConfig, root: Path | None) -> tuple[Path, Path]:
    assert fs.files is not None
    stem = Path(fs.files.format(k=fs.k, split=fs.split)).expanduser()
    if not stem.is_absolute():
        if root is None:
            raise ConfigError(
                f"few_shot.files={fs.files}: a relative path, but data.root is not set"
            )
        stem = root / stem
    words, tags = (stem.with_name(f"{stem.name}{suffix}") for suffix in fs.suffixes)
    for path in (words, tags):
        if not path.is_file():
            raise DataError(
                f"{path}: few-shot split file not found (few_shot.files={fs.files}, "
                f"few_shot.k={fs.k}, few_shot.split={fs.split}, data.root={root})"
            )
    return words, tags


def load_split_file(fs: FewShotConfig, task: Task, labels: list[str], root: Path | None) -> Split:
    """A published K-shot training split (e.g. Huang et al. 2020), escapes undone; a tag is
    named in error messages by its line and word in the tags file."""
    words_path, tags_path = split_file_paths(fs, root)
    rows = read_line_pairs(words_path, tags_path, fs.unescape)
    kind = task.kind
    records = Records(
        tags_path, [Record({"tokens": r.words, "tags": r.tags}, r.line) for r in rows]
    )
    split = kind.to_split(records, task.cfg)
    split.path = words_path  # the training file the run records
    located = Split(tags_path, split.inputs, split.targets, split.lines)
    check_known(kind, located, labels)
    return split


def _pool(split: Split, min_words: int, token_level: bool) -> list[int]:
    """The examples a sampler may draw from: all, or (``few_shot.min_words``) the sentences
    of at least that many words."""
    if not min_words:
        return list(range(len(split)))
    if not token_level:
        raise ConfigError("few_shot.min_words: only for token tasks (sentences of words)")
    return [i for i, words in enumerate(split.inputs) if len(words) >= min_words]


def _draw(
    full: Split,
    fs: FewShotConfig,
    sampler: str,
    token_level: bool,
    rng: np.random.Generator,
    notes: list[str],
    splits: dict[str, Split],
    record: dict[str, Any],
) -> None:
    """Draw the K-shot training split (and, with ``few_shot.dev=K_SHOT``, a disjoint dev
    split of the same protocol) from ``full`` into ``splits``; what was drawn into
    ``record``."""
    draw = KSHOT_SAMPLERS[sampler].draw
    pool = _pool(full, fs.min_words, token_level)
    short = _short_handler(fs.shortfall, notes, "train")
    # indices into the pool, in the sampler's order (sorted, or draw order with repeats)
    ids = [pool[j] for j in draw(full.subset(pool).targets, fs.k, rng, short)]
    splits["train"] = full.subset(ids)
    record.update(train_file=str(full.path), ids=ids, lines=splits["train"].lines)
    if fs.min_words:
        record["min_words"], record["pool"] = fs.min_words, len(pool)
    if fs.dev is FewShotDev.K_SHOT:  # LM-BFF: same protocol, disjoint examples
        taken = set(ids)
        rest = [i for i in pool if i not in taken]
        short = _short_handler(fs.shortfall, notes, "dev")
        dev_ids = [rest[j] for j in draw(full.subset(rest).targets, fs.k, rng, short)]
        splits["dev"] = full.subset(dev_ids)
        record.update(dev_ids=dev_ids, dev_lines=splits["dev"].lines)


def apply_few_shot(
    data: TaskData, task: Task, fs: FewShotConfig, run_seed: int, root: Path | None
) -> tuple[TaskData, dict[str, Any] | None]:
    """The few-shot version of ``data`` and a JSON-able record of it (None without K)."""
    if fs.k is None:
        return data, None
    kind = task.kind
    sampler = resolve_sampler(fs.sampler, kind, task.cfg, data.name)
    seed = run_seed if fs.seed is None else fs.seed
    rng = np.random.default_rng(seed)
    notes: list[str] = []
    full = data.splits["train"]
    splits = dict(data.splits)
    record: dict[str, Any] = {"sampler": sampler, "k": fs.k, "seed": seed}
    if sampler == SPLIT_FILE:
        splits["train"] = load_split_file(fs, task, data.labels, root)
        record.update(split=fs.split, train_file=str(splits["train"].path))
        record["lines"] = splits["train"].lines
    else:
        _draw(full, fs, sampler, kind.token_level, rng, notes, splits, record)
    if fs.dev is FewShotDev.NONE:
        splits.pop("dev", None)
    record.update(
        num_train=len(splits["train"]),
        train_counts=kind.label_counts(splits["train"]),
        dev=fs.dev.value,
        num_dev=len(splits["dev"]) if "dev" in splits else 0,
        shortfalls=notes,
    )
    log.info(
        "few-shot %s: k=%d (%s, seed %d): %d of %d training examples, %s; dev: %s (%d)",
        data.name,
        fs.k,
        sampler,
        seed,
        record["num_train"],
        len(full),
        record["train_counts"],
        fs.dev.value,
        record["num_dev"],
    )
    return TaskData(data.name, data.labels, splits), record
