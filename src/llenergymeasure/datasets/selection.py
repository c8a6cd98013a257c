"""Which rows of a prompt source a run uses: seeded shuffled passes, optionally passing over
rows a rule rejects (ShareGPT's length limits).

Selection never touches the global ``random`` state. The first pass is the permutation
``random.seed(seed); random.shuffle(rows)`` gives, the shuffle ``vllm bench serve`` applies to
a ShareGPT file, so for the same seed both walk the rows in the same order.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Selection:
    """Row indices chosen, in prompt order, and how many rows the rule passed over."""

    indices: list[int]
    n_pruned: int = 0


def seeded_order(available: int, n: int, seed: int) -> list[int]:
    """Indices into the source: seeded shuffled passes over all of it, cut to ``n``.

    If ``n`` is at most ``available`` every index is distinct; otherwise each appears
    ``n // available`` or ``n // available + 1`` times and never twice in a row (which would
    flatter a backend with prefix caching).
    """
    rng = random.Random(seed)
    order: list[int] = []
    while len(order) < n:
        batch = list(range(available))
        rng.shuffle(batch)
        if order and available > 1 and batch[0] == order[-1]:
            batch[0], batch[1] = batch[1], batch[0]
        order.extend(batch)
    return order[:n]


def select(
    available: int, n: int, seed: int, keep: Callable[[int], bool] | None = None
) -> Selection:
    """``n`` row indices chosen by ``seed``, skipping rows ``keep`` rejects.

    Rows are visited in the seeded first-pass order and the first ``n`` kept are taken (as
    vllm bench serve samples ShareGPT), so ``keep`` is called only until ``n`` are found.
    When fewer than ``n`` rows are kept in a whole pass, the kept rows are reused in seeded
    passes (:func:`seeded_order`); when none is, no index is returned. Without ``keep`` this
    is :func:`seeded_order`.
    """
    if keep is None or n == 0:
        return Selection(seeded_order(available, n, seed))
    first_pass = list(range(available))
    random.Random(seed).shuffle(first_pass)
    kept: list[int] = []
    visited = 0
    for index in first_pass:
        if len(kept) == n:
            break
        visited += 1
        if keep(index):
            kept.append(index)
    pruned = visited - len(kept)
    if len(kept) == n or not kept:
        return Selection(kept, pruned)
    return Selection([kept[k] for k in seeded_order(len(kept), n, seed)], pruned)
