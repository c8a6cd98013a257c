"""Energy per request and per phase (harness.attribution): the pure model on hand-built
records and timelines, and whole runs on the shipped fake pynvml."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from llenergymeasure.backends.base import ProgressCallback
from llenergymeasure.config import ExperimentConfig
from llenergymeasure.datasets import Prompt
from llenergymeasure.devices import get_gpus
from llenergymeasure.energy import EnergyReading, EnergyTimeline, NullSampler
from llenergymeasure.energy.nvml import NvmlSampler
from llenergymeasure.harness import ExperimentRun, run_experiment
from llenergymeasure.harness.attribution import MODEL, attribute_energy
from llenergymeasure.harness.baseline import BaselineCache
from llenergymeasure.load import LoadPlan
from llenergymeasure.results.io import load_requests, write_experiment
from llenergymeasure.results.records import RequestRecord
from llenergymeasure.testing import FakeGpuSpec, install_fake_pynvml
from llenergymeasure.testing.fake_backend import ScriptedBackend
from llenergymeasure.testing.fake_energy import FakeClock

POWER_W = 100.0

# The fake NVML counter counts whole mJ (as the real one): each read is off by up to 0.5 mJ,
# and an interval's energy (linear between two reads at each end) by up to twice that.
COUNTER_RESOLUTION_J = 2 * 0.5e-3


# --- the model on hand-built records and timelines ------------------------------------------


def record(
    index: int, submit_s: float, times_s: list[float], input_tokens: int = 4, **fields: Any
) -> RequestRecord:
    return RequestRecord(
        index, input_tokens, len(times_s), submit_s, times_s, [1] * len(times_s),
        times_s[-1] if times_s else submit_s, **fields,
    )  # fmt: skip


def parts(r: RequestRecord) -> tuple[float, float, float, float]:
    """A record's attributed energy: in all, prefill, decode, overhead (all set)."""
    assert r.energy_j is not None and r.prefill_energy_j is not None
    assert r.decode_energy_j is not None and r.overhead_energy_j is not None
    return r.energy_j, r.prefill_energy_j, r.decode_energy_j, r.overhead_energy_j


def constant(start_s: float, end_s: float, power_w: float = POWER_W) -> EnergyTimeline:
    """Reads every 0.5 s at constant power, in the sampler's seconds."""
    times = [start_s + 0.5 * k for k in range(int((end_s - start_s) / 0.5) + 1)]
    return EnergyTimeline({"gpu:0": [(t, power_w * (t - start_s)) for t in [*times, end_s]]})


def reading_of(timeline: EnergyTimeline | None, total_j: float | None) -> EnergyReading:
    return EnergyReading("nvml", ["gpu:0"], total_j, {"gpu:0": total_j or 0.0}, 5.0, 10,
                         timeline=timeline)  # fmt: skip


def test_idle_time_before_between_and_after_the_requests_is_overhead_shared_by_tokens() -> None:
    # the sampler starts 0.5 s before the window; nothing runs until 1 s; a gap 3-4 s; tail
    records = [
        record(0, 1.0, [2.0, 3.0], input_tokens=6),  # 8 tokens in all
        record(1, 4.0, [4.5, 5.0], input_tokens=2),  # 4 tokens in all
    ]
    timeline = constant(0.0, 6.5)  # sampler seconds: window seconds -0.5 to 6.0
    attributed = attribute_energy(records, reading_of(timeline, 650.0), align_s=0.5)

    first, second = attributed.records
    idle_j = POWER_W * (1.5 + 1.0 + 1.0)  # before the first submit, the gap, after 5 s
    assert first.prefill_energy_j == pytest.approx(POWER_W * 1.0)  # submit to first token
    assert first.decode_energy_j == pytest.approx(POWER_W * 1.0)
    assert second.prefill_energy_j == pytest.approx(POWER_W * 0.5)
    assert second.decode_energy_j == pytest.approx(POWER_W * 0.5)
    assert first.overhead_energy_j == pytest.approx(idle_j * 8 / 12)
    assert second.overhead_energy_j == pytest.approx(idle_j * 4 / 12)
    for r in attributed.records:
        energy_j, prefill_j, decode_j, overhead_j = parts(r)
        assert energy_j == pytest.approx(prefill_j + decode_j + overhead_j)
    summary = attributed.summary
    assert summary is not None and summary.model == MODEL and summary.notes == []
    assert summary.energy_j == 650.0
    assert summary.overhead_energy_j == pytest.approx(idle_j)
    assert (summary.prefill_steps, summary.decode_steps) == (2, 2)
    assert (summary.prompt_tokens, summary.decode_tokens) == (8, 2)
    assert summary.energy_per_prompt_token_j == pytest.approx(POWER_W * 1.5 / 8)
    assert summary.energy_per_decode_token_j == pytest.approx(POWER_W * 1.5 / 2)
    assert summary.per_request.n == 2
    assert attributed.missing is None and attributed.energy_notes == []


def test_the_timeline_is_moved_into_window_seconds_by_align_s() -> None:
    # the sampler starts 0.5 s before the window, idle (0 W) until the window starts
    timeline = EnergyTimeline({"gpu:0": [(0.0, 0.0), (0.5, 0.0), (1.5, 100.0)]})
    attributed = attribute_energy([record(0, 0.0, [1.0])], reading_of(timeline, 100.0), align_s=0.5)

    (only,) = attributed.records
    assert only.prefill_energy_j == pytest.approx(100.0) and only.overhead_energy_j == 0.0


def test_a_step_that_prefills_while_others_decode_is_a_prefill_step_shared_by_tokens() -> None:
    records = [
        record(0, 0.0, [1.0, 2.0, 3.0], input_tokens=4),
        record(1, 1.5, [2.0, 3.0], input_tokens=6),  # prefilled in the step that ends at 2 s
    ]
    attributed = attribute_energy(records, reading_of(constant(0.0, 3.0), 300.0), align_s=0.0)

    a, b = attributed.records
    # step (1, 2]: a decodes 1 token, b prefills 6 prompt tokens -> 1/7 and 6/7
    assert a.prefill_energy_j == pytest.approx(POWER_W * (1.0 + 1.0 / 7))
    assert b.prefill_energy_j == pytest.approx(POWER_W * 6.0 / 7)
    # step (2, 3] only decodes, one token each
    assert a.decode_energy_j == b.decode_energy_j == pytest.approx(POWER_W * 0.5)
    assert a.overhead_energy_j == b.overhead_energy_j == 0.0
    summary = attributed.summary
    assert summary is not None
    assert (summary.prefill_steps, summary.decode_steps) == (2, 1)
    assert summary.prompt_tokens == 10 and summary.decode_tokens == 2
    assert summary.notes == [
        "1 of 2 prefill steps also decoded other requests (continuous batching): their energy "
        "counts as prefill energy"
    ]


def test_a_reading_that_differs_from_its_timeline_scales_every_attribution_and_says_so() -> None:
    records = [record(0, 0.0, [1.0, 2.0]), record(1, 0.0, [1.0, 2.0, 2.5])]
    attributed = attribute_energy(records, reading_of(constant(0.0, 3.0), 330.0), align_s=0.0)
    unscaled = attribute_energy(records, reading_of(constant(0.0, 3.0), 300.0), align_s=0.0)

    for scaled, plain in zip(attributed.records, unscaled.records, strict=True):
        assert parts(scaled) == pytest.approx(tuple(1.1 * j for j in parts(plain)))
    assert sum(r.energy_j or 0.0 for r in attributed.records) == pytest.approx(330.0, rel=1e-12)
    assert attributed.summary is not None and unscaled.summary is not None
    assert unscaled.summary.notes == []
    assert attributed.summary.notes == [
        "the energy timeline holds 300.000 J, the reading 330.000 J: every attribution is scaled "
        "by 1.100000 (+10.000%) to add up to it"
    ]


@pytest.mark.parametrize(
    ("timeline", "total_j", "records", "why"),
    [
        (None, 300.0, [record(0, 0.0, [1.0])], "the 'nvml' sampler reports only a total"),
        (None, None, [record(0, 0.0, [1.0])], "the 'nvml' sampler measured no energy"),
        (constant(0.0, 3.0), 300.0, [], "no request ran in the window"),
    ],
)
def test_without_a_timeline_energy_or_records_nothing_is_attributed_and_the_note_says_why(
    timeline: EnergyTimeline | None, total_j: float | None, records: list[RequestRecord], why: str
) -> None:
    attributed = attribute_energy(records, reading_of(timeline, total_j), align_s=0.0)

    assert attributed.summary is None and attributed.records == records
    assert all(r.energy_j is None and r.prefill_energy_j is None for r in attributed.records)
    assert len(attributed.energy_notes) == 1 and attributed.energy_notes[0].endswith(why)
    if records:
        assert "needs a sampler with an energy timeline (nvml, zeus, rapl)" in str(
            attributed.missing
        )


def test_a_request_that_failed_before_its_first_token_shares_only_the_overhead() -> None:
    records = [
        record(0, 0.0, [1.0, 2.0]),
        record(1, 0.0, [], error="HTTP 500"),
    ]
    attributed = attribute_energy(records, reading_of(constant(0.0, 3.0), 300.0), align_s=0.0)

    done, failed = attributed.records
    assert failed.prefill_energy_j == failed.decode_energy_j == 0.0
    assert failed.overhead_energy_j == pytest.approx(POWER_W * 1.0 * 4 / 10)  # the tail 2-3 s
    assert done.energy_j == pytest.approx(POWER_W * (2.0 + 1.0 * 6 / 10))
    summary = attributed.summary
    assert summary is not None and summary.per_request.n == 1  # completed requests only
    assert summary.prompt_tokens == 4  # the failed one never reached a prefill step


# --- whole runs on the fake pynvml ------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Sequential batch-1 requests: ``lengths[i]`` tokens each, a prefill step of
    ``prefill_s`` then decode steps of ``decode_s``; ``fail`` cuts request ``fail`` after its
    first token."""

    lengths: Sequence[int] = (3, 5, 2, 4)
    prefill_s: float = 0.3
    decode_s: float = 0.05
    fail: int | None = None

    def tokens(self, index: int) -> int:
        return 1 if index == self.fail else self.lengths[index % len(self.lengths)]

    def prefill_schedule(self, n: int, high_w: float, low_w: float) -> list[tuple[float, float]]:
        """Power ``high_w`` during each prefill step of an offline run from time 0."""
        schedule, start_s = [], 0.0
        for index in range(n):
            schedule += [(start_s, high_w), (start_s + self.prefill_s, low_w)]
            start_s += self.prefill_s + self.decode_s * (self.tokens(index) - 1)
        return schedule


class SequentialBackend(ScriptedBackend):
    """Runs one request after another on the shared fake clock (in rate mode each waits for
    its scheduled arrival, so the engine idles between requests), reading the energy sampler
    after every ``poll_every`` steps."""

    name = "fake"

    def __init__(self, clock: FakeClock, plan: Plan, poll: Callable[[], None], poll_every: int):
        self.clock, self.plan, self.poll, self.poll_every = clock, plan, poll, poll_every
        self.steps = 0
        self.started_s: float | None = None

    def prepare(self, prompts: Sequence[Prompt]) -> list[list[int]]:
        return [[p.index] * (5 + p.index) for p in prompts]

    def run(
        self,
        prompts: Sequence[list[int]],
        max_output_tokens: int,
        on_progress: ProgressCallback | None = None,
        load: LoadPlan | None = None,
        output_lengths: Sequence[int] | None = None,
    ) -> list[RequestRecord]:
        assert output_lengths is None, "this fake generates fixed lengths only"
        self.started_s = self.clock()
        offsets = load.offsets_s if load is not None else None
        records = []
        for index, prompt in enumerate(prompts):
            scheduled_s = None if offsets is None else self.started_s + offsets[index]
            if scheduled_s is not None:
                self.clock.now_s = max(self.clock.now_s, scheduled_s)
            records.append(self._request(index, prompt, scheduled_s))
        return records

    def _request(self, index: int, prompt: list[int], scheduled_s: float | None) -> RequestRecord:
        submit_s = self.clock()
        n = self.plan.tokens(index)
        times = [self._step(self.plan.prefill_s)]
        times += [self._step(self.plan.decode_s) for _ in range(n - 1)]
        error = "stream cut" if index == self.plan.fail else None
        return RequestRecord(index, len(prompt), n, submit_s, times, [1] * n, times[-1],
                             scheduled_s=scheduled_s, error=error)  # fmt: skip

    def _step(self, duration_s: float) -> float:
        now = self.clock.advance(duration_s)
        self.steps += 1
        if self.steps % self.poll_every == 0:
            self.poll()
        return now


@pytest.fixture(autouse=True)
def _all_devices_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def measure(
    tmp_path: Path,
    plan: Plan = Plan(),
    power_w: float | list[tuple[float, float]] = POWER_W,
    poll_every: int = 1,
    **fields: Any,
) -> ExperimentRun:
    """A run of the sequential backend, measured by the nvml sampler on the fake pynvml, with
    nothing before the window moving the clock (the window starts at the fake's time 0)."""
    config = ExperimentConfig.model_validate(
        {"model": "m", "n": 4, "max_output_tokens": 8, "warmup": {"n_warmup": 0},
         "baseline": {"enabled": False}, **fields}
    )  # fmt: skip
    clock = FakeClock()
    with install_fake_pynvml([FakeGpuSpec(power_w=power_w)], clock=clock):
        sampler = NvmlSampler(get_gpus(), 100, clock, background=False)
        backend = SequentialBackend(clock, plan, sampler.poll, poll_every)
        run = run_experiment(
            config, backend=backend, sampler_factory=lambda: sampler, clock=clock,
            sleep=lambda _: None, telemetry_sources=[],
            baseline_cache=BaselineCache(tmp_path / "b"),
        )  # fmt: skip
    assert backend.started_s == 0.0
    return run


def attributed_j(run: ExperimentRun) -> float:
    return sum(r.energy_j for r in run.records if r.energy_j is not None)


@pytest.mark.parametrize("poll_every", [1, 3])
def test_at_constant_power_a_sequential_run_gives_each_request_its_own_intervals_energy(
    tmp_path: Path, poll_every: int
) -> None:
    run = measure(tmp_path, poll_every=poll_every)

    for r in run.records:
        assert r.energy_j is not None and r.prefill_energy_j is not None
        assert abs(r.energy_j - POWER_W * (r.end_s - r.submit_s)) <= COUNTER_RESOLUTION_J
        assert abs(r.prefill_energy_j - POWER_W * 0.3) <= COUNTER_RESOLUTION_J
        assert r.overhead_energy_j == pytest.approx(0.0, abs=COUNTER_RESOLUTION_J)
    assert attributed_j(run) == pytest.approx(run.result.energy.energy_total_j, rel=1e-12)
    attribution = run.result.attribution
    assert attribution is not None and attribution.per_request.n == 4
    assert (attribution.prefill_steps, attribution.decode_steps) == (4, 10)


def test_a_profile_that_draws_more_while_prefilling_costs_more_per_prompt_token(
    tmp_path: Path,
) -> None:
    plan = Plan()
    flat = measure(tmp_path, plan)
    peaky = measure(tmp_path, plan, plan.prefill_schedule(4, high_w=4 * POWER_W, low_w=POWER_W))

    flat_a, peaky_a = flat.result.attribution, peaky.result.attribution
    assert flat_a is not None and peaky_a is not None
    assert flat_a.energy_per_prompt_token_j is not None
    assert peaky_a.energy_per_prompt_token_j is not None
    assert peaky_a.energy_per_prompt_token_j > flat_a.energy_per_prompt_token_j
    assert peaky_a.energy_per_prompt_token_j == pytest.approx(
        4 * flat_a.energy_per_prompt_token_j, rel=1e-4
    )
    assert peaky_a.energy_per_decode_token_j == pytest.approx(
        flat_a.energy_per_decode_token_j, rel=1e-4
    )


def test_a_rate_run_with_idle_gaps_adds_up_to_the_window_energy(tmp_path: Path) -> None:
    load = {"mode": "rate", "request_rate": 1, "arrival": "constant"}
    run = measure(tmp_path, Plan(lengths=(3,)), load=load)  # 0.4 s of work each second

    assert [r.submit_s for r in run.records] == pytest.approx([0.0, 1.0, 2.0, 3.0])
    assert attributed_j(run) == pytest.approx(run.result.energy.energy_total_j, rel=1e-12)
    attribution = run.result.attribution
    assert attribution is not None
    assert attribution.overhead_energy_j == pytest.approx(POWER_W * 0.6 * 3, abs=1e-3)
    assert all(r.overhead_energy_j and r.overhead_energy_j > 0 for r in run.records)


def test_a_run_with_a_failed_request_adds_up_to_the_window_energy(tmp_path: Path) -> None:
    run = measure(tmp_path, Plan(fail=1))

    assert [r.failed for r in run.records] == [False, True, False, False]
    assert run.records[1].energy_j == pytest.approx(POWER_W * 0.3, abs=COUNTER_RESOLUTION_J)
    assert attributed_j(run) == pytest.approx(run.result.energy.energy_total_j, rel=1e-12)
    attribution = run.result.attribution
    assert attribution is not None and attribution.per_request.n == 3


def test_without_a_timeline_the_run_has_no_attribution_and_its_energy_notes_say_why(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    backend = SequentialBackend(clock, Plan(), lambda: None, 1)
    config = ExperimentConfig.model_validate(
        {"model": "m", "n": 2, "warmup": {"n_warmup": 0}, "baseline": {"enabled": False}}
    )
    run = run_experiment(
        config, backend=backend, sampler_factory=lambda: NullSampler(clock), clock=clock,
        sleep=lambda _: None, telemetry_sources=[], baseline_cache=BaselineCache(tmp_path / "b"),
    )  # fmt: skip

    assert run.result.attribution is None
    assert all(r.energy_j is None for r in run.records)
    assert any("(nvml, zeus, rapl)" in note for note in run.result.energy.notes)


def test_requests_parquet_keeps_the_attributed_energies(tmp_path: Path) -> None:
    run = measure(tmp_path, Plan(fail=2))
    folder = write_experiment(run.result, run.records, tmp_path, "attributed", run.timeseries)

    loaded = load_requests(folder)
    assert loaded == run.records
    assert all(r.energy_j is not None and r.overhead_energy_j is not None for r in loaded)
