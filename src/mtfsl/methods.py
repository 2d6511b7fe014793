"""Few-shot methods (``few_shot.method``): what a run does with its tasks' examples once they
are read and drawn. ``finetune`` trains the model on them (``job.py``); ``icl`` shows them to a
language model in its prompt and trains nothing (``icl/method.py``). Registered like the other
plug-ins (``plugins.Registry``; entry-point group ``mtfsl.few_shot_methods``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mtfsl.config import TrainConfig
from mtfsl.plugins import Registry, load_entry_points


@dataclass
class JobStart:
    """What every method starts from: the settled config, the run folder (its config.yaml
    written), the accelerator, the resolved tasks and their read (and K-shot) data."""

    cfg: TrainConfig
    run_dir: Path
    resume: bool
    accelerator: Any
    tasks: dict[str, Any]  # name -> resolve.Task
    data: dict[str, Any]  # name -> data.splits.TaskData


@dataclass
class MethodResult:
    """The final metrics and what the run folder records of the way there."""

    metrics: dict[str, Any]
    step: int = 0  # the optimizer steps taken
    history: list[dict[str, Any]] = field(default_factory=list)  # dev evaluations


class FewShotMethod(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def trains(self) -> bool:
        """Whether it takes optimizer steps (a K-shot run gets ``few_shot``'s step budget)."""
        ...

    @property
    def resumable(self) -> bool:
        """Whether ``resume=`` can continue it (a method that trains and saves states)."""
        ...

    def check(self, cfg: TrainConfig) -> None:
        """Refuse, before any work, a config this method cannot run (a ConfigError)."""
        ...

    def run(self, start: JobStart) -> MethodResult: ...


FEW_SHOT_METHODS: Registry[FewShotMethod] = Registry("a few-shot method")
register_method = FEW_SHOT_METHODS.add


def method_named(name: str) -> FewShotMethod:
    """The method ``few_shot.method`` names (the built-in ones are registered by
    ``mtfsl.job``, which imports their modules)."""
    load_entry_points("mtfsl.few_shot_methods")
    return FEW_SHOT_METHODS.named(name.lower(), "few_shot.method")
