"""Model architectures shipped as ``config.json`` files only, for runs without weights.

Each folder here holds the ``config.json`` of a public model, written from its model card
(hidden size, layers, heads, KV heads, intermediate size, vocabulary, RoPE, maximum positions;
``head_dim`` spelt out). No weights and no tokenizer ship: a backend builds the model from the
config with random weights (``pytorch.no_weights``), so energy and speed reflect the architecture
while the text it generates is meaningless.

A name ``<folder>-arch`` selects one, case-insensitively: ``llama-3.1-8b-arch`` is
``llama-3.1-8b/config.json``.
"""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path

from llenergymeasure.errors import ModelNotFoundError

ARCH_SUFFIX = "-arch"

# Other spellings people use for the same shipped architecture (without the suffix).
_ALIASES = {
    "mistral-7b-v0.3": "mistral-7b",
    "meta-llama-3.1-8b": "llama-3.1-8b",
    "llama3.1-8b": "llama-3.1-8b",
    "qwen2.5-7b-base": "qwen2.5-7b",
}


def is_architecture_name(spec: str) -> bool:
    """Whether ``spec`` is written as an architecture name (``<name>-arch``, no path parts)."""
    return spec.lower().endswith(ARCH_SUFFIX) and "/" not in spec and "\\" not in spec


def shipped_architectures() -> list[str]:
    """The names that resolve, e.g. ``['llama-3.1-8b-arch', ...]``, sorted."""
    root = resources.files(__name__)
    return sorted(
        f"{entry.name}{ARCH_SUFFIX}"
        for entry in root.iterdir()
        if entry.is_dir() and (entry / "config.json").is_file()
    )


def architecture_config(name: str) -> Path:
    """The path of the shipped ``config.json`` for ``name``.

    Args:
        name: an architecture name such as ``llama-3.1-8b-arch`` (any case).

    Raises:
        ModelNotFoundError: no architecture of that name ships; the message lists those that do.
    """
    stem = name.lower().removesuffix(ARCH_SUFFIX)
    stem = _ALIASES.get(stem, stem)
    # Installed as plain files (the wheel is never zipped), so the traversable is a real path.
    candidate = Path(str(resources.files(__name__) / stem / "config.json"))
    if candidate.is_file():
        return candidate
    shipped = shipped_architectures()
    close = difflib.get_close_matches(name.lower(), shipped, n=1, cutoff=0.6)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise ModelNotFoundError(
        f"model '{name}': no architecture of that name ships with llenergymeasure "
        f"(shipped: {', '.join(shipped)}).{hint} For another model, give the path of its "
        "config.json with pytorch.no_weights: true."
    )
