"""The backend protocol: load a model, run prompts, return raw per-request timing records."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from llenergymeasure.config.models import Precision
from llenergymeasure.results.records import RequestRecord

if TYPE_CHECKING:
    from llenergymeasure.config.models import ExperimentConfig
    from llenergymeasure.datasets import Prompt, TokenCodec
    from llenergymeasure.results.models import ModelInfo

DTYPE_NAMES: dict[Precision, str] = {
    "auto": "auto",
    "fp32": "float32",
    "fp16": "float16",
    "bf16": "bfloat16",
}
"""``precision`` as the dtype name vLLM and TensorRT-LLM take."""

ProgressCallback = Callable[[int], None]
"""Called with the number of requests just completed."""


@dataclass(frozen=True)
class MemoryReading:
    """Peak memory during the measured window and what it covers."""

    peak_mb: float | None
    scope: str


@runtime_checkable
class Backend(Protocol):
    """An inference backend. One instance loads one model."""

    name: str

    def load(self, config: ExperimentConfig) -> ModelInfo:
        """Load the model and tokenizer (timed by the harness, outside the measured window)."""

    @property
    def codec(self) -> TokenCodec:
        """The loaded tokenizer, for building synthetic prompts of exact token length."""

    @property
    def concurrency(self) -> int:
        """How many prompts this backend runs together (warmup uses a batch of this size)."""

    def prepare(self, prompts: Sequence[Prompt]) -> list[list[int]]:
        """Token ids per prompt (chat template, truncation), computed outside the window."""

    def run(
        self,
        prompts: Sequence[list[int]],
        max_output_tokens: int,
        on_progress: ProgressCallback | None = None,
    ) -> list[RequestRecord]:
        """Generate for every prepared prompt; one record per prompt, in prompt order."""

    def reset_peak_memory(self) -> None:
        """Start a new peak-memory window."""

    def peak_memory(self) -> MemoryReading:
        """Peak memory since the last reset."""

    def unload(self) -> None:
        """Free the model."""
