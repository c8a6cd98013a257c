"""Requests that go wrong on the server backend: each is a failed record with its reason, the
run completes; a run where every request fails is an error; Ctrl-C ends a run promptly."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from llenergymeasure.backends.server.backend import ServerBackend
from llenergymeasure.config import ExperimentConfig
from llenergymeasure.errors import BackendError
from llenergymeasure.testing.fake_openai_server import FakeOpenAIServer, Fault

pytest.importorskip("transformers")

PROMPTS = [[1, 504, 3165], [1, 504, 3165, 282], [1, 504]]
TIMEOUT_S = 0.3
TIMED_OUT = f"timeout: nothing received within {TIMEOUT_S:g} s (server.timeout_s)"


@pytest.fixture(scope="module")
def tokenizer(embedded_folder: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(embedded_folder)


def loaded(url: str, tokenizer: Any, timeout_s: float = TIMEOUT_S) -> ServerBackend:
    config = ExperimentConfig.model_validate({
        "model": "smollm2-135m",
        "backend": "server",
        "n": 3,
        "max_output_tokens": 4,
        "server": {"url": url, "timeout_s": timeout_s},
    })  # fmt: skip
    backend = ServerBackend(tokenizer_loader=lambda location: tokenizer)
    backend.load(config)
    return backend


@pytest.mark.parametrize(
    ("fault", "reason", "chunks_kept"),
    [
        ("http_500", "HTTP 500: the engine is overloaded", 0),
        ("cut", "connection: peer closed connection without sending complete message body", 1),
        ("malformed", 'malformed event: not JSON: {"choices": [{"text": "oops"', 1),
        ("error_event", "error event: CUDA out of memory while decoding", 1),
        (
            "slow_first_byte",
            f"timeout: nothing received within {TIMEOUT_S:g} s (server.timeout_s)",
            0,
        ),
        ("stall", f"timeout: nothing received within {TIMEOUT_S:g} s (server.timeout_s)", 1),
        ("no_finish", "stream ended before a finish reason", 1),
    ],
)
def test_a_failed_request_is_recorded_with_its_reason_and_the_run_completes(
    tokenizer: Any, fault: Fault, reason: str, chunks_kept: int
) -> None:
    done: list[int] = []
    with FakeOpenAIServer(faults={1: fault}, stall_s=TIMEOUT_S * 5) as server:
        backend = loaded(server.url, tokenizer)
        try:
            records = backend.run(PROMPTS, 4, on_progress=done.append)
        finally:
            backend.unload()
    failed = [r for r in records if r.failed]
    assert len(failed) == 1 and failed[0].error is not None
    assert failed[0].error.startswith(reason)
    assert len(failed[0].chunk_times_s) == chunks_kept == failed[0].output_tokens
    assert failed[0].submit_s <= failed[0].end_s
    completed = [r for r in records if not r.failed]
    assert len(completed) == 2 and all(r.output_tokens == 4 for r in completed)
    assert [r.index for r in records] == [0, 1, 2] and sum(done) == 3 * 4  # failed ones too


def test_a_refused_connection_is_a_failed_request(tokenizer: Any) -> None:
    with FakeOpenAIServer() as server:
        backend = loaded(server.url, tokenizer)
    try:
        with pytest.raises(BackendError) as raised:
            backend.run(PROMPTS, 4)
    finally:
        backend.unload()
    assert "every request to the server at" in str(raised.value)
    assert "(3 of 3): connection: " in str(raised.value)


def test_a_run_where_every_request_fails_is_an_error_quoting_the_reasons(
    tokenizer: Any,
) -> None:
    faults: dict[int, Fault] = {0: "http_500", 1: "malformed", 2: "http_500"}
    with FakeOpenAIServer(faults=faults) as server:
        url = server.url
        backend = loaded(url, tokenizer)
        try:
            with pytest.raises(BackendError) as raised:
                backend.run(PROMPTS, 4)
        finally:
            backend.unload()
    message = str(raised.value)
    assert f"every request to the server at {url} failed (3 of 3)" in message
    assert "HTTP 500: the engine is overloaded" in message and "malformed event" in message
    assert message.count("HTTP 500") == 1  # each reason once


def test_ctrl_c_cancels_the_requests_in_flight_and_the_backend_runs_again(
    tokenizer: Any,
) -> None:
    with FakeOpenAIServer(fault="stall", stall_s=30) as server:
        backend = loaded(server.url, tokenizer, timeout_s=60)  # the stall holds requests 30 s
        reported: list[int] = []
        # Ctrl-C: SIGINT to this process (the kernel hands it to the main thread, whose wait
        # for the stalled streams it interrupts)
        timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
        try:
            timer.start()
            with pytest.raises(KeyboardInterrupt):
                backend.run(PROMPTS, 4, on_progress=reported.append)
            # interrupted before any request finished (one would report all its 4 tokens)
            assert sum(reported) <= len(PROMPTS)
            server.fault = None
            records = backend.run(PROMPTS, 4)
        finally:
            timer.cancel()
            backend.unload()
    assert [r.output_tokens for r in records] == [4, 4, 4]
