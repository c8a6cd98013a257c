"""Keep secrets out of configs: config mappings are copied into every result they produce.

A run writes its config to ``manifest.json``, ``results.parquet`` and ``study_result.json``, and
config files get shared and committed, so a credential in one leaks. Credentials come from the
Hugging Face auth chain (``huggingface-cli login`` or ``HF_TOKEN``) instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from llenergymeasure.errors import ConfigError

_CREDENTIAL_KEY = re.compile(
    r"(?:^|_)(?:password|passwd|passphrase|secrets?|credentials?|authorization|cookie)$"
    r"|^token$"
    r"|(?:^|_)(?:use_auth|auth|access|api|hf|hub|huggingface|bearer|refresh|secret|session"
    r"|oauth|id|github|gh|wandb|private|client)_?token$"
    r"|(?:^|_)(?:api|access|secret|private|client|signing|encryption|ssh|master)_?keys?(?:_id)?$"
)
"""Secret-holding keys, matched on their last words in snake case (:func:`_snake`).
``max_tokens``, ``pad_token``, ``tokenizer``, ``top_k``, ``key_value_cache`` and
``api_key_env`` (the *name* of a variable holding a key) do not match."""

_URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^\s/@:]*:[^\s/@]+@", re.IGNORECASE)
"""``scheme://user:password@host``: a password in a URL's user info."""


def is_credential_key(key: str) -> bool:
    """True for a key that names a secret (``hf_token``, ``hf-token``, ``headers.Authorization``'s
    ``Authorization``, ``aws_secret_access_key``, ``apiKey``); False for token counts and
    settings about keys (``max_new_tokens``, ``kv_cache_dtype``, ``api_key_env``)."""
    return _CREDENTIAL_KEY.search(_snake(key)) is not None


def has_url_password(value: str) -> bool:
    """True when ``value`` contains a URL with a password (``http://user:pw@host``)."""
    return _URL_WITH_PASSWORD.search(value) is not None


def check_no_credentials(data: Mapping[str, Any], source: str) -> None:
    """Refuse a credential-looking key, or a URL with a password, anywhere in a config mapping.

    The message names each by its dotted path and never repeats the value.

    Raises:
        ConfigError: naming every such key path.
    """
    found = list(_credential_paths(data, ""))
    if found:
        raise ConfigError(
            f"{source}: credentials do not belong in a config ({', '.join(found)}). "
            "Log in with `huggingface-cli login` (or `hf auth login`), or set the HF_TOKEN "
            "environment variable, and remove them."
        )


def _credential_paths(data: Any, prefix: str) -> Iterator[str]:
    if isinstance(data, Mapping):
        for key, value in data.items():
            path = f"{prefix}{key}"
            if isinstance(key, str) and is_credential_key(key):
                yield path
            else:
                yield from _credential_paths(value, f"{path}.")
    elif isinstance(data, (list, tuple)):
        for index, item in enumerate(data):
            yield from _credential_paths(item, f"{prefix}{index}.")
    elif isinstance(data, str) and has_url_password(data):
        yield f"{prefix.rstrip('.') or '(value)'} (a URL with a password)"


def _snake(key: str) -> str:
    """``X-Api-Key`` → ``x_api_key``, ``hfToken`` → ``hf_token``, ``HFToken`` → ``hf_token``."""
    split = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", key)
    return re.sub(r"[^a-z0-9]+", "_", split.lower()).strip("_")
