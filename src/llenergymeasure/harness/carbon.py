"""CO2 from a grid carbon intensity the user gave, or from CodeCarbon; never invented."""

from __future__ import annotations

import os
from dataclasses import dataclass

_J_PER_KWH = 3.6e6
INTENSITY_ENV = "LLEM_CARBON_INTENSITY"


@dataclass(frozen=True)
class Co2:
    """Emissions and where the intensity came from (all None when unknown)."""

    co2_kg: float | None
    source: str | None
    intensity_g_per_kwh: float | None


def user_carbon_intensity() -> float | None:
    """Grid intensity in gCO2eq/kWh from ``LLEM_CARBON_INTENSITY`` (None when unset)."""
    value = os.environ.get(INTENSITY_ENV)
    if not value:
        return None
    try:
        intensity = float(value)
    except ValueError:
        return None
    return intensity if intensity >= 0 else None


def compute_co2(
    energy_j: float | None, sampler_co2_kg: float | None, intensity_g_per_kwh: float | None
) -> Co2:
    """A user-given intensity wins; else the sampler's own figure (CodeCarbon); else None."""
    if energy_j is not None and intensity_g_per_kwh is not None:
        kg = energy_j / _J_PER_KWH * intensity_g_per_kwh / 1000
        return Co2(kg, "user intensity", intensity_g_per_kwh)
    if sampler_co2_kg is not None:
        return Co2(sampler_co2_kg, "codecarbon", None)
    return Co2(None, None, None)
