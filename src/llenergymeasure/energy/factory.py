"""Pick and build an energy sampler from a registry of named probes and constructors.

``SAMPLERS`` maps each name to a probe and a constructor; its order is the ``auto`` priority:
Zeus > NVML > RAPL > CodeCarbon (an estimate where no counter exists) > null. A new sampler is
one more entry, placed where it ranks. Exactly one sampler is built per experiment, so only
one owns the GPU energy counters (``zeus`` or ``nvml``).
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from llenergymeasure.energy import codecarbon, nvml, rapl, zeus
from llenergymeasure.energy.base import Availability, Clock, EnergySampler
from llenergymeasure.energy.null import NullSampler
from llenergymeasure.errors import ConfigError, SamplerUnavailableError

if TYPE_CHECKING:
    from llenergymeasure.config.models import EnergyConfig

AUTO = "auto"


@dataclass(frozen=True)
class SamplerContext:
    """What a sampler's probe and constructor may use.

    Attributes:
        interval_ms: polling interval for samplers that poll.
        clock: monotonic clock in seconds.
        rapl_root: the powercap directory (a fake tree in tests).
        gpu_indices: GPUs to measure (``cuda:N`` indices), None = every visible GPU.
    """

    interval_ms: int = 100
    clock: Clock = time.monotonic
    rapl_root: Path = rapl.DEFAULT_POWERCAP_ROOT
    gpu_indices: tuple[int, ...] | None = None


@dataclass(frozen=True)
class SamplerEntry:
    """One registered sampler: how to tell whether it works here, and how to build it."""

    probe: Callable[[SamplerContext], Availability]
    create: Callable[[SamplerContext], EnergySampler]


def _probe_zeus(context: SamplerContext) -> Availability:
    return zeus.probe(context.gpu_indices)


def _create_zeus(context: SamplerContext) -> EnergySampler:
    return zeus.ZeusSampler(context.gpu_indices, None, context.interval_ms, context.clock)


def _probe_nvml(context: SamplerContext) -> Availability:
    return nvml.probe(context.gpu_indices)


def _create_nvml(context: SamplerContext) -> EnergySampler:
    gpus = nvml.select_gpus(context.gpu_indices)
    return nvml.NvmlSampler(gpus, context.interval_ms, context.clock)


def _probe_rapl(context: SamplerContext) -> Availability:
    return rapl.probe(context.rapl_root)


def _create_rapl(context: SamplerContext) -> EnergySampler:
    return rapl.RaplSampler(context.rapl_root, context.interval_ms, context.clock)


def _probe_codecarbon(context: SamplerContext) -> Availability:
    return codecarbon.probe()


def _create_codecarbon(context: SamplerContext) -> EnergySampler:
    return codecarbon.CodeCarbonSampler(context.interval_ms, clock=context.clock)


def _probe_null(context: SamplerContext) -> Availability:
    return Availability(True)


def _create_null(context: SamplerContext) -> EnergySampler:
    return NullSampler(context.clock)


SAMPLERS: Mapping[str, SamplerEntry] = MappingProxyType(
    {
        "zeus": SamplerEntry(_probe_zeus, _create_zeus),
        "nvml": SamplerEntry(_probe_nvml, _create_nvml),
        "rapl": SamplerEntry(_probe_rapl, _create_rapl),
        "codecarbon": SamplerEntry(_probe_codecarbon, _create_codecarbon),
        "null": SamplerEntry(_probe_null, _create_null),
    }
)
"""Every sampler by name, best first."""

SAMPLER_PRIORITY: tuple[str, ...] = tuple(SAMPLERS)
"""The order ``auto`` tries samplers in."""


def probe_samplers(
    *,
    rapl_root: Path = rapl.DEFAULT_POWERCAP_ROOT,
    gpu_indices: Sequence[int] | None = None,
    registry: Mapping[str, SamplerEntry] = SAMPLERS,
) -> dict[str, Availability]:
    """Probe every sampler, in priority order (for ``llem config``)."""
    context = SamplerContext(rapl_root=rapl_root, gpu_indices=_indices(gpu_indices))
    return {name: entry.probe(context) for name, entry in registry.items()}


def resolve_sampler_name(
    requested: str,
    *,
    rapl_root: Path = rapl.DEFAULT_POWERCAP_ROOT,
    gpu_indices: Sequence[int] | None = None,
    registry: Mapping[str, SamplerEntry] = SAMPLERS,
) -> str:
    """Turn a requested sampler name into one that works here.

    Args:
        requested: ``auto`` (the first available in priority order) or a sampler name.
        rapl_root: the powercap directory to probe.
        gpu_indices: the GPUs GPU samplers must see (None = any visible).
        registry: the samplers to choose from.

    Raises:
        ConfigError: the name is not a known sampler.
        SamplerUnavailableError: the named sampler (or, for ``auto``, every sampler) does not
            work here; the message says why.
    """
    context = SamplerContext(rapl_root=rapl_root, gpu_indices=_indices(gpu_indices))
    return _resolve(requested, context, registry)


def create_sampler(
    config: EnergyConfig,
    *,
    clock: Clock = time.monotonic,
    rapl_root: Path = rapl.DEFAULT_POWERCAP_ROOT,
    registry: Mapping[str, SamplerEntry] = SAMPLERS,
) -> EnergySampler:
    """Build the sampler ``config.sampler`` asks for (``auto``: the best that works here).

    Raises:
        ConfigError: the name is not a known sampler.
        SamplerUnavailableError: the requested sampler does not work here.
        DependencyError: the sampler's library is missing.
    """
    context = SamplerContext(
        config.sample_interval_ms, clock, rapl_root, _indices(config.gpu_indices)
    )
    name = _resolve(config.sampler, context, registry)
    return registry[name].create(context)


def _indices(gpu_indices: Sequence[int] | None) -> tuple[int, ...] | None:
    return None if gpu_indices is None else tuple(gpu_indices)


def _resolve(requested: str, context: SamplerContext, registry: Mapping[str, SamplerEntry]) -> str:
    if requested == AUTO:
        return _first_available(context, registry)
    entry = registry.get(requested)
    if entry is None:
        raise ConfigError(_unknown_name_message(requested, registry))
    availability = entry.probe(context)
    if not availability.available:
        raise SamplerUnavailableError(
            f"energy sampler '{requested}' is not available: {availability.reason}"
        )
    return requested


def _first_available(context: SamplerContext, registry: Mapping[str, SamplerEntry]) -> str:
    reasons: list[str] = []
    for name, entry in registry.items():
        availability = entry.probe(context)
        if availability.available:
            return name
        reasons.append(f"{name}: {availability.reason}")
    raise SamplerUnavailableError("no energy sampler is available: " + "; ".join(reasons))


def _unknown_name_message(requested: str, registry: Mapping[str, SamplerEntry]) -> str:
    names = [AUTO, *registry]
    close = difflib.get_close_matches(requested, names, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown energy sampler '{requested}'{hint}; choose one of {', '.join(names)}"
