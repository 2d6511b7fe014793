"""The training loop: accelerate-backed steps, eval cadence, early stopping, best checkpoint."""

from __future__ import annotations

import logging
import math
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm
from transformers import PreTrainedTokenizerBase

from mtfsl.config import (
    Device,
    FinetuneMode,
    HardwareConfig,
    NanPolicy,
    Precision,
    TrainConfig,
)
from mtfsl.errors import MtfslError
from mtfsl.evaluation.report import write_json
from mtfsl.model.multitask import MultiTaskModel
from mtfsl.pipeline.batches import TrainBatches, support_batches
from mtfsl.pipeline.evaluate import evaluate_split, write_split_outputs
from mtfsl.pipeline.prepare import PreparedTask
from mtfsl.training.checkpoint import (
    heal_checkpoint,
    latest_state,
    load_training_state,
    save_checkpoint,
    save_training_state,
)
from mtfsl.training.objective import Objective
from mtfsl.training.optim import build_optimizer, build_scheduler
from mtfsl.training.parallel import parallelism
from mtfsl.training.run_folder import current_attempt

log = logging.getLogger(__name__)
Batch = dict[str, torch.Tensor]


class NonFiniteLossError(MtfslError):
    """The training loss became NaN or infinite."""


class TrainingInterrupted(MtfslError):
    """SIGINT/SIGTERM arrived; a resumable state was written first."""


_DEFAULT_THREADS = torch.get_num_threads()  # before any job changed it


def build_accelerator(
    hw: HardwareConfig,
    grad_accum_steps: int,
    multi_task: bool = False,
    log_with: str | None = None,
    project_dir: Path | None = None,
) -> Accelerator:
    """The only place that reads ``HardwareConfig``: device, precision and threads.

    Under ``torchrun`` / ``accelerate launch`` this also joins the process group (gloo on
    CPU, NCCL on GPUs).
    """
    # null means torch's own default, also after an earlier job of the same sweep process
    # set another number.
    torch.set_num_threads(hw.threads or _DEFAULT_THREADS)
    cuda = torch.cuda.is_available() and hw.device is not Device.CPU
    if hw.device is Device.CUDA and not torch.cuda.is_available():
        raise MtfslError("hardware.device=CUDA but no CUDA device is available")
    precision = hw.precision
    if precision is Precision.AUTO:
        precision = Precision.BF16 if cuda and torch.cuda.is_bf16_supported() else Precision.NO
    # Heads of tasks that a step did not sample get no gradient, which DDP must be told about.
    ddp = DistributedDataParallelKwargs(find_unused_parameters=multi_task)
    # accelerate keeps its settings process-wide and refuses a second Accelerator with another
    # precision or device. A Hydra sweep's basic launcher runs its jobs one after another in
    # one process (`-m hardware.precision=NO,BF16`), so each run starts from a clean state, as
    # transformers' TrainingArguments does. The process-level state (ranks) is kept.
    AcceleratorState._reset_state()
    GradientState._reset_state()
    return Accelerator(
        cpu=not cuda,
        # Our batch samplers split each global batch over the processes, so the LR schedule
        # takes one step per optimiser step (not num_processes of them).
        dataloader_config=DataLoaderConfiguration(split_batches=True),
        mixed_precision=precision.value,
        gradient_accumulation_steps=grad_accum_steps,
        kwargs_handlers=[ddp],
        log_with=log_with,
        project_dir=project_dir,
    )


@dataclass
class TrainState:
    step: int = 0
    epoch: int = 0
    best_score: float = -math.inf
    best_step: int = -1
    evals_since_best: int = 0
    last_eval_step: int = -1
    train_tokens: int = 0  # non-padding sub-tokens (specials included), all processes
    train_positions: int = 0  # padded batch positions (batch x width), for the padding share
    train_attention: int = 0  # sum of batch x width^2, for the attention FLOPs estimate
    train_seconds: float = 0.0
    skipped_steps: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    weight_history: list[dict[str, float]] = field(default_factory=list)
    loss_history: list[dict[str, float]] = field(default_factory=list)


def plan_steps(cfg: TrainConfig, batches: TrainBatches) -> tuple[int, int, int]:
    """Optimizer steps per epoch (one pass over the tasks' batches as the task sampler
    counts it, or ``task_sampling.steps_per_epoch``), in all, and the epochs that makes."""
    tc = cfg.trainer
    per_epoch = cfg.task_sampling.steps_per_epoch or math.ceil(
        batches.task_sampler.epoch_steps(batches.per_pass) / tc.grad_accum_steps
    )
    total = tc.max_steps or tc.epochs * per_epoch
    epochs = math.ceil(total / per_epoch)
    if total < tc.warn_below_steps:
        log.warning(
            "this run trains only %d optimizer steps (%d epochs of %d steps): too few to "
            "learn much; set trainer.max_steps (or trainer.epochs)",
            total,
            epochs,
            per_epoch,
        )
    return per_epoch, total, epochs


class Trainer:
    """Trains a ``MultiTaskModel`` on prepared tasks and keeps the best dev checkpoint.

    Every step draws one task from the task sampler and one batch of that task; its loss goes
    through the model's loss weighting before the backward pass.

    Under data parallelism every process draws the same task sequence (same seed), takes its
    own share of each global batch, and agrees with the others on skipping a non-finite step
    and on stopping for a signal; only the main process writes files.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        model: MultiTaskModel,
        tokenizer: PreTrainedTokenizerBase,
        tasks: dict[str, PreparedTask],
        batches: TrainBatches,
        run_dir: Path,
        accelerator: Accelerator,
    ) -> None:
        self.cfg, self.tokenizer, self.tasks, self.run_dir = cfg, tokenizer, tasks, run_dir
        tc = cfg.trainer
        self.accelerator = acc = accelerator
        self.main = acc.is_main_process
        self.predict_seconds = 0.0  # of the last evaluate(): predicting and scoring, no files
        self.predictions: dict[str, list] = {}  # of the last evaluate(), per task
        # The dev scores and predictions of the evaluation that made the best checkpoint (in
        # this process: a resumed run whose best came before the stop has none), so the end
        # of the run writes them instead of scoring dev again with the same weights.
        self.best_dev: tuple[dict[str, float], dict[str, list]] | None = None
        self.collator, self.streams = batches.collator, batches.streams
        self.task_sampler = batches.task_sampler
        self.steps_per_epoch, self.total_steps, self.epochs = plan_steps(cfg, batches)
        # Sharding (hardware.distributed=FSDP) replaces parameters in place: the optimizer is
        # built afterwards, on the parameters that train.
        self.parallel = parallelism(cfg.hardware, acc, model)
        optimizer = build_optimizer(model, tc, cfg.loss_weights.lr)
        scheduler = build_scheduler(optimizer, tc, self.total_steps)
        self.net = model  # the model unwrapped (sharded in place under FSDP): eval, checkpoints
        self.objective, self.optimizer, self.scheduler = self.parallel.prepare(
            acc, Objective(model), optimizer, scheduler
        )
        self.best_dir = run_dir / "checkpoints" / "best"
        # The attempt whose states this run writes and resumes from (RUN/attempt.json).
        self.attempt = (current_attempt(run_dir) or {}).get("id")
        self.state = TrainState()
        self._signal: int | None = None
        self._agreed_stop = False

    # -- training -------------------------------------------------------------------------
    def progress(self) -> float:
        """0 in the first epoch, 1 in the last (drives annealed task sampling)."""
        return self.state.epoch / (self.epochs - 1) if self.epochs > 1 else 0.0

    def _batches(self) -> Iterator[dict[str, Batch]]:
        """Per micro-step: the sampled task(s) and one batch of each."""
        for _ in range((self.total_steps - self.state.step) * self.cfg.trainer.grad_accum_steps):
            self.state.epoch = self.state.step // self.steps_per_epoch
            tasks = self.task_sampler.pop(self.progress())
            yield {task: next(self.streams[task]) for task in tasks}

    def _agree(
        self, values: dict[str, float], scales: dict[str, float] | None, counts: list[int]
    ) -> tuple[dict[str, float], list[int]]:
        """Under DDP, the global batch's mean loss per task and its counts (tokens, ...), the
        same on every process, so all of them skip or stop together on a non-finite loss (NaN
        anywhere makes the sum NaN) and stop together for a signal that reached any of them."""
        acc = self.accelerator
        if scales is None:
            return values, counts
        local = [values[t] * scales[t] / acc.num_processes for t in values]
        local += [float(self._signal is not None), *map(float, counts)]
        summed = acc.reduce(torch.tensor(local, device=acc.device, dtype=torch.float64), "sum")
        summed = summed.tolist()
        losses, self._agreed_stop = summed[: len(values)], bool(summed[len(values)])
        return dict(zip(values, losses, strict=True)), [int(c) for c in summed[len(values) + 1 :]]

    def _loss_scales(self, batches: dict[str, Batch]) -> dict[str, float] | None:
        """Per task: this process's share of the global batch's loss units, times the number
        of processes. DDP averages gradients over processes, so scaling each local mean loss
        by this makes the result the mean over the whole global batch (as one process with
        that batch would compute it), however unevenly labelled words fall on processes."""
        acc = self.accelerator
        if acc.num_processes == 1:
            return None
        local = torch.stack([self.net.heads[t].loss_units(b) for t, b in batches.items()])
        total = acc.reduce(local.double(), reduction="sum")
        shares = (local.double() * acc.num_processes / total.clamp(min=1)).tolist()
        return dict(zip(batches, shares, strict=True))

    def _stop_requested(self) -> bool:
        """A signal arrived (on any process, as agreed in the last step under DDP)."""
        if self.accelerator.num_processes == 1:
            return self._signal is not None
        return self._agreed_stop

    def _nonfinite(self, losses: dict[str, float]) -> None:
        """Apply ``trainer.nan_policy`` to a step with a NaN/inf loss (on any process)."""
        bad = {t: v for t, v in losses.items() if not math.isfinite(v)}
        where = f"at step {self.state.step + 1} (task {', '.join(bad)}: loss {list(bad.values())})"
        if self.cfg.trainer.nan_policy is NanPolicy.STOP:
            kept = (
                f"the best checkpoint so far is kept in {self.best_dir}"
                if self.best_dir.is_dir()
                else "no checkpoint was saved yet"
            )
            raise NonFiniteLossError(
                f"training loss is not finite {where}; {kept} (trainer.nan_policy=SKIP skips "
                "such steps)"
            )
        log.warning("skipping the update: loss is not finite %s", where)
        self.state.skipped_steps += 1
        self.optimizer.zero_grad()
        self.scheduler.step()  # keep the schedule aligned with the step count

    def train_step(self, batches: dict[str, Batch]) -> dict[str, float]:
        """Forward every task's batch, combine the losses with the loss weighting, backward,
        and (on accumulation boundaries) update. Returns each task's unweighted loss."""
        # A named range for torch.profiler (scripts/profile_step.py): some microseconds a step.
        with torch.profiler.record_function("mtfsl.train_step"):
            return self._train_step(batches)

    def _train_step(self, batches: dict[str, Batch]) -> dict[str, float]:
        shapes = [b["input_ids"].shape for b in batches.values()]
        counts = [
            sum(int(b["attention_mask"].sum()) for b in batches.values()),
            sum(n * w for n, w in shapes),
            sum(n * w * w for n, w in shapes),
        ]
        with self.accelerator.accumulate(self.objective):
            scales = self._loss_scales(batches)
            total, losses = self.objective(batches, scales)
            values = {task: loss.item() for task, loss in losses.items()}
            values, counts = self._agree(values, scales, counts)
            nonfinite = not math.isfinite(sum(values.values()))
            st = self.state
            st.train_tokens, st.train_positions, st.train_attention = (
                a + b
                for a, b in zip(
                    (st.train_tokens, st.train_positions, st.train_attention), counts, strict=True
                )
            )
            if nonfinite and self.cfg.trainer.nan_policy is NanPolicy.STOP:
                self._nonfinite(values)
            # Backward even for a step that is skipped: under DDP every process has to join
            # the gradient all-reduce; the poisoned gradients are zeroed right after.
            self.accelerator.backward(total)
            self.parallel.after_backward()
            if nonfinite:
                self._nonfinite(values)
                return values
            if self.accelerator.sync_gradients and self.cfg.trainer.max_grad_norm:
                self.parallel.clip_grad_norm(
                    self.accelerator, self.objective.parameters(), self.cfg.trainer.max_grad_norm
                )
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad()
        return values

    def fit(self) -> TrainState:
        """Train until ``total_steps`` or early stopping; evaluate on dev on the cadence.

        SIGINT/SIGTERM finish the current step, write a resumable state and raise
        ``TrainingInterrupted``.
        """
        handlers = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            with logging_redirect_tqdm():  # log lines print above the bar, not through it
                return self._fit()
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: object) -> None:
        self._signal = signum

    def _fit(self) -> TrainState:
        tc, st = self.cfg.trainer, self.state
        bar = tqdm(
            total=self.total_steps,
            initial=st.step,
            desc="train",
            dynamic_ncols=True,
            disable=None if self.main else True,
        )
        running: dict[str, list[float]] = {}
        # from_pretrained hands the encoder over in eval mode: without this, its dropout would
        # stay off until the first evaluation switched everything to training mode.
        self.objective.train()
        start = time.perf_counter()
        for batches in self._batches():
            losses = self.train_step(batches)
            for task, loss in losses.items():
                running.setdefault(task, []).append(loss)
            if not self.accelerator.sync_gradients:
                continue
            st.step += 1
            bar.update(1)
            if st.step % tc.log_every_steps == 0 or st.step == self.total_steps:
                self._report(running, bar, st.train_seconds + time.perf_counter() - start)
                running = {}
            if self._eval_due():
                st.train_seconds += time.perf_counter() - start
                stop = self._evaluate_dev()
                start = time.perf_counter()
                if stop:
                    break
            stop = self._stop_requested()
            if stop or (tc.save_every and st.step % tc.save_every == 0):
                st.train_seconds += time.perf_counter() - start
                self.save_state()
                start = time.perf_counter()
            if stop:
                bar.close()
                self._interrupted()
        st.train_seconds += time.perf_counter() - start
        bar.close()
        self._check_skipped()
        if st.last_eval_step != st.step:
            self._evaluate_dev()
        return st

    def _report(self, running: dict[str, list[float]], bar: Any, elapsed: float) -> None:
        """The log line and the progress bar's loss, learning rate and tokens per second."""
        tokens_per_second = self.state.train_tokens / elapsed
        self._log_step(running, tokens_per_second)
        mean = sum(sum(v) for v in running.values()) / sum(map(len, running.values()))
        lr = self.scheduler.get_last_lr()[0]
        bar.set_postfix(loss=f"{mean:.4f}", lr=f"{lr:.1e}", tok_s=f"{tokens_per_second:.0f}")

    def _interrupted(self) -> None:
        name = signal.Signals(self._signal).name if self._signal else "a signal"
        raise TrainingInterrupted(
            f"interrupted by {name} at step {self.state.step}; "
            f"state saved. Resume with: mtfsl-train resume={self.run_dir}"
        )

    def _check_skipped(self) -> None:
        """A SKIP run that dropped more than ``trainer.max_skipped_share`` of its steps has not
        trained what it claims: fail instead of finishing."""
        st, share = self.state, self.cfg.trainer.max_skipped_share
        if st.step and st.skipped_steps > share * st.step:
            raise NonFiniteLossError(
                f"{st.skipped_steps} of {st.step} steps had a non-finite loss and were skipped "
                f"(more than trainer.max_skipped_share={share}); lower trainer.lr or check "
                "the data"
            )

    def _log_step(self, running: dict[str, list[float]], tokens_per_second: float) -> None:
        st = self.state
        means = {t: sum(v) / len(v) for t, v in sorted(running.items())}
        losses = " ".join(f"{t} {v:.4f}" for t, v in means.items())
        weights = self.net.weighting.weights()
        lr = self.scheduler.get_last_lr()[0]
        st.weight_history.append({"step": st.step, **weights})
        st.loss_history.append(
            {"step": st.step, "lr": lr, **{f"loss/{t}": v for t, v in means.items()}}
        )
        log.info(
            "step %d/%d epoch %d loss %s | weights %s | lr %.2e %.0f tokens/s",
            st.step,
            self.total_steps,
            st.epoch + 1,
            losses,
            " ".join(f"{t} {w:.3f}" for t, w in weights.items()),
            lr,
            tokens_per_second,
        )
        values = {f"train/loss/{t}": v for t, v in means.items()}
        values.update({f"train/weight/{t}": w for t, w in weights.items()})
        values.update({"train/lr": lr, "train/tokens_per_second": tokens_per_second})
        self.accelerator.log(values, step=st.step)
        if self.main:
            write_json(self.run_dir / "loss_weights.json", {"history": st.weight_history})
            write_json(self.run_dir / "train_history.json", {"history": st.loss_history})

    def _eval_due(self) -> bool:
        every = self.cfg.trainer.eval_every_steps or self.steps_per_epoch
        return self.state.step % every == 0

    # -- evaluation -----------------------------------------------------------------------
    def evaluate(self, split: str, write: bool = False) -> dict[str, float]:
        """Score every task that has ``split``; keys are ``{split}/{task}/{metric}``."""
        results: dict[str, float] = {}
        self.predict_seconds, self.predictions = 0.0, {}
        for name, task in self.tasks.items():
            if split not in task.evals:
                continue
            start = time.perf_counter()
            if self.net.uses_support(name):  # a metric decoder: the support as encoded now
                size, device = self.cfg.trainer.eval_batch_size, self.accelerator.device
                self.net.remember_support(name, support_batches(task, self.collator, size, device))
            scores, pred = evaluate_split(
                self.net,
                task.task,
                task.labels,
                task.evals[split],
                self.accelerator,
                self.collator,
                self.cfg.trainer.eval_batch_size,
                self.cfg.metrics.mode,
                calibrate=split == "dev",
                lockstep=self.parallel.lockstep,
            )
            self.predict_seconds += time.perf_counter() - start  # predicting + scoring
            results.update({f"{split}/{name}/{k}": v for k, v in scores.items()})
            self.predictions[name] = pred
        if write:
            self.write_outputs(split, self.predictions)
        self.objective.train()
        return results

    def write_outputs(self, split: str, predictions: dict[str, list]) -> None:
        """``reports/`` and ``predictions/`` files of ``split`` (main process only)."""
        if not self.main:
            return
        for name, pred in predictions.items():
            task = self.tasks[name]
            write_split_outputs(
                self.run_dir,
                split,
                task.task,
                task.labels,
                task.evals[split],
                pred,
                self.cfg.metrics.mode,
            )

    def selection_score(self, results: dict[str, float]) -> float | None:
        """The configured dev metric, of one task or averaged over all tasks with a dev split;
        a lower-is-better metric (an error such as MSE) enters negated, so higher is better."""
        sel = self.cfg.metrics
        names = [sel.select_task] if sel.select_task else list(self.tasks)
        values = []
        for name in names:
            metric = sel.select or self._primary(name)
            if (value := results.get(f"dev/{name}/{metric}")) is not None:
                values.append(-value if self.tasks[name].kind.lower_is_better(metric) else value)
        return sum(values) / len(values) if values else None

    def _primary(self, name: str) -> str:
        task = self.tasks[name]
        return task.kind.primary_metric(task.cfg)

    def _evaluate_dev(self) -> bool:
        """Evaluate on dev, keep the best checkpoint; return True to stop early."""
        st, patience = self.state, self.cfg.trainer.early_stopping_patience
        st.last_eval_step = st.step
        results = self.evaluate("dev")
        score = self.selection_score(results)
        if score is None:  # no dev split to select on: the last model is the one kept
            self._save_best(None)
            return False
        st.history.append({"step": st.step, **results})
        self.accelerator.log(results, step=st.step)
        improved = score > st.best_score
        if improved:
            st.best_score, st.best_step, st.evals_since_best = score, st.step, 0
            self._save_best(score)
            self.best_dev = (results, self.predictions)
        else:
            st.evals_since_best += 1
        log.info(
            "eval step %d epoch %d | %s | best selection score (%s) %.2f at step %d%s",
            st.step,
            st.epoch + 1,
            " ".join(f"{k} {v:.2f}" for k, v in results.items()),
            self.cfg.metrics.select or "primary metric",
            st.best_score,
            st.best_step,
            " (new best)" if improved else "",
        )
        if patience is not None and st.evals_since_best >= patience:
            log.info("early stopping: no dev improvement in %d evaluations", patience)
            return True
        return False

    def _save_best(self, score: float | None) -> None:
        labels = {name: task.labels for name, task in self.tasks.items()}
        state = {"step": self.state.step, "epoch": self.state.epoch + 1, "dev_score": score}
        partial = self.cfg.finetune.mode is not FinetuneMode.FULL
        tensors = self.parallel.checkpoint_tensors(self.net)  # all processes gather
        if self.main:
            save_checkpoint(
                self.best_dir, self.net, self.tokenizer, labels, state, partial, tensors
            )

    # -- resumable state ------------------------------------------------------------------
    def save_state(self) -> Path:
        extra = {
            "train_state": asdict(self.state),
            "streams": {n: s.state_dict() for n, s in self.streams.items()},
            "task_sampler": self.task_sampler.state_dict(),
        }
        folder = save_training_state(
            self.accelerator,
            self.run_dir,
            self.state.step,
            extra,
            self.cfg.trainer.keep_last,
            self.attempt,
        )
        log.info("saved resumable state %s", folder)
        return folder

    def resume(self) -> None:
        """Continue from the run folder's latest resumable state."""
        if self.main:  # a crash while the best checkpoint was being replaced
            heal_checkpoint(self.best_dir)
        folder = latest_state(self.run_dir, self.attempt)
        extra = load_training_state(self.accelerator, folder, self.cfg.trainer.resume_damaged_rng)
        self.state = TrainState(**extra["train_state"])
        for name, stream in self.streams.items():
            stream.load_state_dict(extra["streams"][name])
        self.task_sampler.load_state_dict(extra["task_sampler"])
        log.info("resumed from %s at step %d", folder, self.state.step)

    def restore_best(self) -> dict[str, object]:
        self.accelerator.wait_for_everyone()  # the main process wrote it
        best = heal_checkpoint(self.best_dir) if self.main else self.best_dir
        self.accelerator.wait_for_everyone()
        return self.parallel.load_weights(best or self.best_dir, self.net)
