"""A server's Prometheus ``/metrics`` read into the telemetry timeline."""

from __future__ import annotations

import math

import httpx
import pytest

from llenergymeasure.backends.server.metrics import (
    SERVER_DEVICE,
    ServerMetricsSource,
    parse_metrics,
    server_sample,
)
from llenergymeasure.results.records import TelemetrySample
from llenergymeasure.telemetry import TelemetryPoller
from llenergymeasure.testing.fake_openai_server import FakeOpenAIServer

VLLM = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="smollm2"} 3.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="smollm2"} 1.0
vllm:num_requests_waiting_by_reason{engine="0",model_name="smollm2",reason="capacity"} 1.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="smollm2"} 0.125
vllm:prompt_tokens_total{engine="0",model_name="smollm2"} 120.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="smollm2"} 7.0
"""

SGLANG = """\
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{model_name="m",tp_rank="0"} 5.0
sglang:num_queue_reqs{model_name="m",tp_rank="0"} 2.0
sglang:token_usage{model_name="m",tp_rank="0"} 0.5
"""

TGI = """\
tgi_batch_current_size 4
tgi_queue_size 0
tgi_request_count 10
"""

LLAMA_CPP = """\
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 2
llamacpp:requests_deferred 1
llamacpp:kv_cache_usage_ratio 0.25
llamacpp:tokens_predicted_total 10
"""


def test_vllm_gauges_become_one_server_sample() -> None:
    sample = server_sample(parse_metrics(VLLM), 1.5)
    assert sample == TelemetrySample(
        timestamp_s=1.5,
        device=SERVER_DEVICE,
        requests_running=3,
        requests_waiting=1,
        kv_cache_usage_pct=12.5,
    )


@pytest.mark.parametrize(
    ("text", "running", "waiting", "usage_pct"),
    [(SGLANG, 5, 2, 50.0), (TGI, 4, 0, None), (LLAMA_CPP, 2, 1, 25.0)],
)
def test_sglang_tgi_and_llama_cpp_gauges_are_read_too(
    text: str, running: int, waiting: int, usage_pct: float | None
) -> None:
    sample = server_sample(parse_metrics(text), 0.0)
    assert sample is not None
    assert (sample.requests_running, sample.requests_waiting) == (running, waiting)
    assert sample.kv_cache_usage_pct == usage_pct


def test_engines_are_summed_and_their_usage_averaged() -> None:
    text = """\
vllm:num_requests_running{engine="0"} 2
vllm:num_requests_running{engine="1"} 3
vllm:gpu_cache_usage_perc{engine="0"} 0.2
vllm:gpu_cache_usage_perc{engine="1"} 0.4
"""  # an older vLLM's name for the usage
    sample = server_sample(parse_metrics(text), 0.0)
    assert sample is not None and sample.requests_running == 5
    assert sample.requests_waiting is None
    assert sample.kv_cache_usage_pct == pytest.approx(30.0)


def test_the_current_vllm_usage_name_wins_over_the_old_one() -> None:
    text = "vllm:gpu_cache_usage_perc 0.9\nvllm:kv_cache_usage_perc 0.1\n"
    sample = server_sample(parse_metrics(text), 0.0)
    assert sample is not None and sample.kv_cache_usage_pct == pytest.approx(10.0)


def test_parsing_keeps_values_past_awkward_labels_and_skips_junk() -> None:
    text = (
        'a{path="/x}y",note="say \\"hi\\" {ok}"} 4 1700000000000\n'
        "b NaN\n"
        "c +Inf\n"
        "# a comment\n"
        "\n"
        "not_a_sample\n"
        'd{unclosed="x 1\n'
        "e notanumber\n"
    )
    values = parse_metrics(text)
    assert values["a"] == [4.0]
    assert math.isnan(values["b"][0]) and values["c"] == [math.inf]
    assert set(values) == {"a", "b", "c"}


def test_metrics_without_known_gauges_give_no_sample() -> None:
    assert server_sample(parse_metrics("ollama_requests_total 10\n"), 0.0) is None


def source_answering(status: int, text: str = "") -> ServerMetricsSource:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url == "http://127.0.0.1:8000/metrics"
        return httpx.Response(status, text=text)

    return ServerMetricsSource("http://127.0.0.1:8000/v1", transport=httpx.MockTransport(answer))


def test_the_source_scrapes_the_root_metrics() -> None:
    (sample,) = source_answering(200, VLLM).read(2.0)
    assert sample.timestamp_s == 2.0 and sample.requests_running == 3


def test_a_server_without_metrics_or_not_answering_gives_nothing() -> None:
    assert source_answering(404).read(0.0) == []

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    source = ServerMetricsSource("http://127.0.0.1:8000/v1", transport=httpx.MockTransport(refuse))
    assert source.read(0.0) == []


def test_the_poller_records_a_fake_servers_gauges_over_http() -> None:
    with FakeOpenAIServer(metrics_text=VLLM) as server:
        poller = TelemetryPoller([ServerMetricsSource(server.url)], interval_ms=10)
        poller.set_phase("window")
        poller.poll()
        poller.poll()
        samples = poller.stop()
    assert len(samples) == 2
    assert all(s.device == "server" and s.phase == "window" for s in samples)
    assert {s.requests_running for s in samples} == {3}
