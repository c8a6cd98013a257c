"""Studies with ``execution.runner: ray`` on a local Ray instance (CPU resources only)."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from llenergymeasure.config.study import build_study_config
from llenergymeasure.errors import DependencyError
from llenergymeasure.study import run_study
from llenergymeasure.study.ray_executor import RayExecutor, gpus_needed, ray_error_outcome
from llenergymeasure.testing.models import tiny_experiment
from llenergymeasure.testing.study_targets import by_name


@pytest.fixture(scope="module")
def ray() -> Any:
    """The ray module (tests that need it skip where it is not installed)."""
    return pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_instance(ray: Any) -> Iterator[None]:
    """One local Ray instance for the module; the study runner reuses it (and leaves it up)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def tiny_study(model_dir: Path, **fields: Any) -> dict[str, Any]:
    return tiny_experiment(model_dir, name="tiny", **fields)


def layout(study_dir: Path) -> dict[str, Any]:
    """What a study directory holds, with timestamps blanked out."""

    def blank(text: str) -> str:
        return re.sub(r"\d{8}T\d{6}", "<ts>", text)

    manifest = json.loads((study_dir / "manifest.json").read_text())
    table = pq.read_table(study_dir / "results.parquet")
    return {
        "files": sorted(blank(str(p.relative_to(study_dir))) for p in study_dir.rglob("*")),
        "entries": [
            (e["experiment_name"], e["cycle_index"], e["status"], e["error"], e["exit_code"])
            for e in manifest["entries"]
        ],
        "columns": table.column_names,
        "rows": [(r["experiment_name"], r["status"]) for r in table.to_pylist()],
        "summary_keys": sorted(json.loads((study_dir / "study_result.json").read_text())),
    }


def result_bytes(study_dir: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted((study_dir / "runs").rglob("*")) if p.is_file()}


def test_a_ray_study_has_the_local_layout_and_resumes(
    tiny_model_dir: Path, tmp_path: Path, ray_instance: None
) -> None:
    pytest.importorskip("transformers")
    data = tiny_study(
        tiny_model_dir,
        experiments=[{"name": "fine"}, {"name": "missing", "model": str(tmp_path / "nope")}],
        execution={"n_cycles": 2},
    )
    local = run_study(build_study_config(data), out_dir=tmp_path / "local")
    data["execution"]["runner"] = "ray"
    on_ray = run_study(build_study_config(data), out_dir=tmp_path / "ray")
    ray_dir = Path(on_ray.output_dir or "")

    assert layout(ray_dir) == layout(Path(local.output_dir or ""))
    assert [(e.experiment_name, e.status) for e in on_ray.entries] == [
        ("fine", "done"), ("missing", "failed"), ("fine", "done"), ("missing", "failed"),
    ]  # fmt: skip
    assert "not found" in (on_ray.entries[1].error or "")
    started = [e.started_at for e in on_ray.entries]
    assert started == sorted(started)  # one task at a time, in the manifest's (cycle) order

    before = result_bytes(ray_dir)
    resumed = run_study(build_study_config(data), out_dir=tmp_path, resume=ray_dir)
    assert resumed.output_dir == str(ray_dir)
    assert result_bytes(ray_dir) == before  # done runs are never redone or rewritten
    assert [e.status for e in resumed.entries] == ["done", "failed", "done", "failed"]


def test_raise_hang_and_crash_are_failed_entries_on_ray(tmp_path: Path, ray_instance: None) -> None:
    data = tiny_study(
        tmp_path,
        experiments=[
            {"name": "raise-me"},
            {"name": "hang-me", "n": 3},
            {"name": "crash-me", "n": 4},
        ],
        execution={"n_cycles": 1, "experiment_timeout_s": 3, "runner": "ray"},
    )
    result = run_study(build_study_config(data), out_dir=tmp_path / "o", target=by_name)

    raised, hung, crashed = result.entries
    assert [e.status for e in result.entries] == ["failed"] * 3
    assert raised.error == "BackendError: the GPU caught fire"
    assert "caught fire" in (raised.stderr_tail or "")
    assert "timed out after 3 s" in (hung.error or "")
    assert crashed.exit_code == 139 and "died" in (crashed.error or "")
    assert "about to crash" in (crashed.stderr_tail or "")


def test_a_study_directory_the_node_cannot_see_is_a_failed_outcome(
    tmp_path: Path, ray_instance: None
) -> None:
    with RayExecutor() as execute:
        outcome = execute(
            {"name": "x"}, tmp_path / "gone" / "runs", tmp_path / "x.log", 10, by_name
        )
    assert outcome.status == "failed"
    assert "not visible on Ray node" in (outcome.error or "")


def test_a_task_that_never_starts_is_cancelled_after_the_timeout(
    tmp_path: Path, ray: Any, ray_instance: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The driver believes in a GPU the CPU-only instance lacks: the task waits forever.
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0, "GPU": 1.0})
    monkeypatch.setattr(ray, "nodes", lambda: [{"Alive": True, "Resources": {"GPU": 1.0}}])
    with RayExecutor(grace_s=1.0) as execute:
        outcome = execute({"name": "x"}, tmp_path, tmp_path / "x.log", 0.5, by_name)
    assert outcome.status == "failed"
    assert "no answer from the Ray task within 1.5 s" in (outcome.error or "")


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"backend": "vllm", "vllm": {"tensor_parallel_size": 8}}, "needs 8 GPUs on one node"),
        ({"energy": {"gpu_indices": [2, 3]}}, "set gpu_indices to [0, 1]"),
    ],
)
def test_gpu_requests_a_task_could_never_meet_fail_before_submission(
    config: dict[str, Any],
    reason: str,
    tmp_path: Path,
    ray: Any,
    ray_instance: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"GPU": 8.0})
    monkeypatch.setattr(ray, "nodes", lambda: [{"Alive": True, "Resources": {"GPU": 4.0}}] * 2)
    with RayExecutor() as execute:
        outcome = execute(config, tmp_path, tmp_path / "x.log", 10, by_name)
    assert outcome.status == "failed" and reason in (outcome.error or "")


def test_gpus_needed() -> None:
    assert gpus_needed({}) == 1
    assert gpus_needed({"energy": {"gpu_indices": [0, 1, 2]}}) == 3
    assert gpus_needed({"backend": "vllm", "vllm": {"tensor_parallel_size": 2,
                                                    "pipeline_parallel_size": 2}}) == 4  # fmt: skip
    assert gpus_needed({"backend": "pytorch", "vllm": {"tensor_parallel_size": 2}}) == 1


def test_ray_errors_become_failed_outcomes_with_the_reason(tmp_path: Path, ray: Any) -> None:
    log = tmp_path / "x.log"
    log.write_text("loading model...\n")
    crashed = ray_error_outcome(ray.exceptions.WorkerCrashedError(), log)
    assert crashed.status == "failed" and crashed.error is not None
    assert crashed.error.startswith("Ray WorkerCrashedError: ")
    assert crashed.stderr_tail == "loading model...\n"
    raised = ray_error_outcome(
        ray.exceptions.RayTaskError("run_on_node", "Traceback ...", OSError("disk full")), log
    )
    assert raised.error == "the Ray task raised OSError: disk full"


def test_runner_ray_without_ray_is_a_dependency_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    study = build_study_config(
        tiny_study(tmp_path, experiments=[{"name": "a"}], execution={"runner": "ray"})
    )
    with pytest.raises(DependencyError, match=re.escape("pip install 'llenergymeasure[ray]'")):
        run_study(study, out_dir=tmp_path / "o")
    assert not (tmp_path / "o").exists()  # refused before a study directory is made
