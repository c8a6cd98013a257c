"""`llem run`'s table says why a FLOP figure is missing wherever it shows "—" (#18 item 14):
the result's own reason for that figure, not a bare dash."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from rich.console import Console

from llenergymeasure.backends.architectures import architecture_config
from llenergymeasure.cli.display import result_table
from llenergymeasure.config import ExperimentConfig
from llenergymeasure.flops import compute_flops_metrics
from llenergymeasure.results.models import (
    EnergyMetrics,
    EnvironmentSnapshot,
    ExperimentResult,
    ModelInfo,
    PerformanceMetrics,
    PhaseTimings,
)
from llenergymeasure.results.records import RequestRecord

SMOLLM2: dict[str, object] = json.loads(architecture_config("smollm2-135m-arch").read_text())

T0 = datetime(2025, 1, 2, tzinfo=timezone.utc)
REQUESTS = [RequestRecord(0, 10, 4, 0.0, [0.1, 0.2, 0.3, 0.4], [1, 1, 1, 1], 0.4)]


def result_with(architecture: dict[str, object], gpu_name: str | None) -> ExperimentResult:
    flops = compute_flops_metrics(architecture, REQUESTS, 2.0, 50.0, "bf16", gpu_name)
    return ExperimentResult(
        llem_version="test",
        config=ExperimentConfig(model="smollm2-135m", backend="vllm"),
        measurement_config_hash="0" * 16,
        started_at=T0,
        ended_at=T0,
        measurement_method="nvml",
        model=ModelInfo(model_id="m", source_kind="embedded", dtype="bf16", device="cuda:0"),
        environment=EnvironmentSnapshot(python="3", os="linux", machine="x86_64"),
        timings=PhaseTimings(model_load_s=1.0, warmup_s=1.0, window_s=2.0),
        energy=EnergyMetrics(method="nvml", scope=["gpu:0"], energy_total_j=50.0),
        metrics=PerformanceMetrics(
            duration_s=2.0, n_requests=1, total_input_tokens=10, total_output_tokens=4
        ),
        flops=flops,
    )


def row(shown: ExperimentResult, name: str) -> str:
    console = Console(width=250, record=True, color_system=None)
    console.print(result_table(shown))
    line = next(line for line in console.export_text().splitlines() if f"│ {name} " in line)
    return " ".join(line.split("│")[2].split())


def test_no_architecture_shows_why_there_are_no_flops() -> None:
    shown = result_with({}, "NVIDIA H100 80GB HBM3")
    why = "all figures: the model config cannot be counted (the model config has no positive"
    assert row(shown, "FLOPs · J/FLOP").startswith(f"— · — ({why}")
    assert row(shown, "MFU · MBU").startswith(f"— · — ({why}")


def test_a_device_without_a_spec_shows_the_flops_and_why_there_is_no_mfu() -> None:
    shown = result_with(SMOLLM2, None)
    assert shown.flops is not None and shown.flops.reason is not None
    flops = row(shown, "FLOPs · J/FLOP")
    assert flops == f"{shown.flops.flops_total:.3g} · {shown.flops.energy_per_flop_j:.3g} J"
    mfu = row(shown, "MFU · MBU")
    assert mfu.startswith("— · — (mfu, mbu: ") and "energy_per_flop_j" not in mfu


def test_a_result_without_flop_figures_says_so() -> None:
    shown = result_with({}, None).model_copy(update={"flops": None})
    assert row(shown, "FLOPs · J/FLOP") == "— (this result has no FLOP figures)"
