"""The validation campaign without a model: the study file it writes, how a study directory's
entries become outcomes, and the merge into the support file and docs."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from llenergymeasure import campaign
from llenergymeasure.campaign import Plan, ValueOutcome
from llenergymeasure.campaign import run as campaign_run
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.config.study import build_study_config
from llenergymeasure.errors import ConfigError
from llenergymeasure.parameters import introspection
from llenergymeasure.parameters.docs import MATRIX_FILE, SUPPORT_FILE
from llenergymeasure.parameters.support import SupportOutcome, SupportTable, load_support
from llenergymeasure.results.models import (
    EnergyMetrics,
    EnvironmentSnapshot,
    ExperimentResult,
    MeasurementWarning,
    ModelInfo,
    PerformanceMetrics,
    PhaseTimings,
)
from llenergymeasure.results.study import StudyEntry
from llenergymeasure.study.manifest import Manifest, write_manifest

DAY = dt.date(2025, 6, 1)
CPU_ENV = EnvironmentSnapshot(
    python="3.11",
    os="Linux",
    machine="x86_64",
    libraries={"torch": "2.13.0+cpu", "transformers": "5.1.0", "vllm": None},
)


def plan_for(backend: str, **options: Any) -> Plan:
    return campaign.plan_campaign(backend, gpu_count=options.pop("gpu_count", 0), **options)


# --- the study file -------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["pytorch", "vllm"])
def test_every_parameter_gets_one_experiment_named_by_its_path(backend: str) -> None:
    plan = plan_for(backend, gpu_count=1)  # with a GPU nothing is decided without running
    expected = [info.path for info in campaign.campaign_parameters(backend)]
    assert [trial.name for trial in plan.trials] == [p for p in expected if p not in plan.untested]
    assert [trial.path for trial in plan.trials] == [trial.name for trial in plan.trials]
    assert "decoder.top_k" in expected and f"{backend}.extra" in expected


def test_the_study_file_is_a_valid_study_with_the_reference_first(tmp_path: Path) -> None:
    plan = plan_for("pytorch")
    path = campaign.write_study(plan, tmp_path, timeout_s=120)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    study = build_study_config(data, source=str(path))
    names = [experiment.name for experiment in study.experiments_resolved]
    assert names == [campaign.REFERENCE, *(trial.name for trial in plan.trials)]
    assert study.dropped_duplicates == []
    assert study.execution.n_cycles == 1 and study.execution.experiment_timeout_s == 120
    assert study.execution.runner == "local"
    top_k = study.experiments_resolved[names.index("decoder.top_k")]
    assert (
        top_k.decoder.top_k
        == introspection.test_values(introspection.parameter("decoder.top_k"))[0]
    )
    assert top_k.n == 2 and top_k.baseline.enabled is False and top_k.telemetry.enabled is False


def test_all_values_gives_one_experiment_per_test_value() -> None:
    plan = plan_for("pytorch", all_values=True, only=["decoder.top_k", "pytorch.batch_size"])
    top_k = introspection.test_values(introspection.parameter("decoder.top_k"))
    assert [t.value for t in plan.trials if t.path == "decoder.top_k"] == top_k
    assert [t.name for t in plan.trials] == [
        "decoder.top_k",
        "decoder.top_k__v2",
        "decoder.top_k__v3",
        "pytorch.batch_size",
        "pytorch.batch_size__v2",
    ]


def test_an_unknown_parameter_path_names_the_nearest() -> None:
    with pytest.raises(ConfigError, match=r"did you mean 'decoder\.top_k'"):
        campaign.campaign_parameters("vllm", ["decoder.top_kk"])


def test_a_field_acts_in_its_experiment() -> None:
    temperature = campaign.acting_config("pytorch", "decoder.temperature", 0.5)
    assert temperature["decoder"] == {"temperature": 0.5, "do_sample": True}
    length = campaign.acting_config("pytorch", "decoder.length_penalty", 0.5)
    config = ExperimentConfig.model_validate(length)
    assert (config.decoder.num_beams or 1) > 1 and config.config_warnings() == []


def test_cpu_only_backend_settings_go_into_the_base_only_without_a_gpu() -> None:
    assert plan_for("vllm").base["vllm"] == {"gpu_memory_utilization": 0.3}
    assert "vllm" not in plan_for("vllm", gpu_count=1).base


# --- hardware ---------------------------------------------------------------------------------


def test_hardware_bound_values_are_decided_without_a_gpu() -> None:
    plan = plan_for("pytorch", all_values=True, only=["pytorch.load_in_4bit", "precision"])
    decided = {(v.path, v.value): v for v in plan.decided}
    assert set(decided) == {("pytorch.load_in_4bit", True), ("precision", "bf16")}
    assert decided["precision", "bf16"].outcome == "needs_hardware"
    assert "Ampere" in (decided["precision", "bf16"].message or "")
    assert [(t.path, t.value) for t in plan.trials] == [
        ("precision", "fp32"),
        ("precision", "fp16"),
    ]


def test_a_prerequisites_hardware_counts() -> None:
    plan = plan_for("pytorch", only=["pytorch.bnb_4bit_quant_type"])
    assert plan.trials == []
    assert "pytorch.load_in_4bit" in (plan.decided[0].message or "")


def test_with_a_gpu_hardware_bound_values_run() -> None:
    plan = plan_for("pytorch", gpu_count=1, only=["pytorch.load_in_4bit"])
    assert [t.name for t in plan.trials] == ["pytorch.load_in_4bit"] and plan.decided == []


def test_a_gpu_only_backend_runs_nothing_without_a_gpu() -> None:
    plan = plan_for("tensorrt")
    assert plan.trials == []
    assert {v.outcome for v in plan.decided} == {"needs_hardware"}
    assert len(plan.decided) == len(campaign.campaign_parameters("tensorrt")) - len(plan.untested)
    assert plan_for("tensorrt", gpu_count=1).trials


@pytest.mark.parametrize(
    ("error", "hardware"),
    [
        ("ImportError: the package for FlashAttention2 doesn't seem to be installed", True),
        ("RuntimeError: Torch not compiled with CUDA enabled", True),
        ("BackendError: tensor_parallel_size x pipeline_parallel_size = 2 > 1 visible GPU", True),
        ("ValueError: fp8 KV cache is not supported on CPU", True),
        ("ImportError: bitsandbytes needs a GPU", True),
        ("ValueError: max_model_len 8 < prompt length 20", False),
        ("ValueError: raise gpu_memory_utilization to fit the cache", False),
        ("timed out after 300 s (child killed)", False),
    ],
)
def test_errors_that_name_hardware_mean_needs_hardware(error: str, hardware: bool) -> None:
    assert campaign.needs_hardware_reason(error) is hardware


# --- collecting a study directory -------------------------------------------------------------


def fake_result(config: dict[str, Any], warnings: list[tuple[str, str]]) -> ExperimentResult:
    start = dt.datetime(2025, 6, 1, 12, tzinfo=dt.timezone.utc)
    return ExperimentResult(
        llem_version="test",
        config=ExperimentConfig.model_validate(config),
        measurement_config_hash="0" * 16,
        started_at=start,
        ended_at=start,
        measurement_method="null",
        model=ModelInfo(model_id="smollm2-135m", source_kind="test", dtype="fp32", device="cpu"),
        environment=CPU_ENV,
        timings=PhaseTimings(model_load_s=1.0, warmup_s=0.0, window_s=1.0),
        energy=EnergyMetrics(method="null"),
        metrics=PerformanceMetrics(
            duration_s=1.0, n_requests=2, total_input_tokens=8, total_output_tokens=8
        ),
        warnings=[MeasurementWarning(code=code, message=text) for code, text in warnings],
    )


AMBIENT = [("baseline_missing", "no idle baseline (disabled)")]


def write_campaign_study(folder: Path, plan: Plan, outcomes: dict[str, Any]) -> Path:
    """A study directory as ``llem run`` leaves it: a manifest, and a result per done entry.

    ``outcomes``: experiment name -> list of extra warnings (done), an error string (failed)
    or None (still pending).
    """
    data = campaign.study_data(plan, timeout_s=60)
    configs = [
        {**{k: v for k, v in data.items() if k not in ("experiments", "execution", "name")}, **e}
        for e in data["experiments"]
    ]
    entries = []
    for index, config in enumerate(configs):
        name, outcome = config["name"], outcomes[config["name"]]
        entry = StudyEntry(experiment_index=index, cycle_index=0, experiment_name=name)
        if isinstance(outcome, list):
            run = folder / "runs" / name
            run.mkdir(parents=True)
            result = fake_result(config, AMBIENT + outcome)
            (run / "result.json").write_text(result.model_dump_json(), encoding="utf-8")
            entry.status, entry.result_dir = "done", f"runs/{name}"
        elif isinstance(outcome, str):
            entry.status, entry.error = "failed", outcome
        entries.append(entry)
    created = dt.datetime(2025, 6, 1, 12, tzinfo=dt.timezone.utc)
    manifest = Manifest(
        study_name=data["name"],
        study_design_hash="0" * 16,
        created_at=created,
        execution=data["execution"],
        experiments=configs,
        entries=entries,
    )
    folder.mkdir(parents=True, exist_ok=True)
    write_manifest(manifest, folder)
    return folder


PATHS = ["decoder.top_k", "pytorch.batch_size", "pytorch.attn_implementation", "pytorch.use_cache"]


def test_entries_become_outcomes_with_ambient_warnings_ignored(tmp_path: Path) -> None:
    plan = plan_for("pytorch", only=[*PATHS, "decoder.top_p"])
    study = write_campaign_study(
        tmp_path / "study",
        plan,
        {
            campaign.REFERENCE: [],
            "decoder.top_k": [],
            "pytorch.batch_size": [("odd_setting", "batch larger than n")],
            "pytorch.attn_implementation": "ImportError: FlashAttention2 needs CUDA",
            "pytorch.use_cache": "ValueError: use_cache clashes",
            "decoder.top_p": None,  # pending: the study was interrupted
        },
    )
    collected = campaign.collect(study, plan)
    by_path = {v.path: v for v in collected.values}
    assert set(by_path) == set(PATHS)
    assert by_path["decoder.top_k"].outcome == "supported"
    assert by_path["decoder.top_k"].message is None
    assert by_path["pytorch.batch_size"].outcome == "supported_with_warnings"
    assert by_path["pytorch.batch_size"].message == "odd_setting: batch larger than n"
    assert by_path["pytorch.attn_implementation"].outcome == "needs_hardware"
    assert by_path["pytorch.use_cache"].outcome == "fails"
    assert by_path["pytorch.use_cache"].message == "ValueError: use_cache clashes"
    assert collected.date == DAY
    assert collected.environment == CPU_ENV
    assert collected.skipped == {"decoder.top_p": "entry pending"}


def test_entries_that_ran_another_config_or_are_missing_give_no_outcome(tmp_path: Path) -> None:
    old_plan = plan_for("pytorch", only=["decoder.top_k"])
    study = write_campaign_study(
        tmp_path / "study", old_plan, {campaign.REFERENCE: [], "decoder.top_k": []}
    )
    (trial,) = old_plan.trials
    changed = Plan(
        "pytorch",
        old_plan.base,
        [campaign.Trial(trial.name, trial.path, 99, {"decoder": {"top_k": 99}})],
    )
    changed.trials.append(campaign.Trial("pytorch.use_cache", "pytorch.use_cache", False, {}))
    collected = campaign.collect(study, changed)
    assert collected.values == []
    assert collected.skipped == {
        "decoder.top_k": "ran with another config than planned now",
        "pytorch.use_cache": "not in the study",
    }


def test_a_failed_reference_records_nothing(tmp_path: Path) -> None:
    plan = plan_for("pytorch", only=["decoder.top_k"])
    outcomes = {campaign.REFERENCE: "BackendError: engine failed", "decoder.top_k": []}
    study = write_campaign_study(tmp_path / "study", plan, outcomes)
    with pytest.raises(campaign.CampaignError, match="reference experiment did not finish"):
        campaign.collect(study, plan)


def test_verified_on_names_the_device_and_the_backend_libraries() -> None:
    assert campaign.verified_on("pytorch", CPU_ENV) == "CPU · torch 2.13.0+cpu · transformers 5.1.0"
    gpu = CPU_ENV.model_copy(update={"gpus": [{"name": "NVIDIA H100"}] * 2})
    assert campaign.verified_on("pytorch", gpu).startswith("2× NVIDIA H100 · torch")


def test_the_worst_value_that_ran_decides_the_cell() -> None:
    values = [
        ValueOutcome("pytorch.attn_implementation", "eager", "supported"),
        ValueOutcome("pytorch.attn_implementation", "sdpa", "supported"),
        ValueOutcome("pytorch.attn_implementation", "flash_attention_2", "needs_hardware", "GPU"),
    ]
    cell = campaign.combine(values, "CPU", DAY)
    assert cell.outcome == "supported"
    assert cell.values == ["eager", "sdpa", "flash_attention_2"]
    assert cell.message == "flash_attention_2: GPU"
    failing = campaign.combine(
        [*values, ValueOutcome(values[0].path, "x", "fails", "boom")], "CPU", DAY
    )
    assert (failing.outcome, failing.message) == ("fails", "x: boom | flash_attention_2: GPU")
    only_hardware = campaign.combine(values[2:], "CPU", DAY)
    assert (only_hardware.outcome, only_hardware.message) == ("needs_hardware", "GPU")


# --- merging ----------------------------------------------------------------------------------


def test_merge_replaces_this_backends_cells_and_keeps_the_others() -> None:
    table = SupportTable()
    kept = SupportOutcome(outcome="supported", values=[8], verified_on="CPU · vllm", date=DAY)
    table.record("vllm", "decoder.top_k", kept)
    old = SupportOutcome(outcome="fails", values=[8], message="x", verified_on="CPU", date=DAY)
    table.record("pytorch", "decoder.top_k", old)
    paths = campaign.merge(
        table, "pytorch", [ValueOutcome("decoder.top_k", 8, "supported")], "CPU · torch", DAY
    )
    assert paths == ["decoder.top_k"]
    assert table.get("vllm", "decoder.top_k") == kept
    new = table.get("pytorch", "decoder.top_k")
    assert new is not None and (new.outcome, new.verified_on) == ("supported", "CPU · torch")


def test_a_campaign_run_merges_into_the_support_file_and_regenerates_the_matrix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    other = SupportOutcome(outcome="supported", values=[8], verified_on="CPU · vllm", date=DAY)
    existing = SupportTable()
    existing.record("vllm", "decoder.top_k", other)
    (docs / SUPPORT_FILE).write_text(existing.model_dump_json(), encoding="utf-8")
    ran: list[Path] = []

    def fake_run_study(study_file: Path, out_dir: Path, resume: Path | None = None) -> Path:
        ran.append(study_file)
        plan = campaign.plan_campaign("pytorch", gpu_count=0, only=["decoder.top_k"])
        outcomes = {campaign.REFERENCE: [], "decoder.top_k": []}
        return write_campaign_study(out_dir / "study", plan, outcomes)

    monkeypatch.setattr(campaign_run, "run_study", fake_run_study)
    monkeypatch.setattr("llenergymeasure.devices.get_gpus", list)
    options = ["--only", "decoder.top_k", "pytorch.load_in_8bit", "--out", str(tmp_path / "out")]
    assert campaign.main([*options, "--docs-dir", str(docs)]) == 0
    assert len(ran) == 1 and ran[0].parent == tmp_path / "out"
    table = load_support(docs / SUPPORT_FILE)
    assert table.get("vllm", "decoder.top_k") == other
    top_k = table.get("pytorch", "decoder.top_k")
    assert top_k is not None and top_k.outcome == "supported" and top_k.date == DAY
    assert top_k.verified_on == "CPU · torch 2.13.0+cpu · transformers 5.1.0"
    eight_bit = table.get("pytorch", "pytorch.load_in_8bit")
    assert eight_bit is not None and eight_bit.outcome == "needs_hardware"
    matrix = (docs / MATRIX_FILE).read_text(encoding="utf-8")
    assert "| `decoder.top_k` | ✅ supported (CPU · torch 2.13.0+cpu" in matrix
    assert json.loads((docs / SUPPORT_FILE).read_text(encoding="utf-8"))["format"] == 1


def test_collect_records_a_finished_study_without_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = plan_for("pytorch", only=["decoder.top_k"])
    study = write_campaign_study(
        tmp_path / "out" / "study", plan, {campaign.REFERENCE: [], "decoder.top_k": []}
    )

    def no_run(*args: Any, **kwargs: Any) -> Path:
        raise AssertionError("--collect must not run a study")

    monkeypatch.setattr(campaign_run, "run_study", no_run)
    monkeypatch.setattr("llenergymeasure.devices.get_gpus", list)
    docs = tmp_path / "docs"
    argv = ["--only", "decoder.top_k", "--collect", str(study), "--docs-dir", str(docs)]
    assert campaign.main(argv) == 0
    cell = load_support(docs / SUPPORT_FILE).get("pytorch", "decoder.top_k")
    assert cell is not None and cell.outcome == "supported"
    assert "recorded 1 pytorch cells (1 supported)" in capsys.readouterr().out
    assert list((tmp_path / "out").glob("*.yaml")) == []  # no new study file


def test_dry_writes_the_study_file_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = tmp_path / "docs"
    argv = ["--backend", "vllm", "--dry", "--out", str(tmp_path), "--docs-dir", str(docs)]
    assert campaign.main(argv) == 0
    (study_file,) = tmp_path.glob("validation-vllm_*.yaml")
    assert str(study_file) in capsys.readouterr().out
    assert not docs.exists()


@pytest.mark.slow
def test_the_lora_test_adapter_is_a_real_peft_adapter_built_once(
    tmp_path: Path, embedded_folder: Path
) -> None:
    pytest.importorskip("peft")
    from llenergymeasure.testing.models import ADAPTER_CONFIG, build_lora_adapter

    folder = build_lora_adapter(tmp_path / "adapter", embedded_folder)
    config = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    assert config["r"] == 4 and set(config["target_modules"]) == {"q_proj", "v_proj"}
    saved = next(folder.glob("adapter_model.*")).stat().st_mtime_ns
    assert build_lora_adapter(folder) == folder  # reused: no model is loaded again
    assert next(folder.glob("adapter_model.*")).stat().st_mtime_ns == saved


CAUSE = "ValueError: No available memory for the cache blocks. Try increasing the memory"
ENGINE_TAIL = f"""\
(EngineCore pid=7) ERROR 11-24 12:05:53 [core.py:1510] EngineCore failed to start.
  File "vllm/v1/core/kv_cache_utils.py", line 1010, in _check_enough_kv_cache_memory
    raise ValueError(
{CAUSE}
Exception: WorkerProc initialization failed. See stack trace for root cause.
"""


def test_a_failed_engines_root_cause_comes_from_its_output() -> None:
    assert campaign.root_cause(ENGINE_TAIL) == CAUSE
    assert campaign.root_cause("nothing raised here") is None
    assert campaign.root_cause(None) is None


def test_a_failure_message_carries_the_root_cause(tmp_path: Path) -> None:
    plan = plan_for("vllm", only=["vllm.kv_cache_memory_bytes"])
    error = "BackendError: vLLM engine failed to start: See root cause above."
    outcomes = {campaign.REFERENCE: [], "vllm.kv_cache_memory_bytes": error}
    study = write_campaign_study(tmp_path / "study", plan, outcomes)
    manifest = json.loads((study / "manifest.json").read_text(encoding="utf-8"))
    manifest["entries"][1]["stderr_tail"] = ENGINE_TAIL
    (study / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (value,) = campaign.collect(study, plan).values
    assert value.outcome == "fails"
    assert value.message == f"{error} (root cause: {CAUSE})"
