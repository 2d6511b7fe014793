"""The fingerprint of the pretrained weights a partial checkpoint (LoRA adapters, BitFit biases,
heads) loads over, so that loading it over another base model is refused rather than silently
giving other predictions.

A partial checkpoint stores only what trained; predict, export and ``model.init_from`` build
the model from ``model.name_or_path`` again and load the checkpoint over it. When that folder
now holds other weights of the same shapes (another conversion, another fine-tune, a tiny
model built with another seed), nothing else notices.

Hand-written because no library fingerprints a state dict; sampled rather than hashed whole
because the check runs at every best-checkpoint save and every load, and hashing a 7B base
would cost seconds each time. A sample of evenly spaced values per tensor tells bases apart
(different weights differ almost everywhere); tampering is the manifest's job
(``utils/manifest.py``), not this one's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from pathlib import Path

import torch

from mtfsl.errors import MtfslError
from mtfsl.utils.files import read_json

_SAMPLES = 4096  # values per tensor
_ENCODER = "encoder."  # the backbone's weights in a MultiTaskModel's state dict

BASE_FILE = "base.json"  # in a partial checkpoint's folder
VERSION = "1"  # bump when the sampling changes: checkpoints with another version are not checked


def base_fingerprint(weights: Mapping[str, torch.Tensor], stored: Collection[str]) -> str:
    """SHA-256 over the names, shapes, dtypes and sampled values of the backbone's tensors in
    ``weights`` (a state dict) that are not in ``stored`` (what the checkpoint holds)."""
    digest = hashlib.sha256()
    for name in sorted(n for n in weights if n.startswith(_ENCODER) and n not in stored):
        tensor = weights[name].detach()
        flat = tensor.reshape(-1)
        step = max(1, flat.numel() // _SAMPLES)
        sample = flat[::step][:_SAMPLES].to("cpu", torch.float64)  # 4-bit bytes, bf16 alike
        digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}|".encode())
        digest.update(sample.numpy().tobytes())
    return digest.hexdigest()


def base_record(weights: Mapping[str, torch.Tensor], stored: Collection[str], name: str) -> dict:
    """What a partial checkpoint writes as ``base.json``: the fingerprint of the weights it
    loads over and the model they came from. A file of its own rather than safetensors
    metadata, whose key order varies between processes: identical runs keep identical bytes."""
    return {"fingerprint": base_fingerprint(weights, stored), "version": VERSION, "model": name}


def check_base(folder: Path, weights: Mapping[str, torch.Tensor], stored: Collection[str]) -> None:
    """Refuse, in one line naming the checkpoint, to load the partial checkpoint in ``folder``
    (which holds the names ``stored``) over a model whose state dict is ``weights`` when its
    base fingerprint differs. Checkpoints written before fingerprints (or with another
    version of them) load unchecked."""
    path = folder / BASE_FILE
    saved = read_json(path) if path.is_file() else {}
    if not isinstance(saved, dict) or saved.get("version") != VERSION:
        return
    found = base_fingerprint(weights, stored)
    if found != saved.get("fingerprint"):
        raise MtfslError(
            f"{folder}: these adapters (a partial checkpoint: only what trained) were trained "
            f"over other pretrained weights ({saved.get('model')}) than the model built now "
            f"holds (base fingerprint {str(saved.get('fingerprint'))[:12]} saved, "
            f"{found[:12]} found); model.name_or_path must be the model that run started from"
        )
