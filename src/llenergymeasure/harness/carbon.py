"""CO2 and facility energy from the user's grid intensity and PUE, or CodeCarbon; never invented.

Facility energy is the measured (IT) energy times the facility's power usage effectiveness
(PUE, from the user config or ``LLEM_PUE``; 1.0 when not given, i.e. the IT energy alone). CO2
is computed from facility energy, so a data-centre PUE is reflected in it.
"""

from __future__ import annotations

from dataclasses import dataclass

from llenergymeasure.config.user_config import load_user_config

_J_PER_KWH = 3.6e6


@dataclass(frozen=True)
class Co2:
    """Emissions, where the intensity came from, and the facility energy they are based on.

    Attributes:
        co2_kg: kg CO2eq of the facility energy (None when no intensity is known).
        source: how the figure was obtained (``user intensity``, ``codecarbon``, with
            ``x PUE <pue>`` appended when a PUE above 1 was applied).
        intensity_g_per_kwh: the user-given grid intensity (None when CodeCarbon's was used).
        pue: the power usage effectiveness applied.
        energy_facility_j: measured energy x PUE (None when no energy was measured).
    """

    co2_kg: float | None
    source: str | None
    intensity_g_per_kwh: float | None
    pue: float = 1.0
    energy_facility_j: float | None = None


def user_carbon_intensity() -> float | None:
    """Grid intensity in gCO2eq/kWh: ``LLEM_CARBON_INTENSITY`` or the user config (None = unset).

    Raises:
        ConfigError: the variable or the user config holds an invalid value.
    """
    return load_user_config().config.carbon_intensity_g_per_kwh


def user_pue() -> float:
    """The facility's PUE: ``LLEM_PUE`` or the user config (1.0 when unset).

    Raises:
        ConfigError: the variable or the user config holds an invalid value.
    """
    return load_user_config().config.pue


def compute_co2(
    energy_j: float | None,
    sampler_co2_kg: float | None,
    intensity_g_per_kwh: float | None,
    pue: float = 1.0,
) -> Co2:
    """A user-given intensity wins; else the sampler's own figure (CodeCarbon); else None.

    Both are scaled to facility energy (``energy_j x pue``); CodeCarbon's own figure is for
    the IT energy it measured, so it is multiplied by ``pue`` too.
    """
    facility_j = energy_j * pue if energy_j is not None else None
    label = f" x PUE {pue:g}" if pue != 1.0 else ""
    if facility_j is not None and intensity_g_per_kwh is not None:
        kg = facility_j / _J_PER_KWH * intensity_g_per_kwh / 1000
        return Co2(kg, "user intensity" + label, intensity_g_per_kwh, pue, facility_j)
    if sampler_co2_kg is not None:
        return Co2(sampler_co2_kg * pue, "codecarbon" + label, None, pue, facility_j)
    return Co2(None, None, None, pue, facility_j)
