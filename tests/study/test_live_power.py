"""Live power in the study display: the GPUs' total power now, from the telemetry source."""

from __future__ import annotations

from rich.console import Console

from llenergymeasure.cli.study_display import LivePowerColumn, RichStudyObserver
from llenergymeasure.devices import get_gpus
from llenergymeasure.study.live_power import gpu_power_reader
from llenergymeasure.testing import FakeGpuSpec, install_fake_pynvml


def test_reader_sums_the_visible_gpus_power() -> None:
    with install_fake_pynvml([FakeGpuSpec(power_w=250.0), FakeGpuSpec(power_w=100.0)]):
        read_w = gpu_power_reader()
        assert read_w is not None
        assert read_w() == 350.0


def test_a_lost_gpu_reads_as_no_figure() -> None:
    with install_fake_pynvml([FakeGpuSpec(power_w=250.0)]) as fake:
        read_w = gpu_power_reader(get_gpus())
        assert read_w is not None
        fake.lose_gpu(0)
        assert read_w() is None


def test_no_gpu_no_reader() -> None:
    assert gpu_power_reader([]) is None


def rendered_columns(observer: RichStudyObserver) -> str:
    progress = observer._progress
    (task,) = progress.tasks
    return " ".join(str(column.render(task)) for column in progress.columns)


def test_the_study_bar_shows_live_power_when_a_reader_is_given() -> None:
    readings = iter([312.4, None])
    observer = RichStudyObserver(Console(width=200), power_reader=lambda: next(readings))
    observer.started("/tmp/study", total=4, already_done=1)
    power = [c for c in observer._progress.columns if isinstance(c, LivePowerColumn)]
    assert len(power) == 1 and power[0].max_refresh == 1.0  # read at most once a second
    assert "power 312 W" in rendered_columns(observer)
    assert "power —" in rendered_columns(observer)


def test_without_a_reader_there_is_no_power_column() -> None:
    observer = RichStudyObserver(Console(width=200))
    observer.started("/tmp/study", total=2, already_done=0)
    assert "power" not in rendered_columns(observer)
    assert not any(isinstance(c, LivePowerColumn) for c in observer._progress.columns)
