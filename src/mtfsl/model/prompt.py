"""Prompt-based classification (PET, Schick & Schütze 2021; LM-BFF, Gao et al. 2021).

The text is put into a template with one mask slot; the encoder's own masked-LM head scores
the vocabulary at the mask, and each label is the score of its verbalizer word.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mtfsl.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def fill_template(cfg: Any, texts: Sequence[str], mask_token: str) -> list[str]:
    """Each text in ``{text}``; ``{mask}`` is the mask token (empty on a decoder: the word
    follows the template)."""
    return fill_fields(cfg, [{"text": text} for text in texts], mask_token)


def fill_fields(cfg: Any, examples: Sequence[dict[str, str]], mask_token: str) -> list[str]:
    """Each example's slots (``text``; a pair's ``text_a``, ``text_b``) in the template."""
    return [cfg.template.format(**fields, mask=mask_token) for fields in examples]


def verbalizer_ids(
    task: str,
    cfg: Any,
    labels: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    masked: bool = True,
) -> list[int]:
    """The vocabulary id of each label's verbalizer word, in label order.

    Raises:
        ConfigError: a label without a word, or a word that is not exactly one token.
    """
    key = f"task.{task}.prompt.verbalizer"
    missing = [label for label in labels if label not in cfg.verbalizer]
    if missing:
        raise ConfigError(f"{key}: no word for labels {missing[:10]} (every label needs one)")
    if masked and tokenizer.mask_token is None:
        raise ConfigError(f"{key}: the tokenizer has no mask token, so it cannot fill a prompt")
    ids = []
    for label in labels:
        word = cfg.verbalizer[label]
        pieces = tokenizer(word, add_special_tokens=False)["input_ids"]
        if len(pieces) != 1:
            raise ConfigError(
                f"{key}.{label}={word!r}: expected a word that is one token of the vocabulary; "
                f"it splits into {tokenizer.convert_ids_to_tokens(pieces)}"
            )
        ids.append(pieces[0])
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{key}: two labels share a verbalizer word")
    return ids
