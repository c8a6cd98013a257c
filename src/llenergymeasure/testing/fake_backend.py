"""A base for scripted backends in harness tests: every :class:`~llenergymeasure.backends.Backend`
method but ``run``, with fixed, harmless answers.

A test backend subclasses :class:`ScriptedBackend` and writes only the part it varies (how
``run`` times its requests; sometimes ``load`` or ``concurrency``)::

    class Sequential(ScriptedBackend):
        def run(self, prompts, max_output_tokens, on_progress=None, load=None,
                output_lengths=None):
            ...
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from llenergymeasure.backends.base import MemoryReading
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.datasets import HFTokenizerCodec, Prompt
from llenergymeasure.results.models import ModelInfo


class ScriptedBackend:
    """The fixed parts of a scripted backend: a fake model on the CPU, one-token prompts
    (each the prompt's index), ``concurrency`` 1, no memory reading, nothing to free.

    Attributes:
        name: the backend's name in the result.
        details: what ``load`` puts into ``ModelInfo.details`` (e.g. an ``architecture``).
    """

    name = "fake"
    details: ClassVar[Mapping[str, Any]] = {}

    def load(self, config: ExperimentConfig) -> ModelInfo:
        """A fake model on the CPU, with :attr:`details`."""
        return ModelInfo(
            model_id=config.model, source_kind="fake", dtype="fp32", device="cpu",
            details=dict(self.details),
        )  # fmt: skip

    @property
    def codec(self) -> Any:
        """A codec without a tokenizer (no text prompt is encoded)."""
        return HFTokenizerCodec(None)

    @property
    def concurrency(self) -> int:
        """One request at a time."""
        return 1

    def prepare(self, prompts: Sequence[Prompt]) -> list[list[int]]:
        """Each prompt as one token: its index."""
        return [[p.index] for p in prompts]

    def reset_peak_memory(self) -> None:
        """Nothing to reset."""

    def peak_memory(self) -> MemoryReading:
        """No memory reading."""
        return MemoryReading(None, "fake")

    def unload(self) -> None:
        """Nothing to free."""
