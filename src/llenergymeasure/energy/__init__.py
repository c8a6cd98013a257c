"""Energy samplers (Zeus, NVML, RAPL, CodeCarbon, null) behind one start/stop interface, and their
probing factory. Vendor libraries are imported only when a sampler is built or probed.
"""

from llenergymeasure.energy.base import Availability, Clock, EnergyReading, EnergySampler
from llenergymeasure.energy.codecarbon import CodeCarbonSampler
from llenergymeasure.energy.factory import (
    SAMPLER_PRIORITY,
    create_sampler,
    probe_samplers,
    resolve_sampler_name,
)
from llenergymeasure.energy.null import NullSampler
from llenergymeasure.energy.nvml import NvmlSampler
from llenergymeasure.energy.rapl import RaplSampler
from llenergymeasure.energy.timeline import EnergyTimeline, IntervalEnergy
from llenergymeasure.energy.zeus import ZeusSampler

__all__ = [
    "SAMPLER_PRIORITY",
    "Availability",
    "Clock",
    "CodeCarbonSampler",
    "EnergyReading",
    "EnergySampler",
    "EnergyTimeline",
    "IntervalEnergy",
    "NullSampler",
    "NvmlSampler",
    "RaplSampler",
    "ZeusSampler",
    "create_sampler",
    "probe_samplers",
    "resolve_sampler_name",
]
