"""Config sections every backend shares: prompts, warmup, energy, idle baseline, telemetry and
LoRA adapters."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from llenergymeasure.config.base import _Strict
from llenergymeasure.config.field_meta import FieldMeta

SamplerName = Literal["auto", "zeus", "nvml", "rapl", "codecarbon", "null"]
"""An energy source (``energy.sampler``)."""

PROMPT_SOURCES = ("builtin", "synthetic", "aienergyscore", "sharegpt", "hub")
"""The named prompt sources (``dataset.source``); any other value is a JSONL file's path."""

AIENERGYSCORE_DATASET = "AIEnergyScore/text_generation"
"""The AIEnergyScore text-generation prompts on the Hugging Face hub (``source:
aienergyscore``): 1,000 prompts sampled from WikiText, OSCAR and UltraChat."""

AIENERGYSCORE_REVISION = "main"
"""The revision of :data:`AIENERGYSCORE_DATASET` loaded unless ``dataset.revision`` says
otherwise. Not yet a commit: no machine this was built on could reach the hub to look the
commit up, so a run records the commit it resolved (``result.dataset.resolved_revision``) and
``dataset.revision: <that sha>`` pins it."""

OutputLengths = Literal["fixed", "from_dataset", "distribution"]
"""How long each request's output is (``dataset.output_lengths``)."""

DistributionName = Literal["uniform", "normal", "lognormal", "exponential"]
"""The shape of drawn output lengths (``dataset.output_length_distribution.name``)."""

_HUB_EXAMPLE = {"dataset.hub": "org/prompts", "dataset.revision": "main"}
"""Settings that make a generic hub dataset valid (test values of its fields)."""

_ADDED_FIELDS = ("hub", "split", "column", "output_column", "revision", "path", "output_lengths",
                 "output_length_distribution")  # fmt: skip
"""Fields added after ``measurement_config_hash`` existed: left out of it while unset."""


class OutputLengthDistribution(_Strict):
    """Output lengths drawn per request (``dataset.output_lengths: distribution``).

    Every shape is given by the mean and standard deviation of the lengths themselves (the
    exponential by its mean alone: its standard deviation equals the mean), so two shapes can
    be compared at the same mean and spread. Draws are rounded to whole tokens, clipped to
    ``[min_tokens, max_output_tokens]`` and seeded by ``random_seed``.
    """

    name: DistributionName = Field(
        ...,
        description="'uniform': integers evenly spread over mean ± √3·std. 'normal': "
        "N(mean, std²). 'lognormal': exp of a normal whose parameters give the lengths this "
        "mean and std (σ² = ln(1 + std²/mean²), μ = ln(mean) − σ²/2): a long right tail, as "
        "in chat logs. 'exponential': memoryless, std = mean.",
    )
    mean_tokens: float = Field(
        ...,
        gt=0,
        description="Mean output length in tokens (before clipping).",
        examples=[32.0],
        json_schema_extra=FieldMeta(unit="tokens"),
    )
    std_tokens: float | None = Field(
        None,
        gt=0,
        description="Standard deviation of the output lengths in tokens (before clipping); "
        "required for uniform, normal and lognormal, not allowed for exponential.",
        examples=[16.0],
        json_schema_extra=FieldMeta(unit="tokens"),
    )
    min_tokens: int = Field(
        1,
        ge=1,
        description="Shortest output drawn; shorter draws are raised to this. At most "
        "max_output_tokens, which caps longer draws.",
        examples=[8],
        json_schema_extra=FieldMeta(unit="tokens"),
    )

    @model_validator(mode="after")
    def _spread_matches_shape(self) -> OutputLengthDistribution:
        where = "dataset.output_length_distribution"
        if self.name == "exponential" and self.std_tokens is not None:
            raise ValueError(
                f"{where}.std_tokens cannot be set for name: exponential (its standard "
                "deviation equals its mean); remove it or choose another name"
            )
        if self.name != "exponential" and self.std_tokens is None:
            raise ValueError(f"{where}.std_tokens is required for name: {self.name}")
        return self


class DatasetConfig(_Strict):
    """Where prompts come from, and how long each request's output is."""

    source: str = Field(
        "builtin",
        description=(
            "'builtin' (the prompt set shipped with llenergymeasure), 'synthetic' (random "
            "text of exactly `synthetic_input_tokens` tokens), 'aienergyscore' (the "
            f"AIEnergyScore text-generation set, {AIENERGYSCORE_DATASET} on the Hugging Face "
            "hub), 'sharegpt' (ShareGPT conversations from `path` or `hub`, as vllm bench "
            "serve reads them), 'hub' (the hub dataset `hub`; implied when `hub` is set), or a "
            'path to a JSONL file with one {"prompt": "..."} object per line.'
        ),
    )
    synthetic_input_tokens: int = Field(
        128,
        ge=1,
        description="Prompt length in tokens for source 'synthetic'. Longer prompts cost more "
        "prefill energy per request.",
    )
    hub: str | None = Field(
        None,
        min_length=1,
        description="A Hugging Face dataset (e.g. an LMArena-style chat set): its prompts are "
        "`column` of `split` at `revision`. With source 'sharegpt', a hub dataset of ShareGPT "
        "conversations. Loaded through the `datasets` library (llenergymeasure[datasets]) "
        "into the local Hugging Face cache; a cached dataset works offline "
        "(HF_DATASETS_OFFLINE=1).",
        examples=["org/prompts"],
        json_schema_extra=FieldMeta(requires={"dataset.revision": "main"}),
    )
    split: str = Field(
        "train",
        min_length=1,
        description="The split of a hub dataset (`hub`, or source 'aienergyscore').",
        examples=["test"],
        json_schema_extra=FieldMeta(requires=_HUB_EXAMPLE),
    )
    column: str | None = Field(
        None,
        min_length=1,
        description="The column of a hub dataset holding the prompts (default 'text'; for "
        "source 'sharegpt', the conversations: default 'conversations').",
        examples=["prompt"],
        json_schema_extra=FieldMeta(requires=_HUB_EXAMPLE),
    )
    output_column: str | None = Field(
        None,
        min_length=1,
        description="The column of a hub dataset holding each prompt's reference answer; its "
        "length in tokens is the request's output length with output_lengths: from_dataset.",
        examples=["response"],
        json_schema_extra=FieldMeta(requires=_HUB_EXAMPLE),
    )
    revision: str | None = Field(
        None,
        min_length=1,
        description="The git revision of a hub dataset: a commit SHA (reproducible), tag or "
        "branch. Required with `hub`; for source 'aienergyscore' the default is "
        f"'{AIENERGYSCORE_REVISION}'. The result records the commit loaded "
        "(dataset.resolved_revision).",
        examples=["main"],
        json_schema_extra=FieldMeta(requires={"dataset.source": "aienergyscore"}),
    )
    path: str | None = Field(
        None,
        min_length=1,
        description="A local ShareGPT file (source 'sharegpt'): a JSON list, or JSON lines, of "
        '{"id": ..., "conversations": [{"from": "human", "value": ...}, {"from": "gpt", '
        '"value": ...}, ...]}, the format vllm bench serve reads.',
        examples=["conversations.json"],
        json_schema_extra=FieldMeta(requires={"dataset.source": "sharegpt"}),
    )
    output_lengths: OutputLengths = Field(
        "fixed",
        description="Output length per request. 'fixed': up to max_output_tokens (the model "
        "may stop earlier). 'from_dataset': each prompt's reference answer length in tokens "
        "(source 'sharegpt', or a hub dataset with output_column), cut to max_output_tokens. "
        "'distribution': drawn from output_length_distribution, seeded by random_seed. With "
        "both, every backend generates exactly that length, EOS ignored (not with decoder.stop; "
        "supersedes decoder.min_new_tokens and ignore_eos). Output length drives decode "
        "energy, so runs compare only at equal length distributions (result.lengths).",
        # what 'distribution' needs; 'from_dataset' needs a source with reference answers
        json_schema_extra=FieldMeta(
            requires={
                "dataset.output_length_distribution.name": "exponential",
                "dataset.output_length_distribution.mean_tokens": 32.0,
            }
        ),
    )
    output_length_distribution: OutputLengthDistribution | None = Field(
        None,
        description="The distribution output lengths are drawn from (output_lengths: "
        "distribution).",
        json_schema_extra=FieldMeta(requires={"dataset.output_lengths": "distribution"}),
    )

    @model_validator(mode="before")
    @classmethod
    def _hub_implies_hub_source(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("hub") is not None and "source" not in data:
            return {**data, "source": "hub"}
        return data

    @field_validator("source")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("dataset source must not be empty")
        return value

    @model_validator(mode="after")
    def _fields_match_source(self) -> DatasetConfig:
        allowed = _SOURCE_FIELDS.get(self.source, ())
        for name in ("hub", "column", "output_column", "revision", "path"):
            if getattr(self, name) is not None and name not in allowed:
                raise ValueError(_not_for_source(name, self.source))
        if self.split != "train" and "split" not in allowed:
            raise ValueError(_not_for_source("split", self.source))
        if self.source == "hub" and self.hub is None:
            raise ValueError("dataset.hub is required with source: hub (the dataset's name)")
        if self.source == "sharegpt" and (self.hub is None) == (self.path is None):
            raise ValueError(
                "source: sharegpt needs exactly one of dataset.path (a local JSON/JSONL file) "
                "and dataset.hub (a hub dataset of conversations)"
            )
        if self.hub is not None and self.revision is None:
            raise ValueError(
                f"dataset.revision is required for the hub dataset '{self.hub}': pin a commit "
                "SHA (its 'Files and versions' page lists them) for reproducible prompts, or "
                "name a tag or branch such as 'main'"
            )
        if self.path is not None and (
            self.revision is not None or self.column is not None or self.split != "train"
        ):
            raise ValueError(
                "dataset.revision, dataset.split and dataset.column apply to a hub dataset, "
                "not to a local ShareGPT file (dataset.path)"
            )
        return self

    @model_validator(mode="after")
    def _distribution_matches_mode(self) -> DatasetConfig:
        drawn = self.output_lengths == "distribution"
        if drawn and self.output_length_distribution is None:
            raise ValueError(
                "dataset.output_length_distribution is required with output_lengths: "
                "distribution (e.g. {name: lognormal, mean_tokens: 200, std_tokens: 150})"
            )
        if not drawn and self.output_length_distribution is not None:
            raise ValueError(
                "dataset.output_length_distribution is set but dataset.output_lengths is "
                f"'{self.output_lengths}'; set output_lengths: distribution or remove it"
            )
        return self

    @property
    def hub_dataset(self) -> str | None:
        """The hub dataset this source loads (None for local and built-in sources)."""
        return AIENERGYSCORE_DATASET if self.source == "aienergyscore" else self.hub

    @property
    def hub_revision(self) -> str | None:
        """The revision of :attr:`hub_dataset` to load."""
        if self.source == "aienergyscore":
            return self.revision or AIENERGYSCORE_REVISION
        return self.revision

    @property
    def prompt_column(self) -> str:
        """The hub column read: the prompts, or a ShareGPT set's conversations."""
        return self.column or ("conversations" if self.source == "sharegpt" else "text")

    @property
    def has_reference_answers(self) -> bool:
        """Whether each prompt comes with a reference answer (ShareGPT's reply turn, or a hub
        dataset's output_column), whose length output_lengths: from_dataset uses."""
        return self.source == "sharegpt" or self.output_column is not None

    def hashed(self) -> dict[str, Any]:
        """The section as ``measurement_config_hash`` reads it: the fields added after the hash
        existed are left out while at their defaults, so configs that do not use them keep
        the hash they had."""
        unset = {
            name
            for name in _ADDED_FIELDS
            if getattr(self, name) == type(self).model_fields[name].default
        }
        return self.model_dump(mode="json", exclude=unset)


_SOURCE_FIELDS: dict[str, tuple[str, ...]] = {
    "aienergyscore": ("revision", "split"),
    "sharegpt": ("hub", "path", "revision", "split", "column"),
    "hub": ("hub", "revision", "split", "column", "output_column"),
}
"""The source fields each named source reads; the others (and JSONL files) read none."""


def _not_for_source(name: str, source: str) -> str:
    readers = [s for s, fields in _SOURCE_FIELDS.items() if name in fields]
    return (
        f"dataset.{name} does not apply to source '{source}'; it is read by source "
        f"{' or '.join(repr(s) for s in readers)}"
        + (" (setting dataset.hub without a source means 'hub')" if name == "hub" else "")
    )


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
        json_schema_extra=FieldMeta(backends=("pytorch",)),
    )
