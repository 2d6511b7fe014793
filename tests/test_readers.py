from pathlib import Path

import pytest

from mtfsl.data.context import windows
from mtfsl.data.readers import READERS, iter_conll, read_conll
from mtfsl.errors import DataError
from mtfsl.kinds import KINDS
from tests.conftest import classification_task


def test_toy_train_sentences_docs_and_lines(fixtures: Path) -> None:
    sentences = read_conll(fixtures / "toy_conll" / "toy.train")
    assert len(sentences) == 11
    assert sum(len(s.fields) for s in sentences) == 72
    assert [s.doc for s in sentences] == [0, 0, 0] + [1] * 8
    first = sentences[0]
    assert first.line == 3 and first.column(0)[:3] == ["EU", "rejects", "German"]
    assert first.column(3)[:3] == ["B-ORG", "O", "B-MISC"]
    # the whitespace-only line after "... said ." separates two sentences
    assert sentences[4].column(0)[-2:] == ["said", "."]
    assert sentences[5].column(0)[0] == "Fischler"


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "f.conll"
    path.write_bytes(data)
    return path


def test_bom_crlf_tabs_and_trailing_docstart(tmp_path: Path) -> None:
    data = "\ufeffA\tNN\tO\r\nB NN B-PER\r\n \t \r\nC NN I-PER\r\n\r\n-DOCSTART- -X- O\r\n"
    sentences = read_conll(write(tmp_path, data.encode("utf-8")))
    assert [s.column(0) for s in sentences] == [["A", "B"], ["C"]]
    assert [s.line for s in sentences] == [1, 4]


def test_docstart_inside_block_is_skipped(tmp_path: Path) -> None:
    sentences = read_conll(write(tmp_path, b"-DOCSTART- -X- O\nA NN O\n\nB NN O\n"))
    assert [(s.column(0), s.doc, s.line) for s in sentences] == [(["A"], 0, 2), (["B"], 0, 4)]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"A NN O\nB O\n", ":2: expected 3 columns like the file's first token line, found 2"),
        (b"A NN O\n\nB NN \xff O\n", ":3: not valid UTF-8 (byte 0xff)"),
        (b"", ": no sentences found"),
        (b"-DOCSTART- -X- O\n\n  \n", ": no sentences found"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path: Path, data: bytes, message: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(DataError) as err:
        read_conll(path)
    assert str(err.value) == f"{path}{message}" or str(err.value).startswith(f"{path}{message}")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_conll(tmp_path / "nope.txt")


def test_readers_are_lazy_a_sentence_at_a_time(tmp_path: Path) -> None:
    # the first sentence comes out before the bad line at the end is read
    sentences = iter_conll(write(tmp_path, b"A NN O\n\nB NN O\n\nC O\n"))
    assert next(sentences).column(0) == ["A"]
    assert next(sentences).column(0) == ["B"]
    with pytest.raises(DataError, match=":5: expected 3 columns"):
        next(sentences)
    csv_path = tmp_path / "f.csv"
    csv_path.write_text('text,label\n"a\nb",x\nc,y\nd\n')
    task = classification_task()
    columns = KINDS["classification"].columns("task.t", task)
    records = READERS["csv"].iter_records(csv_path, task.reader, columns)
    assert [(r.values, r.line) for r in (next(records), next(records))] == [
        ({"text": "a\nb", "label": "x"}, 2),
        ({"text": "c", "label": "y"}, 4),
    ]
    with pytest.raises(DataError, match=":5: expected 2 fields like the header, found 1"):
        next(records)


def test_old_mac_line_breaks_still_split_lines(tmp_path: Path) -> None:
    sentences = read_conll(write(tmp_path, b"A NN O\rB NN O\r\rC NN O\r"))
    assert [(s.column(0), s.line) for s in sentences] == [(["A", "B"], 1), (["C"], 4)]


def test_windows_carry_neighbours_and_own_each_row_once() -> None:
    got = [(rows, (own.start, own.stop)) for rows, own in windows(range(7), 3, 1)]
    assert got == [
        ([0, 1, 2, 3], (0, 3)),
        ([2, 3, 4, 5, 6], (1, 4)),
        ([5, 6], (1, 2)),
    ]
    assert [(rows, (own.start, own.stop)) for rows, own in windows(range(4), 2, 0)] == [
        ([0, 1], (0, 2)),
        ([2, 3], (0, 2)),
    ]
    assert list(windows([], 2, 1)) == []
    # margin larger than the chunk: every chunk still sees `margin` rows each side
    owned = []
    for rows, own in windows(range(10), 1, 3):
        assert len(rows) <= 1 + 2 * 3
        for j in own:
            owned.append(i := rows[j])
            assert rows[max(0, j - 3) : j + 4] == list(range(max(0, i - 3), min(10, i + 4)))
    assert owned == list(range(10))
