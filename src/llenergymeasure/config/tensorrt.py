"""The tensorrt section: TensorRT-LLM 1.x LLM arguments with its KV-cache, quantisation and
engine-build subsections (native names)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from llenergymeasure.config.base import _Strict
from llenergymeasure.config.field_meta import FieldMeta


class TensorRTKvCacheConfig(_Strict):
    """tensorrt_llm KvCacheConfig fields (None = TensorRT-LLM's default)."""

    free_gpu_memory_fraction: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="Fraction of free GPU memory given to the KV cache (TensorRT-LLM: 0.9). "
        "More cache admits more concurrent requests: higher throughput per joule.",
        json_schema_extra=FieldMeta(unit="fraction"),
    )
    max_tokens: int | None = Field(
        None,
        ge=1,
        description="Most tokens held in the KV cache (caps its memory).",
        json_schema_extra=FieldMeta(unit="tokens"),
    )
    enable_block_reuse: bool | None = Field(
        None, description="Reuse KV blocks across requests sharing a prefix (saves prefill)."
    )
    tokens_per_block: int | None = Field(
        None,
        ge=1,
        description="Tokens per paged KV block (KvCacheConfig from TensorRT-LLM 1.1; with "
        "runtime: engine it is the plugin_config value baked into the engine).",
        examples=[64],
        json_schema_extra=FieldMeta(unit="tokens", since="TensorRT-LLM 1.1 (runtime pytorch)"),
    )
    host_cache_size: int | None = Field(
        None,
        ge=0,
        description="Bytes of host memory for offloaded KV blocks (a second cache tier: more "
        "reuse without recomputing prefill, at PCIe transfer cost).",
        examples=[1 << 30],
        json_schema_extra=FieldMeta(unit="bytes"),
    )
    dtype: Literal["auto", "fp8"] | None = Field(
        None,
        description="KV-cache dtype for runtime pytorch: fp8 halves KV memory (more concurrent "
        "requests); needs Ada/Hopper or newer. With runtime engine use "
        "quant_config.kv_cache_quant_algo.",
        json_schema_extra=FieldMeta(hardware="fp8: NVIDIA Ada/Hopper or newer"),
    )


TensorRTQuantAlgo = Literal[
    "FP8",
    "FP8_BLOCK_SCALES",
    "FP8_PER_CHANNEL_PER_TOKEN",
    "W8A8_SQ_PER_CHANNEL",
    "W8A16",
    "W4A16",
    "W4A16_AWQ",
    "W4A16_GPTQ",
    "W4A8_AWQ",
    "NVFP4",
]


class TensorRTQuantConfig(_Strict):
    """tensorrt_llm QuantConfig fields (QuantAlgo member names), quantised while building."""

    quant_algo: TensorRTQuantAlgo | None = Field(
        None,
        description="Weight/activation quantisation: FP8 (Ada/Hopper), W8A8_SQ_PER_CHANNEL "
        "(int8 SmoothQuant), W4A16_AWQ (int4 AWQ), W4A16/W8A16 (weight-only), NVFP4 "
        "(Blackwell). Fewer weight bytes per token: less memory traffic and energy.",
        json_schema_extra=FieldMeta(hardware="FP8: Ada/Hopper or newer; NVFP4: Blackwell"),
    )
    kv_cache_quant_algo: Literal["FP8", "INT8", "NVFP4"] | None = Field(
        None, description="KV-cache quantisation (smaller cache, more concurrent requests)."
    )
    group_size: int | None = Field(
        None,
        ge=1,
        description="Weights per quantisation group for the group-wise algorithms (AWQ, "
        "GPTQ; TensorRT-LLM default 128).",
        examples=[64],
        json_schema_extra=FieldMeta(unit="weights"),
    )
    smoothquant_val: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="SmoothQuant migration strength alpha for W8A8_SQ_PER_CHANNEL (default 0.5).",
    )


class TensorRTBuildConfig(_Strict):
    """tensorrt_llm BuildConfig fields for the engine runtime; every one is in the cache key.

    TensorRT-LLM 1.x's BuildConfig has no builder optimisation level (TensorRT's default is
    used), so none is modelled.
    """

    max_input_len: int | None = Field(
        None,
        ge=1,
        description="Longest prompt the engine takes.",
        json_schema_extra=FieldMeta(unit="tokens"),
    )
    max_seq_len: int | None = Field(
        None,
        ge=1,
        description="Longest prompt + output.",
        json_schema_extra=FieldMeta(unit="tokens"),
    )
    max_batch_size: int | None = Field(
        None,
        ge=1,
        description="Most requests per batch the engine is built for.",
        json_schema_extra=FieldMeta(unit="requests"),
    )
    max_num_tokens: int | None = Field(
        None,
        ge=1,
        description="Most tokens per batch step.",
        json_schema_extra=FieldMeta(unit="tokens"),
    )
    max_beam_width: int | None = Field(
        None, ge=1, description="Beam width built for (raised to decoder.num_beams if lower)."
    )
    opt_batch_size: int | None = Field(None, ge=1, description="Batch size tuned for.")
    opt_num_tokens: int | None = Field(None, ge=1, description="Tokens per step tuned for.")
    strongly_typed: bool | None = Field(None, description="Build a strongly typed network.")
    weight_sparsity: bool | None = Field(
        None,
        description="Use 2:4 structured-sparse weight kernels (needs sparsified weights; "
        "Ampere or newer).",
        json_schema_extra=FieldMeta(hardware="NVIDIA Ampere or newer"),
    )
    weight_streaming: bool | None = Field(
        None, description="Stream weights from host memory (fits bigger models, slower)."
    )
    use_refit: bool | None = Field(None, description="Build a refittable engine.")
    use_strip_plan: bool | None = Field(None, description="Strip weights from the plan.")
    plugin_config: dict[str, str | bool | int] = Field(
        default_factory=dict,
        description="PluginConfig attributes set on BuildConfig.plugin_config before the "
        "build (e.g. use_paged_context_fmha, use_fp8_context_fmha, multiple_profiles, "
        "gemm_plugin, context_fmha): kernel choices that change throughput and energy. "
        "Unknown names are refused.",
        examples=[
            {"use_paged_context_fmha": True, "multiple_profiles": True},
            {"gemm_plugin": "auto"},
        ],
    )


TORCH_RUNTIME_ONLY = (
    "cuda_graph_config",
    "disable_overlap_scheduler",
    "attn_backend",
    "torch_compile_config",
)
"""TensorRTConfig fields that only TensorRT-LLM's PyTorch runtime (TorchLlmArgs) takes."""


class TensorRTConfig(_Strict):
    """Parameters of the tensorrt backend (TensorRT-LLM 1.x; native names).

    The weight dtype is the top-level ``precision`` (``LLM(dtype=)``).
    """

    runtime: Literal["pytorch", "engine"] = Field(
        "pytorch",
        description="'pytorch' = TensorRT-LLM's default LLM (PyTorch runtime); 'engine' = "
        "a built TensorRT engine (tensorrt_llm._tensorrt_engine.LLM + BuildConfig).",
    )
    max_batch_size: int | None = Field(
        None,
        ge=1,
        description="Most requests per batch (in-flight batching): higher = more throughput "
        "per joule until memory saturates.",
        json_schema_extra=FieldMeta(unit="requests"),
    )
    max_num_tokens: int | None = Field(
        None,
        ge=1,
        description="Most tokens per batch step.",
        json_schema_extra=FieldMeta(unit="tokens"),
    )
    max_input_len: int | None = Field(
        None, ge=1, description="Longest prompt.", json_schema_extra=FieldMeta(unit="tokens")
    )
    max_seq_len: int | None = Field(
        None,
        ge=1,
        description="Longest prompt + output.",
        json_schema_extra=FieldMeta(unit="tokens"),
    )
    max_beam_width: int | None = Field(
        None,
        ge=1,
        description="Largest beam width the LLM serves (raised to decoder.num_beams if lower).",
    )
    tensor_parallel_size: int = Field(
        1,
        ge=1,
        description="GPUs per model (tensor parallel). tensor_parallel_size x "
        "pipeline_parallel_size must not exceed the visible GPUs (checked when loading).",
        json_schema_extra=FieldMeta(hardware="that many NVIDIA GPUs"),
    )
    pipeline_parallel_size: int = Field(
        1,
        ge=1,
        description="Pipeline stages (GPUs).",
        json_schema_extra=FieldMeta(hardware="that many NVIDIA GPUs"),
    )
    enable_chunked_prefill: bool | None = Field(
        None, description="Split long prefills into chunks interleaved with decode steps."
    )
    speculative_config: dict[str, Any] | None = Field(
        None,
        description="Speculative decoding config (decoding_type: MTP, Eagle, NGram, Draft..., "
        "max_draft_len, ...): several tokens per target pass when drafts are accepted.",
        examples=[{"decoding_type": "NGram", "max_draft_len": 4}],
    )
    scheduler_config: dict[str, Any] | None = Field(
        None,
        description="SchedulerConfig (capacity_scheduler_policy: GUARANTEED_NO_EVICT / "
        "MAX_UTILIZATION, ...): how aggressively requests are admitted into the batch.",
        examples=[{"capacity_scheduler_policy": "MAX_UTILIZATION"}],
    )
    cuda_graph_config: dict[str, Any] | None = Field(
        None,
        description="Runtime pytorch: CudaGraphConfig (batch_sizes, max_batch_size, "
        "enable_padding): CUDA graphs cut CPU launch overhead per decode step.",
        examples=[{"max_batch_size": 8, "enable_padding": True}],
    )
    disable_overlap_scheduler: bool | None = Field(
        None,
        description="Runtime pytorch: stop overlapping CPU scheduling with GPU execution "
        "(more GPU idle time per step).",
    )
    attn_backend: str | None = Field(
        None,
        description="Runtime pytorch: attention backend (TRTLLM default, FLASHINFER, VANILLA).",
        examples=["FLASHINFER"],
    )
    torch_compile_config: dict[str, Any] | None = Field(
        None,
        description="Runtime pytorch: TorchCompileConfig (enable_fullgraph, "
        "enable_piecewise_cuda_graph, ...): torch.compile of the model.",
        examples=[{"enable_fullgraph": True}],
    )
    kv_cache_config: TensorRTKvCacheConfig = Field(
        default_factory=TensorRTKvCacheConfig,
        description="KvCacheConfig(...) fields; unset ones keep TensorRT-LLM's defaults.",
    )
    quant_config: TensorRTQuantConfig | None = Field(
        None,
        description="QuantConfig(...) for the engine runtime (quantised while building). The "
        "pytorch runtime reads quantisation from a pre-quantised (ModelOpt) checkpoint.",
        json_schema_extra=FieldMeta(requires={"tensorrt.runtime": "engine"}),
    )
    build_config: TensorRTBuildConfig = Field(
        default_factory=TensorRTBuildConfig,
        description="BuildConfig(...) fields of the engine runtime (part of the engine cache "
        "key). 1.x has no builder optimisation level.",
        json_schema_extra=FieldMeta(requires={"tensorrt.runtime": "engine"}),
    )
    engine_cache: bool = Field(
        True,
        description="Save built engines and reuse one built with the same key (runtime "
        "engine): skips a build of minutes; no effect on the measured window.",
        json_schema_extra=FieldMeta(requires={"tensorrt.runtime": "engine"}),
    )
    extra: dict[str, Any] = Field(
        default_factory=dict,
        description="Further LLM(...) arguments passed through (not dtype: use precision).",
        examples=[{"enable_iter_perf_stats": True}],
    )

    @model_validator(mode="after")
    def _engine_only_options(self) -> TensorRTConfig:
        if self.runtime == "pytorch":
            if self.quant_config is not None:
                raise ValueError(
                    "tensorrt.quant_config needs runtime: engine (the pytorch runtime takes "
                    "quantisation from a pre-quantised checkpoint: point model at one)"
                )
            if self.build_config != TensorRTBuildConfig():  # a result's full dump sets all
                raise ValueError("tensorrt.build_config needs runtime: engine")
            if not self.engine_cache:
                raise ValueError("tensorrt.engine_cache applies to runtime: engine only")
        elif torch_only := [name for name in TORCH_RUNTIME_ONLY if getattr(self, name) is not None]:
            raise ValueError(
                f"tensorrt.{', tensorrt.'.join(torch_only)} only apply to runtime: pytorch"
            )
        elif self.kv_cache_config.dtype is not None:
            raise ValueError(
                "tensorrt.kv_cache_config.dtype is for runtime: pytorch; with runtime: engine "
                "quantise the KV cache with quant_config.kv_cache_quant_algo"
            )
        return self
