"""Few-shot protocols: exact sampler counts, shortfalls, dev protocols, published splits."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from mtfsl.config import (
    DataConfig,
    FewShotConfig,
    FewShotDev,
    Shortfall,
)
from mtfsl.data.kshot import exact_k, mention_counts, per_class, sentences_per_type
from mtfsl.data.readers import read_conll, read_line_pairs
from mtfsl.data.splits import load_task
from mtfsl.errors import ConfigError, DataError
from mtfsl.job import run
from mtfsl.kinds.tagging import TagMetric
from mtfsl.pipeline.fewshot import apply_few_shot, load_split_file
from mtfsl.resolve import resolve_task
from tests.conftest import FIXTURES, classification_task, compose_cfg, tagging_task
from tests.test_kshot import corpus, totals

HUANG = FIXTURES / "fewshot"


@pytest.mark.parametrize("seed", range(10))
def test_exact_k_gives_every_type_exactly_k(seed: int) -> None:
    tags = corpus()  # PER-only x6, LOC-only x4, PER+LOC x3: K=3 is always reachable
    ids = exact_k(tags, 3, seed)
    assert totals(tags, ids) == {"PER": 3, "LOC": 3}
    assert len(ids) == len(set(ids))
    assert all(mention_counts(tags[i]) for i in ids)  # no sentence without entities


def test_exact_k_shortfall_is_an_error_or_a_cap() -> None:
    # B only occurs beside two A mentions, so with K=1 it can never be taken
    tags = [["B-A", "O", "B-A", "B-B"]] * 3 + [["B-A"]] * 2
    with pytest.raises(ConfigError, match=r"^few_shot\.k=1: the training split has only 0 "):
        exact_k(tags, 1, 0)
    notes = []
    ids = exact_k(tags, 1, 0, lambda what, n, k: notes.append((what, n, k)))
    assert totals(tags, ids) == {"A": 1}
    assert notes == [("mentions of type B that fit without another type going over K", 0, 1)]


@pytest.mark.parametrize("seed", range(5))
def test_sentences_per_type_draws_k_sentences_for_each_type(seed: int) -> None:
    tags = corpus()
    ids = sentences_per_type(tags, 4, seed)
    assert len(ids) == 8  # K x types, a sentence drawn for both types counted twice
    loc, per = ids[:4], ids[4:]  # types in alphabetical order
    assert all(mention_counts(tags[i])["LOC"] for i in loc)
    assert all(mention_counts(tags[i])["PER"] for i in per)
    assert len(set(loc)) == 4 and len(set(per)) == 4


def test_sentences_per_type_shortfall() -> None:
    with pytest.raises(ConfigError, match=r"only 7 sentences with type LOC"):
        sentences_per_type(corpus(), 8, 0)


def test_per_class_takes_k_of_every_class_and_caps_on_request() -> None:
    labels = ["a"] * 5 + ["b"] * 3 + ["c"] * 2
    ids = per_class(labels, 2, 1)
    assert Counter(labels[i] for i in ids) == {"a": 2, "b": 2, "c": 2}
    with pytest.raises(ConfigError, match=r"^few_shot\.k=3: .* only 2 examples of class 'c'$"):
        per_class(labels, 3, 1)
    capped = per_class(labels, 3, 1, lambda *args: None)
    assert Counter(labels[i] for i in capped) == {"a": 3, "b": 3, "c": 2}


def intents() -> tuple:
    task = compose_cfg(["task=banking77"]).task["banking77"]
    task.files.train, task.files.test = "toy_train.csv", "toy_test.csv"
    task.labels_file, task.dev_fraction = "categories.json", None
    data = load_task(
        resolve_task("banking77", task), DataConfig(root=str(FIXTURES / "toy_intents"))
    )
    return data, task


def test_k_shot_dev_is_disjoint_and_of_the_same_size() -> None:
    data, task = intents()  # 4 classes x 3 examples
    fs = FewShotConfig(k=1, dev=FewShotDev.K_SHOT)
    out, record = apply_few_shot(data, resolve_task(data.name, task), fs, run_seed=3, root=FIXTURES)
    train, dev = out.splits["train"], out.splits["dev"]
    assert (
        Counter(train.targets)
        == Counter(dev.targets)
        == {c: 1 for c in ("card_arrival", "card_declined", "exchange_rate", "top_up")}
    )
    assert not set(record["ids"]) & set(record["dev_ids"])
    assert record["sampler"] == "per_class" and record["num_dev"] == 4
    assert "test" in out.splits and len(out.splits["test"]) == len(data.splits["test"])


def test_capped_shortfall_is_recorded_and_dev_none_drops_dev() -> None:
    data, task = intents()
    fs = FewShotConfig(k=2, dev=FewShotDev.K_SHOT, shortfall=Shortfall.CAP)
    out, record = apply_few_shot(data, resolve_task(data.name, task), fs, run_seed=3, root=FIXTURES)
    assert len(out.splits["train"]) == 8 and len(out.splits["dev"]) == 4  # 3 per class
    assert len(record["shortfalls"]) == 4 and record["shortfalls"][0].startswith("dev: only 1")
    none, _ = apply_few_shot(
        data, resolve_task(data.name, task), FewShotConfig(k=1, dev=FewShotDev.NONE), 3, FIXTURES
    )
    assert "dev" not in none.splits


def test_auto_sampler_follows_the_metric_and_a_mismatch_is_an_error() -> None:
    data, task = intents()
    _, record = apply_few_shot(data, resolve_task(data.name, task), FewShotConfig(k=1), 0, FIXTURES)
    assert record["sampler"] == "per_class"
    with pytest.raises(
        ConfigError,
        match=r"sampler=GREEDY: does not fit task 'banking77' \(kind classification\); it takes",
    ):
        apply_few_shot(
            data,
            resolve_task(data.name, task),
            FewShotConfig(k=1, sampler="GREEDY"),
            0,
            FIXTURES,
        )
    # per-word tags have nothing to balance: K sentences at random (the same draw per seed)
    pos = tagging_task(metric=TagMetric.TAG_ACCURACY)
    fs = FewShotConfig(k=3)
    one, record = apply_few_shot(data, resolve_task(data.name, pos), fs, 0, FIXTURES)
    again, _ = apply_few_shot(data, resolve_task(data.name, pos), fs, 0, FIXTURES)
    assert record["sampler"] == "random" and len(one.splits["train"]) == 3
    assert one.splits["train"].lines == again.splits["train"].lines


def huang(split: int, **extra) -> FewShotConfig:
    fs = compose_cfg(["few_shot=huang2020", f"few_shot.split={split}"]).few_shot
    fs.files, fs.k = "fewshot/toy_{k}_{split}", 1
    for key, value in extra.items():
        setattr(fs, key, value)
    return fs


def test_split_file_undoes_escapes_and_keeps_tags_aligned() -> None:
    labels = ["O", *(f"{p}-{t}" for t in ("LOC", "MISC", "ORG", "PER") for p in "BI")]
    split = load_split_file(huang(0), resolve_task("t", tagging_task()), labels, FIXTURES)
    assert split.inputs[1] == ["Peter", "Blackburn", "(", "UK", ")"]
    assert split.targets[1] == ["B-PER", "I-PER", "O", "B-LOC", "O"]
    assert [len(w) for w in split.inputs] == [len(t) for t in split.targets] == [4, 5, 2, 4]
    assert split.lines == [1, 2, 3, 4]


def test_split_file_errors_name_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "fewshot").mkdir()
    (tmp_path / "fewshot/toy_1_0.words").write_text("a b\nc d e\n")
    (tmp_path / "fewshot/toy_1_0.ner").write_text("O O\nO B-PER\n")
    with pytest.raises(DataError, match=r"toy_1_0\.ner:2: 2 tags for the 3 words of .*:2$"):
        read_line_pairs(tmp_path / "fewshot/toy_1_0.words", tmp_path / "fewshot/toy_1_0.ner")
    (tmp_path / "fewshot/toy_1_0.ner").write_text("O O\nO X-PER O\n")
    with pytest.raises(DataError, match=r"toy_1_0\.ner:2 \(token 2\): invalid tag 'X-PER'"):
        load_split_file(huang(0), resolve_task("t", tagging_task()), ["O"], tmp_path)
    with pytest.raises(DataError, match=r"toy_1_7\.words: few-shot split file not found"):
        load_split_file(huang(7), resolve_task("t", tagging_task()), ["O"], tmp_path)


def test_published_huang_splits_are_conll_train_sentences(shared_data: Path) -> None:
    train = {
        tuple(s.column(0)): s.column(-1) for s in read_conll(shared_data / "conll2003/train.txt")
    }
    fs = compose_cfg(["few_shot=huang2020"]).few_shot
    labels = ["O", *(f"{p}-{t}" for t in ("LOC", "MISC", "ORG", "PER") for p in "BI")]
    for k, split in ((5, 0), (5, 9), (10, 3), (20, 7)):
        fs.k, fs.split = k, split
        loaded = load_split_file(fs, resolve_task("t", tagging_task()), labels, shared_data)
        assert len(loaded) == 4 * k  # K sentences per type, 4 types
        for words, tags in zip(loaded.inputs, loaded.targets, strict=True):
            assert train[tuple(words)] == tags


@pytest.mark.parametrize(
    ("sampler", "check"),
    [
        ("EXACT", lambda r: r["train_counts"] == {t: 1 for t in ("LOC", "MISC", "ORG", "PER")}),
        ("SENTENCES_PER_TYPE", lambda r: r["num_train"] == 4 == len(r["ids"])),
        ("GREEDY", lambda r: min(r["train_counts"].values()) >= 1),
    ],
)
def test_each_ner_sampler_runs_end_to_end(toy_cfg, tmp_path: Path, sampler: str, check) -> None:
    toy_cfg.few_shot.k, toy_cfg.few_shot.sampler = 1, sampler
    toy_cfg.few_shot.seed = 3  # a draw where EXACT can fill every type (seed 42 cannot: ORG)
    toy_cfg.trainer.max_steps = 2
    metrics = run(toy_cfg, tmp_path / "run")
    record = json.loads((tmp_path / "run" / "few_shot" / "conll.json").read_text())
    assert record["sampler"] == sampler.lower() and check(record)
    assert metrics["train/conll/examples"] == record["num_train"]


def test_a_k_shot_run_gets_its_own_step_budget_unless_the_trainer_sets_one() -> None:
    from mtfsl.config import apply_few_shot_budget
    from mtfsl.resolve import compose_config

    cfg = compose_config(["few_shot.k=16"])
    assert "200 steps of batch 8, dev every 50 steps" in apply_few_shot_budget(cfg)
    t = cfg.trainer
    assert (t.max_steps, t.batch_size, t.eval_every_steps) == (200, 8, 50)
    for kept in (["trainer.max_steps=40"], ["few_shot.max_steps=null"], []):
        cfg = compose_config([*kept, "few_shot.k=16"] if kept else [])
        assert apply_few_shot_budget(cfg) is None  # the trainer's own budget stands
        assert cfg.trainer.batch_size == 32
    cfg = compose_config(
        ["few_shot.k=16", "trainer.eval_every_steps=10", "few_shot.batch_size=null"]
    )
    apply_few_shot_budget(cfg)
    assert (cfg.trainer.max_steps, cfg.trainer.batch_size, cfg.trainer.eval_every_steps) == (
        200,
        32,
        10,
    )


def test_run_folders_are_named_after_the_task_mix() -> None:
    from mtfsl.config import task_names

    assert task_names({"conll": 1, "rte": 2}) == "conll+rte"
    assert task_names(["a", "b", "c", "d", "e", "f"]) == "a+b+c+d+2more"
    assert task_names({"my/task": 1}) == "my_task"


def test_min_words_keeps_short_sentences_out_of_the_draw() -> None:
    from mtfsl.data.splits import Split, TaskData

    inputs = [["Ann", "ran"], ["Bo", "sat", "down"], ["Cy", "ran"], ["Di", "ate", "it"]]
    tags = [["B-PER", "O"], ["B-PER", "O", "O"], ["B-PER", "O"], ["B-PER", "O", "O"]]
    train = Split(Path("t.txt"), inputs, tags, [1, 4, 8, 11])
    data = TaskData("t", ["B-PER", "I-PER", "O"], {"train": train})
    fs = FewShotConfig(k=2, sampler="EXACT", min_words=3)
    few, record = apply_few_shot(data, resolve_task(data.name, tagging_task()), fs, 0, None)
    # only the two 3-word sentences may be drawn, and K=2 takes both
    assert record["ids"] == [1, 3] and record["pool"] == 2 and record["min_words"] == 3
    assert few.splits["train"].lines == [4, 11]
    fs.k = 3
    with pytest.raises(ConfigError, match="only 2 mentions of type PER"):
        apply_few_shot(data, resolve_task(data.name, tagging_task()), fs, 0, None)
    fs.k, fs.min_words = 3, 0  # without the filter all four sentences are candidates
    assert (
        len(apply_few_shot(data, resolve_task(data.name, tagging_task()), fs, 0, None)[1]["ids"])
        == 3
    )
    texts = TaskData("c", ["a"], {"train": Split(Path("c.csv"), ["x y"], ["a"], [2])})
    fs = FewShotConfig(k=1, sampler="PER_CLASS", min_words=3)
    with pytest.raises(ConfigError, match=r"few_shot\.min_words: only for token tasks"):
        apply_few_shot(texts, resolve_task(texts.name, classification_task()), fs, 0, None)


def test_the_entlm_config_filters_short_sentences() -> None:
    cfg = compose_cfg(["few_shot=entlm"])
    fs = cfg.few_shot
    assert (fs.k, fs.sampler, fs.min_words) == (5, "EXACT", 11)  # names match in any case


def test_a_third_party_k_shot_sampler_registers_and_says_which_kinds_it_fits() -> None:
    from mtfsl.data.kshot import KSHOT_SAMPLERS, KShotDraw, register_kshot_sampler

    def first_k(targets, k, rng, short):  # the first K examples, whatever their labels
        return list(range(min(k, len(targets))))

    texts, cfg = intents()
    task = resolve_task(texts.name, cfg)
    register_kshot_sampler(KShotDraw("first_k", first_k, fits=lambda kind, cfg: True))
    try:
        few, record = apply_few_shot(texts, task, FewShotConfig(k=3, sampler="FIRST_K"), 0, None)
        assert record["sampler"] == "first_k" and record["ids"] == [0, 1, 2]
        assert few.splits["train"].targets == texts.splits["train"].targets[:3]
    finally:
        del KSHOT_SAMPLERS["first_k"]
    with pytest.raises(ConfigError, match=r"few_shot.sampler=first_k: expected a K-shot sampler"):
        apply_few_shot(texts, task, FewShotConfig(k=3, sampler="first_k"), 0, None)


def test_a_k_shot_sampler_that_does_not_fit_stops_the_config_check() -> None:
    from mtfsl.resolve import validate

    cfg = compose_cfg(["few_shot.k=1", "few_shot.sampler=per_class", "data.root=/nowhere"])
    with pytest.raises(ConfigError, match=r"sampler=PER_CLASS: does not fit task 'conll'"):
        validate(cfg)
