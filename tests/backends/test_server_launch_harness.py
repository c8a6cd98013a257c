"""``backend: server`` in the harness: a launched server's log beside the result and no process
left (also after Ctrl-C), energy only where the server runs here, the server's gauges in the
timeline, and no Docker runner.

The server is the shipped fake (in-process, or launched as ``python -m
llenergymeasure.testing.fake_openai_server``); llem's tokenizer is the embedded model's.
"""

from __future__ import annotations

import shlex
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import llenergymeasure as llem
from llenergymeasure.backends.server.backend import ServerBackend
from llenergymeasure.config import ExperimentConfig
from llenergymeasure.energy import EnergyReading
from llenergymeasure.errors import BackendError, ConfigError
from llenergymeasure.harness import server as server_rules
from llenergymeasure.harness.baseline import BaselineCache
from llenergymeasure.harness.runner import run_experiment
from llenergymeasure.harness.save import SERVER_LOG
from llenergymeasure.harness.server import SHARED_DEVICE_NOTE, is_local_host
from llenergymeasure.harness.serving import CONCURRENCY_SERVER_RULE
from llenergymeasure.results.io import TIMESERIES_FILE
from llenergymeasure.study.docker_executor import DockerExecutor
from llenergymeasure.testing.fake_openai_server import FakeOpenAIServer

pytest.importorskip("transformers")
pytest.importorskip("httpx")

QUICK = {
    "warmup": {"n_warmup": 1, "max_output_tokens": 2, "thermal_floor_s": 0},
    "baseline": {"enabled": False},
}


def server_config(url: str, **fields: Any) -> dict[str, Any]:
    server = {"url": url, **fields.pop("server", {})}
    return {
        "model": "smollm2-135m", "backend": "server", "n": 4, "max_output_tokens": 4,
        **QUICK, **fields, "server": server,
    }  # fmt: skip


class PowerSampler:
    """A sampler that always measures: 50 W over its window."""

    name = "fake"

    def start(self) -> None:
        self._start_s = time.perf_counter()

    def stop(self) -> EnergyReading:
        duration_s = time.perf_counter() - self._start_s
        return EnergyReading("fake", ["dev0"], 50 * duration_s, {"dev0": 50 * duration_s},
                             duration_s, 10)  # fmt: skip


@pytest.fixture
def fake_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(models=("smollm2",), token_delay_s=0.002) as fake:
        yield fake


def timeseries_rows(result_dir: str) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = pq.read_table(Path(result_dir) / TIMESERIES_FILE).to_pylist()
    return rows


def measure(config: dict[str, Any], tmp_path: Path, **kwargs: Any) -> llem.ExperimentResult:
    return run_experiment(
        ExperimentConfig.model_validate(config), sampler_factory=PowerSampler,
        baseline_cache=BaselineCache(tmp_path / "baseline.json"), **kwargs,
    ).result  # fmt: skip


# -- locality ---------------------------------------------------------------------------------

MINE = {"192.0.2.2", "fd00::2"}


def resolver(table: dict[str, list[str]]) -> server_rules.Resolver:
    def resolve(host: str) -> list[str]:
        if host not in table:
            raise OSError(f"unknown host {host}")
        return table[host]

    return resolve


@pytest.mark.parametrize(
    "host",
    ["localhost", "LOCALHOST", "api.localhost", "127.0.0.1", "127.8.9.10", "::1", "0.0.0.0",
     "::", "192.0.2.2", "fd00::2", "box.lan"],
)  # fmt: skip
def test_hosts_of_this_machine_are_local(host: str) -> None:
    assert is_local_host(host, MINE, resolver({"box.lan": ["192.0.2.2", "127.0.1.1"]}))


@pytest.mark.parametrize("host", ["203.0.113.5", "2001:db8::1", "gpu-box", "half.lan", "nowhere"])
def test_other_hosts_are_remote(host: str) -> None:
    table = {"gpu-box": ["203.0.113.7"], "half.lan": ["192.0.2.2", "203.0.113.7"]}
    assert not is_local_host(host, MINE, resolver(table))


def test_this_machines_own_name_and_addresses_are_local() -> None:
    import socket

    assert is_local_host(socket.gethostname())
    assert all(is_local_host(address) for address in server_rules.local_addresses())


def test_a_local_server_measures_energy_of_the_whole_device(
    fake_server: FakeOpenAIServer, tmp_path: Path
) -> None:
    result = measure(server_config(fake_server.url), tmp_path)
    assert result.energy.energy_total_j is not None and result.energy.energy_total_j > 0
    assert SHARED_DEVICE_NOTE in result.energy.notes
    assert "server_remote" not in {w.code for w in result.warnings}


def test_a_remote_server_gets_null_energy_and_a_warning_but_its_timing(
    fake_server: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_rules, "is_local_host", lambda host: False)  # as if elsewhere
    result = measure(server_config(fake_server.url, baseline={"enabled": True}), tmp_path)
    assert result.measurement_method == "null"  # the measuring sampler was never used
    assert result.energy.energy_total_j is None and result.energy.baseline_power_w is None
    assert SHARED_DEVICE_NOTE not in result.energy.notes
    (warning,) = [w for w in result.warnings if w.code == "server_remote"]
    assert "'127.0.0.1' is not this machine" in warning.message
    assert "timing is still measured" in warning.message
    assert result.metrics.ttft.mean_s is not None and result.metrics.ttft.mean_s > 0


# -- the server's gauges ----------------------------------------------------------------------

FULL_POOL = "vllm:num_requests_running 4\nvllm:num_requests_waiting 0\n"


def test_the_servers_gauges_join_the_timeline_and_find_where_the_cap_is_reached(
    tmp_path: Path,
) -> None:
    config = server_config(
        "", n=12, max_output_tokens=10, telemetry={"interval_ms": 10},
        load={"mode": "concurrency", "max_concurrency": 4},
    )  # fmt: skip
    with FakeOpenAIServer(models=("smollm2",), token_delay_s=0.02, metrics_text=FULL_POOL) as fake:
        config["server"]["url"] = fake.url
        result = llem.run(config, out_dir=tmp_path, sampler_factory=PowerSampler)
    assert result.serving is not None and result.serving.steady_state is not None
    assert result.serving.steady_state.rule == CONCURRENCY_SERVER_RULE
    assert result.output_dir is not None
    rows = [r for r in timeseries_rows(result.output_dir) if r["device"] == "server"]
    assert rows and all(r["requests_running"] == 4 and r["requests_waiting"] == 0 for r in rows)
    assert {r["phase"] for r in rows} >= {"warmup", "window"}


def test_scrape_metrics_off_reads_no_server_gauges(
    fake_server: FakeOpenAIServer, tmp_path: Path
) -> None:
    fake_server.metrics_text = FULL_POOL
    config = server_config(fake_server.url, server={"scrape_metrics": False})
    result = llem.run(config, out_dir=tmp_path, sampler_factory=PowerSampler)
    assert result.output_dir is not None
    assert all(r["device"] != "server" for r in timeseries_rows(result.output_dir))
    assert not any(r.path == "/metrics" for r in fake_server.received)


# -- a launched server ------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def launched(port: int) -> dict[str, Any]:
    command = (
        f"{shlex.quote(sys.executable)} -m llenergymeasure.testing.fake_openai_server "
        f"--port {port} --model smollm2 --token-delay-s 0.002"
    )
    return server_config(f"http://127.0.0.1:{port}/v1", server={"launch": command})


def servers_on(port: int) -> list[psutil.Process]:
    """Live processes whose command line serves ``port``."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = process.info["cmdline"] or []
        if f"{port}" in cmdline and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found


def test_llem_run_launches_the_server_keeps_its_log_and_leaves_nothing(tmp_path: Path) -> None:
    port = free_port()
    scratch_before = set(Path(tempfile.gettempdir()).glob("llem-server-*"))
    result = llem.run(launched(port), out_dir=tmp_path / "results", sampler_factory=PowerSampler)
    assert result.output_dir is not None
    log = Path(result.output_dir) / SERVER_LOG
    assert f"ready http://127.0.0.1:{port}/v1" in log.read_text()
    assert result.model.details["server"]["log"] == SERVER_LOG  # beside result.json
    assert servers_on(port) == []
    assert result.metrics.ttft.mean_s is not None
    # the scratch copy is gone once the log is in the result
    assert set(Path(tempfile.gettempdir()).glob("llem-server-*")) <= scratch_before


def test_a_launched_server_that_dies_fails_the_run_and_keeps_its_log(tmp_path: Path) -> None:
    config = launched(free_port())
    config["server"]["launch"] = (
        f"{shlex.quote(sys.executable)} -c \"print('CUDA out of memory'); raise SystemExit(1)\""
    )
    with pytest.raises(BackendError, match="exited with code 1") as caught:
        llem.run(config, out_dir=tmp_path / "results", sampler_factory=PowerSampler)
    assert str(caught.value).endswith("CUDA out of memory")
    log = str(caught.value).split("its log (", 1)[1].split(")", 1)[0]
    assert Path(log).read_text().strip() == "CUDA out of memory"  # kept for reading
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


class InterruptAtWindow:
    """Ctrl-C as the measured window begins."""

    def phase(self, name: str, total: int | None = None) -> None:
        if name == "measuring":
            raise KeyboardInterrupt

    def advance(self, n_requests: int) -> None:
        """Nothing to count."""


def test_ctrl_c_during_a_run_stops_the_launched_server(tmp_path: Path) -> None:
    port = free_port()
    config = ExperimentConfig.model_validate(launched(port))
    with pytest.raises(KeyboardInterrupt):
        run_experiment(
            config, backend=ServerBackend(server_log=tmp_path / "server.log"),
            sampler_factory=PowerSampler, observer=InterruptAtWindow(),
        )  # fmt: skip
    assert "ready" in (tmp_path / "server.log").read_text()  # it was up
    assert servers_on(port) == []


# -- no Docker runner -------------------------------------------------------------------------


def test_runner_docker_refuses_a_server_run(
    fake_server: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLEM_RUNNER", "docker")
    with pytest.raises(ConfigError, match="backend 'server' cannot run with runner: docker"):
        llem.run(server_config(fake_server.url), out_dir=tmp_path)
    assert fake_server.received == []  # refused before anything ran
    with pytest.raises(ConfigError, match="set runner: local"):
        DockerExecutor(["pytorch", "server"]).__enter__()
