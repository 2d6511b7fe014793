"""How the model is spread over processes: replicated (DDP, through accelerate) or fully
sharded (``hardware.distributed=FSDP``: torch's FSDP2 ``fully_shard``).

Why mtfsl shards the model itself instead of through accelerate's FSDP plugin: accelerate
1.16 enables FSDP only on accelerator device types (its ``AcceleratorState`` ignores the
plugin on ``MULTI_CPU``), so the sharded path could be neither used nor tested on a CPU,
where torch's FSDP2 runs fine over gloo. Sharding with torch's own API gives one path on
both; accelerate still owns the process group, precision, RNG states and trackers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any, Protocol

import torch
import torch.distributed as dist
from accelerate import Accelerator
from accelerate.optimizer import AcceleratedOptimizer
from accelerate.scheduler import AcceleratedScheduler
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

from mtfsl.config import Distributed, HardwareConfig
from mtfsl.model.multitask import MultiTaskModel
from mtfsl.training.checkpoint import load_weights, read_weights

log = logging.getLogger(__name__)
Tensors = dict[str, torch.Tensor]


class Parallelism(Protocol):
    """What the trainer asks of a way to spread the model over processes."""

    # Every process must call the model as often as the others (sharded parameters are
    # gathered collectively in each call), also when evaluation batches do not divide evenly.
    lockstep: bool

    def prepare(
        self, acc: Accelerator, objective: nn.Module, optimizer: Any, scheduler: Any
    ) -> tuple[nn.Module, Any, Any]: ...

    def after_backward(self) -> None: ...

    def clip_grad_norm(self, acc: Accelerator, params: Iterable[nn.Parameter], max_norm: float): ...

    def checkpoint_tensors(self, model: MultiTaskModel) -> Tensors | None:
        """The full weights to write into a checkpoint (collective: every process calls it),
        or None where the main process reads them from its own model."""
        ...

    def load_weights(self, folder: Any, model: MultiTaskModel) -> dict[str, object]: ...


class Replicated:
    """One whole copy of the model per process; accelerate wraps it in DDP (or nothing, in
    one process)."""

    lockstep = False

    def prepare(self, acc, objective, optimizer, scheduler):
        return acc.prepare(objective, optimizer, scheduler)

    def after_backward(self) -> None:
        pass

    def clip_grad_norm(self, acc, params, max_norm):
        acc.clip_grad_norm_(params, max_norm)

    def checkpoint_tensors(self, model):
        return None

    def load_weights(self, folder, model):
        return load_weights(folder, model)


_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


class FullySharded:
    """Each transformer block of the backbone, then the backbone, sharded over all processes
    (FSDP2): parameters, gradients and optimizer states take 1/N of the memory each, and a
    block's weights are gathered only while it computes.

    The task heads and learned loss weights (well under 1% of the parameters) stay whole on
    every process, so decoding, calibration and logging read them as plain tensors outside
    the forward pass; ``after_backward`` averages their gradients over the processes as DDP
    would. Checkpoints and resumable states hold full (unsharded) tensors, so a run trained
    sharded is read by predict and export, and resumes, like any other.
    """

    lockstep = True

    def __init__(self, model: MultiTaskModel, device: torch.device) -> None:
        # accelerate.prepare, which places a replicated model, is not used here; the heads
        # must be on the device before the blocks' shards move there
        model.to(device)
        names = set(getattr(_pretrained(model.encoder), "_no_split_modules", None) or [])
        blocks = [m for m in model.encoder.modules() if type(m).__name__ in names]
        kinds = ", ".join(sorted({type(b).__name__ for b in blocks}))
        for block in blocks:
            fully_shard(block)  # (which renames its class FSDP...)
        fully_shard(model.encoder)
        log.info(
            "FSDP: the backbone sharded over %d processes in %d blocks (%s) and its root",
            dist.get_world_size(),
            len(blocks),
            kinds,
        )
        self.model = model
        self.whole = [p for p in model.parameters() if not isinstance(p, DTensor)]

    def prepare(self, acc, objective, optimizer, scheduler):
        # Not through acc.prepare: that would wrap the sharded model in DDP. The accelerate
        # wrappers still skip the update on gradient-accumulation micro-steps.
        forward = objective.forward

        def autocast_forward(*args: Any, **kwargs: Any) -> Any:
            with acc.autocast():
                return forward(*args, **kwargs)

        objective.forward = autocast_forward
        optimizer = AcceleratedOptimizer(optimizer, device_placement=False)
        acc.register_for_checkpointing(_FullState(self.model, optimizer.optimizer, scheduler))
        # split_batches: one schedule step per optimizer step, as build_accelerator sets it
        scheduler = AcceleratedScheduler(scheduler, optimizer, split_batches=True)
        return objective, optimizer, scheduler

    def after_backward(self) -> None:
        grads = [p.grad for p in self.whole if p.grad is not None]
        if not grads:
            return
        # The same parameters have gradients on every process (every process samples the
        # same tasks), so one flat all-reduce averages them.
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= dist.get_world_size()
        for grad, part in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
            grad.copy_(part.view_as(grad))

    def clip_grad_norm(self, acc, params, max_norm):
        """torch's clip_grad_norm_ refuses a mix of sharded (DTensor) and plain gradients:
        the total norm is taken over both groups, then each is scaled by torch's own
        function."""
        params = [p for p in params if p.grad is not None]
        groups = [
            [p for p in params if isinstance(p, DTensor)],
            [p for p in params if not isinstance(p, DTensor)],
        ]
        squares = 0.0
        for group in groups:
            if group:
                norm = torch.nn.utils.get_total_norm([p.grad for p in group])
                norm = norm.full_tensor() if isinstance(norm, DTensor) else norm
                squares += float(norm) ** 2
        total = torch.tensor(math.sqrt(squares))
        for group in groups:
            if group:
                torch.nn.utils.clip_grads_with_norm_(group, max_norm, total)

    def checkpoint_tensors(self, model):
        # all of them, also for a partial checkpoint: save_checkpoint selects what trains and
        # fingerprints the rest
        return get_model_state_dict(model, options=_FULL)  # the main process's; {} elsewhere

    def load_weights(self, folder, model):
        tensors, partial, state = read_weights(folder)
        set_model_state_dict(
            model, tensors, options=StateDictOptions(full_state_dict=True, strict=not partial)
        )
        return state


class _FullState:
    """The model's and optimizer's full states in a resumable state (accelerate's
    ``register_for_checkpointing``: ``state_dict`` runs on every process, the main one
    writes), plus the learning-rate schedule."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler) -> None:
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": get_model_state_dict(self.model, options=_FULL),
            "optimizer": get_optimizer_state_dict(self.model, self.optimizer, options=_FULL),
            "scheduler": self.scheduler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        full = StateDictOptions(full_state_dict=True)
        set_model_state_dict(self.model, state["model"], options=full)
        set_optimizer_state_dict(self.model, self.optimizer, state["optimizer"], options=full)
        self.scheduler.load_state_dict(state["scheduler"])


def _pretrained(module: nn.Module) -> nn.Module:
    """The transformers model inside a peft wrapper (which does not forward
    ``_no_split_modules``)."""
    get_base = getattr(module, "get_base_model", None)
    return get_base() if callable(get_base) else module


def parallelism(hw: HardwareConfig, acc: Accelerator, model: MultiTaskModel) -> Parallelism:
    """The configured way, applied to ``model`` (sharding happens in place, so build the
    optimizer afterwards)."""
    if hw.distributed is Distributed.FSDP:
        if acc.num_processes > 1:
            return FullySharded(model, acc.device)
        log.warning(
            "hardware.distributed=FSDP in one process: nothing to shard, training unsharded "
            "(start it with torchrun or accelerate launch to shard over processes)"
        )
    return Replicated()
