"""Drive an AsyncLLM-like engine: submit the prompts on a load plan and stamp each streamed delta.

The shared load generator (:func:`llenergymeasure.load.drive`) decides when each request is
submitted: all at once (offline), at its scheduled arrival (``load.mode: rate``) or as a slot
frees (``load.mode: concurrency``).

With ``RequestOutputKind.DELTA`` each yielded output carries only the tokens new since the
previous one. One delta may carry several tokens (a scheduler step can finish more than one);
its timestamp and token count are recorded as they are, with no spacing invented inside it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from llenergymeasure.backends.base import ProgressCallback, TokenProgress
from llenergymeasure.load import LoadPlan, drive
from llenergymeasure.results.records import RequestRecord


class StreamingEngine(Protocol):
    """The part of vLLM's ``AsyncLLM`` this backend uses."""

    def generate(
        self, prompt: Any, sampling_params: Any, request_id: str, **kwargs: Any
    ) -> AsyncIterator[Any]:
        """Yield ``RequestOutput`` objects for one request until it finishes."""


@dataclass
class EngineTiming:
    """The engine's own first-token latency for one request, when stats are on."""

    index: int
    first_token_latency_s: float


@dataclass
class StreamResult:
    """Records in prompt order plus whatever the engine reported about its own timing."""

    records: list[RequestRecord]
    engine_timings: list[EngineTiming] = field(default_factory=list)


async def stream_all(
    engine: StreamingEngine,
    prompts: Sequence[Any],
    input_lengths: Sequence[int],
    sampling_params: Sequence[Any],
    max_output_tokens: int,
    plan: LoadPlan,
    clock: Callable[[], float],
    request_prefix: str,
    generate_kwargs: dict[str, Any] | None = None,
    on_progress: ProgressCallback | None = None,
) -> StreamResult:
    """Submit the prompts on ``plan`` (prompt ``i`` with ``sampling_params[i]``); the engine's
    scheduler decides the batches.

    Each record's ``submit_s`` is stamped as its request is handed to the engine; the driver
    adds ``scheduled_s`` and ``slot_wait_s``. The first failed request cancels the others and
    is raised as it was. ``on_progress`` hears each delta's tokens, of ``max_output_tokens``
    (the limit in ``sampling_params``) per request (:class:`TokenProgress`).
    """
    engine_timings: list[EngineTiming] = []

    async def one(index: int) -> RequestRecord:
        record = RequestRecord(
            index=index, input_tokens=input_lengths[index], output_tokens=0, submit_s=clock()
        )
        progress = TokenProgress(on_progress, max_output_tokens)
        stream = engine.generate(
            prompts[index],
            sampling_params[index],
            f"{request_prefix}-{index}",
            **(generate_kwargs or {}),
        )
        async for output in stream:
            now = clock()
            n_new = sum(len(completion.token_ids) for completion in output.outputs[:1])
            if n_new:
                record.chunk_times_s.append(now)
                record.chunk_tokens.append(n_new)
                record.output_tokens += n_new
                progress.add(n_new)
            if output.finished:
                record.end_s = now
                latency = _engine_first_token_latency(output)
                if latency is not None:
                    engine_timings.append(EngineTiming(index, latency))
        if record.end_s == 0.0:
            record.end_s = record.chunk_times_s[-1] if record.chunk_times_s else record.submit_s
        progress.finish()
        return record

    records = await drive(plan, len(prompts), one, clock)
    return StreamResult(records, sorted(engine_timings, key=lambda t: t.index))


def _engine_first_token_latency(output: Any) -> float | None:
    """vLLM v1 puts ``RequestStateStats`` (with ``first_token_latency``) on ``metrics``."""
    latency = getattr(getattr(output, "metrics", None), "first_token_latency", None)
    return float(latency) if isinstance(latency, (int, float)) and latency > 0 else None
