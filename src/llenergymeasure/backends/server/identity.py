"""Who the server is, as it says itself: the models ``GET /v1/models`` lists (the served name
to request), ``GET /version`` (vLLM, SGLang: relative to the URL without ``/v1``) and the
``Server`` response header."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx

from llenergymeasure.backends.base import first_line
from llenergymeasure.backends.server.client import http_error
from llenergymeasure.errors import BackendError, ConfigError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerIdentity:
    """What the server said about itself.

    Attributes:
        served_model: the model name every request carries.
        listed: the models ``/v1/models`` lists.
        version: what ``/version`` answered (None: no such endpoint).
        server_header: the ``Server`` header of the models answer.
    """

    url: str
    served_model: str
    listed: tuple[str, ...]
    version: str | None
    server_header: str | None

    def details(self) -> dict[str, Any]:
        """For the result (``ModelInfo.details["server"]``)."""
        return {
            "url": self.url,
            "served_model": self.served_model,
            "models": list(self.listed),
            "version": self.version,
            "server_header": self.server_header,
        }


def identify(http: httpx.Client, url: str, model: str | None) -> ServerIdentity:
    """Ask the server at ``url`` (the API base, ending in /v1) who it is.

    ``model`` (``server.model``) is the served name to use; None takes the first one listed.

    Raises:
        BackendError: the server cannot be reached, refuses the models request, or lists no
            model while ``server.model`` is unset.
        ConfigError: it answers 401/403 (``server.api_key_env``).
    """
    try:
        response = http.get(f"{url}/models")
    except httpx.HTTPError as exc:
        raise BackendError(
            f"cannot reach the server at {url} ({first_line(exc)}): start it, correct "
            "server.url, or set server.launch"
        ) from None
    if response.status_code in (401, 403):
        raise ConfigError(
            f"the server at {url} refused the API key "
            f"({http_error(response.status_code, response.content)}): set server.api_key_env "
            "to the variable holding its key"
        )
    if response.status_code >= 400:
        raise BackendError(
            f"GET {url}/models failed: {http_error(response.status_code, response.content)}"
        )
    listed = _model_names(response)
    if model is None and not listed:
        raise BackendError(f"the server at {url} lists no model; set server.model")
    if model is not None and listed and model not in listed:
        logger.warning("server.model '%s' is not among the models %s lists (%s)", model, url,
                       ", ".join(listed))  # fmt: skip
    return ServerIdentity(
        url=url,
        served_model=model if model is not None else listed[0],
        listed=listed,
        version=_version(http, url),
        server_header=response.headers.get("server"),
    )


def _model_names(response: httpx.Response) -> tuple[str, ...]:
    try:
        data = response.json().get("data") or []
        return tuple(str(entry["id"]) for entry in data)
    except (ValueError, AttributeError, KeyError, TypeError):
        raise BackendError(
            f"GET {response.request.url} did not answer an OpenAI model list: "
            f"{response.text[:200]!r}"
        ) from None


def _version(http: httpx.Client, url: str) -> str | None:
    """``/version`` beside the API (vLLM, SGLang); None where there is none."""
    root = url.removesuffix("/").removesuffix("/v1")
    try:
        response = http.get(f"{root}/version")
        version = response.json().get("version") if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return None if version is None else str(version)
