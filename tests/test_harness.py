"""The harness with injected fakes: phase order, what the window contains, failure handling."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import time
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from llenergymeasure.backends.base import MemoryReading, ProgressCallback
from llenergymeasure.config import ExperimentConfig
from llenergymeasure.datasets import Prompt
from llenergymeasure.energy import EnergyReading, EnergyTimeline
from llenergymeasure.errors import BackendError
from llenergymeasure.harness import ExperimentRun, run_experiment
from llenergymeasure.harness.baseline import Baseline, BaselineCache
from llenergymeasure.harness.checks import baseline_warnings, window_warnings
from llenergymeasure.harness.environment import snapshot_environment
from llenergymeasure.harness.serving import peak_in_flight
from llenergymeasure.load import LoadPlan, drive
from llenergymeasure.results.io import (
    ENERGY_TIMELINE_FILE,
    load_energy_timeline,
    load_requests,
    load_result,
    write_experiment,
)
from llenergymeasure.results.models import ModelInfo
from llenergymeasure.results.records import RequestRecord
from llenergymeasure.testing.fake_backend import ScriptedBackend
from llenergymeasure.testing.fake_energy import FakeClock


class VirtualTime:
    """asyncio on the shared fake clock: ``sleep`` parks a task until the clock reaches its
    wake-up, and the clock jumps to the earliest wake-up once every ready task has run."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    async def sleep(self, delay_s: float) -> None:
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.clock() + delay_s, next(self._order), woken))
        await woken

    async def run(self, main: Awaitable[list[RequestRecord]]) -> list[RequestRecord]:
        task = asyncio.ensure_future(main)
        while True:
            for _ in range(20):  # what is ready runs first (a slot handed on takes a few steps)
                await asyncio.sleep(0)
            if task.done():
                return task.result()
            wake_s, _, woken = heapq.heappop(self._sleepers)  # IndexError: a task hangs
            self.clock.now_s = max(self.clock.now_s, wake_s)
            if not woken.done():
                woken.set_result(None)


class FakeBackend(ScriptedBackend):
    """Generates `tokens` tokens per prompt, one per `step_s` of the shared fake clock.

    Offline, prompts run one after another; with a load plan, through the shared load
    generator (``llenergymeasure.load.drive``) in virtual time, each request taking
    ``intake_s`` to reach the engine, then its tokens (``lengths[index % len]`` if given).
    """

    name = "fake"

    def __init__(
        self,
        clock: FakeClock,
        events: list[str],
        tokens: int = 4,
        step_s: float = 0.5,
        lengths: Sequence[int] = (),
        intake_s: float = 0.0,
    ):
        self.clock, self.events, self.tokens, self.step_s = clock, events, tokens, step_s
        self.lengths, self.intake_s = lengths, intake_s
        self.fail_on_measure = False

    def load(self, config: ExperimentConfig) -> ModelInfo:
        self.events.append("load")
        self.clock.advance(3.0)
        return ModelInfo(model_id=config.model, source_kind="fake", dtype="fp32", device="cpu")

    @property
    def concurrency(self) -> int:
        return 2

    def prepare(self, prompts: Sequence[Prompt]) -> list[list[int]]:
        self.events.append("prepare")
        return [[p.index] for p in prompts]

    def run(
        self,
        prompts: Sequence[list[int]],
        max_output_tokens: int,
        on_progress: ProgressCallback | None = None,
        load: LoadPlan | None = None,
        output_lengths: Sequence[int] | None = None,
    ) -> list[RequestRecord]:
        assert output_lengths is None, "this fake generates fixed lengths only"
        self.events.append(f"run:{len(prompts)}x{max_output_tokens}")
        if self.fail_on_measure and len(prompts) > 2:
            raise BackendError("boom")
        if load is not None and load.mode != "offline":
            return self._serve(prompts, load)
        records = []
        for p in prompts:
            submit = self.clock()
            times = [self.clock.advance(self.step_s) for _ in range(self.tokens)]
            records.append(
                RequestRecord(p[0], 10, self.tokens, submit, times, [1] * self.tokens, times[-1])
            )
        return records

    def _serve(self, prompts: Sequence[list[int]], load: LoadPlan) -> list[RequestRecord]:
        virtual = VirtualTime(self.clock)

        async def submit(index: int) -> RequestRecord:
            await virtual.sleep(self.intake_s)
            submit_s = self.clock()
            tokens = self.lengths[index % len(self.lengths)] if self.lengths else self.tokens
            times = []
            for _ in range(tokens):
                await virtual.sleep(self.step_s)
                times.append(self.clock())
            return RequestRecord(prompts[index][0], 10, tokens, submit_s, times, [1] * tokens,
                                 times[-1])  # fmt: skip

        return asyncio.run(
            virtual.run(drive(load, len(prompts), submit, self.clock, virtual.sleep))
        )

    def reset_peak_memory(self) -> None:
        self.events.append("reset_memory")

    def peak_memory(self) -> MemoryReading:
        return MemoryReading(42.0, "fake")

    def unload(self) -> None:
        self.events.append("unload")


class FakeSampler:
    """Reports a constant power over whatever the shared clock says the window lasted; with
    ``timeline_step_s``, also a timeline of reads that far apart (a constant-power line)."""

    name = "fake"

    def __init__(
        self,
        clock: FakeClock,
        events: list[str],
        power_w: float = 100.0,
        timeline_step_s: float | None = None,
    ):
        self.clock, self.events, self.power_w = clock, events, power_w
        self.timeline_step_s = timeline_step_s

    def start(self) -> None:
        self.events.append("sampler.start")
        self.t0 = self.clock()

    def stop(self) -> EnergyReading:
        self.events.append("sampler.stop")
        duration = self.clock() - self.t0
        energy = self.power_w * duration
        return EnergyReading(
            "fake", ["dev0"], energy, {"dev0": energy}, duration, 10, timeline=self._line(duration)
        )

    def _line(self, duration_s: float) -> EnergyTimeline | None:
        if self.timeline_step_s is None:
            return None
        times = [k * self.timeline_step_s for k in range(int(duration_s / self.timeline_step_s))]
        return EnergyTimeline({"dev0": [(t, self.power_w * t) for t in [*times, duration_s]]})


def setup(**fields: Any) -> tuple[ExperimentConfig, FakeClock, list[str], FakeBackend, FakeSampler]:
    config = ExperimentConfig.model_validate(
        {"model": "m", "n": 6, "max_output_tokens": 4, "warmup": {"n_warmup": 3}, **fields}
    )
    clock, events = FakeClock(), []
    return config, clock, events, FakeBackend(clock, events), FakeSampler(clock, events)


def test_phases_run_in_order_and_only_inference_is_inside_the_window(tmp_path: Path) -> None:
    config, clock, events, backend, sampler = setup(warmup={"n_warmup": 3, "thermal_floor_s": 7})
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    run = run_experiment(
        config,
        backend=backend,
        sampler_factory=lambda: sampler,
        clock=clock,
        sleep=sleep,
        telemetry_sources=[],
        baseline_cache=BaselineCache(tmp_path / "b.json"),
    )

    assert events == [
        "load", "prepare", "run:2x8", "run:2x8", "run:2x8",  # warmup: 3 runs of one batch
        "sampler.start", "sampler.stop",  # idle baseline, nothing running
        "reset_memory", "sampler.start", "run:6x4", "sampler.stop", "unload",
    ]  # fmt: skip
    assert slept == [7, 10.0]  # thermal floor, then the baseline window
    result = run.result
    assert result.timings.model_load_s == 3.0
    assert result.metrics.duration_s == pytest.approx(6 * 4 * 0.5)
    assert result.energy_total_j == pytest.approx(100.0 * 12.0)
    assert result.metrics.energy_per_output_token_j == pytest.approx(1200.0 / 24)
    # constant power throughout: the idle baseline explains all of it
    assert result.energy.baseline_power_w == pytest.approx(100.0)
    assert result.energy.energy_adjusted_j == pytest.approx(0.0)
    assert result.metrics.ttft.mean_s == pytest.approx(0.5)
    assert result.metrics.itl.median_s == pytest.approx(0.5)
    assert result.measurement_method == "fake" and result.metrics.peak_memory_mb == 42.0
    # records are stored relative to the window start
    assert run.records[0].submit_s == 0.0 and run.records[-1].end_s == pytest.approx(12.0)
    assert [r.index for r in run.records] == list(range(6))


def test_a_backend_failure_stops_the_sampler_unloads_and_propagates(tmp_path: Path) -> None:
    config, clock, events, backend, sampler = setup()
    backend.fail_on_measure = True
    with pytest.raises(BackendError, match="boom"):
        run_experiment(
            config,
            backend=backend,
            sampler_factory=lambda: sampler,
            clock=clock,
            sleep=lambda s: None,
            telemetry_sources=[],
            baseline_cache=BaselineCache(tmp_path / "b.json"),
        )
    assert events[-2:] == ["sampler.stop", "unload"]


def reading(energy_j: float | None, estimate: bool = False, samples: int = 50) -> EnergyReading:
    return EnergyReading("x", [], energy_j, {}, 1.0, samples, is_estimate=estimate, notes=["why"])


@pytest.mark.parametrize(
    ("energy_j", "estimate", "samples", "window_s", "codes"),
    [
        (10.0, False, 10, 10.0, set()),
        (10.0, False, 10, 9.9, {"short_window"}),
        (10.0, False, 9, 10.0, {"too_few_samples"}),
        (10.0, True, 50, 20.0, {"energy_estimated"}),
        (None, False, 0, 20.0, {"no_energy_source"}),
    ],
)
def test_window_warnings_trigger_at_their_thresholds(
    energy_j: float | None, estimate: bool, samples: int, window_s: float, codes: set[str]
) -> None:
    warnings = window_warnings(reading(energy_j, estimate, samples), window_s)
    assert {w.code for w in warnings} == codes


def test_environment_snapshot_records_software_and_cpu() -> None:
    env = snapshot_environment()
    assert env.python and env.cpu_cores_logical and env.memory_total_gb
    assert env.libraries["llenergymeasure"] is not None and "pydantic" in env.libraries


def test_a_cached_baseline_from_other_devices_is_reported_stale(tmp_path: Path) -> None:
    config, clock, _, backend, sampler = setup(warmup={"n_warmup": 1})
    cache = BaselineCache(tmp_path / "b.json")
    cached = Baseline(120.0, {"gpu:0": 60.0, "gpu:1": 60.0}, 10.0, time.time(), "fake")
    cache.put(cache.key("fake"), cached)  # measured when two GPUs were visible

    run = run_experiment(
        config, backend=backend, sampler_factory=lambda: sampler, clock=clock,
        sleep=clock.advance, telemetry_sources=[], baseline_cache=cache,
    )  # fmt: skip

    stale = [w.message for w in run.result.warnings if w.code == "baseline_stale"]
    assert len(stale) == 2 and run.result.energy.baseline_from_cache
    assert "covers gpu:0, gpu:1 but the window measured dev0" in stale[0]
    assert "(cached, 120.0 W) is above the window's mean power (100.0 W)" in stale[1]


def test_a_fresh_matching_baseline_is_not_stale(tmp_path: Path) -> None:
    config, clock, _, backend, sampler = setup(warmup={"n_warmup": 1})
    run = run_experiment(
        config, backend=backend, sampler_factory=lambda: sampler, clock=clock,
        sleep=clock.advance, telemetry_sources=[], baseline_cache=BaselineCache(tmp_path / "b"),
    )  # fmt: skip
    assert run.result.energy.baseline_power_w == pytest.approx(100.0)
    assert "baseline_stale" not in {w.code for w in run.result.warnings}


@pytest.mark.parametrize(
    ("domains", "power_w", "stale"),
    [
        ({"dev0": 50.0}, 50.0, 0),
        ({"dev0": 100.0}, 100.0, 0),  # equal to the window: idle explains everything, not stale
        ({"dev0": 50.0, "dev1": 50.0}, 100.0, 1),
        ({"dev0": 150.0}, 150.0, 1),
    ],
)
def test_baseline_warnings_thresholds(
    domains: dict[str, float], power_w: float, stale: int
) -> None:
    baseline = Baseline(power_w, domains, 10.0, 0.0, "fake", from_cache=True)
    window = EnergyReading("fake", ["dev0"], 1000.0, {"dev0": 1000.0}, 10.0, 50)
    assert len(baseline_warnings(baseline, window)) == stale
    assert baseline_warnings(None, window) == []


@pytest.mark.parametrize(
    ("domains", "busy_pct", "stale"),
    [
        ({"cpu": 30.0}, 80.0, 1),  # other processes kept the CPUs busy: not idle
        ({"cpu": 30.0}, 5.0, 0),
        ({"cpu": 30.0}, None, 0),  # unknown (old cache entry, or no real wait)
        ({"gpu:0": 30.0}, 80.0, 0),  # a GPU-only baseline does not care about CPU load
    ],
)
def test_a_baseline_taken_on_busy_cpus_is_stale(
    domains: dict[str, float], busy_pct: float | None, stale: int
) -> None:
    baseline = Baseline(30.0, domains, 10.0, 0.0, "fake", cpu_busy_pct=busy_pct)
    window = EnergyReading("fake", list(domains), 1000.0, {k: 1000.0 for k in domains}, 10.0, 50)
    found = baseline_warnings(baseline, window)
    assert len(found) == stale
    assert all(f"{busy_pct:.0f}% busy during the idle baseline" in w.message for w in found)


def test_cpu_busy_share_from_cpu_times() -> None:
    from collections import namedtuple

    from llenergymeasure.harness.baseline import cpu_busy_pct

    times = namedtuple("times", "user system idle iowait")
    before, after = times(10.0, 5.0, 100.0, 1.0), times(25.0, 10.0, 105.0, 1.0)  # 25 s, 5 idle
    assert cpu_busy_pct(before, after, expected_cpu_s=40.0) == pytest.approx(80.0)
    assert cpu_busy_pct(before, after, expected_cpu_s=100.0) is None  # the wait was not real


def test_a_baseline_cache_that_cannot_be_written_does_not_fail_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The baseline cache only saves time: a full disk there is logged, and the run goes on
    with the baseline it just measured."""
    import errno
    import os

    from llenergymeasure.harness import baseline as baseline_module

    def full(path: Path, text: str) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(baseline_module, "write_text_atomically", full)
    config, clock, _, backend, sampler = setup(baseline={"enabled": True, "duration_s": 1.0})
    cache = BaselineCache(tmp_path / "b.json")
    run = run_experiment(
        config, backend=backend, sampler_factory=lambda: sampler, clock=clock,
        sleep=clock.advance, telemetry_sources=[], baseline_cache=cache,
    )  # fmt: skip
    assert run.result.energy.baseline_power_w is not None
    assert "could not cache the idle baseline" in caplog.text and "ENOSPC" in caplog.text
    assert not (tmp_path / "b.json").exists()


def serve(tmp_path: Path, backend_options: dict[str, Any], **fields: Any) -> ExperimentRun:
    """A run of the fake backend through the load generator, with a timeline sampler."""
    config = ExperimentConfig.model_validate(
        {"model": "m", "n": 6, "max_output_tokens": 4, "warmup": {"n_warmup": 1}, **fields}
    )
    clock, events = FakeClock(), list[str]()
    return run_experiment(
        config,
        backend=FakeBackend(clock, events, **backend_options),
        sampler_factory=lambda: FakeSampler(clock, events, timeline_step_s=0.25),
        clock=clock,
        sleep=clock.advance,
        telemetry_sources=[],
        baseline_cache=BaselineCache(tmp_path / "b.json"),
    )


def test_a_concurrency_run_keeps_its_cap_and_measures_a_steady_state_inside_the_window(
    tmp_path: Path,
) -> None:
    run = serve(
        tmp_path,
        {"lengths": (2, 5, 3, 4), "intake_s": 0.05},
        load={"mode": "concurrency", "max_concurrency": 2},
    )
    result, serving = run.result, run.result.serving
    assert serving is not None and serving.mode == "concurrency"

    assert peak_in_flight(run.records) == serving.peak_in_flight == 2  # never above, reached
    steady = serving.steady_state
    assert steady is not None and steady.energy_j is not None
    assert 0 < steady.start_s < steady.end_s < result.metrics.duration_s  # strictly inside
    assert steady.energy_j == pytest.approx(100.0 * steady.duration_s)  # the sampler's 100 W
    assert steady.energy_uncertainty_j == pytest.approx(2 * 100.0 * 0.25)  # a read each end
    assert steady.energy_per_request_j == pytest.approx(steady.energy_j / steady.requests_completed)
    assert run.energy_timeline is not None
    assert "load_unsaturated" not in {w.code for w in result.warnings}


def test_a_rate_run_follows_its_schedule_and_judges_each_request(tmp_path: Path) -> None:
    load = {"mode": "rate", "request_rate": 2, "arrival": "constant", "slo": {"e2e_ms": 2000}}
    run = serve(tmp_path, {}, load=load)
    serving = run.result.serving
    assert serving is not None

    assert [r.scheduled_s for r in run.records] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert [r.submit_lag_s for r in run.records] == [0.0] * 6
    assert serving.requested_rate_rps == serving.scheduled_rate_rps == 2.0
    assert serving.achieved_rate_rps == pytest.approx(2.0)
    steady = serving.steady_state
    assert steady is not None and (steady.start_s, steady.end_s) == (2.0, 2.5)
    assert all(r.slo_met for r in run.records)  # each takes exactly 2 s
    assert serving.goodput is not None and serving.goodput.good_fraction == 1.0
    codes = {w.code for w in run.result.warnings}
    assert "steady_state_short" in codes  # 0.5 s of 4.5
    assert not codes & {"generator_lag", "rate_not_achieved"}


def test_a_late_generator_is_warned(tmp_path: Path) -> None:
    run = serve(tmp_path, {"intake_s": 0.05}, load={"mode": "rate", "request_rate": 2})
    serving = run.result.serving
    assert serving is not None and serving.submit_lag.p99_s == pytest.approx(0.05)
    assert "generator_lag" in {w.code for w in run.result.warnings}


def test_a_serving_runs_records_and_energy_timeline_are_written_and_read_back(
    tmp_path: Path,
) -> None:
    load = {"mode": "rate", "request_rate": 2, "arrival": "constant", "slo": {"ttft_ms": 400}}
    run = serve(tmp_path, {}, load=load)
    assert run.energy_timeline is not None
    folder = write_experiment(
        run.result, run.records, tmp_path, "serving", run.timeseries, run.energy_timeline.points
    )

    assert load_requests(folder) == run.records
    assert [r.slo_met for r in run.records] == [False] * 6  # the first token takes 500 ms
    assert run.result.energy_timeline_file == ENERGY_TIMELINE_FILE
    assert load_energy_timeline(folder) == {
        domain: list(line) for domain, line in run.energy_timeline.points.items()
    }
    loaded = load_result(folder)
    assert loaded.serving == run.result.serving and loaded.energy_timeline_file is not None


# ExperimentResult's fields as they were before serving runs existed (#15)
FIELDS_BEFORE_SERVING = {
    "schema_version", "llem_version", "config", "measurement_config_hash", "started_at",
    "ended_at", "measurement_method", "model", "environment", "timings", "energy", "metrics",
    "telemetry", "flops", "warnings", "requests_file", "timeseries_file",
}  # fmt: skip


def offline(tmp_path: Path, **fields: Any) -> tuple[ExperimentRun, list[str]]:
    config, clock, events, backend, sampler = setup(**fields)
    run = run_experiment(
        config, backend=backend, sampler_factory=lambda: sampler, clock=clock,
        sleep=clock.advance, telemetry_sources=[], baseline_cache=BaselineCache(tmp_path / "b"),
    )  # fmt: skip
    return run, events


def test_an_offline_result_is_unchanged_apart_from_the_new_null_fields(tmp_path: Path) -> None:
    run, events = offline(tmp_path)
    folder = write_experiment(run.result, run.records, tmp_path, "offline", run.timeseries)
    data = json.loads((folder / "result.json").read_text())

    new_fields = {"serving", "energy_timeline_file", "attribution", "contention"}
    assert set(data) == FIELDS_BEFORE_SERVING | new_fields | {"dataset", "lengths"}
    assert all(data[name] is None for name in new_fields)
    assert data["dataset"]["source"] == "builtin"  # where the prompts came from (#19)
    lengths = data["lengths"]  # the requests' lengths (#19): fixed, as before
    assert lengths["output_lengths"] == "fixed" and lengths["requested_output_tokens"] is None
    assert lengths["output_tokens"]["n"] == 6 and lengths["output_tokens"]["mean"] == 4.0
    assert not (folder / ENERGY_TIMELINE_FILE).exists()
    assert data["config"]["load"]["mode"] == "offline"
    assert "run:6x4" in events  # the backend's own batch run, not the load generator
    assert {w.code for w in run.result.warnings}.isdisjoint(
        {"steady_state_short", "load_unsaturated", "generator_lag", "rate_not_achieved"}
    )
    rows = pq.read_table(folder / "requests.parquet").to_pylist()
    assert all(row["scheduled_s"] is None and row["slo_met"] is None for row in rows)
    assert all(row["slot_wait_s"] == 0.0 and row["submit_lag_s"] is None for row in rows)

    explicit, _ = offline(tmp_path, load={"mode": "offline"})
    assert explicit.result.metrics == run.result.metrics and explicit.result.serving is None
