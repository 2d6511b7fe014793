"""Hugging Face ``datasets``: a ``save_to_disk`` folder, ``load_dataset`` with local json /
csv / parquet files (``task.files`` are its data files), or (online) a hub id."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtfsl.config import DataConfig, ReaderConfig, TaskConfig
from mtfsl.data.readers import register_reader
from mtfsl.data.readers.base import SPLITS, Columns, Reader, Record, Records
from mtfsl.errors import ConfigError, DataError

log = logging.getLogger(__name__)
_BUILDERS_WITH_FILES = ("json", "csv", "parquet", "text", "arrow")


@dataclass
class DatasetSplits:
    """The dataset's name for each of mtfsl's splits (null = the task has no such split)."""

    train: str = "train"
    dev: str | None = "validation"
    test: str | None = "test"


@dataclass
class DatasetsReaderConfig(ReaderConfig):
    format: str = "datasets"
    # A save_to_disk folder (relative to data.root unless absolute), a builder that reads
    # task.files (json, csv, parquet), or a hub id (needs network access).
    source: str = "json"
    name: str | None = None  # the dataset's config name (load_dataset's second argument)
    splits: DatasetSplits = field(default_factory=DatasetSplits)


def _names(feature: Any) -> list[str] | None:
    """Class names of a ClassLabel feature, or of the ClassLabel inside a sequence."""
    inner = getattr(feature, "feature", None)  # Sequence(ClassLabel) / List(ClassLabel)
    if inner is not None:
        return _names(inner)
    names = getattr(feature, "names", None)
    return list(names) if names else None


class DatasetsReader(Reader):
    name = "datasets"
    schema = DatasetsReaderConfig

    def needs_files(self, cfg: Any) -> bool:
        return cfg.source in _BUILDERS_WITH_FILES

    def _saved(self, cfg: Any, data: DataConfig) -> Path | None:
        path = Path(cfg.source).expanduser()
        if not path.is_absolute():
            if data.root is None:
                return None
            path = Path(data.root).expanduser() / path
        saved = (path / "dataset_dict.json").is_file() or (path / "dataset_info.json").is_file()
        return path if saved else None

    def _load(self, key: str, task: TaskConfig, data: DataConfig) -> Any:
        import datasets

        from mtfsl.data.splits import data_path

        cfg = task.reader
        try:
            if (saved := self._saved(cfg, data)) is not None:
                return datasets.load_from_disk(str(saved))
            files = None
            if cfg.source in _BUILDERS_WITH_FILES:
                files = {
                    getattr(cfg.splits, split): str(data_path(path, data))
                    for split in SPLITS
                    if (path := getattr(task.files, split)) is not None
                    and getattr(cfg.splits, split) is not None
                }
                for path in files.values():
                    if not Path(path).is_file():
                        raise DataError(f"{path}: not found ({key}.files, data.root={data.root})")
            return datasets.load_dataset(cfg.source, cfg.name, data_files=files)
        except (DataError, ConfigError):
            raise
        except (OSError, ValueError) as err:
            raise ConfigError(
                f"{key}.reader.source={cfg.source}: cannot load it ({str(err).splitlines()[0]})"
            ) from None
        except Exception as err:  # datasets' own errors (DatasetNotFoundError, ...)
            raise ConfigError(
                f"{key}.reader.source={cfg.source}: cannot load it "
                f"({type(err).__name__}: {str(err).splitlines()[0]})"
            ) from None

    def read_splits(
        self, name: str, task: TaskConfig, kind: Any, data: DataConfig
    ) -> Iterator[tuple[str, Records]]:
        key, cfg = f"task.{name}", task.reader
        loaded = self._load(key, task, data)
        available = list(loaded) if hasattr(loaded, "keys") else []
        for split in SPLITS:
            wanted = getattr(cfg.splits, split)
            if wanted is None:
                continue
            if wanted not in available:
                if split == "train":
                    raise ConfigError(
                        f"{key}.reader.splits.train={wanted}: the dataset has splits {available}"
                    )
                log.info("task %s: the dataset has no %r split (%s)", name, wanted, available)
                continue
            yield (
                split,
                self.records(loaded[wanted], f"{cfg.source}[{wanted}]", kind.columns(key, task)),
            )

    def records(
        self, table: Any, where: str, columns: Columns, optional: frozenset[str] = frozenset()
    ) -> Records:
        """The rows of one dataset split; ClassLabel columns carry their names."""
        fields, names = {}, {}
        for role, column in columns.items():
            name = column.name
            if name not in table.column_names:
                if role in optional:
                    continue
                raise DataError(
                    f"{where}: no column {name!r} ({column.key}); it has {table.column_names}"
                )
            fields[role] = name
            if (labels := _names(table.features[name])) is not None:
                names[role] = labels
        data = {role: table[name] for role, name in fields.items()}
        rows = [Record({role: data[role][i] for role in fields}, i) for i in range(table.num_rows)]
        if not rows:
            raise DataError(f"{where}: no rows")
        return Records(where, rows, by_row=True, names=names)


register_reader(DatasetsReader())
