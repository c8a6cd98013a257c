"""Raw measurement records: what a backend reports per request and what telemetry reads per
device, before any statistics. Result files store them as they are (``requests.parquet``,
``timeseries.parquet``), so every statistic can be recomputed from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise


@dataclass
class RequestRecord:
    """Raw timing of one request, on the backend's clock (seconds, monotonic).

    A backend that streams several tokens at once records one timestamp per delivered chunk
    with its token count; no spacing is invented inside a chunk.

    Attributes:
        index: position of the prompt in the measured prompt list.
        input_tokens: prompt tokens after templating and truncation (padding excluded).
        output_tokens: tokens actually generated (EOS and padding excluded).
        submit_s: when the request was handed to the library.
        chunk_times_s: when each chunk of output tokens became available on the host.
        chunk_tokens: how many output tokens each chunk carried.
        end_s: when the request finished (its EOS or last token was produced).
        scheduled_s: when the load schedule said the request arrives (``load.mode: rate``);
            None without a schedule (offline, concurrency).
        slot_wait_s: how long the request, once due, waited for a free concurrency slot
            (``load.max_concurrency``) before it was submitted.
        slo_met: whether the request met every target of ``load.slo`` (set by the harness,
            see ``harness.serving.meets_slo``); None without ``load.slo``.
        error: why the request failed (an HTTP error, a stream cut mid-way, a malformed
            event, a timeout: the server backend records these instead of raising); None for
            a request that completed. A failed request keeps what it received before failing.
        energy_j: the window's energy attributed to this request (``harness.attribution``):
            ``prefill_energy_j + decode_energy_j + overhead_energy_j``; None when the sampler
            kept no energy timeline. The attributions of all records add up to the window's
            energy.
        prefill_energy_j: its share of the steps that ran a prefill (any request's).
        decode_energy_j: its share of the steps that only decoded.
        overhead_energy_j: its share, by tokens processed, of the energy no step claims
            (moments with no request in flight, the tail after the last token).
    """

    index: int
    input_tokens: int
    output_tokens: int
    submit_s: float
    chunk_times_s: list[float] = field(default_factory=list)
    chunk_tokens: list[int] = field(default_factory=list)
    end_s: float = 0.0
    scheduled_s: float | None = None
    slot_wait_s: float = 0.0
    slo_met: bool | None = None
    error: str | None = None
    energy_j: float | None = None
    prefill_energy_j: float | None = None
    decode_energy_j: float | None = None
    overhead_energy_j: float | None = None

    @property
    def failed(self) -> bool:
        """True when the request did not complete (see ``error``)."""
        return self.error is not None

    @property
    def ttft_s(self) -> float | None:
        """Time to first token, or None when nothing was generated."""
        return self.chunk_times_s[0] - self.submit_s if self.chunk_times_s else None

    @property
    def itl_s(self) -> list[float]:
        """Gaps between consecutive output chunks (inter-token latencies)."""
        return [later - earlier for earlier, later in pairwise(self.chunk_times_s)]

    @property
    def e2e_s(self) -> float:
        """End-to-end latency of the request."""
        return self.end_s - self.submit_s

    @property
    def submit_lag_s(self) -> float | None:
        """How late the load generator submitted the request: submit - scheduled arrival -
        time waited for a slot; None without a schedule."""
        if self.scheduled_s is None:
            return None
        return self.submit_s - self.scheduled_s - self.slot_wait_s

    @property
    def tpot_s(self) -> float | None:
        """Time per output token after the first: (e2e - TTFT) / (output tokens - 1), as
        ``vllm bench`` defines it; None for fewer than two output tokens."""
        ttft_s = self.ttft_s
        if ttft_s is None or self.output_tokens < 2:
            return None
        return (self.e2e_s - ttft_s) / (self.output_tokens - 1)


@dataclass(frozen=True)
class TelemetrySample:
    """One device's state at one moment (None where the device cannot say).

    A measured server (``backend: server``) is a device too, ``server``, with only the load it
    reports on its ``/metrics``: requests running in its batch, requests queued, and KV-cache
    usage.
    """

    timestamp_s: float
    device: str
    phase: str = ""
    power_w: float | None = None
    temperature_c: float | None = None
    memory_used_mb: float | None = None
    utilisation_pct: float | None = None
    clock_mhz: float | None = None
    throttle_reasons: str | None = None
    throttled: bool | None = None
    requests_running: int | None = None
    requests_waiting: int | None = None
    kv_cache_usage_pct: float | None = None
    foreign_cpu_pct: float | None = None
    """Share of all CPUs' time used since the previous sample by processes outside this run's
    own process tree (device ``contention``; see ``telemetry.contention``)."""
    foreign_gpu_processes: int | None = None
    """Processes outside this run's tree holding a GPU (NVML's running compute processes)."""
