from pathlib import Path

import pytest

from mtfsl.constants import IGNORE_INDEX
from mtfsl.data.context import neighbour_context
from mtfsl.data.features import WindowFeaturizer, featurize_words, plan_windows
from mtfsl.model.encoder import tiny_tokenizer


def test_short_sentence_is_one_window() -> None:
    windows = plan_windows([1, 2, 1], budget=10, stride=2)
    assert [(w.start, w.end, w.own_start, w.own_end) for w in windows] == [(0, 3, 0, 3)]


def test_windows_partition_words_and_fit_budget() -> None:
    lengths = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4] * 5
    budget = 24
    windows = plan_windows(lengths, budget, stride=4)
    owned = [i for w in windows for i in range(w.own_start, w.own_end)]
    assert owned == list(range(len(lengths)))  # every word owned exactly once, in order
    for w in windows:
        assert sum(lengths[w.start : w.end]) <= budget
        assert w.start <= w.own_start < w.own_end <= w.end
    # context: the second window sees words before the ones it owns
    assert windows[1].start < windows[1].own_start


def test_word_longer_than_budget_gets_its_own_window() -> None:
    windows = plan_windows([2, 10, 2], budget=10, stride=2)
    assert [(w.own_start, w.own_end) for w in windows] == [(0, 1), (1, 2), (2, 3)]


def test_alignment_first_subtoken_carries_label() -> None:
    tok = tiny_tokenizer()
    feat = WindowFeaturizer(tok, max_length=32, stride=4)
    out = feat({"words": [["ab", "c"]], "label_ids": [[3, 0]], "sentence": [7]})
    # [CLS] a ##b c [SEP]
    assert tok.convert_ids_to_tokens(out["input_ids"][0]) == ["[CLS]", "a", "##b", "c", "[SEP]"]
    assert out["labels"][0] == [IGNORE_INDEX, 3, IGNORE_INDEX, 0, IGNORE_INDEX]
    assert out["word_index"][0] == [-1, 0, -1, 1, -1]
    assert out["sentence"] == [7] and out["length"] == [5]


def test_word_the_tokenizer_erases_becomes_unknown() -> None:
    tok = tiny_tokenizer()
    feat = WindowFeaturizer(tok, max_length=32, stride=4)
    out = feat({"words": [["a", "\u200b", "b"]], "label_ids": [[1, 2, 1]], "sentence": [0]})
    assert tok.convert_ids_to_tokens(out["input_ids"][0]) == ["[CLS]", "a", "[UNK]", "b", "[SEP]"]
    assert out["labels"][0][1:4] == [1, 2, 1]


@pytest.mark.parametrize("max_length", [32, 12])
def test_300_word_sentence_keeps_every_word(tmp_path: Path, max_length: int) -> None:
    words = [f"w{i}" for i in range(300)]  # 2-4 sub-tokens each with the char tokenizer
    labels = [i % 5 for i in range(300)]
    ds = featurize_words([words], [labels], tiny_tokenizer(), max_length, 8, tmp_path)
    assert len(ds) > 1
    seen: dict[int, int] = {}
    for row in ds:
        assert len(row["input_ids"]) <= max_length
        for pos, (word, label) in enumerate(zip(row["word_index"], row["labels"], strict=True)):
            if word >= 0:
                assert word not in seen
                seen[word] = label
                assert row["input_ids"][pos] != 0
            else:
                assert label == IGNORE_INDEX
    assert seen == dict(enumerate(labels))


def test_featurize_is_cached_by_content(tmp_path: Path) -> None:
    tok = tiny_tokenizer()
    first = featurize_words([["a", "b"]], [[0, 1]], tok, 16, 2, tmp_path)
    again = featurize_words([["a", "b"]], [[0, 1]], tok, 16, 2, tmp_path)
    other = featurize_words([["a", "c"]], [[0, 1]], tok, 16, 2, tmp_path)
    assert first.cache_files[0]["filename"] == again.cache_files[0]["filename"]
    assert other.cache_files[0]["filename"] != first.cache_files[0]["filename"]
    assert len(list(tmp_path.glob("features-*.arrow"))) == 2


def test_document_context_fills_the_window_around_the_owned_sentence() -> None:
    # 3 context words left (lengths 2, 2, 2), sentence of 3 words (1 each), 4 right (1 each)
    lengths = [2, 2, 2, 1, 1, 1, 1, 1, 1, 1]
    windows = plan_windows(lengths, budget=9, stride=2, own=(3, 6))
    # room 6: the right takes its half (3 words), the left the rest (one word of 2 sub-tokens)
    assert [(w.start, w.end, w.own_start, w.own_end) for w in windows] == [(2, 9, 3, 6)]
    # no left context at all: the right side may use the whole room
    windows = plan_windows([1, 1, 1, 1, 1, 1, 1, 1], budget=6, stride=2, own=(0, 2))
    assert [(w.start, w.end, w.own_start, w.own_end) for w in windows] == [(0, 6, 0, 2)]


def test_context_words_are_input_only(tmp_path: Path) -> None:
    tok = tiny_tokenizer()
    ds = featurize_words(
        [["bc"], ["d", "e"]],
        [[1], [2, 3]],
        tok,
        16,
        2,
        tmp_path,
        context=[([], ["d", "e"]), (["bc"], [])],
    )
    rows = list(ds)
    assert tok.convert_ids_to_tokens(rows[1]["input_ids"]) == [
        "[CLS]", "b", "##c", "d", "e", "[SEP]"
    ]  # fmt: skip
    assert rows[1]["labels"] == [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 2, 3, IGNORE_INDEX]
    assert rows[1]["word_index"] == [-1, -1, -1, 0, 1, -1]
    assert rows[0]["labels"] == [IGNORE_INDEX, 1, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, -100]
    assert rows[0]["word_index"] == [-1, 0, -1, -1, -1, -1]
    plain = featurize_words([["bc"], ["d", "e"]], [[1], [2, 3]], tok, 16, 2, tmp_path)
    assert plain.cache_files[0]["filename"] != ds.cache_files[0]["filename"]
    assert list(plain)[1]["input_ids"] == [
        tok.cls_token_id,
        *tok.convert_tokens_to_ids(["d", "e"]),
        tok.sep_token_id,
    ]


def test_neighbour_context_stays_in_the_document() -> None:
    words = [["a"], ["b", "b"], ["c"], ["d"], ["e"]]
    docs = [0, 0, 0, 1, 1]
    assert neighbour_context(words, docs, 1) == [
        ([], ["b", "b"]),
        (["a"], ["c"]),
        (["b", "b"], []),
        ([], ["e"]),
        (["d"], []),
    ]
    assert neighbour_context(words, docs, 2)[2] == (["a", "b", "b"], [])
