"""TensorRTBackend: TensorRT-LLM 1.x ``LLM`` with every request streamed and timed per chunk.

``tensorrt.runtime: pytorch`` uses ``tensorrt_llm.LLM`` (the 1.x default PyTorch runtime);
``engine`` uses ``tensorrt_llm._tensorrt_engine.LLM`` with a ``BuildConfig``. Built engines are
saved with ``llm.save(dir)`` under a content key (see ``args.engine_cache_key``) and reloaded on
a hit; the build happens in ``load``, outside the measured window.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from llenergymeasure.backends.base import (
    DTYPE_NAMES,
    MemoryReading,
    ProgressCallback,
    TokenizedBackend,
    TokenProgress,
    forced_length_fields,
    forced_lengths,
)
from llenergymeasure.backends.model_shape import model_architecture
from llenergymeasure.backends.model_source import ModelSource, check_hub_model, resolve_model
from llenergymeasure.backends.parallel import check_parallel_fits
from llenergymeasure.backends.prompts import wants_chat_template
from llenergymeasure.backends.registry import BACKENDS, check_tested_versions
from llenergymeasure.backends.tensorrt.args import (
    QUANT_ALGO_FIELDS,
    build_kwargs,
    engine_cache_key,
    kv_cache_kwargs,
    llm_kwargs,
    model_identity,
    plugin_settings,
    quant_kwargs,
    sampling_kwargs,
)
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.devices import GpuProbe, probe
from llenergymeasure.errors import BackendError, ConfigError, describe_os_error
from llenergymeasure.fileio import make_shareable
from llenergymeasure.load import LoadPlan, drive
from llenergymeasure.load.schedule import OFFLINE
from llenergymeasure.paths import cache_dir
from llenergymeasure.results.models import ModelInfo
from llenergymeasure.results.records import RequestRecord


def engine_cache_root() -> Path:
    """Where built engines are kept (``<cache>/tensorrt-engines/<key>``)."""
    return cache_dir() / "tensorrt-engines"


class TensorRTBackend(TokenizedBackend):
    """Runs prompts through TensorRT-LLM, submitted on the load plan (all at once offline;
    in-flight batching decides the batches).

    Args:
        clock: monotonic clock in seconds used for every timestamp.
        tokenizer_loader: ``AutoTokenizer.from_pretrained`` unless a test injects one.
        engine_root: folder of the engine cache (default: ``engine_cache_root()``).
        gpu_probe: counts the visible GPUs (tensor x pipeline parallel check).
    """

    name = "tensorrt"

    def __init__(
        self,
        clock: Callable[[], float] = time.perf_counter,
        tokenizer_loader: Callable[..., Any] | None = None,
        engine_root: Path | None = None,
        gpu_probe: Callable[[], GpuProbe] = probe,
    ) -> None:
        import tensorrt_llm

        super().__init__()
        self._trtllm: Any = tensorrt_llm
        self._clock = clock
        self._tokenizer_loader = tokenizer_loader
        self._engine_root = engine_root
        self._probe = gpu_probe
        self._llm: Any = None
        self._info: ModelInfo | None = None

    @property
    def version(self) -> str:
        """The installed ``tensorrt_llm.__version__``."""
        return str(getattr(self._trtllm, "__version__", "unknown"))

    def load(self, config: ExperimentConfig) -> ModelInfo:
        """Check the version, then create (or build, or load from the cache) the LLM.

        Raises:
            DependencyError: TensorRT-LLM outside the tested version range.
            ConfigError: a model kind or option this TensorRT-LLM cannot take.
            BackendError: TensorRT-LLM failed to load or build the model.
        """
        check_tested_versions(BACKENDS[self.name], {"tensorrt_llm": self.version})
        options = config.tensorrt_options
        check_parallel_fits(
            "tensorrt", options.tensor_parallel_size, options.pipeline_parallel_size, self._probe
        )
        source = resolve_model(config.model)
        location = self._location(source)
        self._tokenizer = self._load_tokenizer(location, options.extra)
        details: dict[str, Any] = {
            "tensorrt_llm": self.version,
            "runtime": options.runtime,
            "location": location,
            "architecture": model_architecture(location),  # for the FLOP counts
        }
        kwargs = self._llm_kwargs(config)
        try:
            if options.runtime == "engine":
                self._llm = self._engine_llm(config, source, location, kwargs, details)
            else:
                start = self._clock()
                self._llm = self._trtllm.LLM(model=location, **kwargs)
                details["model_load_s"] = self._clock() - start
        except (ValueError, TypeError, RuntimeError, OSError) as exc:
            raise BackendError(f"TensorRT-LLM failed to load '{config.model}': {exc}") from None
        self._config = config
        self._use_template = wants_chat_template(self._tokenizer, config.chat_template)
        details["chat_template"] = self._use_template
        self._info = ModelInfo(
            model_id=config.model,
            source_kind=source.kind,
            dtype=DTYPE_NAMES[config.precision],
            device="cuda",
            details=details,
        )
        return self._info

    def _llm_kwargs(self, config: ExperimentConfig) -> dict[str, Any]:
        options = config.tensorrt_options
        llmapi = self._trtllm.llmapi
        kwargs = llm_kwargs(options, config.precision, config.decoder.num_beams)
        kv = kv_cache_kwargs(options)
        if kv:
            known = getattr(llmapi.KvCacheConfig, "model_fields", None)
            rejected = sorted(set(kv) - set(known)) if known is not None else []
            if rejected:
                raise ConfigError(
                    f"tensorrt.kv_cache_config.{rejected[0]} is not accepted by the installed "
                    f"TensorRT-LLM {self.version} (its KvCacheConfig lacks it); remove it or "
                    "upgrade TensorRT-LLM"
                )
            kwargs["kv_cache_config"] = llmapi.KvCacheConfig(**kv)
        kwargs.update(options.extra)
        return kwargs

    def _engine_llm(
        self,
        config: ExperimentConfig,
        source: ModelSource,
        location: str,
        kwargs: dict[str, Any],
        details: dict[str, Any],
    ) -> Any:
        options = config.tensorrt_options
        engine_llm = self._trtllm._tensorrt_engine.LLM
        identity = model_identity(location, source.kind, options.extra.get("revision"))
        key = engine_cache_key(
            self.version, identity, options, config.precision, config.decoder.num_beams
        )
        folder = (self._engine_root or engine_cache_root()) / key[:32]
        details["engine_cache_key"] = key
        details["engine_dir"] = str(folder)
        if options.engine_cache and (folder / "config.json").is_file():
            start = self._clock()
            llm = engine_llm(model=str(folder), tokenizer=location, **kwargs)
            details.update(engine_cache="hit", engine_load_s=self._clock() - start)
            return llm
        llmapi = self._trtllm.llmapi
        build_config = llmapi.BuildConfig(**build_kwargs(options, config.decoder.num_beams))
        self._set_plugins(build_config.plugin_config, plugin_settings(options))
        quant = quant_kwargs(options)
        if quant:
            for name in QUANT_ALGO_FIELDS:
                if name in quant:
                    quant[name] = llmapi.QuantAlgo[quant[name]]
            kwargs["quant_config"] = llmapi.QuantConfig(**quant)
        start = self._clock()
        llm = engine_llm(model=location, build_config=build_config, **kwargs)
        details.update(engine_cache="miss", engine_build_s=self._clock() - start)
        if options.engine_cache:
            self._save_engine(llm, folder)
        return llm

    def _set_plugins(self, plugin_config: Any, settings: dict[str, Any]) -> None:
        """Set PluginConfig attributes, refusing names the installed TensorRT-LLM lacks."""
        for name, value in settings.items():
            if not hasattr(plugin_config, name):
                raise ConfigError(
                    f"tensorrt.build_config.plugin_config.{name} is not a PluginConfig field of "
                    f"the installed TensorRT-LLM {self.version}; remove it"
                )
            setattr(plugin_config, name, value)

    @staticmethod
    def _save_engine(llm: Any, folder: Path) -> None:
        """Save atomically: into a temporary sibling, then rename.

        Raises:
            BackendError: the engine cache cannot be written (names the path and the cause).
        """
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
        except OSError as exc:
            raise _cache_error(exc) from None
        try:
            llm.save(str(staging))
            make_shareable(staging)
            os.replace(staging, folder)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if not (folder / "config.json").is_file():  # else another run saved it meanwhile
                raise _cache_error(exc) from None

    @staticmethod
    def _location(source: ModelSource) -> str:
        if source.kind == "hub":
            check_hub_model(source.location)
            return source.location
        if source.kind == "local_dir":
            return source.location
        gguf_path = source.gguf_path
        if gguf_path is not None:
            from llenergymeasure.backends.pytorch.gguf_cache import converted_folder

            return str(converted_folder(gguf_path))
        raise ConfigError(
            f"backend tensorrt cannot load a '{source.kind}' model ({source.spec}); use a Hugging "
            "Face id or a local checkpoint folder"
        )

    def _load_tokenizer(self, location: str, extra: dict[str, Any]) -> Any:
        loader = self._tokenizer_loader
        if loader is None:
            from transformers import AutoTokenizer

            loader = AutoTokenizer.from_pretrained
        try:
            return loader(location, revision=extra.get("tokenizer_revision"))
        except (OSError, ValueError) as exc:
            raise BackendError(f"tokenizer of '{location}' failed to load: {exc}") from None

    @property
    def concurrency(self) -> int:
        """Requests in flight together: ``max_batch_size`` where set (TensorRT-LLM batches)."""
        options = self._require_config().tensorrt_options
        return options.max_batch_size or options.build_config.max_batch_size or 8

    def run(
        self,
        prompts: Sequence[list[int]],
        max_output_tokens: int,
        on_progress: ProgressCallback | None = None,
        load: LoadPlan | None = None,
        output_lengths: Sequence[int] | None = None,
    ) -> list[RequestRecord]:
        """Submit each prompt with ``generate_async(streaming=True)`` on ``load`` (None: all at
        once), stamping each streamed chunk with the clock and recording its token count;
        with ``output_lengths``, each request's SamplingParams force its length
        (``max_tokens = min_tokens``, ``ignore_eos``).

        Raises:
            BackendError: TensorRT-LLM failed while generating.
        """
        config = self._require_config()
        params = self._request_params(
            sampling_kwargs(config, max_output_tokens),
            forced_lengths(len(prompts), output_lengths, max_output_tokens),
            len(prompts),
        )
        engine_ttft: list[float | None] = [None] * len(prompts)

        async def one(index: int) -> RequestRecord:
            ids = prompts[index]
            record = RequestRecord(index, len(ids), 0, self._clock())
            progress = TokenProgress(on_progress, max_output_tokens)
            result = self._llm.generate_async(ids, sampling_params=params[index], streaming=True)
            output: Any = None
            async for update in result:
                now = self._clock()
                output = update.outputs[0]
                new = len(output.token_ids_diff)
                if new:
                    record.chunk_times_s.append(now)
                    record.chunk_tokens.append(new)
                    progress.add(new)
            record.end_s = self._clock()
            record.output_tokens = sum(record.chunk_tokens)
            engine_ttft[index] = _engine_ttft_s(output)
            progress.finish()
            return record

        try:
            records = asyncio.run(drive(load or OFFLINE, len(prompts), one, self._clock))
        except (RuntimeError, ValueError) as exc:
            raise BackendError(f"TensorRT-LLM generation failed: {exc}") from None
        self._note_ttft_cross_check(records, engine_ttft)
        return records

    def _request_params(
        self, kwargs: dict[str, Any], lengths: list[int] | None, n: int
    ) -> list[Any]:
        """SamplingParams per request: one shared by all, or with forced ``lengths`` one per
        distinct length."""
        make = self._trtllm.llmapi.SamplingParams
        if lengths is None:
            return [make(**kwargs)] * n
        made = {
            length: make(**{**kwargs, **forced_length_fields(length)}) for length in set(lengths)
        }
        return [made[length] for length in lengths]

    def _note_ttft_cross_check(
        self, records: list[RequestRecord], engine_ttft: list[float | None]
    ) -> None:
        """Compare streamed TTFT with the engine's own request timing (perf metrics)."""
        if self._info is None:
            return
        pairs = [
            (record.ttft_s, engine)
            for record, engine in zip(records, engine_ttft, strict=True)
            if record.ttft_s is not None and engine is not None
        ]
        check: dict[str, Any] = {"requests": len(records), "with_engine_timing": len(pairs)}
        if pairs:
            diffs = [streamed - engine for streamed, engine in pairs]
            check["median_streamed_minus_engine_s"] = statistics.median(diffs)
            check["max_abs_diff_s"] = max(abs(d) for d in diffs)
        else:
            check["note"] = "no request_perf_metrics returned; streamed TTFT only"
        self._info.details["ttft_cross_check"] = check

    def reset_peak_memory(self) -> None:
        """Nothing to reset: TensorRT-LLM allocates in its executor (see telemetry)."""

    def peak_memory(self) -> MemoryReading:
        """Not read here: the KV cache is preallocated by TensorRT-LLM's executor."""
        return MemoryReading(None, "not measured (TensorRT-LLM preallocates; see telemetry)")

    def unload(self) -> None:
        """Shut the LLM's executor down."""
        if self._llm is not None:
            self._llm.shutdown()
        self._llm = None


def _engine_ttft_s(output: Any) -> float | None:
    """first_token_time - arrival_time from ``request_perf_metrics``, where returned."""
    metrics = getattr(output, "request_perf_metrics", None)
    timing = getattr(metrics, "timing_metrics", None)
    if timing is None:
        return None
    try:
        ttft = timing.first_token_time - timing.arrival_time
        return float(ttft.total_seconds())
    except (AttributeError, TypeError):
        return None


def _cache_error(exc: OSError) -> BackendError:
    return BackendError(
        f"cannot save the built TensorRT engine to the engine cache: {describe_os_error(exc)}; "
        "free space there or set LLEM_CACHE_DIR to a writable folder"
    )
