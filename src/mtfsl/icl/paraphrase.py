"""``augmentation.methods=[PARAPHRASE]``: new versions of the few training texts written by an
instruct language model (SmolLM2 offline), sampled, one text at a time with its own seed, so
each paraphrase depends only on its text, its copy and the settings: it is cached by that
content (``data.cache_dir/paraphrases``) and a rerun or another run of the same draw reuses it.
With ``augmentation.paraphrase.filter``, a paraphrase is kept only if it stays nearest to its
own label's examples (the cosine of MiniLM sentence embeddings to each label's mean over the
originals): a label-keeping check that needs no trained model; the rejections are counted."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mtfsl.config import ModelConfig, ModelSource, ParaphraseConfig
from mtfsl.errors import ConfigError
from mtfsl.evaluation.report import atomic_write

log = logging.getLogger("mtfsl")


def clean(output: str) -> str:
    """The paraphrase in a model's reply: its first line that is not a lead-in ("Here is the
    rewritten text:"), without the quotes a model puts around it."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    text = next((line for line in lines if not line.endswith(":")), "")
    if len(text) > 1 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


class Paraphraser:
    """A batch rewriter (``data.augment.Rewriter``) over ``augmentation.paraphrase``."""

    def __init__(self, cfg: ParaphraseConfig, cache_dir: str | Path) -> None:
        self.cfg = cfg
        self.cache = Path(cache_dir).expanduser() / "paraphrases"
        self._lm: tuple[Any, Any] | None = None  # built on the first text not in the cache

    def _model(self) -> tuple[Any, Any]:
        if self._lm is None:
            from mtfsl.model.encoder import build_causal_lm

            source = ModelSource.TINY if self.cfg.model == "tiny" else ModelSource.PRETRAINED
            model_cfg = ModelConfig(source=source, name_or_path=self.cfg.model, family="decoder")
            model, tokenizer = build_causal_lm(model_cfg)
            if self.cfg.chat_template and not getattr(tokenizer, "chat_template", None):
                raise ConfigError(
                    f"augmentation.paraphrase.chat_template=true: {self.cfg.model} has no chat "
                    "template; set it false"
                )
            self._lm = model, tokenizer
        return self._lm

    def prompt(self, text: str, tokenizer: Any) -> str:
        request = f"{self.cfg.instruction}\n{text}"
        if not self.cfg.chat_template:
            return f"{request}\nParaphrase:"
        messages = [{"role": "user", "content": request}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _key(self, text: str, seed: int) -> str:
        settings = {k: v for k, v in vars(self.cfg).items() if k not in ("filter", "filter_model")}
        blob = json.dumps([settings, seed, text], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    def one(self, text: str, seed: int) -> str:
        """The paraphrase of ``text`` under ``seed`` (from the cache when made before)."""
        path = self.cache / f"{self._key(text, seed)}.json"
        if path.is_file():
            return clean(json.loads(path.read_text())["output"])
        model, tokenizer = self._model()
        ids = tokenizer(self.prompt(text, tokenizer), add_special_tokens=False, return_tensors="pt")
        with torch.random.fork_rng(devices=[]), torch.no_grad():  # the run's RNG untouched
            torch.manual_seed(seed)
            out = model.generate(
                **ids,
                max_new_tokens=self.cfg.max_new_tokens,
                do_sample=True,
                top_p=self.cfg.top_p,
                temperature=self.cfg.temperature,
                pad_token_id=tokenizer.pad_token_id,
            )
        written = tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
        record = {"text": text, "seed": seed, "output": written, "model": self.cfg.model}
        atomic_write(path, json.dumps(record, ensure_ascii=False))
        return clean(written)

    def __call__(self, texts: list[str], targets: list[Any], seed: int) -> list[str | None]:
        """One paraphrase per text (each occurrence of a text gets its own seed), None where
        the filter rejects it."""
        seen: dict[str, int] = {}
        out = []
        for text in texts:
            copy = seen[text] = seen.get(text, -1) + 1
            out.append(self.one(text, seed * 1000 + copy))
        if not self.cfg.filter:
            return out
        kept = keeps_label(self.cfg.filter_model, texts, targets, out)
        return [p if keep else None for p, keep in zip(out, kept, strict=True)]


def keeps_label(retriever: str, texts: list[str], targets: list[Any], new: list[str]) -> list[bool]:
    """Whether each new text is nearest (cosine) to the mean embedding of its own target's
    originals; an empty new text is kept here (the augmentation counts it as empty)."""
    from mtfsl.icl.retrieval import embed

    labels = sorted(set(map(str, targets)))
    ours = embed(retriever, texts)
    means = np.stack([ours[[str(t) == label for t in targets]].mean(0) for label in labels])
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    theirs = embed(retriever, [n or "." for n in new])
    nearest = (theirs @ means.T).argmax(1)
    return [not n or labels[j] == str(t) for n, j, t in zip(new, nearest, targets, strict=True)]
