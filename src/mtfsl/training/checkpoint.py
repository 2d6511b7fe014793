"""Save and restore the best model: weights, tokenizer, encoder config and label maps."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils.other import load as accelerate_load
from safetensors import safe_open
from safetensors.torch import load_file, load_model, save_file, save_model
from transformers import PreTrainedTokenizerBase

from mtfsl.errors import MtfslError
from mtfsl.model.fingerprint import BASE_FILE, base_record, check_base
from mtfsl.model.multitask import MultiTaskModel
from mtfsl.utils.files import read_json, weights_file
from mtfsl.utils.manifest import verify_manifest, write_manifest

_STATE_PREFIX = "state-"
log = logging.getLogger(__name__)
# A damaged resumable state: the one before it may be whole.
STATE_REMEDY = (
    "delete this state folder to resume from the one before it (trainer.keep_last are kept), "
    "or start the run again"
)


_COMPLETE = ".complete"  # written last: a copy without it was cut short


def _complete(folder: Path) -> bool:
    return (folder / _COMPLETE).is_file()


def _copies(folder: Path) -> tuple[Path, Path]:
    """The temporary and the previous copy of a checkpoint folder."""
    return folder.with_name(f".{folder.name}.tmp"), folder.with_name(f".{folder.name}.old")


def heal_checkpoint(folder: Path) -> Path | None:
    """Repair what a crash during ``save_checkpoint`` left: the folder itself when complete,
    else its complete temporary copy (the newer) or previous copy, renamed into place; the
    leftovers removed. Returns the complete checkpoint, or None when there is none.

    A folder that cannot be written (a handed-over run) is left as it is and its complete
    copy returned."""
    tmp, old = _copies(folder)
    # A folder in place was always complete (only a finished copy is renamed there), also
    # when written before completeness markers existed.
    in_place = _complete(folder) or (folder / "model.safetensors").is_file()
    best = folder if in_place else next((p for p in (tmp, old) if _complete(p)), None)
    if best is None:
        return None
    try:
        if best is not folder:
            shutil.rmtree(folder, ignore_errors=True)
            best.rename(folder)
        for leftover in (tmp, old):
            shutil.rmtree(leftover, ignore_errors=True)
    except OSError:
        return best
    return folder


def save_checkpoint(
    folder: Path,
    model: MultiTaskModel,
    tokenizer: PreTrainedTokenizerBase,
    labels: dict[str, list[str]],
    state: dict[str, object],
    trainable_only: bool = False,
    tensors: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write into a temporary folder, then swap it in, so ``folder`` is always complete.

    ``trainable_only`` (LoRA, BitFit, head-only runs) saves just the parameters that train
    and the heads' buffers, with the fingerprint of the rest: the pretrained encoder, which
    loading starts from (``load_weights`` checks it is the same).
    ``tensors``: the model's full weights, gathered already (a sharded model's,
    ``training/parallel.py``) instead of read from ``model``.
    """
    tmp, old = _copies(folder)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    full = model.state_dict() if tensors is None else tensors
    weights, meta = full, {"format": "pt"}  # what safetensors' save_model writes
    if trainable_only:
        names = partial_names(model)
        weights = {n: t for n, t in full.items() if n in names}
        meta = {"partial": "true"}
        config = model.encoder.config  # a tiny test model has no name_or_path
        base = base_record(full, names, config.name_or_path or f"random {config.model_type}")
        (tmp / BASE_FILE).write_text(json.dumps(base, indent=1) + "\n")
    if tensors is None and not trainable_only:
        save_model(model, str(tmp / "model.safetensors"))  # drops tied duplicates
    else:
        weights = {n: t.contiguous() for n, t in weights.items()}
        save_file(weights, str(tmp / "model.safetensors"), metadata=meta)
    model.encoder.config.save_pretrained(tmp / "encoder")
    tokenizer.save_pretrained(tmp / "tokenizer")
    (tmp / "labels.json").write_text(json.dumps(labels, indent=1) + "\n")
    (tmp / "trainer_state.json").write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
    write_manifest(tmp)  # checked by every later load (predict, export, resume, init_from)
    (tmp / _COMPLETE).touch()
    # A crash at any point below leaves a complete copy that heal_checkpoint puts back.
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)  # a previous save's leftover, never the only copy
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def partial_names(model: MultiTaskModel) -> set[str]:
    """What a partial checkpoint holds: the parameters that train, and what the heads fit
    rather than train (a metric decoder's support: a frozen encoder's run decodes with it)."""
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    return names | {n for n, _ in model.named_buffers() if n.startswith("heads.")}


def is_partial(path: Path) -> bool:
    """Whether a checkpoint's weights file holds the trainable parameters only."""
    with weights_file(path), safe_open(str(path), framework="pt") as f:
        return (f.metadata() or {}).get("partial") == "true"


def read_weights(folder: Path) -> tuple[dict[str, torch.Tensor], bool, dict[str, object]]:
    """A checkpoint's tensors, whether it is partial (trainable parameters only), and its
    trainer state."""
    verify_manifest(folder)
    path = folder / "model.safetensors"
    partial = is_partial(path)
    with weights_file(path):
        tensors = load_file(str(path))
    return tensors, partial, read_json(folder / "trainer_state.json")


def load_weights(folder: Path, model: MultiTaskModel) -> dict[str, object]:
    """Load the checkpoint's weights into ``model``; return its trainer state.

    A partial checkpoint (trainable parameters only) loads over the model as built, which
    must already hold the pretrained encoder (and adapters, for LoRA)."""
    verify_manifest(folder)
    path = folder / "model.safetensors"
    try:
        if is_partial(path):
            with weights_file(path):
                tensors = load_file(str(path))
            check_base(folder, model.state_dict(), tensors)
            unexpected = model.load_state_dict(tensors, strict=False).unexpected_keys
            if unexpected:
                raise MtfslError(
                    f"{path}: weights for parameters the model lacks: {unexpected[:5]}"
                )
        else:
            with weights_file(path):
                load_model(model, str(path))
    except RuntimeError as err:  # e.g. a config.yaml edited to another label set or size
        raise MtfslError(
            f"{path}: the checkpoint does not fit the model its run's config.yaml builds "
            f"({str(err).splitlines()[0][:200]})"
        ) from None
    return read_json(folder / "trainer_state.json")


def _attempt_of(state: Path) -> str | None:
    try:
        return json.loads((state / "trainer.json").read_text()).get("attempt")
    except (OSError, ValueError):
        return None


def _states(run_dir: Path, attempt: str | None = None) -> list[Path]:
    """The complete resumable states, oldest first; with ``attempt``, only that attempt's."""
    folder = run_dir / "checkpoints"
    found = [p for p in folder.glob(f"{_STATE_PREFIX}*") if (p / "trainer.json").is_file()]
    if attempt is not None:
        found = [p for p in found if _attempt_of(p) == attempt]
    return sorted(found, key=lambda p: int(p.name[len(_STATE_PREFIX) :]))


def save_training_state(
    accelerator: Accelerator,
    run_dir: Path,
    step: int,
    extra: dict[str, Any],
    keep_last: int,
    attempt: str | None = None,
) -> Path:
    """Write a resumable state (accelerate: model, optimizer, scheduler, RNGs; plus the loop's
    own counters in ``trainer.json``, written last so its presence marks a complete state),
    then delete all but the newest ``keep_last`` states of the same ``attempt`` (another
    attempt's states are never deleted). Every process calls this (each saves its own RNG
    states); only the main process writes the rest."""
    folder = run_dir / "checkpoints" / f"{_STATE_PREFIX}{step}"
    if accelerator.is_main_process:
        shutil.rmtree(folder, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(folder))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_manifest(folder)  # before trainer.json, whose presence marks a complete state
        tmp = folder / ".trainer.json.tmp"
        tmp.write_text(json.dumps({**extra, "attempt": attempt}, indent=1))
        tmp.rename(folder / "trainer.json")
        for old in _states(run_dir, attempt)[:-keep_last]:
            # the marker first: whatever a kill leaves of the rest is no longer a state
            (old / "trainer.json").unlink(missing_ok=True)
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return folder


def latest_state(run_dir: Path, attempt: str | None = None) -> Path:
    """The newest resumable state of ``attempt`` (the run folder's own); states another
    attempt left are never resumed from."""
    states = _states(run_dir, attempt)
    if not states:
        others = _states(run_dir)
        what = f" of this run's attempt {attempt} ({len(others)} of others)" if others else ""
        raise MtfslError(
            f"resume={run_dir}: no resumable state{what} under {run_dir / 'checkpoints'}"
        )
    return states[-1]


def load_training_state(
    accelerator: Accelerator, folder: Path, damaged_rng_ok: bool = False
) -> dict[str, Any]:
    """Restore a resumable state. accelerate skips random states it cannot read with one
    log line and goes on, no longer bit-exact; here that stops the resume unless
    ``damaged_rng_ok`` (``trainer.resume_damaged_rng``), and then it is a warning."""
    verify_manifest(folder)
    rng = folder / f"random_states_{accelerator.process_index}.pkl"
    try:
        accelerate_load(rng)  # accelerate's own (weights-only) loader, as load_state reads it
    except Exception as err:  # any unpickling or file error: the file is not a usable state
        what = f"{rng}: the saved random states cannot be read ({type(err).__name__})"
        if not damaged_rng_ok:
            raise MtfslError(
                f"{what}, so the run cannot continue bit-exact; to continue anyway with fresh "
                "random states, resume with trainer.resume_damaged_rng=true"
            ) from None
        log.warning("%s; continuing with fresh random states (not bit-exact)", what)
    extra = read_json(folder / "trainer.json", STATE_REMEDY)
    try:
        accelerator.load_state(str(folder))
    except Exception as err:  # a damaged model, optimizer or scheduler file of the state
        reason = f"{type(err).__name__}: {str(err).splitlines()[0][:160]}" if str(err) else ""
        raise MtfslError(
            f"{folder}: the resumable state cannot be read ({reason}); {STATE_REMEDY}"
        ) from None
    return extra
