"""Build the encoder and its tokenizer: pretrained (offline-capable) or a tiny random BERT."""

from __future__ import annotations

import importlib.resources
import importlib.util
import string
from collections.abc import Callable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from torch import nn
from transformers import (
    AutoModel,
    AutoTokenizer,
    BertConfig,
    BertModel,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from mtfsl.config import ModelConfig, ModelSource
from mtfsl.errors import ConfigError

Built = tuple[PreTrainedModel, PreTrainedTokenizerBase]
_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def resolve_model_path(name_or_path: str) -> str:
    """Turn ``pkg:PACKAGE/SUBDIR`` into the folder inside the installed package.

    Local folders and hub ids are returned unchanged.
    """
    if not name_or_path.startswith("pkg:"):
        return name_or_path
    package, _, sub = name_or_path[4:].partition("/")
    if importlib.util.find_spec(package) is None:
        dist = package.replace("_", "-")
        raise ConfigError(
            f"model.name_or_path={name_or_path}: package '{package}' is not installed "
            f"(pip install {dist})"
        )
    folder = importlib.resources.files(package).joinpath(sub)
    if not folder.is_dir():
        raise ConfigError(f"model.name_or_path={name_or_path}: no folder '{sub}' in {package}")
    return str(folder)


def _pretrained(cfg: ModelConfig) -> Built:
    path = resolve_model_path(cfg.name_or_path)
    if path.startswith(("/", ".", "~")) and not Path(path).expanduser().is_dir():
        raise ConfigError(f"model.name_or_path={cfg.name_or_path}: no such folder")
    path = str(Path(path).expanduser()) if path.startswith("~") else path
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **cfg.tokenizer_kwargs)
        encoder = AutoModel.from_pretrained(path)
    except OSError as err:
        where = "a local folder" if Path(path).exists() else "a hub id (needs network access)"
        raise ConfigError(
            f"model.name_or_path={cfg.name_or_path}: cannot load it as {where}: "
            f"{str(err).splitlines()[0]}"
        ) from None
    if not tokenizer.is_fast:
        raise ConfigError(
            f"model.name_or_path={cfg.name_or_path}: a fast tokenizer is required "
            "(word alignment uses word_ids())"
        )
    return encoder, tokenizer


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """An uncased character-level WordPiece tokenizer built in memory (no files, no network).

    Its vocabulary is the special tokens plus every printable ASCII character, alone and as a
    ``##`` continuation, so any word splits into characters and other text becomes [UNK].
    """
    chars = [c for c in string.printable if not c.isspace() and not c.isupper()]
    vocab = {tok: i for i, tok in enumerate(_SPECIALS + chars + [f"##{c}" for c in chars])}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    backend.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=512,
    )


def _tiny(cfg: ModelConfig) -> Built:
    tokenizer = tiny_tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.tiny.hidden_size,
        num_hidden_layers=cfg.tiny.num_hidden_layers,
        num_attention_heads=cfg.tiny.num_attention_heads,
        intermediate_size=cfg.tiny.intermediate_size,
        max_position_embeddings=cfg.tiny.max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
    )
    return BertModel(config, add_pooling_layer=False), tokenizer


_BUILDERS: dict[ModelSource, Callable[[ModelConfig], Built]] = {
    ModelSource.PRETRAINED: _pretrained,
    ModelSource.TINY: _tiny,
}


def build_encoder(cfg: ModelConfig) -> Built:
    """Return (encoder, fast tokenizer) for the configured model source.

    Raises:
        ConfigError: the model cannot be found or loaded, with the reason.
    """
    encoder, tokenizer = _BUILDERS[cfg.source](cfg)
    if getattr(encoder, "pooler", None) is not None:
        # Heads pool for themselves; an unused pooler costs compute and, under DDP, parameters
        # without gradients. BERT-family models skip a pooler set to None.
        encoder.pooler = None
    if cfg.encoder_dropout is not None:
        for module in encoder.modules():
            if isinstance(module, nn.Dropout):
                module.p = cfg.encoder_dropout
    limit = getattr(encoder.config, "max_position_embeddings", None)
    if limit is not None and cfg.max_length > limit:
        raise ConfigError(
            f"model.max_length={cfg.max_length}: expected <= {limit}, the encoder's "
            "max_position_embeddings"
        )
    return encoder, tokenizer
