"""The server's own view of its load, from its Prometheus ``/metrics``, as telemetry.

Each telemetry interval, :class:`ServerMetricsSource` reads ``{root}/metrics`` and records one
sample of device ``server``: requests running (in the engine's batch), requests waiting (queued)
and KV-cache usage (%). The gauges differ by server and version; the first name present wins:

* vLLM: ``vllm:num_requests_running``, ``vllm:num_requests_waiting``,
  ``vllm:kv_cache_usage_perc`` (``vllm:gpu_cache_usage_perc`` in older versions; a fraction,
  1 = full, despite the name);
* SGLang (started with ``--enable-metrics``): ``sglang:num_running_reqs``,
  ``sglang:num_queue_reqs``, ``sglang:token_usage`` (a fraction);
* TGI: ``tgi_batch_current_size``, ``tgi_queue_size`` (no KV-cache gauge);
* llama.cpp's server (started with ``--metrics``): ``llamacpp:requests_processing``,
  ``llamacpp:requests_deferred``, ``llamacpp:kv_cache_usage_ratio`` (a fraction).

A server with several engines (data parallel) reports a series per engine: counts are summed,
usage averaged. A scrape that fails (the server not up yet, or gone) or finds none of these
gauges records nothing; so does a server without ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from llenergymeasure.backends.server.launch import server_root
from llenergymeasure.results.records import TelemetrySample

if TYPE_CHECKING:
    import httpx

SERVER_DEVICE = "server"
"""The ``device`` of the server's samples in the telemetry timeline."""
SCRAPE_TIMEOUT_S = 1.0
"""How long one scrape may take (the telemetry thread waits for it)."""

RUNNING = (
    "vllm:num_requests_running",
    "sglang:num_running_reqs",
    "tgi_batch_current_size",
    "llamacpp:requests_processing",
)
WAITING = (
    "vllm:num_requests_waiting",
    "sglang:num_queue_reqs",
    "tgi_queue_size",
    "llamacpp:requests_deferred",
)
KV_CACHE_USAGE = (
    "vllm:kv_cache_usage_perc",
    "vllm:gpu_cache_usage_perc",
    "sglang:token_usage",
    "llamacpp:kv_cache_usage_ratio",
)


def parse_metrics(text: str) -> dict[str, list[float]]:
    """The values of every series in a Prometheus text exposition, by metric name (labels
    dropped, series in order); comments and lines that are not samples are skipped."""
    values: dict[str, list[float]] = {}
    for line in text.splitlines():
        sample = _parse_sample(line.strip())
        if sample is not None:
            values.setdefault(sample[0], []).append(sample[1])
    return values


def _parse_sample(line: str) -> tuple[str, float] | None:
    """``name{labels} value [timestamp]`` -> (name, value); None for anything else."""
    if not line or line.startswith("#"):
        return None
    name_end = next((i for i, char in enumerate(line) if char in "{ \t"), len(line))
    rest = line[name_end:]
    if rest.startswith("{"):
        rest = rest[_labels_end(rest) :]
    fields = rest.split()
    if not line[:name_end] or not fields:
        return None
    try:
        return line[:name_end], float(fields[0])
    except ValueError:
        return None


def _labels_end(text: str) -> int:
    """Index just past the ``}`` closing the label set ``text`` starts with (quoted label
    values may hold ``}`` and escaped quotes); ``len(text)`` when it never closes."""
    quoted = escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = quoted
        elif char == '"':
            quoted = not quoted
        elif char == "}" and not quoted:
            return index + 1
    return len(text)


def server_sample(
    metrics: Mapping[str, Sequence[float]], timestamp_s: float
) -> TelemetrySample | None:
    """The server's load in parsed ``metrics`` as one sample, or None when it exposes none
    of the known gauges."""
    running = _first(metrics, RUNNING)
    waiting = _first(metrics, WAITING)
    usage = _first(metrics, KV_CACHE_USAGE)
    if running is None and waiting is None and usage is None:
        return None
    return TelemetrySample(
        timestamp_s=timestamp_s,
        device=SERVER_DEVICE,
        requests_running=None if running is None else round(sum(running)),
        requests_waiting=None if waiting is None else round(sum(waiting)),
        kv_cache_usage_pct=None if usage is None else 100 * sum(usage) / len(usage),
    )


def _first(metrics: Mapping[str, Sequence[float]], names: Sequence[str]) -> Sequence[float] | None:
    return next((metrics[name] for name in names if metrics.get(name)), None)


class ServerMetricsSource:
    """A telemetry source reading a server's ``/metrics`` (see the module docstring).

    Args:
        url: the API's base URL (``server.url``); ``/metrics`` is read at its root.
        transport: an httpx transport (tests pass ``httpx.MockTransport``).
    """

    def __init__(self, url: str, transport: httpx.BaseTransport | None = None) -> None:
        import httpx

        self._url = f"{server_root(url)}/metrics"
        self._client = httpx.Client(timeout=SCRAPE_TIMEOUT_S, transport=transport)

    def read(self, timestamp_s: float) -> list[TelemetrySample]:
        """The server's load now; none when it does not answer or exposes no known gauge."""
        import httpx

        try:
            response = self._client.get(self._url)
        except httpx.HTTPError:
            return []  # not up yet (a launched server is still loading), or gone
        if response.status_code != 200:
            return []
        sample = server_sample(parse_metrics(response.text), timestamp_s)
        return [] if sample is None else [sample]
