"""Property-based tests: readers and label converters never crash on arbitrary input."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from mtfsl.config import LabelScheme
from mtfsl.data.labels import iob1_to_iob2, to_iob2
from mtfsl.data.readers import read_conll
from mtfsl.errors import DataError
from tests.conftest import read_texts

TOKEN = st.text(
    st.characters(blacklist_categories=("Z", "C"), blacklist_characters="\x85"),
    min_size=1,
    max_size=6,
).filter(lambda t: t.split() == [t] and t != "-DOCSTART-")
TYPES = st.sampled_from(["PER", "LOC", "ORG"])


@st.composite
def iob2_tags(draw: st.DrawFn) -> list[str]:
    tags: list[str] = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(TYPES)
        choice = draw(st.sampled_from(["O", "B", "I"]))
        if choice == "I" and tags and tags[-1] != "O":
            tags.append("I-" + tags[-1][2:])
        elif choice == "O":
            tags.append("O")
        else:
            tags.append("B-" + kind)
    return tags


def to_iob1(tags: list[str]) -> list[str]:
    out, previous = [], "O"
    for tag in tags:
        if tag.startswith("B-") and not (previous != "O" and previous[2:] == tag[2:]):
            tag = "I-" + tag[2:]
        out.append(tag)
        previous = tag
    return out


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(TOKEN, min_size=8, max_size=8), iob2_tags()), min_size=1, max_size=5
    ),
    st.booleans(),
)
def test_valid_files_round_trip(sentences: list[tuple[list[str], list[str]]], crlf: bool) -> None:
    newline = "\r\n" if crlf else "\n"
    pairs = [(words[: len(tags)], tags) for words, tags in sentences]
    text = newline.join(
        newline.join(f"{w} X {t}" for w, t in zip(words, tags, strict=True)) + newline
        for words, tags in pairs
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "f.conll"
        path.write_text("-DOCSTART- -X- O" + newline + newline + text, encoding="utf-8")
        read = read_conll(path)
    assert [(s.column(0), s.column(2)) for s in read] == pairs


@settings(max_examples=100, deadline=None)
@given(iob2_tags())
def test_iob1_conversion_inverts(tags: list[str]) -> None:
    assert iob1_to_iob2(to_iob1(tags)) == tags
    assert to_iob2([to_iob1(tags)], LabelScheme.AUTO, "f", [1]) in ([tags], [to_iob1(tags)])


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_read_or_fail_clearly(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "f.conll"
        path.write_bytes(data)
        try:
            sentences = read_conll(path)
        except DataError as err:
            assert str(err).startswith(str(path))
        else:
            assert all(len(s.fields) >= 1 for s in sentences)
        path.write_bytes(b"text,label\n" + data)
        try:
            read_texts(path, "text", "label")
        except DataError as err:
            assert str(err).startswith(str(path))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.text(max_size=6), min_size=1, max_size=5), min_size=1, max_size=4))
def test_arbitrary_tags_convert_or_fail_clearly(sequences: list[list[str]]) -> None:
    try:
        out = to_iob2(sequences, LabelScheme.AUTO, "f.txt", list(range(1, len(sequences) + 1)))
    except DataError as err:
        assert str(err).startswith("f.txt:")
    else:
        assert [len(s) for s in out] == [len(s) for s in sequences]
