"""Back-translation: text -> pivot language -> text through two seq2seq models (MarianMT)."""

from __future__ import annotations

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from mtfsl.config import BackTranslationConfig
from mtfsl.errors import ConfigError


def _load(name: str | None, key: str) -> tuple:
    where = f"augmentation.back_translation.{key}"
    if not name:
        raise ConfigError(
            f"{where}: BACK_TRANSLATION needs a translation model (a MarianMT hub id such as "
            "Helsinki-NLP/opus-mt-en-de, or a local folder)"
        )
    try:
        return AutoTokenizer.from_pretrained(name), AutoModelForSeq2SeqLM.from_pretrained(name)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{where}={name}: cannot load it ({str(err).splitlines()[0]})") from None


class BackTranslator:
    """Round-trips texts through ``forward`` then ``backward``; sampling is seeded."""

    def __init__(self, cfg: BackTranslationConfig, device: str | torch.device = "cpu") -> None:
        self.cfg, self.device = cfg, torch.device(device)
        self.models = [_load(cfg.forward, "forward"), _load(cfg.backward, "backward")]
        for _, model in self.models:
            model.to(self.device).eval()

    @torch.no_grad()
    def _translate(self, tokenizer, model, texts: list[str]) -> list[str]:
        out: list[str] = []
        for start in range(0, len(texts), self.cfg.batch_size):
            batch = tokenizer(
                texts[start : start + self.cfg.batch_size],
                return_tensors="pt",
                padding=True,
                truncation=True,
            ).to(self.device)
            generated = model.generate(
                **batch,
                max_new_tokens=self.cfg.max_new_tokens,
                do_sample=self.cfg.do_sample,
                top_p=self.cfg.top_p if self.cfg.do_sample else None,
            )
            out += tokenizer.batch_decode(generated, skip_special_tokens=True)
        return out

    def __call__(self, texts: list[str], seed: int) -> list[str]:
        with torch.random.fork_rng(devices=[]):  # the run's own RNG stream stays untouched
            torch.manual_seed(seed)
            for tokenizer, model in self.models:
                texts = self._translate(tokenizer, model, texts)
        return texts
