"""``mtfsl-fetch-conll``: download CoNLL-2003 from the Hugging Face hub into mtfsl's layout.

For online users only; everything else in mtfsl reads local files. Writes
``OUT/conll2003/{train,valid,test}.txt`` as ``token POS chunk NER`` columns with
``-DOCSTART-`` lines, so ``data.root=OUT`` works with ``task=conll``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

SPLITS = {"train": "train", "validation": "valid", "test": "test"}
COLUMNS = ("pos_tags", "chunk_tags", "ner_tags")


def _namer(feature: Any) -> Callable[[Any], str]:
    """Map a column's values to strings (class-label ids become their names)."""
    inner = getattr(feature, "feature", None)
    names = getattr(inner, "names", None)
    return (lambda v: names[v]) if names else str


def write_split(rows: Any, path: Path) -> int:
    """Write one split in CoNLL column format; return the number of sentences written."""
    namers = {c: _namer(rows.features[c]) for c in COLUMNS}
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            if row["tokens"][:1] == ["-DOCSTART-"]:
                out.write("-DOCSTART- -X- -X- O\n\n")
                continue
            columns = [[namers[c](v) for v in row[c]] for c in COLUMNS]
            for token, *tags in zip(row["tokens"], *columns, strict=True):
                out.write(" ".join([token, *tags]) + "\n")
            out.write("\n")
            count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="data root to write conll2003/ into")
    parser.add_argument("--dataset", default="lhoestq/conll2003", help="hub dataset id")
    args = parser.parse_args(argv)
    try:
        import datasets

        loaded = datasets.load_dataset(args.dataset)
    except Exception as err:  # offline, unknown id, hub error: one clear line, no traceback
        print(
            f"mtfsl-fetch-conll: error: cannot download '{args.dataset}' from the Hugging Face "
            f"hub ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). "
            "Offline? Point data.root at a local copy of conll2003/ instead.",
            file=sys.stderr,
        )
        return 1
    folder = args.out / "conll2003"
    folder.mkdir(parents=True, exist_ok=True)
    for split, name in SPLITS.items():
        n = write_split(loaded[split], folder / f"{name}.txt")
        print(f"wrote {folder / f'{name}.txt'}: {n} sentences")
    return 0


if __name__ == "__main__":
    sys.exit(main())
