"""Acceptance: a full run with the nvml sampler on the fake NVML reports power x duration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

import llenergymeasure as llem
from llenergymeasure.results.io import RESULT_FILE
from llenergymeasure.testing import FAKE_NVML_ENV, FakeGpuSpec, FakeNvml, install_fake_pynvml

pytest.importorskip("transformers")

POWER_W = 250.0


def experiment(model_dir: Path, **fields: Any) -> dict[str, Any]:
    return {
        "model": str(model_dir),
        "n": 24,
        "max_output_tokens": 24,
        "chat_template": False,
        "warmup": {"n_warmup": 1, "max_output_tokens": 2},
        "energy": {"sampler": "nvml"},
        "baseline": {"enabled": False},
        "pytorch": {"batch_size": 4},
        **fields,
    }


@pytest.fixture(autouse=True)
def _all_devices_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_library_run_reports_fake_power_times_the_window(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    with install_fake_pynvml([FakeGpuSpec(power_w=POWER_W)]):
        result = llem.run(experiment(tiny_model_dir), out_dir=tmp_path)

    assert result.measurement_method == "nvml"
    energy = result.energy
    assert energy.scope == ["gpu:0"] and energy.duration_s is not None
    assert energy.energy_total_j == pytest.approx(POWER_W * result.timings.window_s, rel=0.03)
    assert energy.energy_total_j == pytest.approx(POWER_W * energy.duration_s, rel=0.01)
    assert energy.energy_by_domain_j["gpu:0"] == energy.energy_total_j
    assert energy.uncertainty_j == pytest.approx(0.1 * POWER_W)  # counter period x power
    codes = {w.code for w in result.warnings}
    assert "simulated_device" in codes
    assert "counter_mismatch" not in codes and "sampler_failed" not in codes


class LoseTheGpuInTheWindow:
    """A run observer that makes the fake GPU fall off the bus after the first window batch."""

    def __init__(self, fake: FakeNvml) -> None:
        self.fake = fake
        self.measuring = False

    def phase(self, name: str, total: int | None = None) -> None:
        self.measuring = name == "measuring"

    def advance(self, n_requests: int) -> None:
        if self.measuring:
            self.fake.lose_gpu(0)


def test_a_gpu_lost_mid_window_keeps_the_throughput_figures(tiny_model_dir: Path) -> None:
    with install_fake_pynvml([FakeGpuSpec(power_w=POWER_W)]) as fake:
        result = llem.run(
            experiment(tiny_model_dir, n=8), save=False, observer=LoseTheGpuInTheWindow(fake)
        )

    assert result.metrics.n_requests == 8 and result.metrics.total_output_tokens > 0
    failure = next(w.message for w in result.warnings if w.code == "sampler_failed")
    assert failure.startswith("gpu:0: lost ") and "GPU is lost" in failure
    if result.energy_total_j is not None:  # a poll landed before the loss: the energy so far
        assert result.energy_total_j < POWER_W * result.timings.window_s


def test_llem_run_subprocess_with_the_fake_nvml(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump(experiment(tiny_model_dir)))
    environment = {**os.environ, FAKE_NVML_ENV: json.dumps({"gpus": [{"power_w": POWER_W}]})}
    environment.pop("CUDA_VISIBLE_DEVICES", None)

    completed = subprocess.run(
        [sys.executable, "-m", "llenergymeasure.testing", "run", str(config), "--out",
         str(tmp_path / "out"), "--quiet"],
        capture_output=True, text=True, env=environment, timeout=300, check=False,
    )  # fmt: skip

    assert completed.returncode == 0, completed.stderr + completed.stdout
    folder = Path(completed.stdout.strip().splitlines()[-1])
    data = json.loads((folder / RESULT_FILE).read_text())
    window_s = data["timings"]["window_s"]
    assert data["measurement_method"] == "nvml"
    # the counters are read just outside the window's timestamps: allow 10 ms at each edge
    # (a loaded machine delays the reads; the window here is only ~0.2 s)
    expected_j = POWER_W * window_s
    assert data["energy"]["energy_total_j"] == pytest.approx(expected_j, abs=POWER_W * 0.02)
    assert "simulated_device" in {w["code"] for w in data["warnings"]}
    assert pq.read_table(folder / "timeseries.parquet").num_rows > 0
