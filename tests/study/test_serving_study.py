"""A request-rate sweep end to end on the pytorch backend (transformers' continuous batching):
the study runs every rate in its own process, and ``llem report --html`` shows the serving
view with the SLO knee."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from llenergymeasure.cli import app
from llenergymeasure.testing.models import tiny_experiment

pytest.importorskip("transformers")


def test_a_request_rate_sweep_finishes_and_the_report_shows_the_serving_view(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    study = tiny_experiment(
        tiny_model_dir,
        name="rates",
        n=6,
        load={"mode": "rate", "request_rate": 1, "slo": {"e2e_ms": 60_000}},
        sweep={"load.request_rate": [4, 16, "inf"]},
        execution={"n_cycles": 1},
    )
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    runner = CliRunner()
    done = runner.invoke(
        app, ["run", str(tmp_path / "study.yaml"), "--out", str(tmp_path), "--quiet"]
    )
    assert done.exit_code == 0, done.output
    (study_dir,) = [p for p in tmp_path.iterdir() if p.is_dir() and p.name.startswith("rates")]
    rows = pq.read_table(study_dir / "results.parquet").to_pylist()
    assert sorted(r["status"] for r in rows) == ["done"] * 3
    assert all(r["good_fraction"] == 1.0 and r["achieved_rate_rps"] for r in rows)

    page = tmp_path / "report.html"
    shown = runner.invoke(app, ["report", str(study_dir), "--html", str(page)])
    assert shown.exit_code == 0, shown.output
    html = page.read_text()
    assert "Serving under load" in html
    assert "inf (all at once)" in html
    assert "knee" in html.lower()
