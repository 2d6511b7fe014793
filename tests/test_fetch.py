import os
import subprocess
import sys
from pathlib import Path

import datasets

from mtfsl.fetch import write_split


def test_write_split_matches_reader_layout(tmp_path: Path) -> None:
    names = datasets.Sequence(datasets.ClassLabel(names=["O", "B-PER", "I-PER"]))
    rows = datasets.Dataset.from_dict(
        {
            "tokens": [["-DOCSTART-"], ["Peter", "Blackburn", "spoke"]],
            "pos_tags": [["-X-"], ["NNP", "NNP", "VBD"]],
            "chunk_tags": [["O"], ["B-NP", "I-NP", "B-VP"]],
            "ner_tags": [[0], [1, 2, 0]],
        },
        features=datasets.Features(
            {
                "tokens": datasets.Sequence(datasets.Value("string")),
                "pos_tags": datasets.Sequence(datasets.Value("string")),
                "chunk_tags": datasets.Sequence(datasets.Value("string")),
                "ner_tags": names,
            }
        ),
    )
    path = tmp_path / "train.txt"
    assert write_split(rows, path) == 1
    assert path.read_text() == (
        "-DOCSTART- -X- -X- O\n\nPeter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n"
        "spoke VBD B-VP O\n\n"
    )


def test_offline_fetch_is_a_clear_error(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mtfsl.fetch", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "mtfsl-fetch-conll: error: cannot download 'lhoestq/conll2003'" in proc.stderr
