"""Build per-request records from one batched `generate` call (pure, testable functions)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from llenergymeasure.results.records import RequestRecord


def count_generated(row: Sequence[int], eos_ids: Collection[int]) -> tuple[int, bool]:
    """Tokens generated before the first EOS, and whether an EOS ended the row.

    After a row finishes, ``generate`` keeps filling it with padding (often the EOS id itself)
    while other rows run on, so everything from the first EOS on is excluded.
    """
    for position, token in enumerate(row):
        if token in eos_ids:
            return position, True
    return len(row), False


def batch_records(
    indices: Sequence[int],
    input_lengths: Sequence[int],
    generated: Sequence[Sequence[int]],
    eos_ids: Collection[int],
    submit_s: float,
    step_times_s: Sequence[float],
    output_lengths: Sequence[int] | None = None,
) -> list[RequestRecord]:
    """One record per row of a batch: step ``k``'s timestamp is when token ``k`` existed.

    With ``output_lengths`` (forced, see ``forced_lengths``) row ``i`` counts its first
    ``output_lengths[i]`` tokens, whatever they are; what follows is padding.
    """
    records = []
    limits = output_lengths if output_lengths is not None else [None] * len(generated)
    for index, n_input, row, limit in zip(indices, input_lengths, generated, limits, strict=True):
        n_output, hit_eos = _counted(row, eos_ids, limit)
        times = list(step_times_s[:n_output])
        if hit_eos and n_output < len(step_times_s):
            end_s = step_times_s[n_output]
        else:
            end_s = times[-1] if times else submit_s
        records.append(
            RequestRecord(
                index=index,
                input_tokens=n_input,
                output_tokens=n_output,
                submit_s=submit_s,
                chunk_times_s=times,
                chunk_tokens=[1] * n_output,
                end_s=end_s,
            )
        )
    return records


def _counted(row: Sequence[int], eos_ids: Collection[int], limit: int | None) -> tuple[int, bool]:
    """:func:`count_generated`, or with a forced ``limit`` the row's first ``limit`` tokens."""
    if limit is None:
        return count_generated(row, eos_ids)
    return min(limit, len(row)), False
