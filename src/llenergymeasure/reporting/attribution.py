"""The attribution view: where each configuration's energy went, per request and per phase.

Read from the energy attribution the results carry (``ExperimentResult.attribution``; the model
is ``harness.attribution``'s, described in the README): the energy attributed to each completed
request (``requests.parquet`` ``energy_j``), pooled over every done cycle, as a distribution;
and the window's energy split into the steps that ran a prefill, the steps that only decoded and
the overhead no step claims, with J per prompt token and J per decode token, over cycles. A
configuration whose results carry no attribution (its sampler keeps no energy timeline, e.g.
CodeCarbon) is listed with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from llenergymeasure.reporting.summary import ConfigurationSummary, cycle_values
from llenergymeasure.results.models import EnergyDistribution, ExperimentResult
from llenergymeasure.results.stats import Summary, energy_distribution, summary_stats

PHASES = (
    ("prefill", "prefill_energy_j"),
    ("decode", "decode_energy_j"),
    ("overhead", "overhead_energy_j"),
)
"""Each part of the split and its results column: steps that ran a prefill, steps that only
decoded, energy no step claims."""


@dataclass(frozen=True)
class ConfigurationAttribution:
    """One configuration's attributed energy.

    Attributes:
        configuration: its summary.
        n_attributed: done cycles whose result carries an attribution.
        per_request: energy per completed request over every done cycle's requests (J).
        phases: each :data:`PHASES` column -> the part of the window's energy (J) over the
            attributed cycles.
        energy_per_prompt_token_j: prefill energy ÷ prompt tokens prefilled, over cycles.
        energy_per_decode_token_j: decode-only energy ÷ the tokens those steps produced.
        missing: a sentence saying why no done cycle (or only some) carries an attribution;
            None when every one does.
        notes: the attribution's own notes, as the results give them, each once.
    """

    configuration: ConfigurationSummary
    n_attributed: int
    per_request: EnergyDistribution
    phases: dict[str, Summary]
    energy_per_prompt_token_j: Summary
    energy_per_decode_token_j: Summary
    missing: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def attributed(self) -> bool:
        """Some done cycle carries an attribution."""
        return self.n_attributed > 0

    def share(self, column: str) -> float | None:
        """A part of the split as a fraction of the three parts' sum (None without)."""
        means = [self.phases[c].mean for _, c in PHASES]
        part = self.phases[column].mean
        if part is None or any(m is None for m in means):
            return None
        total = sum(m for m in means if m is not None)
        return part / total if total else None


def attribution_view(
    summaries: Sequence[ConfigurationSummary], results: Mapping[str, Sequence[ExperimentResult]]
) -> list[ConfigurationAttribution]:
    """Per configuration (in the summaries' order), its attributed energy.

    Args:
        summaries: the report's configurations.
        results: each configuration's done results, by label (unreadable ones left out).
    """
    return [_configuration(s, results.get(s.label) or []) for s in summaries]


def _configuration(
    summary: ConfigurationSummary, runs: Sequence[ExperimentResult]
) -> ConfigurationAttribution:
    done = summary.done
    attributed = [r for r in runs if r.attribution is not None]
    notes = [n for r in attributed for n in (r.attribution.notes if r.attribution else [])]
    return ConfigurationAttribution(
        configuration=summary,
        n_attributed=len(attributed),
        per_request=energy_distribution(summary.request_energy_j),
        phases={column: summary_stats(cycle_values(done, column)) for _, column in PHASES},
        energy_per_prompt_token_j=summary_stats(cycle_values(done, "energy_per_prompt_token_j")),
        energy_per_decode_token_j=summary_stats(cycle_values(done, "energy_per_decode_token_j")),
        missing=_missing(summary, runs, len(attributed)),
        notes=list(dict.fromkeys(notes)),
    )


def _missing(
    summary: ConfigurationSummary, runs: Sequence[ExperimentResult], n_attributed: int
) -> str | None:
    """Why some or every done cycle has no attribution (None when every one has)."""
    if summary.n_cycles == 0:
        return "not attributed: no done cycle"
    unattributed = [r for r in runs if r.attribution is None]
    if n_attributed == summary.n_cycles:
        return None
    reason = missing_reason(unattributed[0]) if unattributed else "its results are unreadable"
    if n_attributed == 0:
        return f"not attributed: {reason}"
    return (
        f"only {n_attributed} of {summary.n_cycles} done cycles carry an attribution; the "
        f"figures cover those (the others: {reason})"
    )


def missing_reason(result: ExperimentResult) -> str:
    """Why a result carries no energy attribution, in words."""
    energy = result.energy
    if energy.energy_total_j is None:
        return "no energy was measured"
    if result.energy_timeline_file is None:
        return (
            f"the {energy.method} sampler reports only the window's total, no energy timeline "
            "to attribute over"
        )
    return "its result has an energy timeline but no attribution (written by an older version)"
