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
) -> list[RequestRecord]:
    """One record per row of a batch: step ``k``'s timestamp is when token ``k`` existed."""
    records = []
    for index, n_input, row in zip(indices, input_lengths, generated, strict=True):
        n_output, hit_eos = count_generated(row, eos_ids)
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
