"""Resolve each task once: its config typed by its kind's and its reader's schema, checked,
and made into one ``Task`` value (name, config, kind, reader) that the pipeline receives.

This is the one place besides the registries that looks a kind or a reader up by name; data,
model, training, evaluation and inference get the resolved ``Task`` and ask its ``kind``.
Hydra's ConfigStore gets the kinds' and readers' schemas here too (``register_configs``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from mtfsl.config import (
    Pooling,
    TokenizerOptions,
    TrainConfig,
    check_fields,
    check_known_keys,
    expect,
    migrate_task,
    one_line,
    sqlite_url,
    task_names,
)
from mtfsl.data.readers import READERS, Reader, get_reader
from mtfsl.errors import ConfigError
from mtfsl.kinds import KINDS, get_kind
from mtfsl.kinds.protocols import Kind

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    """One task of a run, resolved once: everything downstream asks ``kind`` and ``reader``
    and reads ``cfg`` (its kind's schema), and never looks either up again."""

    name: str
    cfg: Any  # the task's TaskConfig subclass: its kind's schema
    kind: Kind
    reader: Reader

    @property
    def key(self) -> str:
        """Its config key, for messages: ``task.NAME``."""
        return f"task.{self.name}"

    @property
    def columns(self) -> dict[str, Any]:
        """Per role of its kind, where its reader finds it (``data.readers.base.Column``)."""
        return self.kind.columns(self.key, self.cfg)

    @property
    def primary_metric(self) -> str:
        """The dev metric that selects the best checkpoint (``select_metric`` or the kind's)."""
        return self.kind.primary_metric(self.cfg)


def resolve_task(name: str, cfg: Any) -> Task:
    """A typed task config as a ``Task``: its kind and reader looked up by name."""
    kind = get_kind(cfg.kind, f"task.{name}.kind")
    return Task(name, cfg, kind, get_reader(cfg.reader.format, f"task.{name}.reader.format"))


def resolve_tasks(cfg: TrainConfig) -> dict[str, Task]:
    """Every task of the run, resolved, in the mix's order."""
    return {name: resolve_task(name, task) for name, task in cfg.task.items()}


def settle(cfg: TrainConfig) -> TrainConfig:
    """The run's config with its backbone family settled (``model.family: auto`` detected
    from the model's config, the family's attention and word piece filled in) and each
    task's ``pooling: AUTO`` or ``HF`` made the family's. Once, where a model is built: a run
    starts (and its ``config.yaml`` records the result) or a run folder is used."""
    from mtfsl.model.backbones import family
    from mtfsl.model.backbones import settle as settle_model

    model = settle_model(cfg.model)
    backbone = family(model)
    tasks = {name: _settled_pooling(name, t, backbone) for name, t in cfg.task.items()}
    return replace(cfg, model=model, task=tasks)


def settle_tasks(tasks: dict[str, Task], backbone: Any) -> dict[str, Task]:
    """Resolved tasks with their pooling settled for ``backbone`` (as ``settle`` does), for
    callers that resolved them from a config that was not settled."""
    return {n: replace(t, cfg=_settled_pooling(n, t.cfg, backbone)) for n, t in tasks.items()}


def _settled_pooling(name: str, task: Any, backbone: Any) -> Any:
    pooling = getattr(task, "pooling", None)
    if pooling is Pooling.AUTO:
        return replace(task, pooling=backbone.default_pooling)
    if pooling is Pooling.HF:
        return replace(task, pooling=backbone.hf_pooling)
    if pooling in (Pooling.CLS, Pooling.POOLER) and backbone.default_pooling is Pooling.LAST:
        log.warning(
            "task.%s.pooling=%s pools the first token, which in a %s has seen nothing but "
            "itself; LAST or MEAN suit it",
            name,
            pooling.name,
            backbone.name,
        )
    return task


def typed_task(name: str, node: Any) -> DictConfig:
    """A task's config typed by its kind's schema and its reader's schema, so a key that does
    not apply to either is an error naming ``task.NAME.KEY``.

    Task YAMLs are typed already (their defaults list names ``schema/kind/KIND`` and
    ``schema/reader/FORMAT``); a task defined on the command line is typed here.
    """
    raw = OmegaConf.to_container(node, resolve=False) if OmegaConf.is_config(node) else node
    if not isinstance(raw, dict):
        raise ConfigError(f"task.{name}={raw!r}: expected a mapping with kind, reader and files")
    raw = migrate_task(raw)
    kind = get_kind(raw.get("kind"), f"task.{name}.kind")
    reader_raw = raw.pop("reader", None) or {}
    if not isinstance(reader_raw, dict):
        raise ConfigError(f"task.{name}.reader={reader_raw!r}: expected a mapping with format")
    reader = get_reader(reader_raw.get("format"), f"task.{name}.reader.format")
    typed = _typed(kind.schema, raw, f"task.{name}.", f"a {kind.name} task")
    typed.reader = _typed(
        reader.schema, reader_raw, f"task.{name}.reader.", f"the {reader.name} reader"
    )
    return typed


def _typed(schema: type, values: dict[str, Any], prefix: str, what: str) -> DictConfig:
    """``values`` merged into ``schema``; an unknown key or a wrong type is a ConfigError."""
    try:
        return OmegaConf.merge(OmegaConf.structured(schema), values)
    except ConfigKeyError as err:
        keys = sorted(f.name for f in fields(schema))
        raise ConfigError(
            f"{prefix}{err.full_key}: not a key of {what} (its keys: {keys})"
        ) from None
    except OmegaConfBaseException as err:
        raise one_line(err, prefix) from None


def to_train_config(dcfg: DictConfig, check: bool = True) -> TrainConfig:
    """The one conversion from a composed DictConfig to the typed schema (tasks typed by their
    kind and reader), then (``check``) ``validate``."""
    try:
        with open_dict(dcfg):
            for name in list(dcfg.get("task") or {}):
                dcfg.task[name] = typed_task(name, dcfg.task[name])
        check_known_keys(dcfg)
        cfg = OmegaConf.to_object(dcfg)
    except OmegaConfBaseException as err:
        raise one_line(err) from None
    assert isinstance(cfg, TrainConfig)
    if check:
        validate(cfg)
    return cfg


def load_run_config(run_dir: Path) -> TrainConfig:
    """The config a run folder was started with (its ``config.yaml``)."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{run_dir}: no config.yaml there (not an mtfsl run folder?)")
    stored = OmegaConf.load(path)
    if found := _interpolations(stored):
        # training writes resolved values; an interpolation here was put in by hand, and
        # resolving it would run a resolver (which may write files) on loading data
        raise ConfigError(
            f"{path}: {found[0]} is an interpolation ({found[1]}); a run folder's config.yaml "
            "holds plain values only: put the value there instead"
        )
    model = stored.get("model") or {}
    if "tokenizer_kwargs" in model:  # before model.tokenizer: only its known keys carry over
        old = OmegaConf.to_container(model.pop("tokenizer_kwargs")) or {}
        unknown = sorted(set(old) - {f.name for f in fields(TokenizerOptions)})
        if unknown:
            raise ConfigError(
                f"{path}: model.tokenizer_kwargs sets {unknown}, which mtfsl no longer passes "
                "to the tokenizer (a run folder must not switch on remote code); remove them"
            )
        model["tokenizer"] = old
    loaded = OmegaConf.merge(OmegaConf.structured(TrainConfig), stored)
    return to_train_config(loaded, check=False)


def _interpolations(node: Any, key: str = "") -> tuple[str, str] | None:
    """The first key whose value holds an interpolation (an unescaped ``${``), and that
    value."""
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=False)
    if isinstance(node, dict):
        items = [(f"{key}.{k}".lstrip("."), v) for k, v in node.items()]
    elif isinstance(node, list):
        items = [(f"{key}[{i}]", v) for i, v in enumerate(node)]
    elif isinstance(node, str) and re.search(r"(?<!\\)\$\{", node):
        return key, node[:200]
    else:
        return None
    return next((found for name, v in items if (found := _interpolations(v, name))), None)


def register_configs() -> None:
    """Put the schemas into Hydra's ConfigStore: ``train.yaml`` extends ``train_schema``; a
    task YAML extends ``schema/kind/KIND`` and ``schema/reader/FORMAT``."""
    if not OmegaConf.has_resolver("mtfsl.task_names"):
        # the default run folder names the task mix: outputs/DATE/TIME-conll+rte
        OmegaConf.register_new_resolver("mtfsl.task_names", task_names)
    if not OmegaConf.has_resolver("mtfsl.sqlite"):
        OmegaConf.register_new_resolver("mtfsl.sqlite", sqlite_url)
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    for name, kind in KINDS.items():
        store.store(group="schema/kind", name=name, node=kind.schema)
    for name, reader in READERS.items():
        store.store(group="schema/reader", name=name, node=reader.schema)


def compose_config(overrides: list[str]) -> TrainConfig:
    """``mtfsl-train``'s config with these overrides, built in-process without Hydra's run
    folder or logging (for scripts and tests)."""
    from hydra import compose, initialize_config_module

    register_configs()
    with initialize_config_module(version_base="1.3", config_module="mtfsl.configs"):
        return to_train_config(compose("train", overrides=overrides), check=False)


def _check_plugins(cfg: TrainConfig) -> None:
    """The task sampler, loss weighting and augmentation methods the config names exist (the
    registries load torch, so they are looked up here, when a run is checked, not when the
    CLI starts)."""
    from mtfsl.data.augment import method_names
    from mtfsl.data.multitask import task_sampler_type
    from mtfsl.losses import weighting_type

    task_sampler_type(cfg.task_sampling.kind)
    weighting_type(cfg.loss_weights.kind)
    method_names(cfg.augmentation.methods)


def validate(cfg: TrainConfig) -> None:
    """Every check of a run's config: the schema's own (``config.check_fields``), then each
    task's by its kind and reader, and what the tasks' metrics allow.

    Raises:
        ConfigError: naming the first offending key and what was expected.
    """
    check_fields(cfg)
    _check_plugins(cfg)
    tasks = resolve_tasks(cfg)
    for task in tasks.values():
        task.kind.validate(task.key, task.cfg)
        task.reader.validate(task.key, task.cfg.reader, task.kind, task.cfg)
        allowed = task.kind.metric_names(task.cfg)
        expect(
            task.cfg.select_metric is None or task.cfg.select_metric in allowed,
            f"{task.key}.select_metric",
            task.cfg.select_metric,
            f"null or one of {sorted(allowed)}",
        )
    st = cfg.few_shot.self_training
    for task in tasks.values():
        expect(
            not st.rounds or task.kind.pseudo_labels,
            "few_shot.self_training.rounds",
            st.rounds,
            f"0 for task {task.name}: kind {task.kind.name} gives no label probabilities to "
            "pseudo-label by",
        )
    if cfg.few_shot.k is not None:  # a K-shot sampler that exists and fits every task
        from mtfsl.data.kshot import resolve_sampler

        for task in tasks.values():
            resolve_sampler(cfg.few_shot.sampler, task.kind, task.cfg, task.name)
    sel = cfg.metrics
    chosen = [tasks[sel.select_task]] if sel.select_task else list(tasks.values())
    for task in chosen:
        allowed = task.kind.metric_names(task.cfg)
        expect(
            sel.select is None or sel.select in allowed,
            "metrics.select",
            sel.select,
            f"null or one of {sorted(allowed)} (metrics of the selected tasks)",
        )
