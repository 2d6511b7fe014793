"""Registry of backbone families: every module of this package registers one, and installed
packages may add their own through the entry-point group ``mtfsl.backbones``.

``settle`` turns ``model.family: auto`` into the family detected from the model's config
(read without its weights) and fills the family's defaults into the model config, once, when
a run starts; the run folder's ``config.yaml`` records the settled values.
"""

from __future__ import annotations

from dataclasses import replace

from mtfsl.config import ModelConfig, ModelSource
from mtfsl.errors import ConfigError
from mtfsl.model.backbones.protocol import Backbone
from mtfsl.plugins import Registry, discover

BACKBONES: Registry[Backbone] = Registry("a backbone family")
# Make a family available as ``model.family: NAME``.
register_backbone = BACKBONES.add
FALLBACK = "encoder"  # what a model that no other family claims is


def family(model: ModelConfig) -> Backbone:
    """The (settled) family of ``model``."""
    return BACKBONES.named(model.family, "model.family")


def detect(config: object) -> Backbone:
    """The family whose ``detects`` accepts ``config``; the fallback family if none does."""
    claims = [b for name, b in sorted(BACKBONES.items()) if name != FALLBACK and b.detects(config)]
    return claims[0] if claims else BACKBONES[FALLBACK]


def _model_config(model: ModelConfig) -> object:
    """The pretrained model's config (config.json only: no weights are read)."""
    from transformers import AutoConfig

    from mtfsl.model.sources import model_folder

    path = model_folder(model.name_or_path)
    try:
        return AutoConfig.from_pretrained(path, revision=model.tokenizer.revision)
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"model.name_or_path={model.name_or_path}: cannot read its config to detect "
            f"model.family ({str(err).splitlines()[0]}); set model.family=encoder or decoder"
        ) from None


def settle(model: ModelConfig) -> ModelConfig:
    """``model`` with a concrete family and that family's defaults for its AUTO settings."""
    if model.family == "auto":
        found = BACKBONES[FALLBACK] if model.source is ModelSource.TINY else None
        found = found or detect(_model_config(model))
        model = replace(model, family=found.name)
    return family(model).settle(model)


discover(__name__, __path__, "mtfsl.backbones", skip=("protocol",))
