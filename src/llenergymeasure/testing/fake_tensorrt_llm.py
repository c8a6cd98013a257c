"""A fake ``tensorrt_llm`` (NVIDIA TensorRT-LLM 1.x LLM API) with the names llenergymeasure uses.

It mirrors TensorRT-LLM 1.0-1.x as read from its sources (``tensorrt_llm/llmapi/llm.py``,
``llm_args.py``, ``builder.py``, ``sampling_params.py``, ``_tensorrt_engine/__init__.py``):

- ``tensorrt_llm.LLM`` (PyTorch runtime, the 1.x default) and
  ``tensorrt_llm._tensorrt_engine.LLM`` (the TensorRT-engine runtime, ``_TrtLLM``), both
  ``LLM(model, tokenizer=None, tokenizer_mode='auto', skip_tokenizer_init=False,
  trust_remote_code=False, tensor_parallel_size=1, dtype='auto', revision=None,
  tokenizer_revision=None, **kwargs)``; unknown kwargs raise ``ValueError("LLM got invalid
  argument: ...")``, and TensorRT-only ones (``build_config``, ``quant_config``...) given to the
  PyTorch ``LLM`` raise the real "specific to TensorRT backend" ``ValueError``.
- ``_TrtLLM.save(engine_dir)`` copies the built engine; a folder holding a saved engine
  (``config.json`` with ``pretrained_config`` and ``build_config``) loads without a build.
- ``generate_async(inputs, sampling_params=None, lora_request=None, prompt_adapter_request=None,
  streaming=False, kv_cache_retention_config=None, disaggregated_params=None,
  _postproc_params=None, scheduling_params=None, cache_salt=None) -> RequestOutput``; a
  RequestOutput is async-iterable when streaming, yielding itself with ``outputs[0]`` a
  ``CompletionOutput`` whose ``token_ids_diff`` holds the tokens new since the last yield, and
  ``request_perf_metrics.timing_metrics.{arrival_time, first_scheduled_time,
  first_token_time, last_token_time}`` (``datetime.timedelta`` on a steady clock) when
  ``SamplingParams(return_perf_metrics=True)``.
- ``tensorrt_llm.llmapi.{KvCacheConfig, BuildConfig, QuantConfig, QuantAlgo, SamplingParams}``:
  KvCacheConfig is a strict pydantic model (``tokens_per_block`` exists from 1.1 on; the
  fake's version decides), BuildConfig a dataclass with a ``plugin_config``, SamplingParams a
  dataclass, QuantAlgo a str enum of member names.

Tokens are deterministic (a function of the prompt and position); each streamed chunk carries
``chunk_pattern[k]`` tokens (several at once sometimes), ``token_delay_s`` apart per token.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import enum
import importlib.machinery
import json
import shutil
import sys
import time
import types
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from llenergymeasure.testing.modules import modules_installed

TRTLLM_VERSION = "1.0.0"


@dataclass
class FakeTrtLlmSpec:
    """How the fake behaves.

    Attributes:
        version: ``tensorrt_llm.__version__``.
        token_delay_s: seconds of (asyncio) sleep per generated token.
        chunk_pattern: tokens per streamed chunk, cycled (e.g. (1, 3) = 1, 3, 1, 3, ...).
        output_tokens: where each request's EOS comes (None = never: ``max_tokens``); a
            request with ``ignore_eos`` runs on to ``max_tokens``, one with ``min_tokens``
            at least to those, as in TensorRT-LLM.
        perf_metrics: fill ``request_perf_metrics`` when asked for.
        build_delay_s: seconds an engine build takes (engine runtime, cache miss).
        kv_cache_tokens_per_block: whether KvCacheConfig has ``tokens_per_block`` (1.1+).
        vocab_size: tokens are drawn from ``range(vocab_size)``.
    """

    version: str = TRTLLM_VERSION
    token_delay_s: float = 0.0005
    chunk_pattern: tuple[int, ...] = (1, 1, 3, 1, 2)
    output_tokens: int | None = None
    perf_metrics: bool = True
    build_delay_s: float = 0.0
    kv_cache_tokens_per_block: bool = True
    vocab_size: int = 1000


@dataclass
class FakeTrtLlm:
    """What the code under test did with the fake (constructor arguments, builds, saves)."""

    spec: FakeTrtLlmSpec
    llm_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    kv_cache_configs: list[dict[str, Any]] = field(default_factory=list)
    build_configs: list[dict[str, Any]] = field(default_factory=list)
    quant_configs: list[dict[str, Any]] = field(default_factory=list)
    sampling_params: list[dict[str, Any]] = field(default_factory=list)
    builds: int = 0
    engine_loads: int = 0
    saves: list[str] = field(default_factory=list)
    requests: int = 0


# ---- tensorrt_llm.llmapi configs -------------------------------------------------------------


class QuantAlgo(str, enum.Enum):
    """tensorrt_llm.quantization.mode.QuantAlgo (a StrEnum whose values are the names)."""

    W8A16 = "W8A16"
    W4A16 = "W4A16"
    W4A16_AWQ = "W4A16_AWQ"
    W4A8_AWQ = "W4A8_AWQ"
    W4A16_GPTQ = "W4A16_GPTQ"
    W8A8_SQ_PER_CHANNEL = "W8A8_SQ_PER_CHANNEL"
    FP8 = "FP8"
    FP8_PER_CHANNEL_PER_TOKEN = "FP8_PER_CHANNEL_PER_TOKEN"
    FP8_BLOCK_SCALES = "FP8_BLOCK_SCALES"
    INT8 = "INT8"
    NVFP4 = "NVFP4"
    NO_QUANT = "NO_QUANT"


class _KvCacheConfigBase(BaseModel):
    """tensorrt_llm.llmapi.KvCacheConfig (StrictBaseModel: unknown fields are errors)."""

    model_config = ConfigDict(extra="forbid")

    enable_block_reuse: bool = True
    max_tokens: int | None = None
    max_attention_window: list[int] | None = None
    sink_token_length: int | None = None
    free_gpu_memory_fraction: float | None = None
    host_cache_size: int | None = None
    onboard_blocks: bool = True
    cross_kv_cache_fraction: float | None = None
    secondary_offload_min_priority: int | None = None
    event_buffer_max_size: int = 0
    enable_partial_reuse: bool = True
    copy_on_partial_reuse: bool = True
    use_uvm: bool = False
    dtype: str = "auto"


class _KvCacheConfigWithBlocks(_KvCacheConfigBase):
    """KvCacheConfig from TensorRT-LLM 1.1 on, with ``tokens_per_block``."""

    tokens_per_block: int = 32


@dataclass
class QuantConfig:
    """tensorrt_llm.llmapi.QuantConfig (the fields the LLM API documents)."""

    quant_algo: QuantAlgo | None = None
    kv_cache_quant_algo: QuantAlgo | None = None
    group_size: int = 128
    smoothquant_val: float = 0.5
    clamp_val: list[float] | None = None
    use_meta_recipe: bool = False
    has_zero_point: bool = False
    pre_quant_scale: bool = False
    exclude_modules: list[str] | None = None


@dataclass
class PluginConfig:
    """tensorrt_llm.plugin.PluginConfig: its plugin and feature fields (defaults may differ)."""

    bert_attention_plugin: str | None = "auto"
    gpt_attention_plugin: str | None = "auto"
    gemm_plugin: str | None = None
    gemm_swiglu_plugin: str | None = None
    fp8_rowwise_gemm_plugin: str | None = None
    qserve_gemm_plugin: str | None = None
    identity_plugin: str | None = None
    nccl_plugin: str | None = "auto"
    lora_plugin: str | None = None
    dora_plugin: bool = False
    weight_only_groupwise_quant_matmul_plugin: str | None = None
    weight_only_quant_matmul_plugin: str | None = None
    smooth_quant_plugins: bool = True
    smooth_quant_gemm_plugin: str | None = None
    layernorm_quantization_plugin: str | None = None
    rmsnorm_quantization_plugin: str | None = None
    quantize_per_token_plugin: bool = False
    quantize_tensor_plugin: bool = False
    moe_plugin: str | None = "auto"
    mamba_conv1d_plugin: str | None = "auto"
    low_latency_gemm_plugin: str | None = None
    low_latency_gemm_swiglu_plugin: str | None = None
    gemm_allreduce_plugin: str | None = None
    context_fmha: bool = True
    bert_context_fmha_fp32_acc: bool = False
    paged_kv_cache: bool | None = None
    remove_input_padding: bool = True
    norm_quant_fusion: bool = False
    reduce_fusion: bool = False
    user_buffer: bool = False
    tokens_per_block: int = 32
    use_paged_context_fmha: bool = True
    use_fp8_context_fmha: bool = True
    fuse_fp4_quant: bool = False
    multiple_profiles: bool = False
    paged_state: bool = True
    streamingllm: bool = False
    manage_weights: bool = False
    use_fused_mlp: bool = True
    pp_reduce_scatter: bool = False


@dataclass
class BuildConfig:
    """tensorrt_llm.builder.BuildConfig (1.0: a dataclass with these fields)."""

    max_input_len: int = 1024
    max_seq_len: int | None = None
    opt_batch_size: int = 8
    max_batch_size: int = 2048
    max_beam_width: int = 1
    max_num_tokens: int = 8192
    opt_num_tokens: int | None = None
    max_prompt_embedding_table_size: int = 0
    kv_cache_type: Any = None
    gather_context_logits: bool = False
    gather_generation_logits: bool = False
    strongly_typed: bool = True
    force_num_profiles: int | None = None
    profiling_verbosity: str = "layer_names_only"
    enable_debug_output: bool = False
    max_draft_len: int = 0
    use_refit: bool = False
    input_timing_cache: str | None = None
    output_timing_cache: str = "model.cache"
    weight_sparsity: bool = False
    weight_streaming: bool = False
    plugin_config: PluginConfig = field(default_factory=PluginConfig)
    use_strip_plan: bool = False
    max_encoder_input_len: int = 1024
    dry_run: bool = False
    visualize_network: str | None = None
    monitor_memory: bool = False
    use_mrope: bool = False


@dataclass
class SamplingParams:
    """tensorrt_llm.SamplingParams (1.0 dataclass; the fields of the LLM API)."""

    end_id: int | None = None
    pad_id: int | None = None
    max_tokens: int = 32
    bad: str | list[str] | None = None
    bad_token_ids: list[int] | None = None
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    include_stop_str_in_output: bool = False
    embedding_bias: Any = None
    logits_processor: Any = None
    apply_batched_logits_processor: bool = False
    n: int = 1
    best_of: int | None = None
    use_beam_search: bool = False
    top_k: int | None = None
    top_p: float | None = None
    top_p_min: float | None = None
    top_p_reset_ids: int | None = None
    top_p_decay: float | None = None
    seed: int | None = None
    temperature: float | None = None
    min_tokens: int | None = None
    beam_search_diversity_rate: float | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    length_penalty: float | None = None
    early_stopping: int | None = None
    no_repeat_ngram_size: int | None = None
    min_p: float | None = None
    beam_width_array: list[int] | None = None
    logprobs: int | None = None
    prompt_logprobs: int | None = None
    return_context_logits: bool = False
    return_generation_logits: bool = False
    exclude_input_from_output: bool = True
    return_encoder_output: bool = False
    return_perf_metrics: bool = False
    additional_model_outputs: list[Any] | None = None
    lookahead_config: Any = None
    guided_decoding: Any = None
    ignore_eos: bool = False
    detokenize: bool = True
    add_special_tokens: bool = True
    truncate_prompt_tokens: int | None = None
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True

    def __post_init__(self) -> None:
        if self.pad_id is None:
            self.pad_id = self.end_id
        self.best_of = self.best_of or self.n


# ---- outputs -----------------------------------------------------------------------------------


@dataclass
class TimingMetrics:
    """bindings.executor.RequestTimingMetrics: steady-clock times as timedeltas."""

    arrival_time: datetime.timedelta = datetime.timedelta(0)
    first_scheduled_time: datetime.timedelta = datetime.timedelta(0)
    first_token_time: datetime.timedelta = datetime.timedelta(0)
    last_token_time: datetime.timedelta = datetime.timedelta(0)


@dataclass
class RequestPerfMetrics:
    """bindings.executor.RequestPerfMetrics (timing part)."""

    timing_metrics: TimingMetrics = field(default_factory=TimingMetrics)
    first_iter: int | None = None
    last_iter: int | None = None


@dataclass
class CompletionOutput:
    """tensorrt_llm.executor.CompletionOutput."""

    index: int
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    request_perf_metrics: RequestPerfMetrics | None = None
    _last_token_ids_len: int = 0

    @property
    def length(self) -> int:
        return len(self.token_ids)

    @property
    def token_ids_diff(self) -> list[int]:
        return self.token_ids[self._last_token_ids_len :]


def _steady_now() -> datetime.timedelta:
    return datetime.timedelta(seconds=time.monotonic())


class RequestOutput:
    """tensorrt_llm.llmapi.RequestOutput: a GenerationResult, async-iterable when streaming."""

    def __init__(
        self,
        request_id: int,
        prompt_token_ids: list[int],
        params: SamplingParams,
        spec: FakeTrtLlmSpec,
        streaming: bool,
    ) -> None:
        self.request_id = request_id
        self.prompt_token_ids = prompt_token_ids
        self.outputs = [CompletionOutput(index=0)]
        self.finished = False
        self._params = params
        self._spec = spec
        self._streaming = streaming
        self._arrival = _steady_now()

    def _plan(self) -> list[int]:
        """The tokens generated: up to ``max_tokens``, ending at the spec's EOS
        (``output_tokens``) unless ``ignore_eos``, and not before ``min_tokens``."""
        limit, params = self._params.max_tokens, self._params
        eos_at = self._spec.output_tokens
        if eos_at is None or params.ignore_eos:
            count = limit
        else:
            count = min(limit, max(eos_at, params.min_tokens or 0))
        base = sum(self.prompt_token_ids)
        return [(base + 7 * i) % self._spec.vocab_size for i in range(count)]

    async def _chunks(self) -> AsyncIterator[RequestOutput]:
        tokens = self._plan()
        output = self.outputs[0]
        timing = TimingMetrics(arrival_time=self._arrival, first_scheduled_time=_steady_now())
        position, k = 0, 0
        while position < len(tokens):
            size = self._spec.chunk_pattern[k % len(self._spec.chunk_pattern)]
            k += 1
            await asyncio.sleep(self._spec.token_delay_s * size)
            output._last_token_ids_len = len(output.token_ids)
            output.token_ids = output.token_ids + tokens[position : position + size]
            position += size
            now = _steady_now()
            if timing.first_token_time == datetime.timedelta(0):
                timing.first_token_time = now
            timing.last_token_time = now
            if position >= len(tokens):
                self.finished = True
                output.finish_reason = "length"
                if self._params.return_perf_metrics and self._spec.perf_metrics:
                    output.request_perf_metrics = RequestPerfMetrics(timing_metrics=timing)
            yield self
        if not tokens:
            self.finished = True
            output.finish_reason = "length"
            yield self

    def __aiter__(self) -> AsyncIterator[RequestOutput]:
        if not self._streaming:
            raise RuntimeError("streaming=False: await aresult() instead")
        return self._chunks()

    async def aresult(self) -> RequestOutput:
        async for _ in self._chunks():
            pass
        return self


# ---- LLM ---------------------------------------------------------------------------------------

_BASE_ARGS = {
    "model",
    "tokenizer",
    "tokenizer_mode",
    "skip_tokenizer_init",
    "trust_remote_code",
    "tensor_parallel_size",
    "dtype",
    "revision",
    "tokenizer_revision",
    "pipeline_parallel_size",
    "context_parallel_size",
    "gpus_per_node",
    "moe_cluster_parallel_size",
    "moe_tensor_parallel_size",
    "moe_expert_parallel_size",
    "enable_attention_dp",
    "cp_config",
    "load_format",
    "fail_fast_on_attention_window_too_large",
    "enable_lora",
    "lora_config",
    "kv_cache_config",
    "enable_chunked_prefill",
    "guided_decoding_backend",
    "batched_logits_processor",
    "iter_stats_max_iterations",
    "request_stats_max_iterations",
    "peft_cache_config",
    "scheduler_config",
    "cache_transceiver_config",
    "speculative_config",
    "max_batch_size",
    "max_input_len",
    "max_seq_len",
    "max_beam_width",
    "max_num_tokens",
    "gather_generation_logits",
    "num_postprocess_workers",
    "postprocess_tokenizer_dir",
    "reasoning_parser",
    "decoding_config",
    "backend",
    "_mpi_session",
}
_TRT_ONLY_ARGS = {
    "auto_parallel",
    "auto_parallel_world_size",
    "enable_tqdm",
    "workspace",
    "enable_build_cache",
    "extended_runtime_perf_knob_config",
    "calib_config",
    "quant_config",
    "embedding_parallel_mode",
    "fast_build",
    "build_config",
    "enable_prompt_adapter",
    "max_prompt_adapter_token",
    "batching_type",
    "normalize_log_probs",
}
_TORCH_ONLY_ARGS = {
    "garbage_collection_gen0_threshold",
    "cuda_graph_config",
    "disable_overlap_scheduler",
    "moe_config",
    "attn_backend",
    "enable_iter_perf_stats",
    "enable_iter_req_stats",
    "print_iter_log",
    "torch_compile_config",
    "enable_autotuner",
    "enable_layerwise_nvtx_marker",
    "stream_interval",
}


class _BaseLLM:
    _fake: FakeTrtLlm
    _runtime: str
    _valid_args: set[str]

    def __init__(
        self,
        model: str | Path,
        tokenizer: Any = None,
        tokenizer_mode: str = "auto",
        skip_tokenizer_init: bool = False,
        trust_remote_code: bool = False,
        tensor_parallel_size: int = 1,
        dtype: str = "auto",
        revision: str | None = None,
        tokenizer_revision: str | None = None,
        **kwargs: Any,
    ) -> None:
        for key in kwargs:
            if key not in self._valid_args:
                raise ValueError(f"{type(self).__name__} got invalid argument: {key}")
        self.args = {
            "model": model,
            "tokenizer": tokenizer,
            "tokenizer_mode": tokenizer_mode,
            "skip_tokenizer_init": skip_tokenizer_init,
            "trust_remote_code": trust_remote_code,
            "tensor_parallel_size": tensor_parallel_size,
            "dtype": dtype,
            "revision": revision,
            "tokenizer_revision": tokenizer_revision,
            **kwargs,
        }
        self._fake.llm_calls.append((self._runtime, dict(self.args)))
        self._next_id = 0
        self._engine_dir: Path | None = None
        self._build_model()

    def _build_model(self) -> None:
        return None

    def generate_async(
        self,
        inputs: Any,
        sampling_params: SamplingParams | None = None,
        lora_request: Any = None,
        prompt_adapter_request: Any = None,
        streaming: bool = False,
        kv_cache_retention_config: Any = None,
        disaggregated_params: Any = None,
        _postproc_params: Any = None,
        scheduling_params: Any = None,
        cache_salt: str | None = None,
    ) -> RequestOutput:
        if isinstance(inputs, dict):
            ids = list(inputs["prompt_token_ids"])
        elif isinstance(inputs, list):
            ids = list(inputs)
        else:
            raise TypeError("the fake tensorrt_llm takes token ids (list[int])")
        params = sampling_params or SamplingParams()
        self._fake.requests += 1
        self._next_id += 1
        return RequestOutput(self._next_id, ids, params, self._fake.spec, streaming)

    def generate(
        self, inputs: Sequence[list[int]], sampling_params: SamplingParams | None = None
    ) -> list[RequestOutput]:
        async def _all() -> list[RequestOutput]:
            return list(
                await asyncio.gather(
                    *(self.generate_async(i, sampling_params).aresult() for i in inputs)
                )
            )

        return asyncio.run(_all())

    def shutdown(self) -> None:
        return None

    def __enter__(self) -> _BaseLLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


class _TorchLLM(_BaseLLM):
    _runtime = "pytorch"
    _valid_args = _BASE_ARGS | _TORCH_ONLY_ARGS | _TRT_ONLY_ARGS

    def __init__(self, model: str | Path, *args: Any, **kwargs: Any) -> None:
        trt_specific = [key for key in kwargs if key in _TRT_ONLY_ARGS]
        if trt_specific:
            raise ValueError(
                "The following arguments are specific to TensorRT backend and cannot be used "
                f"with PyTorch backend: {trt_specific}.\nPlease use 'from "
                "tensorrt_llm._tensorrt_engine import LLM' instead to use the TensorRT backend."
            )
        super().__init__(model, *args, **kwargs)


class _TrtLLM(_BaseLLM):
    _runtime = "engine"
    _valid_args = _BASE_ARGS | _TRT_ONLY_ARGS

    def _build_model(self) -> None:
        model_dir = Path(str(self.args["model"]))
        config = model_dir / "config.json"
        if config.is_file():
            data = json.loads(config.read_text())
            if "build_config" in data and "pretrained_config" in data:
                self._fake.engine_loads += 1
                self._engine_dir = model_dir
                return
        if self._fake.spec.build_delay_s:
            time.sleep(self._fake.spec.build_delay_s)
        self._fake.builds += 1
        build = self.args.get("build_config") or BuildConfig()
        self._built = {
            "pretrained_config": {"dtype": self.args["dtype"]},
            "build_config": dataclasses.asdict(build),
            "version": self._fake.spec.version,
        }

    def save(self, engine_dir: str) -> None:
        """Save the built engine to the given path."""
        if self._engine_dir is not None and self._engine_dir.absolute() == Path(engine_dir):
            return
        target = Path(engine_dir)
        target.mkdir(parents=True, exist_ok=True)
        if self._engine_dir is not None:
            shutil.copytree(self._engine_dir, target, dirs_exist_ok=True)
        else:
            (target / "config.json").write_text(json.dumps(self._built, default=str))
            (target / "rank0.engine").write_bytes(b"fake engine")
        self._fake.saves.append(str(target))


class LLM(_TorchLLM):
    """tensorrt_llm.LLM: the PyTorch runtime (the 1.x default)."""


def build_modules(fake: FakeTrtLlm) -> dict[str, types.ModuleType]:
    """The fake's modules, keyed by name, bound to ``fake`` (for ``sys.modules``)."""

    def recording(cls: Any, sink: list[dict[str, Any]]) -> Any:
        class Recording(cls):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                sink.append(dict(kwargs))

        Recording.__name__ = Recording.__qualname__ = cls.__name__.lstrip("_").replace(
            "WithBlocks", ""
        )
        return Recording

    kv_base = (
        _KvCacheConfigWithBlocks if fake.spec.kv_cache_tokens_per_block else (_KvCacheConfigBase)
    )
    kv_cls = recording(kv_base, fake.kv_cache_configs)
    kv_cls.__name__ = "KvCacheConfig"
    build_cls = recording(BuildConfig, fake.build_configs)
    quant_cls = recording(QuantConfig, fake.quant_configs)
    sampling_cls = recording(SamplingParams, fake.sampling_params)
    llm_cls = type("LLM", (LLM,), {"_fake": fake})
    trt_cls = type("LLM", (_TrtLLM,), {"_fake": fake})

    def module(name: str, **attrs: Any) -> types.ModuleType:
        mod = types.ModuleType(name)
        mod.__spec__ = importlib.machinery.ModuleSpec(name, None)
        mod.__dict__.update(attrs)
        return mod

    llmapi = module(
        "tensorrt_llm.llmapi",
        LLM=llm_cls,
        KvCacheConfig=kv_cls,
        BuildConfig=build_cls,
        QuantConfig=quant_cls,
        QuantAlgo=QuantAlgo,
        SamplingParams=sampling_cls,
        RequestOutput=RequestOutput,
        CompletionOutput=CompletionOutput,
    )
    engine = module("tensorrt_llm._tensorrt_engine", LLM=trt_cls)
    root = module(
        "tensorrt_llm",
        __version__=fake.spec.version,
        LLM=llm_cls,
        SamplingParams=sampling_cls,
        BuildConfig=build_cls,
        llmapi=llmapi,
        _tensorrt_engine=engine,
    )
    root.__path__ = []  # a package, so submodule imports resolve through sys.modules
    return {"tensorrt_llm": root, "tensorrt_llm.llmapi": llmapi, engine.__name__: engine}


def install(fake: FakeTrtLlm) -> None:
    """Make ``import tensorrt_llm`` return the fake for the rest of the process."""
    sys.modules.update(build_modules(fake))


def fake_tensorrt_from_spec(spec: str | Mapping[str, Any]) -> FakeTrtLlm:
    """Build a FakeTrtLlm from ``1`` (defaults) or a JSON object of :class:`FakeTrtLlmSpec`
    fields (the ``LLEM_FAKE_TENSORRT`` format), e.g. ``{"version": "1.1.0"}``.

    Raises:
        ValueError: neither ``1`` nor a JSON object of known fields.
    """
    if isinstance(spec, str) and spec.strip() == "1":
        return FakeTrtLlm(FakeTrtLlmSpec())
    data = json.loads(spec) if isinstance(spec, str) else dict(spec)
    if not isinstance(data, dict):
        raise ValueError("a fake TensorRT-LLM spec is 1 or a JSON object")
    known = {f.name for f in dataclasses.fields(FakeTrtLlmSpec)}
    if set(data) - known:
        raise ValueError(
            f"unknown fake TensorRT-LLM field(s) {sorted(set(data) - known)}; known: "
            f"{sorted(known)}"
        )
    if isinstance(data.get("chunk_pattern"), list):
        data["chunk_pattern"] = tuple(data["chunk_pattern"])
    return FakeTrtLlm(FakeTrtLlmSpec(**data))


@contextlib.contextmanager
def install_fake_tensorrt_llm(spec: FakeTrtLlmSpec | None = None) -> Iterator[FakeTrtLlm]:
    """Put a fake ``tensorrt_llm`` in ``sys.modules`` for the duration of the block.

    Yields:
        The FakeTrtLlm recording constructor arguments, builds and saves.
    """
    fake = FakeTrtLlm(spec or FakeTrtLlmSpec())
    with modules_installed(build_modules(fake)):
        yield fake
