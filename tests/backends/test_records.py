"""Token counting and per-step timing from one batched generate call (pure functions)."""

from __future__ import annotations

from llenergymeasure.backends.pytorch.records import batch_records, count_generated

EOS, PAD = 2, 0


def test_count_stops_at_first_eos_and_excludes_padding() -> None:
    assert count_generated([5, 6, EOS, EOS, EOS], {EOS}) == (2, True)
    assert count_generated([5, 6, 7], {EOS}) == (3, False)
    assert count_generated([EOS, PAD], {EOS}) == (0, True)
    assert count_generated([5, 9, PAD], {EOS, 9}) == (1, True)


def test_batch_records_take_the_timestamp_of_each_row_s_own_tokens() -> None:
    steps = [10.0, 10.5, 11.0, 11.5]
    generated = [[7, 8, 9, 10], [7, EOS, EOS, EOS], [EOS, EOS, EOS, EOS]]
    a, b, c = batch_records([0, 1, 2], [3, 5, 4], generated, {EOS}, 9.0, steps)

    assert (a.output_tokens, a.chunk_times_s, a.end_s) == (4, steps, 11.5)
    assert a.ttft_s == 1.0 and a.itl_s == [0.5, 0.5, 0.5]
    # b emitted EOS at step 1: one real token, finished when the EOS appeared
    assert (b.output_tokens, b.chunk_times_s, b.end_s) == (1, [10.0], 10.5)
    assert b.itl_s == [] and b.e2e_s == 1.5
    # c generated nothing: no TTFT, but it still took until the first step to finish
    assert (c.output_tokens, c.ttft_s, c.end_s) == (0, None, 10.0)
    assert [r.input_tokens for r in (a, b, c)] == [3, 5, 4]
    assert a.chunk_tokens == [1, 1, 1, 1]
