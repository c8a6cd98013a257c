"""Energy samplers (RAPL, CodeCarbon, null) behind one start/stop interface, and their factory."""

from llenergymeasure.energy.base import Availability, Clock, EnergyReading, EnergySampler
from llenergymeasure.energy.codecarbon import CodeCarbonSampler
from llenergymeasure.energy.factory import (
    SAMPLER_PRIORITY,
    create_sampler,
    probe_samplers,
    resolve_sampler_name,
)
from llenergymeasure.energy.null import NullSampler
from llenergymeasure.energy.rapl import RaplSampler

__all__ = [
    "SAMPLER_PRIORITY",
    "Availability",
    "Clock",
    "CodeCarbonSampler",
    "EnergyReading",
    "EnergySampler",
    "NullSampler",
    "RaplSampler",
    "create_sampler",
    "probe_samplers",
    "resolve_sampler_name",
]
