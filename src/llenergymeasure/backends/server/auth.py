"""The API key of a server run: read from the environment variable ``server.api_key_env``
names (a key never sits in a config)."""

from __future__ import annotations

import os

from llenergymeasure.config.server import ServerConfig
from llenergymeasure.errors import ConfigError


def auth_headers(options: ServerConfig) -> dict[str, str]:
    """The Bearer header from the variable ``server.api_key_env`` names (none unset).

    Raises:
        ConfigError: the variable is not set.
    """
    if options.api_key_env is None:
        return {}
    key = os.environ.get(options.api_key_env)
    if not key:
        raise ConfigError(
            f"server.api_key_env names the environment variable {options.api_key_env}, which "
            "is not set: export it with the server's API key, or remove server.api_key_env"
        )
    return {"Authorization": f"Bearer {key}"}
