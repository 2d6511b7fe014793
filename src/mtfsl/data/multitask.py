"""Task samplers (which task a training step uses) and endless per-task batch streams."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np

from mtfsl.config import TaskSamplingConfig
from mtfsl.plugins import Registry, load_entry_points


class TaskSampler:
    """Draws a task per step with probabilities p_i ∝ n_i ** alpha(progress).

    ``progress`` runs from 0 (first epoch) to 1 (last epoch); only the annealed sampler's
    exponent depends on it. Subclasses set the exponent, and their ``name`` is what
    ``task_sampling.kind`` says (register a new one with ``register_task_sampler``).
    """

    name: ClassVar[str]

    @classmethod
    def build(cls, cfg: TaskSamplingConfig, sizes: dict[str, int], seed: int) -> TaskSampler:
        """The sampler for a run's tasks (``sizes``: training examples per task)."""
        return cls(sizes, seed)

    def __init__(self, sizes: dict[str, int], seed: int) -> None:
        self.names = list(sizes)
        self.sizes = np.array([sizes[n] for n in self.names], dtype=np.float64)
        self.rng = np.random.default_rng(seed)

    def alpha(self, progress: float) -> float:
        raise NotImplementedError

    def epoch_steps(self, batches: dict[str, int]) -> int:
        """Steps in one epoch by default: one pass over every task's batches."""
        return sum(batches.values())

    def probabilities(self, progress: float = 0.0) -> np.ndarray:
        weights = self.sizes ** self.alpha(progress)
        return weights / weights.sum()

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]

    def pop(self, progress: float = 0.0) -> list[str]:
        """The task(s) of the next step."""
        return [self.names[self.rng.choice(len(self.names), p=self.probabilities(progress))]]


class UniformSampler(TaskSampler):
    name = "uniform"

    def alpha(self, progress: float) -> float:
        return 0.0


class ProportionalSampler(TaskSampler):
    name = "proportional"

    def alpha(self, progress: float) -> float:
        return 1.0


class TemperatureSampler(TaskSampler):
    """p_i ∝ n_i^(1/T): T=1 is proportional, T→∞ uniform."""

    name = "temperature"

    @classmethod
    def build(cls, cfg: TaskSamplingConfig, sizes: dict[str, int], seed: int) -> TaskSampler:
        return cls(sizes, seed, cfg.temperature)

    def __init__(self, sizes: dict[str, int], seed: int, temperature: float) -> None:
        super().__init__(sizes, seed)
        self.temperature = temperature

    def alpha(self, progress: float) -> float:
        return 1.0 / self.temperature


class AnnealedSampler(TaskSampler):
    """Stickland & Murray (2019): alpha = 1 - (1 - min_alpha) * progress."""

    name = "annealed"

    @classmethod
    def build(cls, cfg: TaskSamplingConfig, sizes: dict[str, int], seed: int) -> TaskSampler:
        return cls(sizes, seed, cfg.min_alpha)

    def __init__(self, sizes: dict[str, int], seed: int, min_alpha: float) -> None:
        super().__init__(sizes, seed)
        self.min_alpha = min_alpha

    def alpha(self, progress: float) -> float:
        return 1.0 - (1.0 - self.min_alpha) * progress


class RoundRobinSampler(TaskSampler):
    """Tasks in turn, in config order; the probabilities are the long-run shares."""

    name = "round_robin"

    def __init__(self, sizes: dict[str, int], seed: int) -> None:
        super().__init__(sizes, seed)
        self.turn = 0

    def alpha(self, progress: float) -> float:
        return 0.0

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "turn": self.turn}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.turn = state["turn"]

    def pop(self, progress: float = 0.0) -> list[str]:
        name = self.names[self.turn % len(self.names)]
        self.turn += 1
        return [name]


class AllTasksSampler(TaskSampler):
    """Every step uses one batch of every task; each task counts equally."""

    name = "all"

    def alpha(self, progress: float) -> float:
        return 0.0

    def pop(self, progress: float = 0.0) -> list[str]:
        return list(self.names)

    def epoch_steps(self, batches: dict[str, int]) -> int:
        return max(batches.values())  # each step already takes a batch of every task


TASK_SAMPLERS: Registry[type[TaskSampler]] = Registry("a task sampler")
# Make a sampler available as ``task_sampling.kind: NAME``.
register_task_sampler = TASK_SAMPLERS.add
for _sampler in (
    UniformSampler,
    ProportionalSampler,
    TemperatureSampler,
    AnnealedSampler,
    RoundRobinSampler,
    AllTasksSampler,
):
    register_task_sampler(_sampler)
load_entry_points("mtfsl.task_samplers")


def task_sampler_type(kind: str) -> type[TaskSampler]:
    """The sampler ``task_sampling.kind`` names (in any case: YAMLs say TEMPERATURE)."""
    return TASK_SAMPLERS.named(str(kind).lower(), "task_sampling.kind")


def build_task_sampler(cfg: TaskSamplingConfig, sizes: dict[str, int], seed: int) -> TaskSampler:
    return task_sampler_type(cfg.kind).build(cfg, sizes, seed)


class EndlessBatches:
    """Batches of one task forever: a new shuffled pass (sampler epoch) when one ends.

    ``state_dict`` records the pass and how many of its batches were used, so a resumed run
    continues with exactly the next batch.
    """

    def __init__(self, loader: Any, batch_sampler: Any, device: Any = "cpu") -> None:
        self.loader, self.batch_sampler, self.device = loader, batch_sampler, device
        self.epoch = 0
        self.position = 0  # batches already taken from the current pass
        self._it: Iterator[Any] | None = None

    def __next__(self) -> Any:
        if self._it is None:
            self.batch_sampler.set_epoch(self.epoch)
            self.batch_sampler.skip = self.position
            self._it = iter(self.loader)
        try:
            batch = next(self._it)
        except StopIteration:
            self.epoch, self.position, self._it = self.epoch + 1, 0, None
            return next(self)
        self.position += 1
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position, self._it = state["epoch"], state["position"], None
