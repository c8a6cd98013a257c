"""The decoder section: generation parameters shared by the backends, each declaring (in its
:class:`~llenergymeasure.config.field_meta.FieldMeta`) the backends whose API has it."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from llenergymeasure.config.base import BACKEND_NAMES, ENGINE_BACKENDS, BackendName, _Strict
from llenergymeasure.config.field_meta import FieldMeta, field_meta

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
"""The prerequisite of a sampling-only field (it acts only when sampling)."""
_BEAMS = {"decoder.num_beams": 2}
"""The prerequisite of a beam-search-only field."""


class DecoderConfig(_Strict):
    """Generation parameters shared by the backends. None means "the library's default".

    Each field's metadata (``FieldMeta.backends``) names the backends whose API has it; setting
    one for another backend is a config error naming the backends that support it.
    """

    do_sample: bool = Field(
        False,
        description="Sample (true) or decode greedily (false). Greedy is deterministic; sampling "
        "adds the sampling-only filters below at negligible compute cost.",
        json_schema_extra=FieldMeta(
            backends=BACKEND_NAMES,
            native={
                "server": "temperature=0 in the request when false",
                "pytorch": "GenerationConfig.do_sample",
                "vllm": "SamplingParams.temperature=0 when false",
                "tensorrt": "SamplingParams.top_k=1 when false",
            },
        ),
    )
    temperature: float | None = Field(
        None,
        description="Softmax temperature for sampling (sampling only). Changes which tokens are "
        "drawn, so it can change output length (and energy per request), not the cost per token.",
        ge=0.0,
        json_schema_extra=FieldMeta(
            backends=BACKEND_NAMES,
            native={
                "server": "request temperature",
                "pytorch": "GenerationConfig.temperature",
                "vllm": "SamplingParams.temperature",
                "tensorrt": "SamplingParams.temperature",
            },
            requires=_SAMPLING,
        ),
    )
    top_k: int | None = Field(
        None,
        description="Keep only the k most likely tokens (0 = off; sampling only).",
        ge=0,
        json_schema_extra=FieldMeta(
            backends=ENGINE_BACKENDS,
            native={
                "pytorch": "GenerationConfig.top_k",
                "vllm": "SamplingParams.top_k",
                "tensorrt": "SamplingParams.top_k",
            },
            requires=_SAMPLING,
            unit="tokens",
        ),
    )
    top_p: float | None = Field(
        None,
        description="Nucleus sampling: keep the most likely tokens up to this probability mass "
        "(sampling only).",
        gt=0.0,
        le=1.0,
        json_schema_extra=FieldMeta(
            backends=BACKEND_NAMES,
            native={
                "server": "request top_p",
                "pytorch": "GenerationConfig.top_p",
                "vllm": "SamplingParams.top_p",
                "tensorrt": "SamplingParams.top_p",
            },
            requires=_SAMPLING,
            unit="fraction",
        ),
    )
    min_p: float | None = Field(
        None,
        description="Drop tokens whose probability is below min_p x the top token's (sampling "
        "only).",
        ge=0.0,
        le=1.0,
        json_schema_extra=FieldMeta(
            backends=ENGINE_BACKENDS,
            native={
                "pytorch": "GenerationConfig.min_p",
                "vllm": "SamplingParams.min_p",
                "tensorrt": "SamplingParams.min_p",
            },
            requires=_SAMPLING,
            unit="fraction",
        ),
    )
    typical_p: float | None = Field(
        None,
        description="Locally typical sampling mass (sampling only; transformers only).",
        gt=0.0,
        le=1.0,
        json_schema_extra=FieldMeta(
            backends=("pytorch",),
            native={"pytorch": "GenerationConfig.typical_p"},
            requires=_SAMPLING,
            unit="fraction",
        ),
    )
    epsilon_cutoff: float | None = Field(
        None,
        description="Epsilon sampling: drop tokens with probability below this value (sampling "
        "only; transformers only).",
        gt=0.0,
        lt=1.0,
        json_schema_extra=FieldMeta(
            backends=("pytorch",),
            native={"pytorch": "GenerationConfig.epsilon_cutoff"},
            requires=_SAMPLING,
            unit="probability",
        ),
    )
    eta_cutoff: float | None = Field(
        None,
        description="Eta sampling: entropy-dependent truncation threshold (sampling only; "
        "transformers only).",
        gt=0.0,
        lt=1.0,
        json_schema_extra=FieldMeta(
            backends=("pytorch",),
            native={"pytorch": "GenerationConfig.eta_cutoff"},
            requires=_SAMPLING,
            unit="probability",
        ),
    )
    repetition_penalty: float | None = Field(
        None,
        description="Penalise tokens already present (1.0 = off). Negligible compute; may shorten "
        "or lengthen outputs.",
        gt=0.0,
        json_schema_extra=FieldMeta(
            backends=ENGINE_BACKENDS,
            native={
                "pytorch": "GenerationConfig.repetition_penalty",
                "vllm": "SamplingParams.repetition_penalty",
                "tensorrt": "SamplingParams.repetition_penalty",
            },
        ),
    )
    presence_penalty: float | None = Field(
        None,
        description="Subtract this from the logit of every token already generated (0 = off; "
        "OpenAI semantics). May change output length, hence energy per request.",
        ge=-2.0,
        le=2.0,
        json_schema_extra=FieldMeta(
            backends=("vllm", "tensorrt", "server"),
            native={
                "server": "request presence_penalty",
                "vllm": "SamplingParams.presence_penalty",
                "tensorrt": "SamplingParams.presence_penalty",
            },
        ),
    )
    frequency_penalty: float | None = Field(
        None,
        description="Subtract this x the count of each token generated so far from its logit "
        "(0 = off).",
        ge=-2.0,
        le=2.0,
        json_schema_extra=FieldMeta(
            backends=("vllm", "tensorrt", "server"),
            native={
                "server": "request frequency_penalty",
                "vllm": "SamplingParams.frequency_penalty",
                "tensorrt": "SamplingParams.frequency_penalty",
            },
        ),
    )
    encoder_repetition_penalty: float | None = Field(
        None,
        description="Penalise (or, below 1.0, favour) tokens of the prompt (1.0 = off; "
        "transformers only).",
        gt=0.0,
        json_schema_extra=FieldMeta(
            backends=("pytorch",), native={"pytorch": "GenerationConfig.encoder_repetition_penalty"}
        ),
    )
    no_repeat_ngram_size: int | None = Field(
        None,
        description="Forbid repeating any n-gram of this size (0 = off). Costs a host-side scan "
        "per step that grows with the output length.",
        ge=0,
        json_schema_extra=FieldMeta(
            backends=("pytorch", "tensorrt"),
            native={
                "pytorch": "GenerationConfig.no_repeat_ngram_size",
                "tensorrt": "SamplingParams.no_repeat_ngram_size",
            },
            unit="tokens",
        ),
    )
    num_beams: int | None = Field(
        None,
        description="Beam search width (1 = off). Each beam is a full sequence in the batch: "
        "compute and KV-cache memory grow about linearly with it, so energy per request rises "
        "roughly num_beams-fold. TensorRT-LLM: the LLM's max_beam_width is raised to it.",
        examples=[2, 4],
        ge=1,
        json_schema_extra=FieldMeta(
            backends=("pytorch", "tensorrt"),
            native={
                "pytorch": "GenerationConfig.num_beams",
                "tensorrt": "SamplingParams(use_beam_search=True, best_of=num_beams)",
            },
        ),
    )
    num_beam_groups: int | None = Field(
        None,
        description="Diverse (group) beam search: split num_beams into this many groups (must "
        "divide num_beams; needs diversity_penalty). transformers >= 4.56 runs it from the hub "
        "repo transformers-community/group-beam-search: set pytorch.extra {custom_generate: "
        "transformers-community/group-beam-search, trust_remote_code: true}.",
        examples=[2, 4],
        ge=1,
        json_schema_extra=FieldMeta(
            backends=("pytorch",),
            native={"pytorch": "GenerationConfig.num_beam_groups"},
            requires={"decoder.num_beams": 8, "decoder.diversity_penalty": 0.5},
        ),
    )
    diversity_penalty: float | None = Field(
        None,
        description="Penalty on tokens chosen by other beam groups at the same step (group beam "
        "search only: needs num_beam_groups > 1).",
        gt=0.0,
        json_schema_extra=FieldMeta(
            backends=("pytorch",),
            native={"pytorch": "GenerationConfig.diversity_penalty"},
            requires={"decoder.num_beams": 4, "decoder.num_beam_groups": 2},
        ),
    )
    length_penalty: float | None = Field(
        None,
        description="Beam search score exponent on length (>0 favours longer, <0 shorter outputs; "
        "beam search only). Changes output length, hence energy per request.",
        examples=[0.5, 2.0],
        json_schema_extra=FieldMeta(
            backends=("pytorch", "tensorrt"),
            native={
                "pytorch": "GenerationConfig.length_penalty",
                "tensorrt": "SamplingParams.length_penalty",
            },
            requires=_BEAMS,
        ),
    )
    early_stopping: bool | None = Field(
        None,
        description="Beam search: stop as soon as num_beams finished candidates exist (true) or "
        "keep searching while a better one may appear (false; more steps, more energy). Beam "
        "search only.",
        json_schema_extra=FieldMeta(
            backends=("pytorch", "tensorrt"),
            native={
                "pytorch": "GenerationConfig.early_stopping",
                "tensorrt": "SamplingParams.early_stopping (1/0)",
            },
            requires=_BEAMS,
        ),
    )
    exponential_decay_length_penalty: tuple[int, float] | None = Field(
        None,
        description="(start_index, decay_factor): after start_index generated tokens, raise the "
        "EOS score by decay_factor ** (length - start_index), ending outputs sooner (fewer "
        "tokens, less energy). transformers only.",
        examples=[(8, 1.05)],
        json_schema_extra=FieldMeta(
            backends=("pytorch",),
            native={"pytorch": "GenerationConfig.exponential_decay_length_penalty"},
        ),
    )
    guidance_scale: float | None = Field(
        None,
        description="Classifier-free guidance scale (1.0 = off). Above 1 transformers runs a "
        "second, unconditional forward pass every step: about twice the compute and energy per "
        "token. transformers only.",
        examples=[1.5],
        gt=0.0,
        json_schema_extra=FieldMeta(
            backends=("pytorch",), native={"pytorch": "GenerationConfig.guidance_scale"}
        ),
    )
    low_memory: bool | None = Field(
        None,
        description="Sequential beam search (one beam at a time): lower peak memory, lower "
        "throughput. Honoured by transformers < 4.50 (the beam search refactor removed it; newer "
        "versions refuse it with beam search and ignore it otherwise, so llem rejects it there: "
        "use pytorch.extra for a hub custom_generate that reads it).",
        json_schema_extra=FieldMeta(
            backends=("pytorch",),
            native={"pytorch": "GenerationConfig.low_memory"},
            requires=_BEAMS,
        ),
    )
    min_new_tokens: int | None = Field(
        None,
        description="Generate at least this many tokens before EOS may end a request; raises "
        "energy per request by forcing longer outputs (capped at max_output_tokens).",
        ge=0,
        json_schema_extra=FieldMeta(
            backends=BACKEND_NAMES,
            native={
                "server": "request min_tokens (vLLM, SGLang)",
                "pytorch": "GenerationConfig.min_new_tokens",
                "vllm": "SamplingParams.min_tokens",
                "tensorrt": "SamplingParams.min_tokens",
            },
            unit="tokens",
        ),
    )
    stop: list[str] | None = Field(
        None,
        description="Stop sequences: a request ends when its output contains one (shorter outputs, "
        "less energy per request). transformers needs the tokenizer for this (passed by llem).",
        examples=[["\n\n", "###"]],
        min_length=1,
        json_schema_extra=FieldMeta(
            backends=BACKEND_NAMES,
            native={
                "server": "request stop",
                "pytorch": "GenerationConfig.stop_strings",
                "vllm": "SamplingParams.stop",
                "tensorrt": "SamplingParams.stop",
            },
        ),
    )
    ignore_eos: bool = Field(
        False,
        description="Keep generating after EOS until max_output_tokens: every request has the "
        "same, maximal output length (comparable energy per request across models).",
        json_schema_extra=FieldMeta(
            backends=BACKEND_NAMES,
            native={
                "server": "request ignore_eos (vLLM, SGLang)",
                "pytorch": "GenerationConfig.min_new_tokens = max_output_tokens",
                "vllm": "SamplingParams.ignore_eos",
                "tensorrt": "SamplingParams.ignore_eos",
            },
        ),
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


def decoder_backends(name: str) -> tuple[BackendName, ...]:
    """The backends whose API has the decoder field ``name`` (from its metadata)."""
    backends = field_meta(DecoderConfig.model_fields[name]).backends
    assert backends is not None, f"decoder.{name} declares no backends"
    return backends
