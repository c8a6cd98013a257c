"""The backend protocol: load a model, run prompts, return raw per-request timing records.

``TokenizedBackend`` holds what every backend does alike once its model is loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from llenergymeasure.backends.prompts import encode_prompt
from llenergymeasure.config.models import Precision
from llenergymeasure.datasets import HFTokenizerCodec
from llenergymeasure.errors import BackendError
from llenergymeasure.load import LoadPlan
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
"""Called with the output tokens just generated: a run reports ``len(prompts) x
max_output_tokens`` in all, each request's unused tokens as it ends (:class:`TokenProgress`)."""


class TokenProgress:
    """Reports one request's (or one static batch's) share of a run's progress.

    Its share is ``budget_tokens`` (``max_output_tokens``, times the rows of a batch): the
    tokens are reported as they are generated and the rest when it ends (at EOS, a stop
    string or a failure), so progress moves within a long batch and a run's reports add up
    to exactly ``len(prompts) x max_output_tokens``.

    Args:
        on_progress: the run's callback (None: nothing is reported).
        budget_tokens: the share's output-token budget.
    """

    def __init__(self, on_progress: ProgressCallback | None, budget_tokens: int) -> None:
        self._on_progress = on_progress
        self._left_tokens = budget_tokens

    def add(self, n_tokens: int) -> None:
        """Report ``n_tokens`` more generated (never beyond the budget)."""
        step = min(n_tokens, self._left_tokens)
        if step <= 0:
            return
        self._left_tokens -= step
        if self._on_progress is not None:
            self._on_progress(step)

    def finish(self) -> None:
        """Report what is left of the budget: the share has ended."""
        self.add(self._left_tokens)


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
        load: LoadPlan | None = None,
        output_lengths: Sequence[int] | None = None,
    ) -> list[RequestRecord]:
        """Generate for every prepared prompt; one record per prompt, in prompt order.

        ``load`` says how requests are submitted (:func:`llenergymeasure.load.drive`): None or
        an offline plan is the backend's batch run; a schedule or a concurrency cap submits
        each request at its time, with ``scheduled_s``/``slot_wait_s`` on its record.
        ``output_lengths`` (one per prompt, each at most ``max_output_tokens``) makes request
        ``i`` generate exactly ``output_lengths[i]`` tokens, EOS ignored
        (``dataset.output_lengths`` from_dataset or distribution); None: each generates up to
        ``max_output_tokens`` and may stop earlier.
        """

    def reset_peak_memory(self) -> None:
        """Start a new peak-memory window."""

    def peak_memory(self) -> MemoryReading:
        """Peak memory since the last reset."""

    def unload(self) -> None:
        """Free the model."""


class TokenizedBackend:
    """The parts every backend shares: the tokenizer as a codec, prompt preparation and the
    guard against use before ``load``.

    A subclass sets ``name``; its ``load`` sets ``_tokenizer``, ``_use_template`` (see
    ``prompts.wants_chat_template``) and, once the model is ready, ``_config``.
    """

    name: str

    def __init__(self) -> None:
        self._tokenizer: Any = None
        self._use_template = False
        self._config: ExperimentConfig | None = None

    @property
    def codec(self) -> TokenCodec:
        """The loaded tokenizer as a TokenCodec."""
        if self._tokenizer is None:
            raise self._not_loaded()
        return HFTokenizerCodec(self._tokenizer)

    def prepare(self, prompts: Sequence[Prompt]) -> list[list[int]]:
        """Apply the chat template and truncate to ``max_input_tokens``."""
        config = self._require_config()
        return [
            encode_prompt(self._tokenizer, p, self._use_template, config.max_input_tokens)
            for p in prompts
        ]

    def _require_config(self) -> ExperimentConfig:
        if self._config is None:
            raise self._not_loaded()
        return self._config

    def _not_loaded(self) -> BackendError:
        return BackendError(f"the {self.name} backend has no model loaded; call load() first")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def forced_lengths(
    n_prompts: int, output_lengths: Sequence[int] | None, max_output_tokens: int
) -> list[int] | None:
    """``output_lengths`` of :meth:`Backend.run` as a list, checked: one per prompt, each
    between 1 and ``max_output_tokens`` (None stays None).

    Raises:
        BackendError: a count or a length out of range.
    """
    if output_lengths is None:
        return None
    lengths = [int(length) for length in output_lengths]
    if len(lengths) != n_prompts:
        raise BackendError(f"{len(lengths)} output lengths for {n_prompts} prompts")
    if any(not 1 <= length <= max_output_tokens for length in lengths):
        raise BackendError(
            f"an output length outside [1, max_output_tokens = {max_output_tokens}]: {lengths}"
        )
    return lengths


def forced_length_fields(length: int) -> dict[str, int | bool]:
    """The fields that make one request generate exactly ``length`` tokens, named alike in
    vLLM's and TensorRT-LLM's ``SamplingParams`` and in the request body of vLLM's (and
    SGLang's) OpenAI-compatible server: ``max_tokens = min_tokens = length`` and
    ``ignore_eos`` (superseding ``decoder.min_new_tokens`` and ``decoder.ignore_eos``)."""
    return {"max_tokens": length, "min_tokens": length, "ignore_eos": True}
