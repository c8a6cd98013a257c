"""Every energy denominator and the energy attribution in results.parquet, study_result.json,
the results frame and the report: per-request energy as a distribution per configuration, the
prefill/decode split, and configurations without an attribution listed with the reason."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from report_fixtures import DURATION_S, make_result, records, write_study_of
from rich.console import Console

import llenergymeasure as llem
from llenergymeasure.backends.base import MemoryReading
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.harness.metrics import compute_metrics
from llenergymeasure.reporting.api import attribution_figures
from llenergymeasure.results.models import (
    EnergyAttribution,
    EnergyDistribution,
    ExperimentResult,
)
from llenergymeasure.results.records import RequestRecord
from llenergymeasure.results.study import load_study_result

IDLE_J = 8.0  # idle baseline × window, subtracted from every run's energy
PROMPT_TOKENS = 40  # 4 requests × 10 prompt tokens
DECODE_TOKENS = 12


def request_energies_j(cycle: int) -> list[float]:
    """What each of the 4 requests of a cycle is attributed: 15 + cycle J in all."""
    return [2.0, 3.0, 4.0, 6.0 + cycle]


POOLED_J = [e for cycle in range(3) for e in request_energies_j(cycle)]


def attributed_run(
    config: ExperimentConfig, cycle: int
) -> tuple[ExperimentResult, list[RequestRecord]]:
    """A run whose window energy (15 + cycle J) is attributed: 5 J to prefill steps, 9 + cycle
    J to decode-only steps, 1 J overhead; 8 J of it idle."""
    energies = request_energies_j(cycle)
    reqs = [
        replace(r, energy_j=e)
        for r, e in zip(records(4, 0.1 + 0.01 * cycle), energies, strict=True)
    ]
    total_j = sum(energies)
    attribution = EnergyAttribution(
        model="tokens in flight", energy_j=total_j, prefill_energy_j=5.0,
        decode_energy_j=9.0 + cycle, overhead_energy_j=1.0, prompt_tokens=PROMPT_TOKENS,
        decode_tokens=DECODE_TOKENS, energy_per_prompt_token_j=5.0 / PROMPT_TOKENS,
        energy_per_decode_token_j=(9.0 + cycle) / DECODE_TOKENS,
        per_request=EnergyDistribution(n=4, mean_j=total_j / 4, median_j=3.5, p95_j=5.0 + cycle),
        notes=["one step had no token counts"],
    )  # fmt: skip
    result = make_result(config, total_j, reqs)
    adjusted_j = total_j - IDLE_J
    result = result.model_copy(update={
        "energy": result.energy.model_copy(update={"energy_adjusted_j": adjusted_j}),
        "metrics": compute_metrics(reqs, DURATION_S, total_j, MemoryReading(None, "t"), adjusted_j),
        "attribution": attribution,
        "energy_timeline_file": "energy_timeline.parquet",
    })  # fmt: skip
    return result, reqs


def estimated_run(config: ExperimentConfig) -> tuple[ExperimentResult, list[RequestRecord]]:
    """A CodeCarbon run: a total only, no timeline, so no attribution."""
    reqs = records(4, 0.3)
    result = make_result(config, 20.0, reqs)
    energy = result.energy.model_copy(update={"method": "codecarbon", "is_estimate": True})
    return result.model_copy(update={"energy": energy}), reqs


def write_attribution_study(root: Path, partial: bool = False) -> Path:
    """Configurations 'timed' (attributed; with ``partial``, cycle 2 is not) and 'estimated'
    (CodeCarbon), 3 cycles each."""
    configs = [ExperimentConfig(model="tiny", name=name) for name in ("timed", "estimated")]

    def run(
        index: int, cycle: int, config: ExperimentConfig
    ) -> tuple[ExperimentResult, list[RequestRecord]]:
        if index == 1 or (partial and cycle == 2):
            return estimated_run(config)
        return attributed_run(config, cycle)

    return write_study_of(root / "attribution", configs, 3, run)


@pytest.fixture
def study(tmp_path: Path) -> Path:
    return write_attribution_study(tmp_path)


def test_results_parquet_has_every_denominator_and_the_attribution(study: Path) -> None:
    rows = pq.read_table(study / "results.parquet").to_pylist()
    timed = [r for r in rows if r["experiment_name"] == "timed"]
    estimated = [r for r in rows if r["experiment_name"] == "estimated"]
    for cycle, row in enumerate(timed):
        total_j = 15.0 + cycle
        assert row["energy_per_output_token_j"] == pytest.approx(total_j / 16)
        assert row["energy_per_output_token_adjusted_j"] == pytest.approx((total_j - IDLE_J) / 16)
        assert row["energy_per_total_token_j"] == pytest.approx(total_j / 56)  # 40 in + 16 out
        assert row["energy_per_total_token_adjusted_j"] == pytest.approx((total_j - IDLE_J) / 56)
        assert row["energy_per_request_j"] == pytest.approx(total_j / 4)
        assert row["energy_per_request_adjusted_j"] == pytest.approx((total_j - IDLE_J) / 4)
        assert row["energy_per_1k_requests_wh"] == pytest.approx(total_j / 4 * 1000 / 3600)
        assert row["energy_per_1k_requests_adjusted_wh"] == pytest.approx(
            (total_j - IDLE_J) / 4 * 1000 / 3600
        )
        assert (row["prefill_energy_j"], row["decode_energy_j"], row["overhead_energy_j"]) == (
            5.0, 9.0 + cycle, 1.0,
        )  # fmt: skip
        assert row["energy_per_prompt_token_j"] == pytest.approx(0.125)
        assert row["energy_per_decode_token_j"] == pytest.approx((9.0 + cycle) / 12)
        assert row["request_energy_median_j"] == 3.5 and row["request_energy_p95_j"] == 5.0 + cycle
    for row in estimated:
        assert row["energy_per_1k_requests_wh"] == pytest.approx(5.0 * 1000 / 3600)
        assert row["energy_per_1k_requests_adjusted_wh"] is None  # no baseline
        assert row["prefill_energy_j"] is None and row["request_energy_mean_j"] is None


def test_study_result_summarises_every_denominator_over_cycles(study: Path) -> None:
    timed, estimated = load_study_result(study).experiments
    assert timed.energy_per_request_j.mean == pytest.approx(4.0)  # (15 + 16 + 17) / 12
    assert timed.energy_per_request_adjusted_j.mean == pytest.approx(2.0)
    assert timed.energy_per_1k_requests_wh.mean == pytest.approx(4000 / 3600)
    assert timed.energy_per_1k_requests_adjusted_wh.n == 3
    assert timed.energy_per_total_token_j.mean == pytest.approx(16 / 56)
    assert timed.energy_per_total_token_adjusted_j.mean == pytest.approx(8 / 56)
    assert timed.energy_per_prompt_token_j.mean == pytest.approx(0.125)
    assert timed.energy_per_decode_token_j.mean == pytest.approx(10 / 12)
    assert estimated.energy_per_1k_requests_wh.mean == pytest.approx(5000 / 3600)
    assert estimated.energy_per_prompt_token_j.n == 0


def test_frame_carries_the_denominators_and_the_attribution(study: Path) -> None:
    frame = llem.load_results(study).set_index(["configuration", "cycle_index"])
    row = frame.loc[("timed", 1)]
    assert row["energy_per_1k_requests_wh"] == pytest.approx(4000 / 3600)
    assert row["energy_per_1k_requests_adjusted_wh"] == pytest.approx(2000 / 3600)
    assert (row["prefill_energy_j"], row["decode_energy_j"], row["overhead_energy_j"]) == (
        5.0, 10.0, 1.0,
    )  # fmt: skip
    assert row["request_energy_p95_j"] == 6.0
    assert math.isnan(frame.loc[("estimated", 0)]["prefill_energy_j"])


def printed(study: Path) -> tuple[llem.Report, str]:
    console = Console(width=250, record=True, color_system=None)
    outcome = llem.report(study, console=console)
    return outcome, " ".join(console.export_text().split())


def test_terminal_report_shows_every_denominator_gross_and_idle_adjusted(study: Path) -> None:
    outcome, text = printed(study)
    assert "energy per unit of work, gross and idle-adjusted" in text
    for header in ("J per output token", "J per token in+out", "J per request",
                   "Wh per 1,000 requests"):  # fmt: skip
        assert header in text
    # J per output token, per token in+out, per request; Wh per 1,000 requests: 15, 16, 17 J
    # over 16 output tokens, 56 tokens, 4 requests
    assert "│ timed │ gross │ 1 ± 0.16 │ 0.2857 ± 0.044 │ 4 ± 0.62 │ 1.111 ± 0.17 │" in text
    assert (
        "│ timed │ idle-adjusted │ 0.5 ± 0.16 │ 0.1429 ± 0.044 │ 2 ± 0.62 │ 0.5556 ± 0.17 │" in text
    )
    assert "│ estimated │ gross │ 1.25 ± 0 │ 0.3571 ± 0 │ 5 ± 0 │ 1.389 ± 0 │" in text
    assert "estimated │ idle-adjusted" not in text  # no baseline: no adjusted row
    (timed,) = [s for s in outcome.configurations if s.label == "timed"]
    assert timed.energy_per_unit["energy_per_1k_requests_wh"].mean == pytest.approx(4000 / 3600)


def test_terminal_report_shows_per_request_energy_and_the_phase_split(study: Path) -> None:
    outcome, text = printed(study)
    # 12 requests pooled: mean 4, median 3.5, p95 7.45 (linear), range 2–8
    assert "│ timed │ 12 │ 4 │ 3.5 │ 7.45 │ 2–8 │" in text
    assert "│ estimated │ — │ — │ — │ — │ — │" in text
    assert (
        "estimated: not attributed: the codecarbon sampler reports only the window's total, no "
        "energy timeline to attribute over"
    ) in text
    # prefill 5 J, decode 10 J on average, overhead 1 J: 31%, 62%, 6% of 16 J
    assert (
        "│ timed │ 5 ± 0 (31%) │ 10 ± 2.5 (62%) │ 1 ± 0 (6%) │ 0.125 ± 0 │ 0.8333 ± 0.21 │" in text
    )
    assert "timed: one step had no token counts" in text  # the attribution's own note, once
    assert text.count("one step had no token counts") == 1
    timed = next(v for v in outcome.attribution if v.configuration.label == "timed")
    assert timed.per_request.n == 12 and timed.per_request.p95_j == pytest.approx(7.45)
    assert timed.missing is None and timed.n_attributed == 3


def test_a_configuration_attributed_in_only_some_cycles_says_so(tmp_path: Path) -> None:
    outcome, text = printed(write_attribution_study(tmp_path, partial=True))
    timed = next(v for v in outcome.attribution if v.configuration.label == "timed")
    assert timed.n_attributed == 2 and timed.per_request.n == 8
    assert (
        "timed: only 2 of 3 done cycles carry an attribution; the figures cover those (the "
        "others: the codecarbon sampler reports only the window's total"
    ) in text


def test_a_report_without_any_attribution_lists_each_configuration_with_why(tmp_path: Path) -> None:
    configs = [ExperimentConfig(model="tiny", name="cc")]
    folder = write_study_of(tmp_path / "cc", configs, 2, lambda i, c, config: estimated_run(config))
    outcome, text = printed(folder)
    assert "no configuration has an energy attribution" in text
    assert "│ cc │ not attributed: the codecarbon sampler reports only" in text
    assert attribution_figures(outcome.attribution, "") == []


def test_html_report_draws_the_distribution_and_the_phase_split(
    study: Path, tmp_path: Path
) -> None:
    outcome = llem.report(study, html=tmp_path / "r.html", console=Console(quiet=True))
    assert outcome.html_path is not None
    page = outcome.html_path.read_text(encoding="utf-8")
    for shown in ("Energy per unit of work", "Energy per request and per phase",
                  "Wh per 1,000 requests", "1.111 ± 0.17", "7.45", "10 ± 2.5 (62%)",
                  "estimated: not attributed: the codecarbon sampler"):  # fmt: skip
        assert shown in page
    figures = {f.title: f for f in attribution_figures(outcome.attribution, "context")}
    assert list(figures) == [
        "Energy per request", "Energy per phase", "Energy per prompt token and per decode token"
    ]  # fmt: skip
    for title in figures:
        assert title in page
    (box,) = figures["Energy per request"].figure.data  # only the attributed configuration
    assert box.type == "box" and box.name == "timed" and list(box.y) == POOLED_J
    assert box.boxpoints == "all"
    assert "Not attributed (see the tables): estimated." in figures["Energy per request"].caption
    stacked = figures["Energy per phase"].figure
    assert stacked.layout.barmode == "stack"
    assert [(t.name, list(t.y)) for t in stacked.data] == [
        ("prefill", [5.0]), ("decode", [10.0]), ("overhead", [1.0])
    ]  # fmt: skip
    per_token = figures["Energy per prompt token and per decode token"].figure.data
    assert [t.name for t in per_token] == ["J per prompt token", "J per decode token"]
    assert list(per_token[0].y) == [pytest.approx(0.125)]
    assert list(per_token[1].y) == [pytest.approx(10 / 12)]
