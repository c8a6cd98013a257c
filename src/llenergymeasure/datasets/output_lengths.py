"""Each request's output length (``dataset.output_lengths``): up to ``max_output_tokens``
(``fixed``), its prompt's reference answer (``from_dataset``), or drawn from a named
distribution (``distribution``).

In the last two modes every backend generates exactly that many tokens per request (EOS
ignored), so runs on different backends and models generate the same amount. Lengths stay
within ``[floor, max_output_tokens]`` (floor: 1, or the distribution's ``min_tokens``); how
many were moved there is counted.

Draws are deterministic for a seed on every platform and Python version: each is an inverse
transform of ``random.Random("output-lengths:<seed>").random()`` (the one stream Python keeps
stable across versions), the ``k``-th draw serving request ``k``, so the first ``n`` of a larger
run are the lengths of a run of ``n``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from llenergymeasure.datasets.lengths import length_stats
from llenergymeasure.errors import DatasetError

if TYPE_CHECKING:
    from llenergymeasure.config.common import (
        DatasetConfig,
        OutputLengthDistribution,
        OutputLengths,
    )
    from llenergymeasure.datasets.loader import Prompt


@dataclass(frozen=True)
class OutputLengthPlan:
    """The output length of every request of a run.

    Attributes:
        mode: ``dataset.output_lengths``.
        lengths: tokens each request generates, in prompt order; None for ``fixed`` (up to
            ``max_output_tokens``, the model may stop earlier).
        n_clipped: lengths moved into ``[floor, max_output_tokens]``: reference answers longer
            than ``max_output_tokens``, or draws outside ``[min_tokens, max_output_tokens]``.
        max_output_tokens: the cap the lengths were clipped to.
    """

    mode: OutputLengths
    lengths: list[int] | None
    n_clipped: int = 0
    max_output_tokens: int = 0

    @property
    def clipped_note(self) -> str | None:
        """What the clipping changed, in a sentence; None when nothing was clipped."""
        if not self.n_clipped or self.lengths is None:
            return None
        n = len(self.lengths)
        if self.mode == "from_dataset":
            return (
                f"{self.n_clipped} of {n} reference answers are longer than max_output_tokens "
                f"({self.max_output_tokens}): those requests generated {self.max_output_tokens} "
                "tokens, not their answer's length (raise max_output_tokens to generate them "
                "in full)"
            )
        return (
            f"{self.n_clipped} of {n} drawn output lengths fell outside [min_tokens, "
            f"max_output_tokens] and were moved to the nearer bound"
        )


def plan_output_lengths(
    config: DatasetConfig, prompts: Sequence[Prompt], max_output_tokens: int, seed: int
) -> OutputLengthPlan:
    """The output length of each prompt's request, as ``config.output_lengths`` says.

    Args:
        config: the dataset section.
        prompts: the run's prompts, in order (``from_dataset`` reads their ``output_tokens``).
        max_output_tokens: the cap on every length.
        seed: the run's ``random_seed`` (``distribution`` draws with it).

    Raises:
        DatasetError: ``from_dataset`` and a prompt without a reference answer length;
            ``distribution`` without a distribution (the config forbids both).
    """
    if config.output_lengths == "fixed":
        return OutputLengthPlan("fixed", None, 0, max_output_tokens)
    if config.output_lengths == "from_dataset":
        wanted = [_answer_tokens(prompt) for prompt in prompts]
        floor = 1
    else:
        distribution = _distribution(config)
        wanted = draw_lengths(distribution, len(prompts), seed)
        floor = distribution.min_tokens
    return _clipped(config.output_lengths, wanted, floor, max_output_tokens)


def expected_output_lengths(
    config: DatasetConfig, n: int, seed: int, max_output_tokens: int
) -> dict[str, Any]:
    """What a run's output lengths will be, without its prompts or tokenizer (the dry run):
    ``mode``, a one-line ``summary`` and, for ``distribution``, the ``requested`` lengths'
    statistics (the run draws the same) with ``n_clipped``; ``from_dataset`` lengths need
    the tokenizer, so its summary points to the reference answers' lengths in words.

    Raises:
        DatasetError: ``distribution`` without a distribution (the config forbids it).
    """
    mode = config.output_lengths
    described: dict[str, Any] = {"mode": mode, "requested": None, "n_clipped": 0}
    if mode == "fixed":
        summary = f"up to {max_output_tokens} tokens per request (the model may stop earlier)"
    elif mode == "from_dataset":
        summary = (
            "each prompt's reference answer length in tokens, generated exactly, at most "
            f"{max_output_tokens} (the prompts line gives the answers' lengths in words)"
        )
    else:
        distribution = _distribution(config)
        plan = _clipped(
            mode, draw_lengths(distribution, n, seed), distribution.min_tokens, max_output_tokens
        )
        stats = length_stats(plan.lengths or [])
        described.update(requested=stats.model_dump(mode="json"), n_clipped=plan.n_clipped)
        summary = (
            f"{_shape(distribution)}, clipped to [{distribution.min_tokens}, "
            f"{max_output_tokens}], generated exactly; the {n} lengths drawn with seed {seed}: "
            f"mean {stats.mean:.4g}, p50 {stats.p50:.4g}, p95 {stats.p95:.4g} tokens"
            + (f" ({plan.n_clipped} clipped)" if plan.n_clipped else "")
        )
    described["summary"] = f"{mode}: {summary}"
    return described


def _distribution(config: DatasetConfig) -> OutputLengthDistribution:
    """The distribution of ``output_lengths: distribution`` (the config requires one).

    Raises:
        DatasetError: none is set.
    """
    if config.output_length_distribution is None:
        raise DatasetError(
            "dataset.output_lengths: distribution needs dataset.output_length_distribution"
        )
    return config.output_length_distribution


def _shape(distribution: OutputLengthDistribution) -> str:
    spread = f", std {distribution.std_tokens:g}" if distribution.std_tokens else ""
    return f"{distribution.name} (mean {distribution.mean_tokens:g}{spread})"


def _clipped(
    mode: OutputLengths, wanted: list[int], floor: int, max_output_tokens: int
) -> OutputLengthPlan:
    lengths = [min(max(length, floor), max_output_tokens) for length in wanted]
    n_clipped = sum(a != b for a, b in zip(wanted, lengths, strict=True))
    return OutputLengthPlan(mode, lengths, n_clipped, max_output_tokens)


def draw_lengths(distribution: OutputLengthDistribution, n: int, seed: int) -> list[int]:
    """``n`` lengths drawn from ``distribution`` with ``seed``, rounded to whole tokens and not
    yet clipped (a normal draw can be negative)."""
    rng = random.Random(f"output-lengths:{seed}")
    return [round(_draw(distribution, _open_unit(rng))) for _ in range(n)]


def _draw(distribution: OutputLengthDistribution, u: float) -> float:
    """The inverse CDF of ``distribution`` at ``u`` in (0, 1)."""
    mean, std = distribution.mean_tokens, distribution.std_tokens or 0.0
    if distribution.name == "exponential":
        return -mean * math.log1p(-u)
    if distribution.name == "uniform":
        # integers evenly spread over [low, high]: each gets an equal share of (0, 1)
        low, high = round(mean - math.sqrt(3) * std), round(mean + math.sqrt(3) * std)
        return low + min(math.floor(u * (high - low + 1)), high - low)
    z = NormalDist().inv_cdf(u)
    if distribution.name == "normal":
        return mean + std * z
    sigma = math.sqrt(math.log1p((std / mean) ** 2))
    return math.exp(math.log(mean) - sigma**2 / 2 + sigma * z)


def _open_unit(rng: random.Random) -> float:
    """A uniform draw in (0, 1): ``random()`` can return 0, where inverse CDFs are infinite."""
    while True:
        u = rng.random()
        if u > 0.0:
            return u


def _answer_tokens(prompt: Prompt) -> int:
    if prompt.output_tokens is None:
        raise DatasetError(
            "dataset.output_lengths: from_dataset needs each prompt's reference answer, and "
            f"prompt {prompt.index} has none"
        )
    return prompt.output_tokens
