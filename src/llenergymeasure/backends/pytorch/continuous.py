"""Serve requests through transformers' continuous batching (``load.mode: rate | concurrency``).

The shared load generator (:func:`llenergymeasure.load.drive`) submits each request on this
backend's asyncio loop: ``add_request(..., streaming=True)`` hands it to the manager's
generation thread, which delivers every step's outputs to a handler registered for the request
(``register_result_handler``: ``call_soon_threadsafe`` onto the loop, so nothing polls). Each
delivery is stamped with the backend's clock as it arrives and recorded as one chunk carrying
the tokens new since the previous delivery; EOS is not counted, as in the static path.

The manager is created, warmed up (its paged KV cache allocated) and started when the model
loads, and runs until unload: a measured window then holds the requests and nothing of the
manager's start or stop (its idle loop waits on an event between runs). A failed run stops it
at once and destroys it; the next run starts a new one. Settings it cannot honour are refused
before the model loads (:mod:`.continuous_settings`); the logits processors the model's own
generation config would add are checked here.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Callable, Collection, Coroutine, Sequence
from typing import Any

import torch

from llenergymeasure.backends.base import ProgressCallback, TokenProgress
from llenergymeasure.backends.pytorch.continuous_settings import (
    requests_in_flight,
    requests_per_step,
)
from llenergymeasure.backends.pytorch.options import generation_config
from llenergymeasure.backends.pytorch.records import count_generated
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.errors import BackendError, ConfigError
from llenergymeasure.load import LoadPlan, drive
from llenergymeasure.results.records import RequestRecord

SCORES_ONLY_PROCESSORS = frozenset(
    {
        "TemperatureLogitsWarper",
        "TopKLogitsWarper",
        "TopPLogitsWarper",
        "MinPLogitsWarper",
        "TypicalLogitsWarper",
        "EpsilonLogitsWarper",
        "EtaLogitsWarper",
        "SuppressTokensLogitsProcessor",
        "InfNanRemoveLogitsProcessor",
        "LogitNormalization",
    }
)
"""Logits processors continuous batching applies correctly: they read only the scores (it
passes them each request's latest token, not the sequence, and drops some others)."""

NO_EOS = -1
"""``add_request(eos_token_id=)`` that disables the EOS stop (``decoder.ignore_eos``)."""


class RequestStream:
    """One request's streamed outputs turned into its :class:`RequestRecord`.

    Args:
        record: the request's record (``submit_s`` is set by the submitter).
        eos_ids: token ids not counted as output (nothing after the first one is).
        clock: the backend's clock; each delivery is stamped with it on arrival.
        finished: resolved with None when the request finishes, or with the failure.
        progress: told of each delivery's new tokens (None: nothing is reported).
    """

    def __init__(
        self,
        record: RequestRecord,
        eos_ids: Collection[int],
        clock: Callable[[], float],
        finished: asyncio.Future[None],
        progress: TokenProgress | None = None,
    ) -> None:
        self.record = record
        self._eos_ids = eos_ids
        self._clock = clock
        self.finished = finished
        self._progress = progress

    def receive(self, output: Any) -> None:
        """Record one delivered ``GenerationOutput`` (its ``generated_tokens`` so far)."""
        now = self._clock()
        if self.finished.done():  # cancelled: the run is failing
            return
        if output.error is not None:
            self.finished.set_exception(
                BackendError(
                    f"transformers continuous batching failed request {self.record.index}: "
                    f"{output.error}"
                )
            )
            return
        counted, _ = count_generated(output.generated_tokens, self._eos_ids)
        new = counted - self.record.output_tokens
        if new > 0:
            self.record.chunk_times_s.append(now)
            self.record.chunk_tokens.append(new)
            self.record.output_tokens = counted
            if self._progress is not None:
                self._progress.add(new)
        if output.is_finished():
            self.record.end_s = now
            self.finished.set_result(None)


class ContinuousBatcher:
    """A loaded model served through one continuous-batching manager.

    Args:
        model: the transformers model (``init_continuous_batching`` and friends).
        config: the experiment (cache size, requests per step, seed, ``ignore_eos``).
        generation: the GenerationConfig every request uses (``max_new_tokens`` is per run).
        eos_ids: token ids a request ends on, not counted as output.
        clock: the backend's clock.

    Raises:
        ConfigError: the model's generation config adds a logits processor continuous
            batching would drop or misapply.
    """

    def __init__(
        self,
        model: Any,
        config: ExperimentConfig,
        generation: Any,
        eos_ids: Collection[int],
        clock: Callable[[], float],
    ) -> None:
        check_processors(model, generation, config.load.mode)
        self._model = model
        self._generation = generation
        self._batching = batching_config(config, model.device.type)
        self._hints = workload_hints(config)
        self._ignore_eos = config.decoder.ignore_eos
        self._eos_ids = frozenset() if self._ignore_eos else frozenset(eos_ids)
        self._clock = clock
        self._runs = itertools.count()
        self._manager: Any = None

    def start(self) -> Any:
        """Create, warm up (allocating its cache) and start the manager; returns it."""
        manager = self._model.init_continuous_batching(
            generation_config=self._generation,
            continuous_batching_config=self._batching,
            workload_hints=self._hints,
        )
        with torch.inference_mode():  # the generation thread runs in the caller's mode
            manager.warmup()
            manager.start()
        self._manager = manager
        return manager

    def run(
        self,
        prompts: Sequence[list[int]],
        max_output_tokens: int,
        plan: LoadPlan,
        on_progress: ProgressCallback | None = None,
        output_lengths: Sequence[int] | None = None,
    ) -> list[RequestRecord]:
        """Submit every prompt on ``plan``; one record per prompt, in prompt order.

        ``output_lengths`` forces request ``i`` to exactly ``output_lengths[i]`` tokens: its own
        ``max_new_tokens``, with EOS off (as ``decoder.ignore_eos``); None: each request
        generates up to ``max_output_tokens``.

        Raises:
            BackendError: a request failed, or the generation loop stopped.
        """
        manager = self._manager if self._manager is not None else self.start()
        prefix = f"llem-{next(self._runs)}"

        def submit(index: int) -> Coroutine[Any, Any, RequestRecord]:
            forced = output_lengths[index] if output_lengths is not None else None
            return self._request(
                manager, prompts, index, max_output_tokens, forced, prefix, on_progress
            )

        try:
            return asyncio.run(drive(plan, len(prompts), submit, self._clock))
        except BaseException:
            self.close(hard_stop=True)
            raise

    def close(self, hard_stop: bool = False) -> None:
        """Stop and destroy the manager; ``hard_stop`` fails its pending requests at once."""
        manager, self._manager = self._manager, None
        if manager is None:
            return
        if hard_stop:
            manager.stop(block=True, hard_stop=True)
        manager.destroy()

    async def _request(
        self,
        manager: Any,
        prompts: Sequence[list[int]],
        index: int,
        max_output_tokens: int,
        forced_length: int | None,
        prefix: str,
        on_progress: ProgressCallback | None,
    ) -> RequestRecord:
        """Submit prompt ``index`` and return its record once it finishes; with a
        ``forced_length`` it generates exactly that many tokens, EOS off."""
        forced = forced_length is not None
        prompt = prompts[index]
        record = RequestRecord(index=index, input_tokens=len(prompt), output_tokens=0, submit_s=0.0)
        progress = TokenProgress(on_progress, max_output_tokens)
        finished = asyncio.get_running_loop().create_future()
        eos_ids = frozenset() if forced else self._eos_ids
        stream = RequestStream(record, eos_ids, self._clock, finished, progress)
        request_id = f"{prefix}-{index}"
        manager.register_result_handler(request_id, stream.receive)
        record.submit_s = self._clock()
        added = manager.add_request(
            prompt,
            request_id=request_id,
            max_new_tokens=forced_length if forced_length is not None else max_output_tokens,
            streaming=True,
            eos_token_id=NO_EOS if forced or self._ignore_eos else None,  # None: the config's
        )
        if added is None:
            raise BackendError(
                f"transformers continuous batching refused request {index}: its generation "
                "loop has stopped (see the log for its error)"
            )
        try:
            await stream.finished
        except asyncio.CancelledError:
            manager.cancel_request(request_id)
            raise
        progress.finish()
        return record


def check_processors(model: Any, generation: Any, mode: str) -> None:
    """Refuse logits processors continuous batching would drop or misapply.

    The settings are checked by name before loading; this catches what the model's own
    ``generation_config.json`` sets (e.g. a default ``repetition_penalty``).

    Raises:
        ConfigError: naming the processors and how to switch them off.
    """
    names = [type(p).__name__ for p in model._get_logits_processor(generation)]
    refused = [name for name in names if name not in SCORES_ONLY_PROCESSORS]
    if refused:
        raise ConfigError(
            f"load.mode: {mode}: transformers' continuous batching cannot apply "
            f"{', '.join(refused)}, which the model's generation config adds; switch it off "
            "with pytorch.extra (e.g. repetition_penalty: 1.0) or use load.mode: offline"
        )


def batching_config(config: ExperimentConfig, device_type: str) -> Any:
    """transformers' ``ContinuousBatchingConfig`` for this experiment.

    At most :func:`requests_per_step` requests per forward pass, seeded with ``random_seed``,
    the attention kernel left as loaded (no automatic switch to flash attention). On CPU the
    KV cache holds every request that can be in flight at its full length (transformers would
    otherwise claim most of the host memory); on an accelerator transformers sizes it from the
    free memory.
    """
    from transformers import ContinuousBatchingConfig

    kwargs: dict[str, Any] = {
        "max_requests_per_batch": requests_per_step(config),
        "seed": config.random_seed,
    }
    defaults = ContinuousBatchingConfig()
    if hasattr(defaults, "auto_switch_to_flash"):  # transformers >= 5.17
        kwargs["auto_switch_to_flash"] = False
    if device_type == "cpu":
        kwargs["num_blocks"] = cache_blocks(config, page_tokens(defaults))
    return ContinuousBatchingConfig(**kwargs)


def page_tokens(batching: Any) -> int:
    """Tokens per cache block (``page_size``; ``block_size`` before transformers 5.17)."""
    return int(getattr(batching, "page_size", None) or batching.block_size)


def longest_request_tokens(config: ExperimentConfig) -> int:
    """Prompt plus output tokens of the longest request a run (warmup included) can make."""
    return config.max_input_tokens + max(config.max_output_tokens, config.warmup.max_output_tokens)


def cache_blocks(config: ExperimentConfig, tokens_per_block: int) -> int:
    """Cache blocks for every request that can be in flight at its longest."""
    per_request = math.ceil(longest_request_tokens(config) / tokens_per_block)
    return requests_in_flight(config) * per_request


def workload_hints(config: ExperimentConfig) -> Any:
    """transformers' ``WorkloadHints`` (sizes its per-request block tables)."""
    from transformers.generation.continuous_batching.utils import WorkloadHints

    return WorkloadHints(
        max_prompt_length=config.max_input_tokens,
        max_generated_length=max(config.max_output_tokens, config.warmup.max_output_tokens),
        num_requests=requests_in_flight(config),
    )


def continuous_generation(base: Any, config: ExperimentConfig, pad_token_id: Any) -> Any:
    """The GenerationConfig for continuous batching: the static path's (``generation_config``),
    except that ``ignore_eos`` keeps the model's minimum length (continuous batching drops that
    processor; its requests ignore EOS instead, see :data:`NO_EOS`). ``pytorch.extra`` holds
    only GenerationConfig settings here (checked before loading)."""
    generation, _ = generation_config(base, config, config.max_output_tokens, pad_token_id)
    if config.decoder.ignore_eos:
        generation.min_new_tokens = base.min_new_tokens
    return generation
