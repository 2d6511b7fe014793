"""Rendering a task's in-context prompt (``prompt.NAME``): Jinja2 templates over an example's
fields, the verbalizer's words for its labels, demonstrations joined by the separator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jinja2

from mtfsl.config import PromptTemplateConfig
from mtfsl.errors import ConfigError

# StrictUndefined: a misspelt field is an error, not an empty string in every prompt
_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def prompt_config(name: str, value: Any) -> PromptTemplateConfig:
    """``prompt.NAME`` as its schema, checked: a key that is not one, or a value of the wrong
    type, is a one-line ConfigError naming it."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(value, PromptTemplateConfig):
        return value
    try:
        merged = OmegaConf.merge(OmegaConf.structured(PromptTemplateConfig), value)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        key = f"prompt.{name}.{err.key}" if getattr(err, "key", None) else f"prompt.{name}"
        raise ConfigError(f"{key}: {str(err).splitlines()[0]}") from None


def verbalized(prompt: PromptTemplateConfig, labels: list[str]) -> list[str]:
    """Each label's words: the verbalizer's, else the label with underscores as spaces."""
    return [prompt.verbalizer.get(label, label.replace("_", " ")) for label in labels]


@dataclass
class Prompter:
    """A task's compiled templates; ``key`` names the config in errors (``prompt.sst2``)."""

    key: str
    cfg: PromptTemplateConfig

    def __post_init__(self) -> None:
        self._templates = {}
        for part in ("instruction", "query", "demonstration"):
            source = getattr(self.cfg, part)
            if source is None:
                continue
            try:
                self._templates[part] = _ENV.from_string(source)
            except jinja2.TemplateSyntaxError as err:
                raise ConfigError(
                    f"{self.key}.{part}: not a Jinja2 template (line {err.lineno}: {err.message})"
                ) from None

    def _render(self, part: str, fields: dict[str, str]) -> str:
        try:
            return self._templates[part].render(**fields)
        except jinja2.UndefinedError as err:
            raise ConfigError(
                f"{self.key}.{part}: {err.message}; the fields are {sorted(fields)}"
            ) from None

    def instruction(self) -> str:
        return self._render("instruction", {}) if self.cfg.instruction else ""

    def query(self, fields: dict[str, Any]) -> str:
        """An example (its template fields, as its kind's scorer gives them) without answer."""
        return self._render("query", fields)

    def demonstration(self, fields: dict[str, Any], answer: str) -> str:
        if "demonstration" in self._templates:
            return self._render("demonstration", {**fields, "answer": answer})
        return self.query(fields) + self.cfg.target_delimiter + answer

    def continuation(self, answer: str) -> str:
        """What the model is scored on after the prompt (the chat template's assistant turn
        starts with the answer itself)."""
        return answer if self.cfg.chat_template else self.cfg.target_delimiter + answer

    def prompt(self, demonstrations: list[str], query: str, tokenizer: Any = None) -> str:
        """The instruction, demonstrations and query, joined by the separator; with
        ``chat_template``, as one user message ending in the assistant's turn."""
        parts = [p for p in (self.instruction(), *demonstrations) if p] + [query]
        text = self.cfg.separator.join(parts)
        if not self.cfg.chat_template:
            return text
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ConfigError(f"{self.key}.chat_template=true: this model has no chat template")
        messages = [{"role": "user", "content": text}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
