"""The lengths of the measured requests, recorded on the result (``result.lengths``) so two
runs can be checked for comparability."""

from __future__ import annotations

from collections.abc import Sequence

from llenergymeasure.datasets import OutputLengthPlan, length_stats
from llenergymeasure.results.models import RequestLengths
from llenergymeasure.results.records import RequestRecord
from llenergymeasure.results.stats import completed


def request_lengths(plan: OutputLengthPlan, records: Sequence[RequestRecord]) -> RequestLengths:
    """Input and output token statistics of the completed requests (failed ones stopped
    early), beside the lengths ``plan`` asked for and what clipping changed."""
    done = completed(records)
    notes = [note for note in (plan.clipped_note, _unforced_note(plan, done)) if note]
    return RequestLengths(
        output_lengths=plan.mode,
        input_tokens=length_stats([r.input_tokens for r in done]),
        output_tokens=length_stats([r.output_tokens for r in done]),
        requested_output_tokens=length_stats(plan.lengths) if plan.lengths is not None else None,
        n_clipped=plan.n_clipped,
        notes=notes,
    )


def _unforced_note(plan: OutputLengthPlan, done: Sequence[RequestRecord]) -> str | None:
    """Which completed requests generated another length than forced (a server that ignores
    ``ignore_eos``/``min_tokens``); None when every one generated its own."""
    if plan.lengths is None:
        return None
    lengths = plan.lengths
    off = [r for r in done if r.output_tokens != lengths[r.index]]
    if not off:
        return None
    first = off[0]
    return (
        f"{len(off)} of {len(done)} completed requests did not generate exactly their "
        f"requested length (request {first.index}: {first.output_tokens} tokens, not "
        f"{lengths[first.index]}): the engine did not honour the forced length"
    )
