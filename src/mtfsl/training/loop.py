"""The training loop: accelerate-backed steps, eval cadence, early stopping, best checkpoint."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from mtfsl.config import Device, HardwareConfig, Precision, TrainConfig
from mtfsl.data.batching import LengthGroupedBatchSampler, PaddingCollator
from mtfsl.data.prepare import PreparedTask
from mtfsl.errors import MtfslError
from mtfsl.evaluation.evaluator import evaluate_split, write_split_outputs
from mtfsl.model.multitask import MultiTaskModel
from mtfsl.training.checkpoint import load_weights, save_checkpoint
from mtfsl.training.optim import build_optimizer, build_scheduler

log = logging.getLogger(__name__)


class NonFiniteLossError(MtfslError):
    """The training loss became NaN or infinite."""


def build_accelerator(hw: HardwareConfig, grad_accum_steps: int) -> Accelerator:
    """The only place that reads ``HardwareConfig``: device, precision and threads."""
    if hw.threads is not None:
        torch.set_num_threads(hw.threads)
    cuda = torch.cuda.is_available() and hw.device is not Device.CPU
    if hw.device is Device.CUDA and not torch.cuda.is_available():
        raise MtfslError("hardware.device=cuda but no CUDA device is available")
    precision = hw.precision
    if precision is Precision.AUTO:
        precision = Precision.BF16 if cuda and torch.cuda.is_bf16_supported() else Precision.NO
    return Accelerator(
        cpu=not cuda,
        mixed_precision=precision.value,
        gradient_accumulation_steps=grad_accum_steps,
    )


@dataclass
class TrainState:
    step: int = 0
    epoch: int = 0
    best_score: float = -math.inf
    best_step: int = -1
    evals_since_best: int = 0
    last_eval_step: int = -1
    train_tokens: int = 0
    train_seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)


class Trainer:
    """Trains a ``MultiTaskModel`` on prepared tasks and keeps the best dev checkpoint."""

    def __init__(
        self,
        cfg: TrainConfig,
        model: MultiTaskModel,
        tokenizer: PreTrainedTokenizerBase,
        tasks: dict[str, PreparedTask],
        run_dir: Path,
    ) -> None:
        self.cfg, self.tokenizer, self.tasks, self.run_dir = cfg, tokenizer, tasks, run_dir
        tc = cfg.trainer
        self.accelerator = build_accelerator(cfg.hardware, tc.grad_accum_steps)
        self.collator = PaddingCollator(tokenizer.pad_token_id, cfg.hardware.pad_to_multiple_of)
        # Single-task for now: the (only) task's training loader drives the epochs.
        (self.task,) = tasks.values()
        self.sampler = LengthGroupedBatchSampler(
            self.task.train["length"], tc.batch_size, cfg.seed, tc.group_by_length
        )
        loader = DataLoader(
            self.task.train,
            batch_sampler=self.sampler,
            collate_fn=self.collator,
            num_workers=cfg.hardware.num_workers,
        )
        steps_per_epoch = math.ceil(len(self.sampler) / tc.grad_accum_steps)
        self.total_steps = tc.max_steps or tc.epochs * steps_per_epoch
        self.epochs = math.ceil(self.total_steps / steps_per_epoch)
        optimizer = build_optimizer(model, tc)
        scheduler = build_scheduler(optimizer, tc, self.total_steps)
        self.model, self.optimizer, self.loader, self.scheduler = self.accelerator.prepare(
            model, optimizer, loader, scheduler
        )
        self.best_dir = run_dir / "checkpoints" / "best"
        self.state = TrainState()

    # -- training -------------------------------------------------------------------------
    def _batches(self) -> Iterator[tuple[str, dict[str, torch.Tensor]]]:
        for epoch in range(self.epochs):
            self.state.epoch = epoch
            self.sampler.set_epoch(epoch)
            for batch in self.loader:
                yield self.task.name, batch

    def train_step(self, task: str, batch: dict[str, torch.Tensor]) -> float:
        with self.accelerator.accumulate(self.model):
            logits = self.model(task, batch["input_ids"], batch["attention_mask"])
            loss = self.model.loss(task, logits, batch["labels"])
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"training loss is {loss.item()} at step {self.state.step + 1} "
                    f"(task {task}); the best checkpoint so far is kept in {self.best_dir}"
                )
            self.accelerator.backward(loss)
            if self.accelerator.sync_gradients and self.cfg.trainer.max_grad_norm:
                self.accelerator.clip_grad_norm_(
                    self.model.parameters(), self.cfg.trainer.max_grad_norm
                )
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad()
        return loss.item()

    def fit(self) -> TrainState:
        """Train until ``total_steps`` or early stopping; evaluate on dev on the cadence."""
        tc, st = self.cfg.trainer, self.state
        bar = tqdm(total=self.total_steps, desc="train", dynamic_ncols=True, disable=None)
        running, since_log, start = 0.0, 0, time.perf_counter()
        for task, batch in self._batches():
            loss = self.train_step(task, batch)
            st.train_tokens += int(batch["attention_mask"].sum())
            running += loss
            if not self.accelerator.sync_gradients:
                continue
            st.step += 1
            since_log += 1
            bar.update(1)
            if st.step % tc.log_every_steps == 0 or st.step == self.total_steps:
                elapsed = st.train_seconds + time.perf_counter() - start
                bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{st.train_tokens / elapsed:.0f}")
                log.info(
                    "step %d/%d epoch %d loss %.4f lr %.2e %.0f tokens/s",
                    st.step,
                    self.total_steps,
                    st.epoch + 1,
                    running / since_log,
                    self.scheduler.get_last_lr()[0],
                    st.train_tokens / elapsed,
                )
                running, since_log = 0.0, 0
            if self._eval_due():
                st.train_seconds += time.perf_counter() - start
                stop = self._evaluate_dev()
                start = time.perf_counter()
                if stop:
                    break
            if st.step >= self.total_steps:
                break
        st.train_seconds += time.perf_counter() - start
        bar.close()
        if st.last_eval_step != st.step:
            self._evaluate_dev()
        return st

    def _eval_due(self) -> bool:
        every = self.cfg.trainer.eval_every_steps
        if every is not None:
            return self.state.step % every == 0
        steps_per_epoch = math.ceil(len(self.sampler) / self.cfg.trainer.grad_accum_steps)
        return self.state.step % steps_per_epoch == 0

    # -- evaluation -----------------------------------------------------------------------
    def evaluate(self, split: str, write: bool = False) -> dict[str, float]:
        """Score every task that has ``split``; keys are ``{split}/{task}/{metric}``."""
        results: dict[str, float] = {}
        for name, task in self.tasks.items():
            if split not in task.evals:
                continue
            scores, pred = evaluate_split(
                self.model,
                name,
                task.labels,
                task.evals[split],
                self.accelerator,
                self.collator,
                self.cfg.trainer.eval_batch_size,
                self.cfg.metrics.mode,
            )
            results.update({f"{split}/{name}/{k}": v for k, v in scores.items()})
            if write:
                write_split_outputs(
                    self.run_dir,
                    split,
                    name,
                    task.labels,
                    task.evals[split],
                    pred,
                    self.cfg.metrics.mode,
                )
        self.model.train()
        return results

    def _selection_score(self, results: dict[str, float]) -> float:
        metric = self.cfg.metrics.select
        values = [v for k, v in results.items() if k.endswith(f"/{metric}")]
        return sum(values) / len(values)

    def _evaluate_dev(self) -> bool:
        """Evaluate on dev, keep the best checkpoint; return True to stop early."""
        st, patience = self.state, self.cfg.trainer.early_stopping_patience
        st.last_eval_step = st.step
        results = self.evaluate("dev")
        if not results:  # no dev split: the last model is the one kept
            self._save_best(None)
            return False
        score = self._selection_score(results)
        st.history.append({"step": st.step, **results})
        improved = score > st.best_score
        if improved:
            st.best_score, st.best_step, st.evals_since_best = score, st.step, 0
            self._save_best(score)
        else:
            st.evals_since_best += 1
        log.info(
            "eval step %d epoch %d | %s | best dev %s %.2f at step %d%s",
            st.step,
            st.epoch + 1,
            " ".join(f"{k} {v:.2f}" for k, v in results.items()),
            self.cfg.metrics.select,
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
        save_checkpoint(
            self.best_dir, self.accelerator.unwrap_model(self.model), self.tokenizer, labels, state
        )

    def restore_best(self) -> dict[str, object]:
        return load_weights(self.best_dir, self.accelerator.unwrap_model(self.model))
