"""What each request to an OpenAI-compatible server carries: the prompt as text, the decoder
fields the API has, and streaming with token usage (pure functions, no HTTP).

The prompt goes as text, decoded from the prepared token ids: every server accepts a string,
whereas token-id prompts (``"prompt": [1, 2, ...]``, which vLLM, SGLang and llama.cpp accept)
are refused by TGI and Ollama. Re-tokenizing the text gives the prepared ids back for the
built-in and synthetic prompts when the server uses the same tokenizer (the special tokens
the tokenizer adds itself are left for the server to add again); the server's own count
(``usage.prompt_tokens``) is what the record keeps whenever it reports one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llenergymeasure.config.decoder import SAMPLING_ONLY
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.config.server import ServerApi

API_PATHS: dict[ServerApi, str] = {"completions": "/completions", "chat": "/chat/completions"}
"""The endpoint of each ``server.api``, below the base URL."""

REQUEST_NAMES = {"min_new_tokens": "min_tokens"}
"""Decoder fields whose request field has another name (the rest keep theirs)."""

STREAM_OPTIONS = {"include_usage": True, "continuous_usage_stats": True}
"""Ask for token usage: per chunk (``continuous_usage_stats``: vLLM, SGLang) and at the end
(``include_usage``: the OpenAI field). Servers that know neither ignore them."""


def sampling_fields(config: ExperimentConfig, max_tokens: int) -> dict[str, Any]:
    """The request fields from ``decoder``, ``random_seed`` and the output limit.

    Greedy decoding (``do_sample: false``) is ``temperature: 0``, without the sampling-only
    fields (they would not act). ``min_new_tokens`` becomes ``min_tokens``, capped at
    ``max_tokens`` (vLLM refuses more; short warmup requests). The config already refuses the
    decoder fields the API has no field for.
    """
    decoder = config.decoder
    fields: dict[str, Any] = {"max_tokens": max_tokens, "seed": config.random_seed}
    for name, value in decoder.set_fields().items():
        if name == "do_sample" or (not decoder.do_sample and name in SAMPLING_ONLY):
            continue
        fields[REQUEST_NAMES.get(name, name)] = value
    if not decoder.do_sample:
        fields["temperature"] = 0.0
    if "min_tokens" in fields:
        fields["min_tokens"] = min(fields["min_tokens"], max_tokens)
    return fields


def request_body(api: ServerApi, model: str, prompt: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The JSON body of one streamed request: the prompt (chat: one user message)."""
    body: dict[str, Any] = {"model": model}
    if api == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    return {**body, **fields, "stream": True, "stream_options": dict(STREAM_OPTIONS)}


def added_prefix(tokenizer: Any) -> list[int]:
    """The special token ids the tokenizer puts before any text by itself (e.g. a BOS)."""
    plain: list[int] = tokenizer("x", add_special_tokens=False)["input_ids"]
    full: list[int] = tokenizer("x", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return full[:start]
    return []


def prompt_text(tokenizer: Any, ids: Sequence[int], prefix: Sequence[int]) -> str:
    """The text of prepared ``ids`` to send: without the ``prefix`` the server adds again, with
    every other special token (a chat template's) written out."""
    body = list(ids)
    if prefix and body[: len(prefix)] == list(prefix):
        body = body[len(prefix) :]
    text: str = tokenizer.decode(body, skip_special_tokens=False)
    return text
