"""The energy package's public surface, and that importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import llenergymeasure.energy as energy


def test_public_names_do_not_change_by_accident() -> None:
    assert sorted(energy.__all__) == [
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
        "SAMPLER_PRIORITY",
        "ZeusSampler",
        "create_sampler",
        "probe_samplers",
        "resolve_sampler_name",
    ]


def test_import_loads_no_vendor_library() -> None:
    code = (
        "import sys, llenergymeasure.energy; "
        "print(sorted({'codecarbon', 'torch', 'pynvml', 'zeus'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "[]"
