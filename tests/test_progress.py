"""Progress while a run or a study runs (#18): the measuring bar moves within a batch, in
output tokens; a study shows its running experiment's phase and an ETA once a run has ended;
an interrupted study says how to continue it."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console
from rich.progress import Progress
from typer.testing import CliRunner

from llenergymeasure.backends.base import ProgressCallback, TokenProgress
from llenergymeasure.cli import app
from llenergymeasure.cli.display import RichObserver
from llenergymeasure.cli.study_display import RichStudyObserver, StudyEta
from llenergymeasure.config import ExperimentConfig
from llenergymeasure.config.study import build_study_config
from llenergymeasure.harness import run_experiment
from llenergymeasure.load import LoadPlan
from llenergymeasure.results.records import RequestRecord
from llenergymeasure.results.study import StudyEntry
from llenergymeasure.study import run_study
from llenergymeasure.study.isolation import run_isolated
from llenergymeasure.testing.fake_backend import ScriptedBackend
from llenergymeasure.testing.study_targets import HARNESS_PHASES, report_phases

# --- the token budget --------------------------------------------------------------------


def test_a_share_reports_its_tokens_then_the_rest_of_its_budget() -> None:
    reported: list[int] = []
    progress = TokenProgress(reported.append, budget_tokens=8)
    progress.add(1)
    progress.add(3)
    progress.finish()  # ended at EOS after 4 of its 8 tokens
    progress.add(2)  # nothing after the end
    assert reported == [1, 3, 4]


def test_a_share_never_reports_beyond_its_budget() -> None:
    reported: list[int] = []
    progress = TokenProgress(reported.append, budget_tokens=4)
    progress.add(3)
    progress.add(3)  # a server that sent more than max_tokens
    progress.finish()
    assert reported == [3, 1]


def test_no_callback_reports_nothing() -> None:
    TokenProgress(None, budget_tokens=4).finish()  # warmup runs pass no callback


# --- the harness: the measuring counter moves within one batch ----------------------------


class OneBatchBackend(ScriptedBackend):
    """Runs every prompt in one static batch, ``max_output_tokens`` steps long, reporting
    each step's tokens as the pytorch backend does; notes when the batch has ended."""

    name = "one-batch"

    def __init__(self) -> None:
        self.batch_ended = False

    @property
    def concurrency(self) -> int:
        return 64

    def run(
        self,
        prompts: Sequence[list[int]],
        max_output_tokens: int,
        on_progress: ProgressCallback | None = None,
        load: LoadPlan | None = None,
        output_lengths: Sequence[int] | None = None,
    ) -> list[RequestRecord]:
        assert output_lengths is None, "this fake generates fixed lengths only"
        self.batch_ended = False
        progress = TokenProgress(on_progress, len(prompts) * max_output_tokens)
        for _ in range(max_output_tokens):
            progress.add(len(prompts))
        self.batch_ended = True
        progress.finish()
        return [
            RequestRecord(p[0], 1, max_output_tokens, 0.0, [1.0] * max_output_tokens,
                          [1] * max_output_tokens, 1.0)
            for p in prompts
        ]  # fmt: skip


class Counts:
    """A run observer that keeps, per advance of the measuring phase, the count so far and
    whether the backend's batch had ended."""

    def __init__(self, backend: OneBatchBackend) -> None:
        self.backend = backend
        self.phases: list[tuple[str, int | None]] = []
        self.measuring: list[tuple[int, bool]] = []

    def phase(self, name: str, total: int | None = None) -> None:
        self.phases.append((name, total))

    def advance(self, n: int) -> None:
        if self.phases[-1][0] == "measuring":
            done = (self.measuring[-1][0] if self.measuring else 0) + n
            self.measuring.append((done, self.backend.batch_ended))


def test_the_measuring_counter_advances_before_the_batch_ends() -> None:
    config = ExperimentConfig.model_validate(
        {"model": "m", "n": 8, "max_output_tokens": 16, "energy": {"sampler": "null"},
         "warmup": {"n_warmup": 1, "thermal_floor_s": 0}, "baseline": {"enabled": False}}
    )  # fmt: skip
    backend = OneBatchBackend()
    observer = Counts(backend)
    run_experiment(
        config, backend=backend, observer=observer, telemetry_sources=[], sleep=lambda _: None
    )
    assert ("measuring", 8 * 16) in observer.phases  # n <= the batch: one batch of 8
    inside = [done for done, ended in observer.measuring if not ended]
    assert inside[:3] == [8, 16, 24] and len(inside) == 16  # a step at a time, in the batch
    assert observer.measuring[-1][0] == 8 * 16


def rendered(progress: Progress) -> str:
    task = progress.tasks[-1]
    return " ".join(str(column.render(task)) for column in progress.columns)


def test_the_run_bar_counts_the_measuring_phase_in_tokens() -> None:
    observer = RichObserver(Console(width=200))
    observer.phase("warmup", total=2)
    assert "0/2 runs" in rendered(observer._progress)
    observer.phase("measuring", total=256)
    observer.advance(96)
    text = rendered(observer._progress)
    assert "measuring" in text and "96/256 tokens" in text


# --- the pytorch backend on the tiny model: intermediate progress in one batch ------------


def test_pytorch_reports_every_decoding_step_of_a_single_batch(tiny_model_dir: Path) -> None:
    pytest.importorskip("transformers")
    from llenergymeasure.backends.pytorch.backend import PyTorchBackend

    config = ExperimentConfig.model_validate(
        {"model": str(tiny_model_dir), "chat_template": False, "pytorch": {"batch_size": 4},
         "decoder": {"min_new_tokens": 6}}
    )  # fmt: skip
    backend = PyTorchBackend()
    backend.load(config)
    reported: list[int] = []
    try:
        records = backend.run([[1, 2, 3], [4, 5], [6]], 6, on_progress=reported.append)
    finally:
        backend.unload()
    assert [r.output_tokens for r in records] == [6, 6, 6]
    assert reported == [3] * 6  # a step of 3 rows at a time; nothing left at the end


# --- a study: the running experiment's phase and an ETA -----------------------------------


def test_a_child_s_phases_reach_the_study_in_order(tmp_path: Path) -> None:
    phases: list[str] = []
    outcome = run_isolated({}, tmp_path, tmp_path / "child.log", 60, report_phases, phases.append)
    assert phases == list(HARNESS_PHASES)
    assert outcome.status == "failed" and "stopped after its phases" in (outcome.error or "")


class Shown(RichStudyObserver):
    """The study display, keeping what its bar said as each phase and run went by."""

    def __init__(self, clock: Any) -> None:
        super().__init__(Console(width=200), clock=clock)
        self.seen: list[str] = []

    def phase(self, name: str) -> None:
        super().phase(name)
        self.seen.append(rendered(self._progress))

    def running(self, position: int, total: int, entry: StudyEntry, n_cycles: int) -> None:
        super().running(position, total, entry, n_cycles)
        self.seen.append(rendered(self._progress))


class Ticks:
    """A clock that moves 10 s each time it is read."""

    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        self.now_s += 10.0
        return self.now_s


def test_the_study_display_shows_the_phase_and_an_eta_after_the_first_run(
    tmp_path: Path,
) -> None:
    data = {
        "name": "phases", "model": "m", "sweep": {"n": [2, 3]},
        "execution": {"n_cycles": 1, "config_gap_s": 0, "cycle_gap_s": 0},
    }  # fmt: skip
    observer = Shown(Ticks())
    run_study(build_study_config(data), out_dir=tmp_path, target=report_phases,
              observer=observer)  # fmt: skip
    first, second = observer.seen[:5], observer.seen[5:]
    assert "[1/2]" in first[0] and "ETA -:--:--" in first[0]  # nothing has ended yet
    assert all(f"· {name}" in line for name, line in zip(HARNESS_PHASES, first[1:], strict=True))
    assert "[2/2]" in second[0] and "ETA -:--:--" not in second[0]
    assert "· measuring" in second[-1]


def test_the_eta_is_the_mean_run_time_times_the_runs_left_less_the_current_run() -> None:
    now = [0.0]
    eta = StudyEta(lambda: now[0])
    eta.start()
    assert eta.remaining_s(4) is None
    now[0] = 100.0
    eta.run_finished()  # 100 s a run
    assert eta.remaining_s(3) == 300.0
    now[0] = 130.0
    assert eta.remaining_s(3) == 270.0
    now[0] = 400.0  # the current run overran: the runs after it are still to come
    assert eta.remaining_s(3) == 200.0
    assert eta.remaining_s(0) == 0.0


# --- Ctrl-C: how to continue ------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "kept"),
    [([], []), (["-q"], []), (["--json"], []), (["--profile", "quick"], ["--profile", "quick"])],
)
def test_an_interrupted_study_prints_the_command_that_resumes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flags: list[str], kept: list[str]
) -> None:
    study_file = tmp_path / "my studies" / "sweep.yaml"  # a space: quoted for the shell
    study_file.parent.mkdir()
    study_file.write_text(yaml.safe_dump({"model": "m", "sweep": {"n": [2, 3]}}))
    study_dir = str(tmp_path / "out" / "sweep_20261202T000000")

    def interrupted(study: Any, **kwargs: Any) -> Any:
        kwargs["study_observer"].started(study_dir, 2, 0)
        raise KeyboardInterrupt

    monkeypatch.setattr("llenergymeasure.cli.run_command.run", interrupted)
    done = CliRunner().invoke(app, ["run", str(study_file), *flags])
    assert done.exit_code == 130
    (line,) = [x for x in done.output.splitlines() if x.startswith("to continue the study: ")]
    command = line.removeprefix("to continue the study: ")
    assert shlex.split(command) == ["llem", "run", str(study_file), "--resume", study_dir, *kept]


def test_an_interrupted_resume_names_the_directory_it_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study_file = tmp_path / "sweep.yaml"
    study_file.write_text(yaml.safe_dump({"model": "m", "sweep": {"n": [2, 3]}}))

    def interrupted_before_it_started(study: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt  # e.g. while --wait-for-device waits

    monkeypatch.setattr("llenergymeasure.cli.run_command.run", interrupted_before_it_started)
    done = CliRunner().invoke(app, ["run", str(study_file), "--resume", str(tmp_path / "s")])
    assert done.exit_code == 130
    assert f"--resume {tmp_path / 's'}" in done.output
    fresh = CliRunner().invoke(app, ["run", str(study_file)])
    assert fresh.exit_code == 130 and "to continue" not in fresh.output  # no directory yet
