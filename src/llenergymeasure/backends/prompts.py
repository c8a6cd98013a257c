"""Turn prompts into token ids for every backend: chat template, truncation to max_input_tokens."""

from __future__ import annotations

from typing import Any, Literal

from llenergymeasure.datasets import Prompt
from llenergymeasure.errors import ConfigError


def wants_chat_template(tokenizer: Any, setting: Literal["auto"] | bool) -> bool:
    """Resolve the ``chat_template`` setting against what the tokenizer offers.

    Raises:
        ConfigError: ``chat_template: true`` but the tokenizer has no template.
    """
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if setting is True and not has_template:
        raise ConfigError(
            "chat_template: true, but this model's tokenizer has no chat template "
            "(set chat_template: false or auto)"
        )
    return has_template if setting == "auto" else bool(setting)


def encode_prompt(
    tokenizer: Any, prompt: Prompt, use_template: bool, max_input_tokens: int
) -> list[int]:
    """Token ids for ``prompt``, at most ``max_input_tokens`` long.

    Synthetic prompts arrive as token ids and are used as they are. Templated prompts are
    truncated inside the user message, so the template's assistant header survives.
    """
    if prompt.token_ids is not None:
        return list(prompt.token_ids)[:max_input_tokens]
    text = prompt.text or ""
    if not use_template:
        ids: list[int] = tokenizer(text, add_special_tokens=True)["input_ids"]
        return ids[:max_input_tokens]
    ids = _templated(tokenizer, text)
    if len(ids) <= max_input_tokens:
        return ids
    budget = max_input_tokens - len(_templated(tokenizer, ""))
    if budget > 0:
        text_ids = tokenizer(text, add_special_tokens=False)["input_ids"][:budget]
        ids = _templated(tokenizer, tokenizer.decode(text_ids))
    return ids[:max_input_tokens]


def _templated(tokenizer: Any, text: str) -> list[int]:
    messages = [{"role": "user", "content": text}]
    ids = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=False
    )
    return list(ids)
