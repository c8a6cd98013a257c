"""The server section: an OpenAI-compatible inference server measured over HTTP (``backend:
server``): `vllm serve`, SGLang, TGI, `trtllm-serve`, llama.cpp's server, Ollama."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from llenergymeasure.config.base import _Strict
from llenergymeasure.config.field_meta import FieldMeta

ServerApi = Literal["completions", "chat"]
"""``/v1/completions`` (the prompt as text, templated here as ``chat_template`` says) or
``/v1/chat/completions`` (one user message; the server applies its chat template)."""

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ServerConfig(_Strict):
    """How to reach (and optionally start) the server. Energy and telemetry are read on this
    machine, so the server should run here; a remote ``url`` gives timing only."""

    url: str = Field(
        "http://127.0.0.1:8000/v1",
        min_length=1,
        description="Base URL of the OpenAI-compatible API (ending in /v1). A host other than "
        "this machine gives energy null with a warning (timing is still measured).",
        examples=["http://127.0.0.1:30000/v1"],
    )
    model: str | None = Field(
        None,
        description="The served model name sent in each request (default: the first model "
        "GET /v1/models lists). The top-level model: names the weights (tokenizer, FLOPs).",
        examples=["smollm2"],
    )
    api: ServerApi = Field(
        "completions",
        description="'completions' sends the prompt as text (with the chat template as "
        "chat_template says, applied here); 'chat' sends one user message and the server "
        "applies its own chat template.",
    )
    timeout_s: float = Field(
        600.0,
        gt=0,
        description="Seconds a request may take to its first byte and between chunks before it "
        "counts as failed (timeout).",
        json_schema_extra=FieldMeta(unit="s"),
    )
    api_key_env: str | None = Field(
        None,
        description="Name of the environment variable holding the API key, sent as a Bearer "
        "token. The key itself never goes in a config.",
        examples=["OPENAI_API_KEY"],
    )
    launch: str | None = Field(
        None,
        description="A command that starts the server (e.g. 'vllm serve <folder> --port 8000'). "
        "llem starts it in its own process group, waits until it is ready, measures, and "
        "stops the whole group, also on errors and Ctrl-C; its log goes beside the result. "
        "Unset: the server is already running.",
        examples=["vllm serve ./model --port 8000 --dtype float32"],
    )
    ready_timeout_s: float = Field(
        600.0,
        gt=0,
        description="Seconds a launched server may take to answer GET /v1/models (or /health) "
        "before the run fails with the tail of its log.",
        json_schema_extra=FieldMeta(unit="s"),
    )
    scrape_metrics: bool = Field(
        True,
        description="Read the server's Prometheus /metrics (e.g. vLLM's running and waiting "
        "requests, KV-cache usage) into the telemetry timeline, where it exposes them.",
    )

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError(
                "server.api_key_env is the NAME of an environment variable (e.g. "
                "OPENAI_API_KEY), not the key itself"
            )
        return value
