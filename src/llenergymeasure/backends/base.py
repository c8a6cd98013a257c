"""The backend protocol: load a model, run prompts, return raw per-request timing records."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from llenergymeasure.config.models import Precision

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


@dataclass
class RequestRecord:
    """Raw timing of one request, on the backend's clock (seconds, monotonic).

    A backend that streams several tokens at once records one timestamp per delivered chunk
    with its token count; no spacing is invented inside a chunk.

    Attributes:
        index: position of the prompt in the measured prompt list.
        input_tokens: prompt tokens after templating and truncation (padding excluded).
        output_tokens: tokens actually generated (EOS and padding excluded).
        submit_s: when the request was handed to the library.
        chunk_times_s: when each chunk of output tokens became available on the host.
        chunk_tokens: how many output tokens each chunk carried.
        end_s: when the request finished (its EOS or last token was produced).
    """

    index: int
    input_tokens: int
    output_tokens: int
    submit_s: float
    chunk_times_s: list[float] = field(default_factory=list)
    chunk_tokens: list[int] = field(default_factory=list)
    end_s: float = 0.0

    @property
    def ttft_s(self) -> float | None:
        """Time to first token, or None when nothing was generated."""
        return self.chunk_times_s[0] - self.submit_s if self.chunk_times_s else None

    @property
    def itl_s(self) -> list[float]:
        """Gaps between consecutive output chunks (inter-token latencies)."""
        return [later - earlier for earlier, later in pairwise(self.chunk_times_s)]

    @property
    def e2e_s(self) -> float:
        """End-to-end latency of the request."""
        return self.end_s - self.submit_s


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
