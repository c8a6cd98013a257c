"""VllmBackend: vLLM's ``AsyncLLM`` with requests submitted on the load plan, every delta timed.

The offline ``LLM.generate`` returns only final outputs, so it cannot time tokens. This backend
drives the v1 ``AsyncLLM`` with ``RequestOutputKind.DELTA`` on its own asyncio loop: the shared
load generator submits each request (all at once offline, at its scheduled arrival in ``rate``
mode, as a slot frees under a concurrency cap), vLLM's continuous batching decides the batches
(``vllm.max_num_seqs`` bounds them) and every streamed delta is stamped with the injected clock
as it arrives.

vLLM spawns its engine-core process, which re-imports the caller's main module: a script that
runs an experiment with this backend must do so under ``if __name__ == "__main__":`` (the
``llem`` command already does).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil

from llenergymeasure.backends.base import (
    MemoryReading,
    ProgressCallback,
    TokenizedBackend,
    first_line,
    forced_length_fields,
    forced_lengths,
)
from llenergymeasure.backends.model_shape import model_architecture
from llenergymeasure.backends.model_source import ModelSource, check_hub_model, resolve_model
from llenergymeasure.backends.parallel import check_parallel_fits
from llenergymeasure.backends.prompts import wants_chat_template
from llenergymeasure.backends.registry import BACKENDS, check_tested_versions
from llenergymeasure.backends.vllm.api import VllmApi, load_vllm_api
from llenergymeasure.backends.vllm.architecture import ArchitectureFolder, architecture_folder
from llenergymeasure.backends.vllm.options import (
    adapter_rank,
    check_engine_kwargs,
    engine_kwargs,
    sampling_kwargs,
)
from llenergymeasure.backends.vllm.stream import StreamResult, stream_all
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.devices import GpuProbe, probe
from llenergymeasure.errors import BackendError, ConfigError
from llenergymeasure.load import LoadPlan
from llenergymeasure.load.schedule import OFFLINE
from llenergymeasure.results.models import ModelInfo
from llenergymeasure.results.records import RequestRecord

DEFAULT_MAX_NUM_SEQS = 256  # vLLM's default when vllm.max_num_seqs is unset
ENGINE_EXIT_TIMEOUT_S = 15.0  # how long unload waits for the engine's processes to exit
ENGINE_SHUTDOWN_GRACE_S = 10.0
"""How long ``shutdown`` lets the engine core tear down before vLLM kills it: the core waits
5 s for its worker (``VLLM_WORKER_SHUTDOWN_TIMEOUT_SECONDS``), then up to 4 s after a SIGTERM,
and only then releases its shared-memory message queue."""
LORA_NAME = "adapter"


class VllmBackend(TokenizedBackend):
    """Runs prompts through vLLM's AsyncLLM engine, timing every streamed delta.

    Args:
        clock: monotonic clock in seconds used for every timestamp.
        api: vLLM's classes (default: imported from the installed vLLM at ``load``); tests pass
            a fake with the same names.
        tokenizer_loader: ``AutoTokenizer.from_pretrained`` unless a test injects one.
        gpu_probe: counts the visible GPUs (tensor x pipeline parallel check).
    """

    name = "vllm"

    def __init__(
        self,
        clock: Callable[[], float] = time.perf_counter,
        api: VllmApi | None = None,
        tokenizer_loader: Callable[..., Any] | None = None,
        gpu_probe: Callable[[], GpuProbe] = probe,
    ) -> None:
        super().__init__()
        self._clock = clock
        self._api = api
        self._tokenizer_loader = tokenizer_loader
        self._probe = gpu_probe
        self._engine: Any = None
        self._children_before: set[int] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._info: ModelInfo | None = None
        self._lora: Any = None
        self._adapter: Path | None = None
        self._architecture: ArchitectureFolder | None = None
        self._sampling_flags: dict[str, bool] = {}
        self._runs = 0

    def load(self, config: ExperimentConfig) -> ModelInfo:
        """Check the vLLM version and engine arguments, then start the engine.

        Whatever fails, nothing is left behind: a started engine is shut down and a temporary
        architecture folder removed before the error propagates.

        Raises:
            DependencyError: vLLM missing or outside the tested version range.
            ConfigError: an engine argument or decoder field the installed vLLM lacks.
            BackendError: the engine failed to start.
        """
        try:
            return self._load(config)
        except BaseException:
            self.unload()
            raise

    def _load(self, config: ExperimentConfig) -> ModelInfo:
        options = config.vllm_options
        check_parallel_fits(
            "vllm", options.tensor_parallel_size, options.pipeline_parallel_size, self._probe
        )
        api = self._api or load_vllm_api()
        check_tested_versions(BACKENDS[self.name], {"vllm": api.version})
        source = resolve_model(config.model)
        kwargs = self._engine_kwargs(config, source)
        check_engine_kwargs(kwargs, api.engine_arg_names(), api.version)
        self._sampling_flags = {
            "forced_length": kwargs.get("load_format") == "dummy",
            "detokenize": not kwargs.get("skip_tokenizer_init", False),
        }
        # fail early on decoder fields vLLM lacks
        sampling_kwargs(
            config, config.max_output_tokens, api.sampling_param_names(), **self._sampling_flags
        )
        self._use_template = wants_chat_template(self._tokenizer, config.chat_template)
        if config.lora is not None:
            self._lora = api.lora_request(
                lora_name=LORA_NAME, lora_int_id=1, lora_path=str(self._adapter)
            )
        self._loop = asyncio.new_event_loop()
        self._children_before = _child_pids()
        try:
            self._engine = self._loop.run_until_complete(_start_engine(api, kwargs))
        except Exception as exc:  # vLLM raises many types while starting; report one
            raise BackendError(f"vLLM engine failed to start: {first_line(exc)}") from None
        self._api, self._config = api, config
        self._info = ModelInfo(
            model_id=config.model,
            source_kind=source.kind,
            dtype=str(kwargs["dtype"]),
            device="vllm engine",
            details=self._details(config, source, api, kwargs),
        )
        return self._info

    def _engine_kwargs(self, config: ExperimentConfig, source: ModelSource) -> dict[str, Any]:
        """Resolve the model (an architecture gets a temporary folder) and the tokenizer."""
        rank = None
        if config.lora is not None:
            self._adapter = _adapter_path(config.lora.adapter)
            rank = adapter_rank(self._adapter)
        if source.kind == "architecture":
            loader = self._tokenizer_loader or _auto_tokenizer_loader()
            self._architecture = architecture_folder(config, source, loader)
            self._tokenizer = self._architecture.tokenizer
            return engine_kwargs(
                config,
                str(self._architecture.folder),
                architecture=True,
                tokenizer=self._architecture.has_tokenizer,
                lora_rank=rank,
            )
        location = self._local_location(source)
        self._tokenizer = self._load_tokenizer(location)
        return engine_kwargs(config, location, lora_rank=rank)

    def _details(
        self, config: ExperimentConfig, source: ModelSource, api: VllmApi, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        details: dict[str, Any] = {
            # an architecture's folder is temporary: record the config.json it came from
            "location": source.location if self._architecture else kwargs["model"],
            "chat_template": self._use_template,
            "vllm": api.version,
            "engine_args": {k: v for k, v in kwargs.items() if k != "model"},
            "lora": config.lora.adapter if config.lora is not None else None,
        }
        if self._architecture is not None:
            details.update(self._architecture.details)
        else:  # the shape of the folder (or hub id) vLLM loads, as pytorch reads it
            details["architecture"] = model_architecture(kwargs["model"])
        return details

    @staticmethod
    def _local_location(source: ModelSource) -> str:
        if source.kind == "hub":
            check_hub_model(source.location)
        gguf_path = source.gguf_path
        if gguf_path is not None:
            # vLLM's own GGUF loader is partial; the converted folder is what it loads reliably.
            from llenergymeasure.backends.pytorch.gguf_cache import converted_folder

            return str(converted_folder(gguf_path))
        return source.location

    def _load_tokenizer(self, location: str) -> Any:
        loader = self._tokenizer_loader or _auto_tokenizer_loader()
        return loader(location)

    @property
    def concurrency(self) -> int:
        """The engine's sequence limit: warmup submits this many prompts at once."""
        return self._require_config().vllm_options.max_num_seqs or DEFAULT_MAX_NUM_SEQS

    def run(
        self,
        prompts: Sequence[list[int]],
        max_output_tokens: int,
        on_progress: ProgressCallback | None = None,
        load: LoadPlan | None = None,
        output_lengths: Sequence[int] | None = None,
    ) -> list[RequestRecord]:
        """Submit the prompts on ``load`` (None: all at once) and return one record per
        prompt, in order; with ``output_lengths``, each request's SamplingParams force its
        length (``max_tokens = min_tokens``, ``ignore_eos``).

        Raises:
            ConfigError: vLLM rejected the sampling parameters built from ``decoder``.
            BackendError: the engine failed while generating.
        """
        config, api = self._require_config(), self._require_api()
        assert self._loop is not None
        kwargs = sampling_kwargs(
            config, max_output_tokens, api.sampling_param_names(), **self._sampling_flags
        )
        lengths = forced_lengths(len(prompts), output_lengths, max_output_tokens)
        try:
            params = _request_params(api, kwargs, lengths, len(prompts))
        except ValueError as exc:  # vLLM's validation errors subclass ValueError
            raise ConfigError(f"decoder: vLLM rejected the sampling parameters: {exc}") from None
        self._runs += 1
        generate_kwargs = {"lora_request": self._lora} if self._lora is not None else {}
        try:
            result = self._loop.run_until_complete(
                stream_all(
                    self._engine,
                    [api.tokens_prompt(prompt_token_ids=list(ids)) for ids in prompts],
                    [len(ids) for ids in prompts],
                    params,
                    max_output_tokens,
                    load or OFFLINE,
                    self._clock,
                    f"run{self._runs}",
                    generate_kwargs,
                    on_progress,
                )
            )
        except Exception as exc:  # vLLM's engine errors come as several types
            raise BackendError(f"vLLM generation failed: {first_line(exc)}") from None
        self._record_cross_check(result)
        return result.records

    def _record_cross_check(self, result: StreamResult) -> None:
        """Keep the engine's own TTFT beside the streamed one (the last run = the window)."""
        if self._info is None or not result.engine_timings:
            return
        streamed = [r.ttft_s for r in result.records if r.ttft_s is not None]
        engine = [t.first_token_latency_s for t in result.engine_timings]
        self._info.details["ttft_cross_check"] = {
            "streamed_mean_s": statistics.fmean(streamed) if streamed else None,
            "engine_mean_s": statistics.fmean(engine),
            "requests": len(engine),
            "note": "engine = vLLM's first_token_latency (frontend arrival to first token); "
            "streamed = first delta stamped by llem's clock",
        }

    def reset_peak_memory(self) -> None:
        """Nothing to reset: the model lives in vLLM's engine-core process."""

    def peak_memory(self) -> MemoryReading:
        """Resident memory of this process and vLLM's engine processes, read now."""
        process = psutil.Process()
        total_b = process.memory_info().rss
        for child in process.children(recursive=True):
            try:
                total_b += child.memory_info().rss
            except psutil.Error:
                continue
        return MemoryReading(total_b / 2**20, "RSS of llem and vLLM engine processes at the end")

    def unload(self) -> None:
        """Shut the engine (and its processes) down, close the loop, remove temporary files.

        Safe to call at any point, also after a failed or partial ``load``.
        """
        try:
            if self._engine is not None:
                try:
                    _shut_down(self._engine)
                finally:
                    self._engine = None
            self._close_loop()
            _reap_engine_processes(self._children_before)
        finally:
            if self._architecture is not None:
                self._architecture.remove()
                self._architecture = None

    def _close_loop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        # The engine's output-handler tasks outlive shutdown(); end them before closing.
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(_settle(pending))
        loop.close()

    def _require_api(self) -> VllmApi:
        if self._api is None or self._engine is None:
            raise BackendError("the vllm backend has no engine running; call load() first")
        return self._api


def _request_params(
    api: VllmApi, kwargs: dict[str, Any], lengths: list[int] | None, n: int
) -> list[Any]:
    """SamplingParams per request: one shared by all, or with forced ``lengths`` one per
    distinct length (shared by the requests of that length).

    Raises:
        ValueError: vLLM rejected them.
    """
    if lengths is None:
        return [api.sampling_params(**kwargs, output_kind=api.delta_output_kind)] * n
    made = {
        length: api.sampling_params(
            **{**kwargs, **forced_length_fields(length)}, output_kind=api.delta_output_kind
        )
        for length in set(lengths)
    }
    return [made[length] for length in lengths]


def _shut_down(engine: Any) -> None:
    """Shut the engine down with ``ENGINE_SHUTDOWN_GRACE_S`` for its engine core.

    vLLM's own grace (5 s) is as long as the core waits for its worker to exit, and on CPU the
    worker takes longer: the core was killed before it had unlinked its shared-memory message
    queue, and multiprocessing's resource tracker said "There appear to be 1 leaked
    shared_memory objects" as llem exited. A vLLM whose ``shutdown`` takes no timeout keeps
    its own grace.
    """
    if "timeout" in inspect.signature(engine.shutdown).parameters:
        engine.shutdown(timeout=ENGINE_SHUTDOWN_GRACE_S)
    else:
        engine.shutdown()


async def _start_engine(api: VllmApi, kwargs: dict[str, Any]) -> Any:
    """Create the engine inside the loop so its output handler runs on that loop."""
    return api.async_llm.from_engine_args(api.engine_args(**kwargs))


async def _settle(tasks: set[asyncio.Task[Any]]) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)


def _auto_tokenizer_loader() -> Callable[..., Any]:
    from transformers import AutoTokenizer

    loader: Callable[..., Any] = AutoTokenizer.from_pretrained
    return loader


def _adapter_path(adapter: str) -> Path:
    """A local folder for the adapter: as given, or downloaded from the hub (cached)."""
    if Path(adapter).expanduser().is_dir():
        return Path(adapter).expanduser().resolve()
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(adapter))


def _child_pids() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True)}


def _reap_engine_processes(before: set[int] | None) -> None:
    """Wait for the processes the engine started to exit, and kill any that outstay
    ``ENGINE_EXIT_TIMEOUT_S``: ``shutdown()`` signals them without waiting, and a run must
    not end (nor the next experiment start) beside a dying engine. multiprocessing's
    resource tracker is process-long and left alone."""
    if before is None:
        return
    engine = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.pid not in before and "resource_tracker" not in " ".join(child.cmdline()):
                engine.append(child)
        except psutil.Error:  # ended meanwhile
            continue
    _, alive = psutil.wait_procs(engine, timeout=ENGINE_EXIT_TIMEOUT_S)
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()
    psutil.wait_procs(alive, timeout=ENGINE_EXIT_TIMEOUT_S)
