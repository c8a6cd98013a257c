"""What `llem` says: warnings one line per code (in full behind -v), --fresh-baseline, -h,
help text with literal brackets, and `llem config` views that never crop a value (#18)."""

from __future__ import annotations

import io
import json
import re
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from llenergymeasure.backends import BACKENDS, backend_status
from llenergymeasure.cli import app
from llenergymeasure.cli.app import _RUN_FIELD_HELP, FRESH_BASELINE
from llenergymeasure.cli.display import print_result
from llenergymeasure.config import ExperimentConfig, models
from llenergymeasure.config.loader import apply_overrides, build_experiment_config
from llenergymeasure.config.study import build_study_config
from llenergymeasure.config.user_config import ENV_VARIABLES, load_user_config
from llenergymeasure.energy import EnergyReading, probe_samplers
from llenergymeasure.harness import run_experiment
from llenergymeasure.harness.baseline import Baseline, BaselineCache
from llenergymeasure.parameters import introspection
from llenergymeasure.parameters.docs import format_constraints, format_value
from llenergymeasure.results.models import (
    EnergyMetrics,
    EnvironmentSnapshot,
    ExperimentResult,
    MeasurementWarning,
    ModelInfo,
    PerformanceMetrics,
    PhaseTimings,
)
from llenergymeasure.results.warning_codes import WarningCode
from llenergymeasure.testing.models import tiny_experiment

runner = CliRunner()
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def invoke(*args: str, columns: int = 80) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": str(columns)})
    return result.exit_code, result.output


# ---- item 8: warnings, one line per code ------------------------------------------------


STALE_1 = "the CPUs were 87% busy during the idle baseline (cached, 41.0 W): other processes"
STALE_2 = "the idle baseline (cached, 41.0 W) is above the window's mean power (30.2 W)"
BUSY = "other processes used 64% of the CPUs during the window (3 processes)"


def shared_machine_result(*warnings: tuple[str, str]) -> ExperimentResult:
    return ExperimentResult(
        llem_version="test",
        config=ExperimentConfig(model="some-org/some-model"),
        measurement_config_hash="0" * 16,
        started_at=T0,
        ended_at=T0,
        measurement_method="rapl",
        model=ModelInfo(model_id="m", source_kind="test", dtype="fp32", device="cpu"),
        environment=EnvironmentSnapshot(python="3", os="linux", machine="x86_64"),
        timings=PhaseTimings(model_load_s=1.0, warmup_s=1.0, window_s=45.0),
        energy=EnergyMetrics(method="rapl", scope=["cpu:package-0"], energy_total_j=1300.0),
        metrics=PerformanceMetrics(
            duration_s=45.0, n_requests=16, total_input_tokens=1000, total_output_tokens=2000
        ),
        warnings=[MeasurementWarning(code=code, message=message) for code, message in warnings],
        output_dir="results/some-model_20260101T000000",
    )


SHARED = (
    (WarningCode.BASELINE_STALE.value, STALE_1),
    (WarningCode.BASELINE_STALE.value, STALE_2),
    (WarningCode.CONTENTION.value, BUSY),
    (WarningCode.CO2_NOT_COMPUTED.value, "CO2 not computed: set carbon_intensity_g_per_kwh"),
)


def render(result: ExperimentResult, width: int, *, verbose: bool = False) -> str:
    buffer = io.StringIO()
    print_result(Console(file=buffer, width=width, color_system=None), result, verbose=verbose)
    return buffer.getvalue()


@pytest.mark.parametrize("width", [60, 80, 200])
def test_the_terminal_shows_one_line_per_warning_code_within_its_width(width: int) -> None:
    output = render(shared_machine_result(*SHARED), width)
    lines = [line for line in output.splitlines() if line.startswith("warning ")]

    assert [line.split(":")[0] for line in lines] == [
        "warning baseline_stale ×2",
        "warning contention",
        "warning co2_not_computed",
    ]
    assert all(len(line) <= width for line in lines)
    assert STALE_1 not in output and BUSY not in output  # the full texts are behind -v
    assert "llem run -v" in output and "results/some-model_20260101T000000/result.json" in output
    assert "--fresh-baseline" in output  # what re-measures a stale baseline
    if width == 200:  # wide enough for the whole meaning
        assert WarningCode.CONTENTION.meaning in output


def test_verbose_shows_every_warning_in_full_with_its_meaning() -> None:
    output = " ".join(render(shared_machine_result(*SHARED), 80, verbose=True).split())

    for _, message in SHARED:
        assert message in output
    assert " ".join(WarningCode.BASELINE_STALE.meaning.split()) in output


def test_a_code_from_a_newer_version_shows_its_message() -> None:
    output = render(shared_machine_result(("from_the_future", "a new caveat")), 80)

    assert "warning from_the_future: a new caveat" in output


def test_no_warnings_no_warning_lines() -> None:
    output = render(shared_machine_result(), 80)

    assert "warning" not in output and "llem run -v" not in output


def test_llem_run_prints_the_codes_and_writes_the_full_texts_and_v_shows_them(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    args = ["run", "--model", str(tiny_model_dir), "-n", "2", "--max-output-tokens", "2",
            "--sampler", "null", "--out", str(tmp_path)]  # fmt: skip
    code, output = invoke(*args)
    assert code == 0, output
    stored = stored_warnings(tmp_path)
    codes = list(dict.fromkeys(w["code"] for w in stored))
    assert codes and [line.split(":")[0].split()[1] for line in output.splitlines()
                      if line.startswith("warning ")] == codes  # fmt: skip
    assert all(w["message"] not in output for w in stored)

    code, verbose = invoke(*args, "-v", columns=400)
    assert code == 0, verbose
    assert all(w["message"] in verbose for w in stored_warnings(tmp_path))


def stored_warnings(out: Path) -> list[dict[str, str]]:
    """The warnings in the result.json of the newest result directory under ``out``."""
    newest = max(out.iterdir(), key=lambda folder: folder.stat().st_mtime_ns)
    warnings: list[dict[str, str]] = json.loads((newest / "result.json").read_text())["warnings"]
    return warnings


# ---- item 8: --fresh-baseline -----------------------------------------------------------


class ConstantSampler:
    """5 W for a 1 s window, whatever happens meanwhile (the harness sleeps are no-ops)."""

    name = "const"

    def start(self) -> None:
        pass

    def stop(self) -> EnergyReading:
        return EnergyReading("const", ["cpu"], 5.0, {"cpu": 5.0}, 1.0, 10)


def _run_with_cache(config: ExperimentConfig, cache: BaselineCache) -> ExperimentResult:
    return run_experiment(
        config, sampler_factory=ConstantSampler, telemetry_sources=[], baseline_cache=cache,
        sleep=lambda _s: None,
    ).result  # fmt: skip


def test_fresh_baseline_measures_a_new_baseline_and_the_result_records_it(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    cache = BaselineCache(tmp_path / "baselines.json")
    cache.put(cache.key("const"), Baseline(2.0, {"cpu": 2.0}, 10.0, time.time(), "const"))
    plain = build_experiment_config(tiny_experiment(tiny_model_dir, baseline={"enabled": True}))
    fresh = build_experiment_config(
        apply_overrides(tiny_experiment(tiny_model_dir), FRESH_BASELINE)
    )

    reused = _run_with_cache(plain, cache)
    assert reused.energy.baseline_from_cache and reused.energy.baseline_power_w == 2.0

    measured = _run_with_cache(fresh, cache)
    assert not measured.energy.baseline_from_cache and measured.energy.baseline_power_w == 5.0
    assert measured.config.baseline.enabled and measured.config.baseline.cache_ttl_s == 0
    recached = cache.get(cache.key("const"), 3600.0, time.time())
    assert recached is not None and recached.power_w == 5.0  # the new one replaced it


def test_fresh_baseline_reaches_the_recorded_config_of_a_run(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    code, output = invoke("run", "--model", str(tiny_model_dir), "-n", "2",
                          "--max-output-tokens", "2", "--sampler", "null", "--fresh-baseline",
                          "--out", str(tmp_path), "-q")  # fmt: skip
    assert code == 0, output
    stored = json.loads((Path(output.strip()) / "result.json").read_text(encoding="utf-8"))
    assert stored["config"]["baseline"] | {"duration_s": None} == {
        "enabled": True, "cache_ttl_s": 0.0, "duration_s": None,
    }  # fmt: skip


def test_fresh_baseline_reaches_every_experiment_of_a_study(tiny_model_dir: Path) -> None:
    study = tiny_experiment(tiny_model_dir, name="fresh", sweep={"n": [2, 3]})

    resolved = build_study_config(apply_overrides(study, FRESH_BASELINE)).experiments_resolved

    assert len(resolved) == 2
    assert all(e.baseline.enabled and e.baseline.cache_ttl_s == 0 for e in resolved)


# ---- item 9: -h, literal brackets ---------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["run"], ["config"], ["report"]])
def test_h_is_help(command: list[str]) -> None:
    code_h, short = invoke(*command, "-h")
    code_help, long = invoke(*command, "--help")

    assert code_h == code_help == 0
    assert short == long and "Usage: llem" in short


def test_help_keeps_literal_brackets_of_the_field_descriptions() -> None:
    code, output = invoke("run", "--help", columns=400)
    flat = " ".join(output.split())

    assert code == 0
    assert "'zeus' also needs llenergymeasure[zeus]." in flat
    for model_name, field in _RUN_FIELD_HELP.values():
        description = getattr(models, model_name).model_fields[field].description
        assert " ".join(description.split()) in flat


def test_escaping_help_does_not_accumulate_over_calls() -> None:
    for _ in range(2):
        _, output = invoke("run", "--help", columns=400)
        assert "llenergymeasure[zeus]" in output and "\\[" not in output


# ---- item 9: `llem config` views never crop a value ---------------------------------------


def words(output: str) -> set[str]:
    """The output's whitespace-separated words, table borders removed."""
    return set(re.split(r"[\s│┃]+", output))


def assert_every_word_whole(output: str, cells: list[str]) -> None:
    shown = words(output)
    missing = {word for cell in cells for word in cell.split() if word not in shown}
    assert not missing, f"cropped or split: {sorted(missing)[:10]}"
    assert "…" not in output


@pytest.mark.parametrize("width", [60, 80, 200])
@pytest.mark.parametrize("backend", ["pytorch", None])
def test_config_params_shows_every_name_default_and_description_whole(
    width: int, backend: str | None
) -> None:
    code, output = invoke("config", "--params", *([backend] if backend else []), columns=width)

    assert code == 0
    assert all(len(line) <= width for line in output.splitlines())
    cells = []
    for info in introspection.parameters(backend):
        cells += [info.path, info.annotation, format_value(info.default), info.description]
        cells += [format_constraints(info)]
        assert info.path in words(output)
    assert_every_word_whole(output, cells)


@pytest.mark.parametrize("width", [60, 80, 200])
def test_config_shows_every_backend_sampler_and_setting_whole(width: int) -> None:
    code, output = invoke("config", columns=width)

    assert code == 0
    cells: list[str] = []
    for name in BACKENDS:
        status = backend_status(name)
        cells += [name, status.install_hint if not status.installed else ""]
        cells += [", ".join(f"{k} {v or '—'}" for k, v in status.versions.items())]
    for name, availability in probe_samplers().items():
        cells += [name, availability.reason]
    settings = load_user_config()
    for key, value in settings.values().items():
        cells += [key, "—" if value is None else str(value), ENV_VARIABLES[key]]
    assert_every_word_whole(output, cells)
