"""The pytorch section: parameters of the Hugging Face transformers backend (native names)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from llenergymeasure.config.base import _Strict
from llenergymeasure.config.field_meta import FieldMeta


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
        json_schema_extra=FieldMeta(unit="prompts"),
    )
    attn_implementation: Literal["eager", "sdpa", "flash_attention_2"] | None = Field(
        None,
        description="Attention kernel passed to `from_pretrained`. sdpa (PyTorch's fused "
        "attention) and flash_attention_2 cut memory traffic and energy per token vs eager; "
        "flash_attention_2 needs an Ampere or newer NVIDIA GPU, fp16/bf16 and the flash-attn "
        "package. None = transformers' default (sdpa where supported).",
        json_schema_extra=FieldMeta(
            hardware="flash_attention_2: NVIDIA Ampere or newer + flash-attn",
            native={"pytorch": "from_pretrained(attn_implementation=)"},
        ),
    )
    device_map: str | dict[str, Any] | None = Field(
        None,
        description="Passed to `from_pretrained` (e.g. 'auto' to spread layers over GPUs and "
        "CPU; needs accelerate). Offloading layers to CPU saves GPU memory but is far slower "
        "and costs more energy per token. None = the whole model on cuda:0 if a GPU is "
        "visible, else CPU.",
        examples=["cpu"],
        json_schema_extra=FieldMeta(native={"pytorch": "from_pretrained(device_map=)"}),
    )
    max_memory: dict[str, str] | None = Field(
        None,
        description="Per-device memory budget for device_map (e.g. {'0': '20GiB', 'cpu': "
        "'60GiB'}); layers beyond a GPU's budget go to the next device. Needs device_map.",
        examples=[{"cpu": "4GiB"}],
        json_schema_extra=FieldMeta(
            native={"pytorch": "from_pretrained(max_memory=)"},
            requires={"pytorch.device_map": "auto"},
        ),
    )
    low_cpu_mem_usage: bool | None = Field(
        None,
        description="Load weights without a full extra copy in host memory (lower peak RAM, "
        "faster load; needs accelerate). transformers >= 5 always does this and removed the "
        "flag, so llem refuses it there.",
        json_schema_extra=FieldMeta(
            native={"pytorch": "from_pretrained(low_cpu_mem_usage=)"}, until="transformers 5.0"
        ),
    )
    load_in_8bit: bool = Field(
        False,
        description="bitsandbytes LLM.int8() weight quantisation: about half the weight memory "
        "of fp16, but slower matmuls (often more energy per token than fp16). Needs an NVIDIA "
        "GPU and the bitsandbytes package (checked when the model loads).",
        json_schema_extra=FieldMeta(
            hardware="NVIDIA GPU (CUDA) + bitsandbytes",
            native={"pytorch": "BitsAndBytesConfig.load_in_8bit"},
        ),
    )
    load_in_4bit: bool = Field(
        False,
        description="bitsandbytes 4-bit weight quantisation (fp4/nf4): about a quarter of the "
        "fp16 weight memory; dequantisation per matmul costs compute. Needs an NVIDIA GPU and "
        "the bitsandbytes package (checked when the model loads).",
        json_schema_extra=FieldMeta(
            hardware="NVIDIA GPU (CUDA) + bitsandbytes",
            native={"pytorch": "BitsAndBytesConfig.load_in_4bit"},
        ),
    )
    bnb_4bit_compute_dtype: Literal["fp32", "fp16", "bf16"] | None = Field(
        None,
        description="dtype of the matmuls on 4-bit weights (bf16/fp16 are much faster than "
        "the fp32 default). Needs load_in_4bit.",
        json_schema_extra=FieldMeta(
            native={"pytorch": "BitsAndBytesConfig.bnb_4bit_compute_dtype"},
            requires={"pytorch.load_in_4bit": True},
        ),
    )
    bnb_4bit_quant_type: Literal["fp4", "nf4"] | None = Field(
        None,
        description="4-bit data type: nf4 (normal float, better quality) or fp4 (default). "
        "Needs load_in_4bit.",
        json_schema_extra=FieldMeta(
            native={"pytorch": "BitsAndBytesConfig.bnb_4bit_quant_type"},
            requires={"pytorch.load_in_4bit": True},
        ),
    )
    bnb_4bit_use_double_quant: bool | None = Field(
        None,
        description="Quantise the quantisation constants too (saves ~0.4 bit per weight). "
        "Needs load_in_4bit.",
        json_schema_extra=FieldMeta(
            native={"pytorch": "BitsAndBytesConfig.bnb_4bit_use_double_quant"},
            requires={"pytorch.load_in_4bit": True},
        ),
    )
    torch_compile: bool = Field(
        False,
        description="Wrap the model's forward in torch.compile (compiled during warmup, so "
        "give warmup runs; can raise throughput on GPU).",
        json_schema_extra=FieldMeta(native={"pytorch": "torch.compile(model.forward)"}),
    )
    torch_compile_mode: Literal["default", "reduce-overhead", "max-autotune"] | None = Field(
        None,
        description="torch.compile mode: reduce-overhead uses CUDA graphs (less CPU launch "
        "overhead per token), max-autotune also benchmarks kernels (long compile). Needs "
        "torch_compile.",
        json_schema_extra=FieldMeta(
            native={"pytorch": "torch.compile(mode=)"}, requires={"pytorch.torch_compile": True}
        ),
    )
    torch_compile_backend: str | None = Field(
        None,
        description="torch.compile backend (torch._dynamo.list_backends(): inductor (default), "
        "cudagraphs, eager, aot_eager, ...). Needs torch_compile.",
        examples=["eager", "aot_eager"],
        json_schema_extra=FieldMeta(
            native={"pytorch": "torch.compile(backend=)"}, requires={"pytorch.torch_compile": True}
        ),
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
        json_schema_extra=FieldMeta(
            native={"pytorch": "GenerationConfig.cache_implementation"},
            hardware="offloaded, offloaded_static: CUDA",
        ),
    )
    prompt_lookup_num_tokens: int | None = Field(
        None,
        ge=1,
        description="Prompt-lookup speculative decoding: draft this many tokens by matching "
        "n-grams of the prompt, verified in one forward pass (fewer passes per token when "
        "outputs copy the input, e.g. summarisation).",
        json_schema_extra=FieldMeta(
            unit="tokens", native={"pytorch": "GenerationConfig.prompt_lookup_num_tokens"}
        ),
    )
    prefill_chunk_size: int | None = Field(
        None,
        ge=1,
        description="Prefill the prompt in chunks of this many tokens (lower peak activation "
        "memory for long prompts, a little more time). transformers 5.",
        examples=[16],
        json_schema_extra=FieldMeta(
            unit="tokens",
            native={"pytorch": "GenerationConfig.prefill_chunk_size"},
            since="transformers 4.56",
        ),
    )
    use_cache: bool | None = Field(
        None,
        description="KV cache during generation. False recomputes attention over the whole "
        "sequence every step (much more energy). None = model default (on).",
        json_schema_extra=FieldMeta(native={"pytorch": "GenerationConfig.use_cache"}),
    )
    output_scores: bool = Field(
        False,
        description="Keep every step's processed logits (batch x vocab floats per token) in "
        "the output: extra memory and copies. Off by default for measurement.",
        json_schema_extra=FieldMeta(native={"pytorch": "GenerationConfig.output_scores"}),
    )
    return_dict_in_generate: bool = Field(
        False,
        description="Return a ModelOutput instead of the token tensor (needed for "
        "output_scores to be returned). Off by default.",
        json_schema_extra=FieldMeta(native={"pytorch": "GenerationConfig.return_dict_in_generate"}),
    )
    model_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra keyword arguments for `AutoModelForCausalLM.from_pretrained` "
        "(`from_config` with no_weights) for anything not modelled. Not `dtype`/`torch_dtype` "
        "(use precision) nor `quantization_config` (use the load_in_* fields).",
        examples=[{"trust_remote_code": False}],
        json_schema_extra=FieldMeta(native={"pytorch": "from_pretrained(**model_kwargs)"}),
    )
    extra: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra generation settings: GenerationConfig attributes (e.g. "
        "penalty_alpha, sequence_bias) update the generation config, anything else (e.g. "
        "custom_generate, trust_remote_code) is passed to `model.generate`.",
        examples=[{"renormalize_logits": True}],
        json_schema_extra=FieldMeta(
            native={"pytorch": "GenerationConfig.update / generate(**extra)"}
        ),
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
