"""Studies that sweep the load: ``load.request_rate`` (inf included) and
``load.max_concurrency`` expand, validate and name their experiments like any key, and the dry
run shows each experiment's load plan."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from llenergymeasure.cli import app
from llenergymeasure.config.study import build_study_config, safe_name
from llenergymeasure.errors import ConfigError
from llenergymeasure.load import plan_load

RATE_STUDY: dict[str, Any] = {
    "name": "serve", "model": "smollm2-135m", "n": 10,
    "load": {"mode": "rate", "slo": {"ttft_ms": 500}},
    "sweep": {"load.request_rate": [1, 2, "inf"]},
}  # fmt: skip


def test_a_rate_sweep_with_inf_expands_in_order_with_safe_names() -> None:
    experiments = build_study_config(RATE_STUDY).experiments_resolved
    assert [e.name for e in experiments] == ["serve_rate1", "serve_rate2", "serve_rate-inf"]
    assert [e.load.request_rate for e in experiments] == [1.0, 2.0, math.inf]
    assert all(e.load.mode == "rate" and e.load.slo is not None for e in experiments)
    assert all(safe_name(e.name or "") == e.name for e in experiments)


def test_yaml_spellings_of_inf_name_the_experiment_alike(tmp_path: Path) -> None:
    """``inf`` (a string to YAML) and ``.inf`` (a YAML float) give the same experiment."""
    for spelling in ("inf", ".inf"):
        text = yaml.safe_dump(RATE_STUDY).replace("- inf", f"- {spelling}")
        data = yaml.safe_load(text)
        (last,) = build_study_config(data).experiments_resolved[-1:]
        assert (last.name, last.load.request_rate) == ("serve_rate-inf", math.inf)


def test_a_concurrency_sweep_names_the_cap() -> None:
    study = {**RATE_STUDY, "load": {"mode": "concurrency"},
             "sweep": {"load.max_concurrency": [1, 4, 8]}}  # fmt: skip
    experiments = build_study_config(study).experiments_resolved
    assert [e.name for e in experiments] == ["serve_conc1", "serve_conc4", "serve_conc8"]
    assert [e.load.max_concurrency for e in experiments] == [1, 4, 8]


def test_invalid_points_name_the_load_field() -> None:
    offline = {**RATE_STUDY, "load": {"mode": "offline"}}
    with pytest.raises(ConfigError, match=r"load\.request_rate is for mode: rate"):
        build_study_config(offline)
    too_many = {**RATE_STUDY, "load": {"mode": "concurrency"},
                "sweep": {"load.max_concurrency": [4, 20]}}  # fmt: skip
    with pytest.raises(ConfigError, match=r"(?s)1 of 2 experiments.*load\.max_concurrency \(20\)"):
        build_study_config(too_many)
    with pytest.raises(ConfigError, match="request_rate"):
        build_study_config({**RATE_STUDY, "sweep": {"load.request_rate": [1, 0]}})


def test_the_dry_run_shows_three_load_plans(tmp_path: Path) -> None:
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(RATE_STUDY))
    result = CliRunner().invoke(app, ["run", str(path), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout, parse_constant=_not_json)
    loads = [e["load"] for e in plan["experiments"]]
    assert [load["request_rate"] for load in loads] == [1.0, 2.0, "Infinity"]
    assert all(load["slo_ms"] == {"ttft_ms": 500.0} for load in loads)
    resolved = build_study_config(RATE_STUDY).experiments_resolved
    expected = [plan_load(e.load, 10, e.random_seed).expected_duration_s for e in resolved]
    assert [load["expected_duration_s"] for load in loads] == expected
    assert expected[0] > expected[1] > 0 and expected[2] == 0.0  # inf: all at once

    result = CliRunner().invoke(app, ["run", str(path), "--dry-run"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "rate 1 req/s, poisson arrivals; SLO ttft_ms 500; lasts ≥" in result.output
    assert "rate 2 req/s, poisson arrivals" in result.output
    assert "rate inf: every request at once; SLO ttft_ms 500; duration depends on the engine" in (
        result.output
    )


def _not_json(constant: str) -> None:
    raise AssertionError(f"the plan is not valid JSON: it holds {constant}")


def test_a_manifest_keeps_an_inf_rate_so_a_resumed_study_can_run_it(tmp_path: Path) -> None:
    from datetime import datetime, timezone

    from llenergymeasure.config.models import ExperimentConfig
    from llenergymeasure.study.manifest import new_manifest, read_manifest, write_manifest

    study = build_study_config(RATE_STUDY)
    experiments = [c.model_dump(mode="json") for c in study.experiments_resolved]
    manifest = new_manifest("s", "h", {}, experiments, [(0, 0), (2, 0)], datetime.now(timezone.utc))
    write_manifest(manifest, tmp_path)
    again = read_manifest(tmp_path).experiments[2]
    assert ExperimentConfig.model_validate(again).load.request_rate == math.inf
