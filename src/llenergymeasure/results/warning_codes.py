"""The measurement-warning codes: the one list of them, each with its one-line meaning.

A result's warnings carry one of these codes (for machines) and a message with the figures
of that run (for people). The code is the stable part: reports show its meaning beside the
message, and the README's warnings table lists exactly these codes (a test checks both ways).

A result written by a newer version may carry a code this list lacks; loading keeps it
(:class:`~llenergymeasure.results.models.MeasurementWarning` stores the code as text) and
:func:`warning_meaning` returns None for it.
"""

from __future__ import annotations

from enum import Enum


class WarningCode(str, Enum):
    """A measurement-warning code; ``.value`` is the stored text, ``.meaning`` one line."""

    meaning: str

    def __new__(cls, code: str, meaning: str) -> WarningCode:
        member = str.__new__(cls, code)
        member._value_ = code
        member.meaning = meaning
        return member

    def __str__(self) -> str:
        return str(self.value)

    # The measured window and the energy figure.
    SHORT_WINDOW = (
        "short_window",
        "the measured window was short: counter granularity and start/stop effects weigh "
        "heavily (use more prompts)",
    )
    TOO_FEW_SAMPLES = (
        "too_few_samples",
        "the energy sampler read its counters or power only a few times in the window: the "
        "figure is coarse",
    )
    ENERGY_ESTIMATED = (
        "energy_estimated",
        "the energy is modelled (e.g. TDP x CPU load), not measured",
    )
    NO_ENERGY_SOURCE = (
        "no_energy_source",
        "no energy was measured (no sampler works here, or the null sampler): energy fields "
        "are null",
    )
    SERVER_REMOTE = (
        "server_remote",
        "the measured server runs on another machine (server.url): energy is null, timing is "
        "still measured",
    )
    # The samplers' own.
    SAMPLER_FAILED = (
        "sampler_failed",
        "the energy sampler failed during the window: the energy covers only part of it, or "
        "is null",
    )
    COUNTER_MISMATCH = (
        "counter_mismatch",
        "a GPU's energy counter and its integrated power disagree beyond the nvml sampler's "
        "tolerance; the counter is reported",
    )
    SIMULATED_DEVICE = (
        "simulated_device",
        "the GPU readings come from llenergymeasure's fake pynvml: the energy is synthetic",
    )
    # The idle baseline and CO2.
    BASELINE_MISSING = (
        "baseline_missing",
        "no idle baseline (disabled, or no energy measured): energy_adjusted_j is null and the "
        "totals include idle power",
    )
    BASELINE_STALE = (
        "baseline_stale",
        "the idle baseline does not fit the window (other devices, above the window's mean "
        "power, or taken while other processes kept the CPUs busy): energy_adjusted_j "
        "subtracts the wrong idle power",
    )
    CO2_NOT_COMPUTED = (
        "co2_not_computed",
        "no grid carbon intensity was given, so CO2 is null (no default is invented)",
    )
    # The devices' state.
    THERMAL_DRIFT = (
        "thermal_drift",
        "the device temperature drifted during the window: warm up longer or add thermal_floor_s",
    )
    THROTTLING = (
        "throttling",
        "GPU clocks were throttled during part of the window",
    )
    NOT_STABLE = (
        "not_stable",
        "a stability wait was asked for, but temperature/power still varied when it timed out",
    )
    STABILITY_UNKNOWN = (
        "stability_unknown",
        "a stability wait was asked for, but no telemetry reports temperature or power to "
        "judge it by",
    )
    PERSISTENCE_MODE_OFF = (
        "persistence_mode_off",
        "a GPU has persistence mode off and re-initialises between uses (nvidia-smi -pm 1)",
    )
    # The load of a serving run (load.mode rate or concurrency).
    STEADY_STATE_SHORT = (
        "steady_state_short",
        "the steady-state window of a serving run was short (or empty): ramp-up and drain "
        "weigh on the figures",
    )
    LOAD_UNSATURATED = (
        "load_unsaturated",
        "fewer requests were in flight in the steady state than load.max_concurrency allows: "
        "the cap was not kept full",
    )
    GENERATOR_LAG = (
        "generator_lag",
        "the load generator submitted requests later than their scheduled arrivals",
    )
    RATE_NOT_ACHIEVED = (
        "rate_not_achieved",
        "requests arrived more slowly than the seeded schedule's own rate",
    )
    # The requests.
    REQUESTS_FAILED = (
        "requests_failed",
        "some requests failed (an HTTP error, a stream cut mid-way, a timeout): the figures "
        "count only the completed ones, and the error rate says how many failed",
    )
    # The machine during the window.
    CONTENTION = (
        "contention",
        "processes outside this run used a share of the CPUs (or held the GPU) during the "
        "window: the energy and throughput include their effect",
    )
    # A study's cycles.
    CI_NOT_CONVERGED = (
        "ci_not_converged",
        "execution.max_cycles was reached before the 95% interval of J per output token "
        "was within execution.target_ci_pct for every configuration",
    )
    # The software and the configuration.
    UNTESTED_VERSION = (
        "untested_version",
        "a backend library is outside the version range llenergymeasure is tested with "
        "(measured with LLEM_ALLOW_UNTESTED=1)",
    )
    GREEDY_IGNORES_SAMPLING = (
        "greedy_ignores_sampling",
        "sampling fields are set but decoder.do_sample is false: they do not act",
    )
    NO_BEAMS_IGNORES_BEAM_FIELDS = (
        "no_beams_ignores_beam_fields",
        "beam-search fields are set but decoder.num_beams is 1: they do not act",
    )


_BY_TEXT: dict[str, WarningCode] = {code.value: code for code in WarningCode}


def warning_code(code: str) -> WarningCode:
    """The listed code spelled ``code``.

    Raises:
        ValueError: ``code`` is not a listed warning code (add it to :class:`WarningCode`).
    """
    listed = _BY_TEXT.get(code)
    if listed is None:
        raise ValueError(
            f"unknown measurement-warning code {code!r}: add it to "
            "llenergymeasure.results.warning_codes.WarningCode"
        )
    return listed


def warning_meaning(code: str) -> str | None:
    """The one-line meaning of a stored code; None for a code this version does not list."""
    listed = _BY_TEXT.get(code)
    return None if listed is None else listed.meaning
