"""A whole measurement through ``llem.run`` with ``backend: server`` against the in-test
OpenAI-compatible server: the harness drives warmup and a concurrency window, a failed
request is kept as such, and the result files carry the server's identity."""

from __future__ import annotations

from pathlib import Path

import pytest

import llenergymeasure as llem
from llenergymeasure.results import load_requests
from llenergymeasure.testing.fake_openai_server import FakeOpenAIServer

pytest.importorskip("transformers")


def test_llem_run_measures_a_server_and_writes_its_results(tmp_path: Path) -> None:
    # warmup sends 2 requests (the concurrency cap); the window's second request fails
    with FakeOpenAIServer(models=("smollm2",), token_delay_s=0.002, faults={3: "http_500"}) as fake:
        result = llem.run(
            {
                "model": "smollm2-135m",
                "backend": "server",
                "n": 4,
                "max_output_tokens": 3,
                "warmup": {"n_warmup": 1, "max_output_tokens": 2},
                "baseline": {"enabled": False},
                "energy": {"sampler": "null"},
                "load": {"mode": "concurrency", "max_concurrency": 2},
                "server": {"url": fake.url, "scrape_metrics": False},
            },
            out_dir=tmp_path,
        )
    assert [body["max_tokens"] for body in fake.generation_bodies()] == [2, 2, 3, 3, 3, 3]

    folder = Path(result.output_dir or "")
    loaded = llem.load_result(folder)
    server = loaded.model.details["server"]
    assert server["served_model"] == "smollm2" and server["url"] == fake.url
    assert loaded.environment.server == server  # the environment names the server measured
    assert loaded.model.details["token_counts"] == "server usage"
    assert loaded.metrics.n_requests == 3 and loaded.metrics.n_failed == 1
    assert loaded.metrics.total_output_tokens == 9
    assert loaded.serving is not None

    records = load_requests(folder)
    failed = [r for r in records if r.failed]
    assert len(records) == 4 and len(failed) == 1
    assert failed[0].error == "HTTP 500: the engine is overloaded"
    assert all(r.chunk_tokens == [1, 1, 1] for r in records if not r.failed)
    assert max(r.slot_wait_s for r in records) > 0  # the cap held requests back
