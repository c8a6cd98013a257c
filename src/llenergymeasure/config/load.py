"""How requests reach the engine (``load:``): all at once, at a rate, or a closed-loop pool; and
the latency targets (``load.slo``) a request must meet to count as good."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from llenergymeasure.config.base import _Strict
from llenergymeasure.config.field_meta import FieldMeta

LoadMode = Literal["offline", "rate", "concurrency"]
"""``offline``: every prompt at once, one window (a batch job). ``rate``: requests arrive on a
seeded schedule. ``concurrency``: a fixed number of requests kept in flight."""

Arrival = Literal["poisson", "gamma", "constant"]
"""The inter-arrival distribution of ``rate`` mode."""

RATE_ONLY = ("request_rate", "arrival", "burstiness")
"""Fields that only ``mode: rate`` reads."""


class SloConfig(_Strict):
    """Latency targets; a request is good when it meets every target set."""

    ttft_ms: float | None = Field(
        None,
        gt=0,
        description="Time to first token target, ms.",
        json_schema_extra=FieldMeta(unit="ms"),
    )
    itl_ms: float | None = Field(
        None,
        gt=0,
        description="Target for the request's mean inter-token (inter-chunk) latency, ms.",
        json_schema_extra=FieldMeta(unit="ms"),
    )
    tpot_ms: float | None = Field(
        None,
        gt=0,
        description="Target for the request's time per output token after the first "
        "((e2e - TTFT) / (output tokens - 1), as vllm bench defines it), ms.",
        json_schema_extra=FieldMeta(unit="ms"),
    )
    e2e_ms: float | None = Field(
        None,
        gt=0,
        description="End-to-end latency target (submit to last token), ms.",
        json_schema_extra=FieldMeta(unit="ms"),
    )

    @model_validator(mode="after")
    def _some_target(self) -> SloConfig:
        if not self.targets_ms():
            raise ValueError("slo: set at least one of ttft_ms, itl_ms, tpot_ms, e2e_ms")
        return self

    def targets_ms(self) -> dict[str, float]:
        """The targets set, by field name (``ttft_ms`` ...)."""
        return {
            name: value
            for name in ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms")
            if (value := getattr(self, name)) is not None
        }


class LoadConfig(_Strict):
    """How requests are submitted in the measured window (default: all at once, as a batch)."""

    # request_rate may be inf: JSON has no Infinity, so it is written as the string "Infinity"
    model_config = ConfigDict(ser_json_inf_nan="strings")

    mode: LoadMode = Field(
        "offline",
        description="'offline': every prompt submitted at once (a batch job; the backend's own "
        "batching). 'rate': requests arrive on a seeded schedule at request_rate per second. "
        "'concurrency': max_concurrency requests kept in flight, a new one submitted as each "
        "finishes (a closed-loop client pool). Serving modes report a steady-state window, "
        "goodput under load.slo, and achieved vs requested rate.",
    )
    request_rate: float | None = Field(
        None,
        gt=0,
        description="Mean arrivals per second in 'rate' mode; inf = all at the start.",
        examples=[4.0],
        json_schema_extra=FieldMeta(unit="requests/s", requires={"load.mode": "rate"}),
    )
    arrival: Arrival = Field(
        "poisson",
        description="Inter-arrival distribution in 'rate' mode: poisson (exponential gaps), "
        "gamma (shape = burstiness), constant (evenly spaced). Seeded by random_seed.",
        json_schema_extra=FieldMeta(requires={"load.mode": "rate"}),
    )
    burstiness: float = Field(
        1.0,
        gt=0,
        description="Gamma shape of the inter-arrival gaps (arrival: gamma), as in vllm bench "
        "serve: 1.0 is Poisson, < 1 burstier, > 1 more regular.",
        json_schema_extra=FieldMeta(requires={"load.mode": "rate", "load.arrival": "gamma"}),
    )
    max_concurrency: int | None = Field(
        None,
        ge=1,
        description="Requests in flight at most. 'concurrency' mode: kept at this many. "
        "'rate' mode (optional): an arrival waits for a free slot.",
        examples=[4],
        json_schema_extra=FieldMeta(unit="requests", requires={"load.mode": "concurrency"}),
    )
    slo: SloConfig | None = Field(
        None,
        description="Latency targets: each request is judged good or not, and the result gains "
        "goodput (good requests/s), the good fraction and J per good request.",
    )

    @model_validator(mode="after")
    def _fields_match_mode(self) -> LoadConfig:
        if self.mode == "rate" and self.request_rate is None:
            raise ValueError("load.request_rate is required with mode: rate")
        if self.mode == "concurrency" and self.max_concurrency is None:
            raise ValueError("load.max_concurrency is required with mode: concurrency")
        if self.mode == "offline" and self.max_concurrency is not None:
            raise ValueError(
                "load.max_concurrency needs mode: rate or concurrency (offline submits every "
                "prompt at once)"
            )
        if self.mode != "rate":
            for name in RATE_ONLY:
                if getattr(self, name) != LoadConfig.model_fields[name].default:
                    raise ValueError(f"load.{name} is for mode: rate, not mode: {self.mode}")
        if self.arrival != "gamma" and self.burstiness != 1.0:
            raise ValueError(
                f"load.burstiness applies to arrival: gamma, not arrival: {self.arrival} "
                "(poisson is gamma with burstiness 1.0)"
            )
        return self

    @property
    def is_serving(self) -> bool:
        """True in 'rate' and 'concurrency' modes (requests on a schedule or a pool)."""
        return self.mode != "offline"

    @property
    def finite_rate(self) -> float | None:
        """The requested rate when it is finite (None for offline, concurrency and inf)."""
        rate = self.request_rate
        return rate if rate is not None and math.isfinite(rate) else None
