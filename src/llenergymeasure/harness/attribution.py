"""Energy per request and per phase: the measured window's energy timeline split over its
requests, and over the steps that ran prefills and those that only decoded.

Every time here is in seconds from the measured window's start (the records' clock). The
energy timeline's zero is the sampler's ``start()``, whose samplers take their zero as the
call begins, at most ``align_s`` before the window's zero: the timeline is shifted by
``-align_s`` into window seconds.

**Steps.** The engine's output comes in steps: every distinct time at which any request
received an output chunk is the end of a step. The window is cut at the step ends into
intervals ``(t[k-1], t[k]]``, the first starting where the timeline starts (so nothing before
the first step is lost).

**Tokens processed.** At a step, a request with a chunk there processed: for its first chunk,
its prompt tokens plus the chunk's tokens after the first (a prefill counts its prompt
tokens at the step that produced its first token); for a later chunk, the chunk's tokens (a
decode step is one token per request; a backend that delivers several at once counts them
all). A step *ran a prefill* when some request received its first chunk there; otherwise it
*only decoded*. A step that ran a prefill while other requests decoded (continuous batching)
counts as a prefill step, and the result says so.

**Attribution.** A request is in flight from its ``submit_s`` to its ``end_s``. Of each
interval, the energy of the time when some request is in flight goes to the requests with a
chunk at the interval's end, in proportion to the tokens each processed there; it is their
prefill energy if the step ran a prefill, else their decode energy. The rest is overhead: the
time when no request is in flight (before the first submission, idle gaps between arrivals
in rate mode), the tail after the last step to the timeline's end, and a step whose chunks
carry no tokens. Overhead is shared by all requests in proportion to their tokens (prompt +
output). Failed requests take part: they drew energy too.

**Energy of a sub-interval** is the timeline's cumulative energy (summed over its domains,
linear between reads, held at its first and last values outside its span) at its end minus
at its start, so the attributions telescope to the timeline's total. Where that total differs
from the reading's ``energy_total_j`` (a sampler whose timeline is built differently from its
total, or rounding), every attribution is scaled by their ratio and a note says by how much;
the attributions then add up to the window's energy by construction.

**Assumptions and limits.** Power is shared by tokens within a step: a prompt token costs as
much as a decoded one at the same step, and a request's KV-cache length does not weigh. A
step is known only from timestamps: two requests' chunks of one engine step count as one step
only when the backend stamps them at the same instant (the in-process engines stamp a batch's
step once; a server's streamed chunks arrive apart, so each becomes a step of its own and the
energy since the previous arrival goes to that one request, which skews the per-request split
but not the totals). The energy between reads is linear, so a phase shorter than the read
spacing is smeared over its neighbours. Energy that no step claims is overhead, not idle:
subtracting the idle baseline is a separate figure (``energy_adjusted_j``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from llenergymeasure.energy.base import EnergyReading
from llenergymeasure.energy.timeline import EnergyTimeline
from llenergymeasure.harness.metrics import per_unit
from llenergymeasure.results.models import EnergyAttribution
from llenergymeasure.results.records import RequestRecord
from llenergymeasure.results.stats import completed, energy_distribution

MODEL = (
    "steps are the distinct output-chunk times; the energy since the previous step while "
    "requests are in flight goes to the requests with a chunk at the step, by tokens processed "
    "(a first chunk counts the prompt); steps with a first token are prefill steps, the others "
    "decode steps; the energy with no request in flight and after the last step is overhead, "
    "shared by prompt + output tokens"
)
"""The attribution rule, in words (``EnergyAttribution.model``)."""

SCALE_TOLERANCE = 1e-9
"""Relative difference between the timeline's total and the reading's below which nothing is
scaled."""

Floats = npt.NDArray[np.float64]
Cumulative = Callable[[Floats], Floats]


@dataclass(frozen=True)
class Attributed:
    """The window's records with their attributed energies, and the summary.

    Attributes:
        records: the records, ``energy_j`` and its parts set (left None without a summary).
        summary: the result's ``attribution``; None when nothing could be attributed.
        missing: why there is no summary (None when there is one).
    """

    records: list[RequestRecord]
    summary: EnergyAttribution | None
    missing: str | None = None

    @property
    def energy_notes(self) -> list[str]:
        """The line the result's energy notes gain: why no per-request energy (or none)."""
        return [self.missing] if self.missing is not None else []


@dataclass(frozen=True)
class _Chunks:
    """Every output chunk of every record, flattened, with the step it ended."""

    record: npt.NDArray[np.intp]
    tokens: Floats
    weight: Floats
    first: npt.NDArray[np.bool_]
    step: npt.NDArray[np.intp]


@dataclass(frozen=True)
class _Steps:
    """The window's steps: when each ended, the tokens processed at it, whether it ran a
    prefill (and also decoded: mixed), and its active energy."""

    time_s: Floats
    weight: Floats
    prefill: npt.NDArray[np.bool_]
    mixed: npt.NDArray[np.bool_]
    active_j: Floats


def attribute_energy(
    records: Sequence[RequestRecord], reading: EnergyReading, align_s: float
) -> Attributed:
    """Attribute the window's energy to its requests and to prefill and decode steps (see the
    module docstring for the model).

    Args:
        records: the window's records, times from the window's start, failed ones included.
        reading: the window's energy reading, with its timeline (seconds from the sampler's
            start).
        align_s: how far before the window's zero the sampler's zero may lie.

    Returns:
        The records with ``energy_j``, ``prefill_energy_j``, ``decode_energy_j`` and
        ``overhead_energy_j`` set, and the summary; without a timeline, energy or records,
        the records unchanged, no summary and why.
    """
    missing = _missing(records, reading)
    if missing is not None:
        return Attributed(list(records), None, missing)
    assert reading.timeline is not None and reading.energy_total_j is not None
    cumulative, span_s = _cumulative(reading.timeline.shifted(-align_s))
    chunks, step_times_s = _chunks(records)
    steps, overhead_j = _steps(records, chunks, step_times_s, cumulative, span_s)
    start_j, end_j = cumulative(np.array(span_s))
    measured_j = float(end_j - start_j)
    if measured_j == 0 and reading.energy_total_j != 0:
        why = f"its timeline holds no energy while the reading has {reading.energy_total_j:.3f} J"
        return Attributed(list(records), None, f"no per-request energy: {why}")
    factor, notes = _scale(measured_j, reading.energy_total_j)
    attributed = _per_record(records, chunks, steps, overhead_j * factor, factor)
    summary = _summary(attributed, chunks, steps, reading.energy_total_j, notes)
    return Attributed(attributed, summary)


def _missing(records: Sequence[RequestRecord], reading: EnergyReading) -> str | None:
    """Why no energy can be attributed (None when it can)."""
    needs = "per-request energy needs a sampler with an energy timeline (nvml, zeus, rapl)"
    if reading.energy_total_j is None:
        return f"{needs}: the '{reading.method}' sampler measured no energy"
    if reading.timeline is None or not any(reading.timeline.points.values()):
        return f"{needs}: the '{reading.method}' sampler reports only a total"
    if not records:
        return "no per-request energy: no request ran in the window"
    return None


def _cumulative(timeline: EnergyTimeline) -> tuple[Cumulative, tuple[float, float]]:
    """The timeline's cumulative energy as a function of time (summed over its domains,
    linear between reads, held outside each domain's reads) and the span its reads cover."""
    lines = [
        (np.array([t for t, _ in p], dtype=float), np.array([e for _, e in p], dtype=float))
        for p in timeline.points.values()
        if p
    ]
    span_s = (min(float(x[0]) for x, _ in lines), max(float(x[-1]) for x, _ in lines))

    def at(times_s: Floats) -> Floats:
        return np.asarray(sum(np.interp(times_s, x, y) for x, y in lines), dtype=float)

    return at, span_s


def _chunks(records: Sequence[RequestRecord]) -> tuple[_Chunks, Floats]:
    """Every chunk with its tokens processed (a first chunk adds the prompt), and the steps'
    end times (the distinct chunk times, in order)."""
    rows = [
        (i, t, n, j)
        for i, r in enumerate(records)
        for j, (t, n) in enumerate(zip(r.chunk_times_s, r.chunk_tokens, strict=True))
    ]
    record = np.array([row[0] for row in rows], dtype=np.intp)
    time_s = np.array([row[1] for row in rows], dtype=float)
    tokens = np.array([row[2] for row in rows], dtype=float)
    first = np.array([row[3] == 0 for row in rows], dtype=bool)  # the record's first chunk
    prompts = np.array([records[i].input_tokens for i in record], dtype=float)
    weight = np.maximum(tokens + np.where(first, prompts - 1, 0.0), 0.0)
    step_times_s = np.unique(time_s)
    step = np.searchsorted(step_times_s, time_s).astype(np.intp)
    return _Chunks(record, tokens, weight, first, step), step_times_s


def _steps(
    records: Sequence[RequestRecord],
    chunks: _Chunks,
    step_times_s: Floats,
    cumulative: Cumulative,
    span_s: tuple[float, float],
) -> tuple[_Steps, float]:
    """Each step's active energy (while requests are in flight) and the overhead: the energy
    with none in flight, after the last step, and of steps whose chunks carry no tokens."""
    submits_s = np.sort([r.submit_s for r in records])
    ends_s = np.sort([r.end_s for r in records])
    edges_s = np.unique(np.concatenate([span_s, step_times_s, submits_s, ends_s]))
    piece_j = np.diff(cumulative(edges_s))
    middle_s = (edges_s[:-1] + edges_s[1:]) / 2
    in_flight = np.searchsorted(submits_s, middle_s, "right") > np.searchsorted(
        ends_s, middle_s, "right"
    )
    step = np.searchsorted(step_times_s, edges_s[1:])  # the step each piece ends at or before
    active = in_flight & (step < len(step_times_s))
    active_j = _sum_by(step[active], piece_j[active], len(step_times_s))
    weight = _sum_by(chunks.step, chunks.weight, len(step_times_s))
    unclaimed_j = float(active_j[weight <= 0].sum())
    active_j[weight <= 0] = 0.0
    prefill = np.zeros(len(step_times_s), dtype=bool)
    prefill[chunks.step[chunks.first]] = True
    decoding = np.zeros(len(step_times_s), dtype=bool)
    decoding[chunks.step[~chunks.first]] = True
    overhead_j = float(piece_j[~active].sum()) + unclaimed_j
    return _Steps(step_times_s, weight, prefill, prefill & decoding, active_j), overhead_j


def _sum_by(index: npt.NDArray[np.intp], values: Floats, n: int) -> Floats:
    """``values`` summed per ``index`` (0 to ``n - 1``)."""
    return np.bincount(index, weights=values, minlength=n).astype(float)


def _scale(measured_j: float, reading_j: float) -> tuple[float, list[str]]:
    """The factor that brings the timeline's total to the reading's, and the note saying so
    (factor 1 and no note when they agree within :data:`SCALE_TOLERANCE`)."""
    if math.isclose(measured_j, reading_j, rel_tol=SCALE_TOLERANCE):
        return 1.0, []
    factor = reading_j / measured_j
    note = (
        f"the energy timeline holds {measured_j:.3f} J, the reading {reading_j:.3f} J: every "
        f"attribution is scaled by {factor:.6f} ({(factor - 1) * 100:+.3f}%) to add up to it"
    )
    return factor, [note]


def _per_record(
    records: Sequence[RequestRecord],
    chunks: _Chunks,
    steps: _Steps,
    overhead_j: float,
    factor: float,
) -> list[RequestRecord]:
    """The records with their prefill, decode and overhead shares (scaled by ``factor``;
    ``overhead_j`` is already scaled)."""
    n = len(records)
    step_weight = steps.weight[chunks.step]
    claimed = step_weight > 0
    share_j = np.zeros(len(chunks.step))
    share_j[claimed] = (
        steps.active_j[chunks.step[claimed]] * chunks.weight[claimed] / step_weight[claimed]
    ) * factor
    in_prefill = steps.prefill[chunks.step]
    prefill_j = _sum_by(chunks.record[in_prefill], share_j[in_prefill], n)
    decode_j = _sum_by(chunks.record[~in_prefill], share_j[~in_prefill], n)
    overhead = _overhead_shares(records, overhead_j)
    return [
        replace(
            r,
            energy_j=float(prefill_j[i] + decode_j[i] + overhead[i]),
            prefill_energy_j=float(prefill_j[i]),
            decode_energy_j=float(decode_j[i]),
            overhead_energy_j=float(overhead[i]),
        )
        for i, r in enumerate(records)
    ]


def _overhead_shares(records: Sequence[RequestRecord], overhead_j: float) -> Floats:
    """``overhead_j`` shared by prompt + output tokens (equally when no record has any)."""
    tokens = np.array([r.input_tokens + r.output_tokens for r in records], dtype=float)
    if tokens.sum() <= 0:
        tokens = np.ones(len(records))
    return np.asarray(overhead_j * tokens / tokens.sum(), dtype=float)


def _summary(
    records: Sequence[RequestRecord],
    chunks: _Chunks,
    steps: _Steps,
    energy_j: float,
    notes: list[str],
) -> EnergyAttribution:
    """The result's ``attribution`` from the attributed records."""
    prefill_j = math.fsum(r.prefill_energy_j or 0.0 for r in records)
    decode_j = math.fsum(r.decode_energy_j or 0.0 for r in records)
    prompt_tokens = sum(r.input_tokens for r in records if r.chunk_times_s)
    decode_tokens = int(chunks.tokens[~steps.prefill[chunks.step]].sum())
    return EnergyAttribution(
        model=MODEL,
        energy_j=energy_j,
        prefill_energy_j=prefill_j,
        decode_energy_j=decode_j,
        overhead_energy_j=math.fsum(r.overhead_energy_j or 0.0 for r in records),
        prefill_steps=int(steps.prefill.sum()),
        decode_steps=int((~steps.prefill).sum()),
        prompt_tokens=prompt_tokens,
        decode_tokens=decode_tokens,
        energy_per_prompt_token_j=per_unit(prefill_j, prompt_tokens),
        energy_per_decode_token_j=per_unit(decode_j, decode_tokens),
        per_request=energy_distribution([r.energy_j for r in completed(records)]),
        notes=notes + _mixed_note(steps),
    )


def _mixed_note(steps: _Steps) -> list[str]:
    """A note when some prefill step also decoded other requests (none otherwise)."""
    mixed = int(steps.mixed.sum())
    if not mixed:
        return []
    return [
        f"{mixed} of {int(steps.prefill.sum())} prefill steps also decoded other requests "
        "(continuous batching): their energy counts as prefill energy"
    ]
