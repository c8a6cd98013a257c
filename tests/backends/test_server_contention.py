"""A local server llem measures but did not start is the run's own work, not contention."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.harness.server import server_pids
from llenergymeasure.telemetry import ContentionSource, default_sources

LISTENER = """
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
time.sleep(60)
"""


@pytest.fixture
def listener() -> Iterator[tuple[int, int]]:
    """A process listening on a free local port: (pid, port)."""
    process = subprocess.Popen([sys.executable, "-c", LISTENER], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield process.pid, int(process.stdout.readline())
    finally:
        process.kill()
        process.wait()


def server_config(url: str, **server: object) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {"model": "smollm2-135m", "backend": "server", "server": {"url": url, **server}}
    )


def test_the_process_listening_on_a_local_server_port_is_found(
    listener: tuple[int, int],
) -> None:
    pid, port = listener
    assert server_pids(server_config(f"http://127.0.0.1:{port}"), None) == [pid]


def test_no_server_pids_for_a_remote_or_launched_server_or_another_backend(
    listener: tuple[int, int],
) -> None:
    _, port = listener
    url = f"http://127.0.0.1:{port}"
    assert server_pids(server_config(url), "gpu-box.example") == []  # remote: not watched
    launched = server_config(url, launch=f"vllm serve m --port {port}")
    assert server_pids(launched, None) == []  # a child of llem: in its tree already
    assert server_pids(ExperimentConfig(model="smollm2-135m"), None) == []


def test_a_port_nobody_listens_on_gives_no_pids() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert server_pids(server_config(f"http://127.0.0.1:{port}"), None) == []


def test_default_sources_root_the_own_tree_at_the_server_too() -> None:
    sources = default_sources([], own_pids=[4242])
    contention = [s for s in sources if isinstance(s, ContentionSource)]
    assert len(contention) == 1 and 4242 in contention[0].root_pids
    assert len(contention[0].root_pids) == 2  # this process (or its study parent) and the server
