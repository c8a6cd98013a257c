"""execution.target_ci_pct: a study adds cycles of every configuration until each one's 95%
interval of J per output token is within the target, or max_cycles is reached, and then warns
ci_not_converged naming the configurations that missed it (#17).

The studies run real spawned children (:mod:`ci_targets`) that hand over results written
ahead of time with chosen J per output token, so the cycle a study stops at is known.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from ci_targets import ENV, calls_of, copy_prepared
from typer.testing import CliRunner

from llenergymeasure.backends.base import MemoryReading
from llenergymeasure.cli import app
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.config.study import build_study_config
from llenergymeasure.harness.metrics import compute_metrics
from llenergymeasure.results.io import write_experiment
from llenergymeasure.results.models import (
    EnergyMetrics,
    EnvironmentSnapshot,
    ExperimentResult,
    ModelInfo,
    PhaseTimings,
)
from llenergymeasure.results.records import RequestRecord
from llenergymeasure.results.stats import combined_ci95_half_width, summary_stats, t_quantile
from llenergymeasure.results.study import StudyEntry, StudyResult, token_energy_interval
from llenergymeasure.study import run_study

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
OUTPUT_TOKENS = 6  # 2 requests x 3 tokens


# --- the interval ---------------------------------------------------------------------------


def test_the_combined_half_width_adds_the_bound_as_a_uniform_error_to_the_spread() -> None:
    values = [1.0, 1.2, 1.1, 1.3]
    bounds = [0.1, 0.3, 0.2, 0.2]  # mean 0.2
    s = summary_stats(values).std
    assert s is not None
    expected = t_quantile(0.975, 3) * math.sqrt(s**2 / 4 + 0.2**2 / (3 * 4))
    assert combined_ci95_half_width(values, bounds) == pytest.approx(expected, rel=1e-12)
    # without a bound (or a zero one) it is the spread's Student-t interval
    spread_only = summary_stats(values).ci95_half_width
    assert combined_ci95_half_width(values) == pytest.approx(spread_only, rel=1e-12)
    assert combined_ci95_half_width(values, [0.0] * 4) == pytest.approx(spread_only, rel=1e-12)
    # identical values: the bound alone sets it
    assert combined_ci95_half_width([2.0, 2.0], [0.3, 0.3]) == pytest.approx(
        t_quantile(0.975, 1) * 0.3 / math.sqrt(6), rel=1e-12
    )
    assert combined_ci95_half_width([1.0], [0.1]) is None  # one cycle has no interval
    with pytest.raises(ValueError, match="one bound per value"):
        combined_ci95_half_width(values, [0.1])
    with pytest.raises(ValueError, match="negative"):
        combined_ci95_half_width([1.0, 2.0], [0.1, -0.1])


def make_result(
    name: str, token_j: float | None, bound_j: float | None = None, estimate: bool = False
) -> tuple[ExperimentResult, list[RequestRecord]]:
    """A run of ``name`` whose J per output token is ``token_j``, with the sampler's bound
    ``bound_j`` on it (per output token; None: the sampler states none)."""
    records = [RequestRecord(i, 10, 3, 0.0, [0.1, 0.15, 0.2], [1, 1, 1], 0.2) for i in range(2)]
    energy_j = None if token_j is None else token_j * OUTPUT_TOKENS
    method = "codecarbon" if estimate else "rapl"
    result = ExperimentResult(
        llem_version="test",
        config=ExperimentConfig.model_validate({"model": "tiny", "name": name}),
        measurement_config_hash="0" * 16,
        started_at=T0,
        ended_at=T0 + timedelta(seconds=4),
        measurement_method=method,
        model=ModelInfo(model_id="tiny", source_kind="test", dtype="fp32", device="cpu"),
        environment=EnvironmentSnapshot(python="3", os="test", machine="test"),
        timings=PhaseTimings(model_load_s=0.1, warmup_s=0.1, window_s=4.0),
        energy=EnergyMetrics(
            method=method,
            is_estimate=estimate,
            energy_total_j=energy_j,
            energy_adjusted_j=energy_j,
            uncertainty_j=None if bound_j is None else bound_j * OUTPUT_TOKENS,
        ),
        metrics=compute_metrics(records, 4.0, energy_j, MemoryReading(None, "test"), energy_j),
    )
    return result, records


def test_a_measured_interval_widens_by_the_bound_and_an_estimate_covers_only_the_spread() -> None:
    values = [1.0, 1.1, 1.05]
    measured = token_energy_interval([make_result("m", v, bound_j=0.05)[0] for v in values])
    assert measured.note is None
    assert measured.half_width_j == pytest.approx(combined_ci95_half_width(values, [0.05] * 3))
    assert measured.pct == pytest.approx(100 * measured.half_width_j / 1.05)

    spread = summary_stats(values).ci95_half_width
    estimated = token_energy_interval(
        [make_result("e", v, bound_j=0.05, estimate=True)[0] for v in values]
    )
    assert estimated.half_width_j == pytest.approx(spread)
    assert estimated.note is not None and "covers only the run-to-run spread" in estimated.note
    assert "estimate (codecarbon)" in estimated.note
    unbounded = token_energy_interval([make_result("u", v)[0] for v in values])
    assert unbounded.half_width_j == pytest.approx(spread)
    assert unbounded.note is not None and "states no uncertainty bound" in unbounded.note

    unmeasured = token_energy_interval([make_result("n", None)[0] for _ in values])
    assert (unmeasured.n, unmeasured.half_width_j, unmeasured.within(50.0)) == (0, None, False)
    assert not token_energy_interval([make_result("one", 1.0, 0.0)[0]]).within(50.0)


# --- studies --------------------------------------------------------------------------------


@pytest.fixture
def prepared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the children find their results (and record their calls)."""
    root = tmp_path / "prepared"
    root.mkdir()
    monkeypatch.setenv(ENV, str(root))
    return root


def prepare(root: Path, name: str, values: list[float | None], **energy: Any) -> None:
    """The results the runs of ``name`` hand over, in order; None: that run fails."""
    (root / name).mkdir()
    for k, token_j in enumerate(values, start=1):
        if token_j is not None:
            result, records = make_result(name, token_j, **energy)
            path = write_experiment(result, records, root / name, f"{name}-{k}")
            path.rename(root / name / str(k))


class Progress:
    """A study observer that keeps the notes and the totals it was shown."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.totals: list[tuple[int, int]] = []  # (total runs, cycles scheduled)

    def started(self, study_dir: str, total: int, already_done: int) -> None: ...
    def waiting(self, seconds: float, reason: str) -> None: ...
    def finished(self, entry: StudyEntry) -> None: ...
    def phase(self, name: str) -> None: ...

    def running(self, position: int, total: int, entry: StudyEntry, n_cycles: int) -> None:
        self.totals.append((total, n_cycles))

    def note(self, message: str) -> None:
        self.notes.append(message)


class StopAtCycle(Progress):
    """Interrupts the study as the first run of ``cycle`` (1-based) starts: the state a
    study killed there leaves behind."""

    def __init__(self, cycle: int) -> None:
        super().__init__()
        self.cycle = cycle

    def running(self, position: int, total: int, entry: StudyEntry, n_cycles: int) -> None:
        if entry.cycle_index + 1 == self.cycle:
            raise KeyboardInterrupt


def study(*names: str, **execution: Any) -> Any:
    return build_study_config({
        "name": "ci", "model": "tiny", "n": 2, "energy": {"sampler": "null"},
        "baseline": {"enabled": False},
        "experiments": [{"name": name, "n": n} for n, name in enumerate(names, start=1)],
        "execution": execution,
    })  # fmt: skip


def manifest(study_dir: Path) -> dict[str, Any]:
    return dict(json.loads((study_dir / "manifest.json").read_text()))


def aggregates(result: StudyResult) -> dict[str, Any]:
    return {a.experiment_name: a for a in result.experiments}


# "a" reaches ±10 % at 4 cycles (60 %, 11.8 %, 6.2 % after 2, 3, 4), "b" at 2 (8.2 %, its
# bound of 0.02 J/token included): the study runs 4 cycles of both, then stops.
A_VALUES: list[float | None] = [1.0, 1.1, 1.05, 1.05, 1.05]
B_VALUES: list[float | None] = [2.0, 2.02, 2.01, 2.01, 2.01]
TARGET = {"n_cycles": 2, "target_ci_pct": 10.0, "max_cycles": 8}


def test_cycles_are_added_until_every_configuration_converges_then_it_stops(
    prepared: Path, tmp_path: Path
) -> None:
    prepare(prepared, "a", A_VALUES, bound_j=0.0)
    prepare(prepared, "b", B_VALUES, bound_j=0.02)
    progress = Progress()
    result = run_study(study("a", "b", **TARGET), out_dir=tmp_path / "out",
                       observer=progress, target=copy_prepared)  # fmt: skip

    assert calls_of(prepared) == ["a", "b"] * 4  # interleaved, one cycle of both at a time
    assert result.n_cycles_run == 4 and result.target_ci_pct == 10.0
    assert result.warnings == []
    a, b = aggregates(result)["a"], aggregates(result)["b"]
    assert a.ci_converged is True and b.ci_converged is True
    assert a.energy_per_output_token_ci95_pct == pytest.approx(6.2, abs=0.05)
    assert b.energy_per_output_token_ci95_half_width_j == pytest.approx(
        combined_ci95_half_width([2.0, 2.02, 2.01, 2.01], [0.02] * 4)
    )
    assert a.energy_per_output_token_ci_note is None
    study_dir = Path(result.output_dir or "")
    assert manifest(study_dir)["execution"]["n_cycles"] == 4
    assert result.execution["n_cycles"] == 4
    # the observer saw the total grow, and why each cycle was added
    assert progress.totals == [(4, 2)] * 4 + [(6, 3)] * 2 + [(8, 4)] * 2
    assert len(progress.notes) == 2
    assert progress.notes[0].startswith("cycle 3 of at most 8 added (target ±10 %")
    assert "a ±60.5 %" in progress.notes[0] and "b " not in progress.notes[0]
    saved = json.loads((study_dir / "study_result.json").read_text())
    assert saved["n_cycles_run"] == 4 and saved["experiments"][0]["ci_converged"] is True


def test_a_study_that_never_converges_stops_at_max_cycles_and_names_what_missed(
    prepared: Path, tmp_path: Path
) -> None:
    prepare(prepared, "noisy", [1.0, 2.0, 1.0, 2.0], bound_j=0.0)
    prepare(prepared, "est", [3.0, 3.001, 3.0, 3.0], bound_j=1.0, estimate=True)
    prepare(prepared, "broken", [1.0, None, None, None], bound_j=0.0)  # fails after cycle 1
    execution = {**TARGET, "target_ci_pct": 1.0, "max_cycles": 3, "cycle_order": "sequential"}
    result = run_study(study("noisy", "est", "broken", **execution), out_dir=tmp_path / "out",
                       target=copy_prepared)  # fmt: skip

    # sequential: the first 2 cycles of each, then one added cycle of each, in order
    assert calls_of(prepared) == ["noisy", "noisy", "est", "est", "broken", "broken",
                                  "noisy", "est", "broken"]  # fmt: skip
    assert result.n_cycles_run == 3
    noisy, est, broken = (aggregates(result)[n] for n in ("noisy", "est", "broken"))
    assert (noisy.ci_converged, est.ci_converged, broken.ci_converged) == (False, True, False)
    (warning,) = result.warnings
    assert warning.code == "ci_not_converged"
    assert "after 3 cycles" in warning.message and "±1 %" in warning.message
    assert "2 of 3 configurations: noisy (±" in warning.message
    assert "broken (no interval: 1 cycles with a J per output token)" in warning.message
    assert "est" not in warning.message
    # the estimate's interval is the spread alone (its bound of 1 J/token would swamp it)
    assert est.energy_per_output_token_ci95_half_width_j == pytest.approx(
        est.energy_per_output_token_j.ci95_half_width
    )
    assert "covers only the run-to-run spread" in (est.energy_per_output_token_ci_note or "")
    assert noisy.energy_per_output_token_ci_note is None


def test_a_study_stopped_while_adding_cycles_resumes_them_then_top_up_and_resume_work(
    prepared: Path, tmp_path: Path
) -> None:
    prepare(prepared, "a", A_VALUES, bound_j=0.0)
    prepare(prepared, "b", B_VALUES, bound_j=0.02)
    with pytest.raises(KeyboardInterrupt):
        run_study(study("a", "b", **TARGET), out_dir=tmp_path / "out",
                  observer=StopAtCycle(3), target=copy_prepared)  # fmt: skip
    (study_dir,) = (tmp_path / "out").iterdir()
    stopped = manifest(study_dir)
    assert stopped["execution"]["n_cycles"] == 3  # the added cycle is recorded, pending
    assert [e["status"] for e in stopped["entries"]] == ["done"] * 4 + ["pending"] * 2

    def resume(**execution: Any) -> StudyResult:
        return run_study(study("a", "b", **{**TARGET, **execution}), out_dir=tmp_path,
                         resume=study_dir, target=copy_prepared)  # fmt: skip

    resumed = resume()  # runs the added cycle, adds a 4th, converges
    assert calls_of(prepared) == ["a", "b"] * 4
    assert resumed.n_cycles_run == 4 and resumed.warnings == []
    assert all(a.ci_converged for a in resumed.experiments)

    again = resume()  # converged: nothing runs
    assert calls_of(prepared) == ["a", "b"] * 4 and again.n_cycles_run == 4

    topped = resume(n_cycles=5)  # a top-up still adds exactly its cycles
    assert calls_of(prepared) == ["a", "b"] * 5
    assert topped.n_cycles_run == 5 and manifest(study_dir)["execution"]["n_cycles"] == 5
    assert [a.n_cycles_done for a in topped.experiments] == [5, 5]
    assert topped.mixed_execution == []  # n_cycles and the target change no run's protocol


def test_the_dry_run_states_the_target_and_the_cycle_limit(tmp_path: Path) -> None:
    data = {"name": "tight", "model": "smollm2-135m", "n": 4, "max_output_tokens": 8,
            "sweep": {"pytorch.batch_size": [1, 2]},
            "execution": {"n_cycles": 2, "target_ci_pct": 2.5, "max_cycles": 6}}  # fmt: skip
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["run", str(path), "--dry-run"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert "2 cycles" in result.output and "within ±2.5 %" in result.output
    assert "at most 6 cycles" in result.output
    assert "if the target adds all 6 cycles" in result.output
    plan = json.loads(CliRunner().invoke(app, ["run", str(path), "--dry-run", "--json"]).stdout)
    assert plan["cycle_limit"] == 6
    assert plan["max_total_time_s"] > 2.9 * plan["total_time_s"]  # 6 cycles, not 2


@pytest.mark.slow
def test_a_study_with_a_target_on_the_embedded_model_stops_by_itself(
    embedded_folder: Path, tmp_path: Path
) -> None:
    """The done-when check: a real study with target_ci_pct stops at or before max_cycles,
    each configuration converged or named in the warning."""
    data = {
        "name": "target",
        "model": "smollm2-135m",
        "n": 1,
        "max_output_tokens": 2,
        "warmup": {"n_warmup": 0},
        "baseline": {"enabled": False},
        "sweep": {"pytorch.batch_size": [1, 2]},
        "execution": {"n_cycles": 2, "target_ci_pct": 50.0, "max_cycles": 4},
    }
    study_file = tmp_path / "study.yaml"
    study_file.write_text(yaml.safe_dump(data))
    run = CliRunner().invoke(app, ["run", str(study_file), "--out", str(tmp_path / "o")])
    assert run.exit_code == 0, run.output
    (study_dir,) = (tmp_path / "o").iterdir()
    saved = json.loads((study_dir / "study_result.json").read_text())
    assert 2 <= saved["n_cycles_run"] <= 4
    assert saved["execution"]["n_cycles"] == saved["n_cycles_run"]
    warned = " ".join(w["message"] for w in saved["warnings"])
    for aggregate in saved["experiments"]:
        assert aggregate["n_cycles_done"] == saved["n_cycles_run"]
        assert aggregate["ci_converged"] or f"{aggregate['experiment_name']} (" in warned
    if saved["n_cycles_run"] < 4:  # stopped early: every configuration converged
        assert all(a["ci_converged"] for a in saved["experiments"]) and not warned
