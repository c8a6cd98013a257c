"""Length statistics of a prompt source, read without running a model (the dry run).

With the model's tokenizer as a codec the lengths are tokens; without one (a dry run loads no
tokenizer) they are whitespace-separated words, roughly 0.75 of the token count for English.
Statistics cover every usable row of the source (ShareGPT: before vLLM's token-length rule,
which needs the tokenizer), not only the ``n`` a run selects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from llenergymeasure.datasets.loader import (
    SYNTHETIC_SOURCE,
    TokenCodec,
    check_output_lengths,
    read_source,
)
from llenergymeasure.results.models import DatasetInfo, LengthStats

if TYPE_CHECKING:
    from llenergymeasure.config.models import DatasetConfig

LengthUnit = Literal["tokens", "words"]


@dataclass(frozen=True)
class SourceLengths:
    """How long a source's prompts and reference answers are.

    Attributes:
        info: the source's description (a hub dataset's resolved commit included).
        unit: what the lengths count.
        prompts: prompt lengths (for ``synthetic``, the configured length: ``n`` is 0).
        answers: reference answer lengths; None for sources without reference answers.
    """

    info: DatasetInfo
    unit: LengthUnit
    prompts: LengthStats
    answers: LengthStats | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the description, the unit, both statistics and the :meth:`summary`."""
        return {
            "summary": self.summary(),
            "dataset": self.info.model_dump(mode="json"),
            "unit": self.unit,
            "prompts": self.prompts.model_dump(mode="json"),
            "answers": self.answers.model_dump(mode="json") if self.answers else None,
        }

    def summary(self) -> str:
        """One line: ``sharegpt c.json (3 usable of 4 rows): prompt words mean 12, p50 10, p95
        25; reference answer words mean 40, p50 38, p95 80``."""
        info = self.info
        where = info.name if info.name == info.source else f"{info.source} {info.name}"
        if info.resolved_revision or info.revision:
            where += f"@{info.resolved_revision or info.revision}"
        if info.n_rows is not None:
            where += f" ({info.n_usable} usable of {info.n_rows} rows)"
        text = f"{where}: prompt {self.unit} {_stats_text(self.prompts)}"
        if self.answers is not None:
            text += f"; reference answer {self.unit} {_stats_text(self.answers)}"
        return text


def length_stats(values: Sequence[float]) -> LengthStats:
    """Mean, median and p95 of lengths (linear interpolation); empty input gives n = 0."""
    if not values:
        return LengthStats()
    array = np.asarray(values, dtype=float)
    p50, p95 = np.percentile(array, [50, 95])
    return LengthStats(n=len(array), mean=float(array.mean()), p50=float(p50), p95=float(p95))


def source_lengths(config: DatasetConfig, codec: TokenCodec | None = None) -> SourceLengths:
    """Length statistics of every usable row of the configured source.

    Args:
        config: the dataset section.
        codec: the model's tokenizer; without it, lengths are counted in words.

    Raises:
        DatasetError: as :func:`llenergymeasure.datasets.validate_source`.
        DependencyError: a hub dataset without the ``datasets`` library.
    """
    check_output_lengths(config)
    if config.source == SYNTHETIC_SOURCE:
        size = float(config.synthetic_input_tokens)
        fixed = LengthStats(n=0, mean=size, p50=size, p95=size)
        return SourceLengths(DatasetInfo(source=SYNTHETIC_SOURCE, name=SYNTHETIC_SOURCE),
                             "tokens", fixed, None)  # fmt: skip
    rows = read_source(config)

    def count(text: str) -> int:
        return len(codec.encode(text)) if codec is not None else len(text.split())

    prompts = length_stats([count(r.text) for r in rows.records])
    answers = (
        length_stats([count(r.answer or "") for r in rows.records])
        if config.has_reference_answers
        else None
    )
    return SourceLengths(rows.info, "tokens" if codec else "words", prompts, answers)


def _stats_text(stats: LengthStats) -> str:
    if stats.mean is None or stats.p50 is None or stats.p95 is None:
        return "none"
    return f"mean {stats.mean:.4g}, p50 {stats.p50:.4g}, p95 {stats.p95:.4g}"
