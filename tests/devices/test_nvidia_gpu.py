"""The NVML device layer: units, error translation, visible-device mapping, probing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from llenergymeasure import devices
from llenergymeasure.devices import (
    GpuLostError,
    GpuNotSupportedError,
    GpuState,
    get_gpus,
    gpu_snapshot,
    is_throttled,
    probe,
)
from llenergymeasure.devices.nvidia import (
    CLOCK_EVENT_REASONS,
    decode_clock_event_reasons,
    parse_visible_devices,
    resolve_visible_devices,
    translate_error,
)
from llenergymeasure.testing import FakeGpuSpec, install_fake_pynvml
from llenergymeasure.testing import fake_pynvml as fp
from llenergymeasure.testing.fake_energy import FakeClock

UUIDS = [f"GPU-aaaa{i}000-0000-4000-8000-00000000000{i}" for i in range(3)]


def three_gpus() -> list[FakeGpuSpec]:
    return [FakeGpuSpec(uuid=uuid, power_w=100.0 * (i + 1)) for i, uuid in enumerate(UUIDS)]


def test_readings_are_converted_to_the_units_in_their_names(clock: FakeClock) -> None:
    spec = FakeGpuSpec(
        power_w=250.0,
        memory_used_bytes=3 * 2**30,
        power_limit_mw=350_000,
        clock_event_reasons=fp.nvmlClocksEventReasonSwPowerCap | fp.nvmlClocksEventReasonGpuIdle,
        persistence_mode=fp.NVML_FEATURE_DISABLED,
        compute_capability=(8, 0),
        utilisation_gpu_pct=87,
        temperature_c=61,
    )
    with install_fake_pynvml([spec], clock=clock):
        (gpu,) = get_gpus()
        clock.advance(1.0)

        assert gpu.power_w() == 250.0 and gpu.power_source == "instant"
        assert gpu.total_energy_mj() - gpu.total_energy_mj() == 0
        assert gpu.memory_used_mb() == 3 * 1024
        assert gpu.power_limit_w() == 350.0
        assert gpu.clock_event_reasons() == ("gpu_idle", "sw_power_cap")
        assert gpu.persistence_mode() is False
        assert gpu.compute_capability() == (8, 0)
        assert gpu.cuda_driver_version() == "12.4"
        assert gpu.read_state() == GpuState(
            250.0, 61.0, 3072.0, 87.0, 1980.0, ("gpu_idle", "sw_power_cap")
        )
        assert gpu.simulated and gpu.key == "gpu:0"


def test_power_falls_back_to_the_average_where_the_instant_field_is_unsupported(
    clock: FakeClock,
) -> None:
    with install_fake_pynvml(
        [FakeGpuSpec(power_w=200.0, power_instant=False)], clock=clock
    ) as fake:
        (gpu,) = get_gpus()
        clock.advance(2.0)

        assert gpu.power_w() == 200.0
        assert gpu.power_source == "average"
        gpu.power_w()
        assert fake.calls["nvmlDeviceGetPowerUsage"] == 2
        assert fake.calls["nvmlDeviceGetFieldValues"] == 1  # decided once, not retried


def test_missing_counter_and_lost_gpu_become_project_errors() -> None:
    specs = [FakeGpuSpec(energy_counter=False), FakeGpuSpec(fail_after_calls=0)]
    with install_fake_pynvml(specs):
        old, lost = get_gpus()

        with pytest.raises(GpuNotSupportedError, match="nvmlDeviceGetTotalEnergyConsumption"):
            old.total_energy_mj()
        assert old.supports_total_energy() is False
        with pytest.raises(GpuLostError, match="GPU is lost"):
            lost.power_w()


def test_a_translated_error_names_the_nvml_error_even_when_it_cannot_print_itself() -> None:
    class Unprintable(Exception):
        value = fp.NVML_ERROR_TIMEOUT

        def __str__(self) -> str:
            raise RuntimeError("the library is gone")  # pynvml's __str__ calls into NVML

    lost = translate_error(fp, fp.NVMLError(fp.NVML_ERROR_GPU_IS_LOST), "gpu:0: read")
    other = translate_error(fp, Unprintable(), "gpu:0: read")

    assert isinstance(lost, GpuLostError)
    assert str(lost) == "gpu:0: read failed: NVMLError_GpuIsLost: GPU is lost (NVML error 15)"
    assert str(other) == "gpu:0: read failed: Unprintable (NVML error 10)"


def test_snapshot_records_what_reproducibility_needs() -> None:
    with install_fake_pynvml([FakeGpuSpec(ecc_mode=None, uuid=UUIDS[0])]):
        (record,) = gpu_snapshot()

    assert record["uuid"] == UUIDS[0]
    assert record["name"].startswith("NVIDIA H100")
    assert record["driver_version"] == "550.54.15"
    assert record["cuda_driver_version"] == "12.4"
    assert record["compute_capability"] == "9.0"
    assert record["power_limit_w"] == 700.0
    assert record["persistence_mode"] is True
    assert record["ecc_enabled"] is None  # NotSupported is recorded as unknown, not an error
    assert record["energy_counter"] is True and record["simulated"] is True


def test_snapshot_of_a_lost_gpu_records_the_error() -> None:
    with install_fake_pynvml([FakeGpuSpec(fail_after_calls=0)]):
        (record,) = gpu_snapshot()
    assert record["index"] == 0 and "GPU is lost" in record["error"]


@pytest.mark.parametrize(
    ("visible", "expected_uuids"),
    [
        ("2,0", [UUIDS[2], UUIDS[0]]),
        (f"{UUIDS[1]},{UUIDS[0]}", [UUIDS[1], UUIDS[0]]),
        ("GPU-aaaa2", [UUIDS[2]]),  # a unique prefix is enough, as for CUDA
        ("1,7,0", [UUIDS[1]]),  # an invalid entry hides itself and everything after it
        ("0,0", [UUIDS[0]]),
        ("-1", []),
        ("", []),
    ],
)
def test_cuda_visible_devices_maps_to_nvml_by_index_and_uuid(
    monkeypatch: pytest.MonkeyPatch, visible: str, expected_uuids: list[str]
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    with install_fake_pynvml(three_gpus()):
        gpus = get_gpus()

        assert [gpu.uuid() for gpu in gpus] == expected_uuids
        assert [gpu.index for gpu in gpus] == list(range(len(expected_uuids)))


def test_visible_order_decides_cuda_indices_and_power(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"{UUIDS[2]},1")
    with install_fake_pynvml(three_gpus()):
        gpus = get_gpus()
        assert [(g.key, g.vendor_index, g.power_w()) for g in gpus] == [
            ("gpu:0", 2, 300.0),
            ("gpu:1", 1, 200.0),
        ]


def test_a_mig_instance_maps_to_its_parent_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    specs = three_gpus()
    specs[1].mig_uuids = ("MIG-1111-2222",)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-1111-2222")
    with install_fake_pynvml(specs):
        (gpu,) = get_gpus()
        assert gpu.vendor_index == 1 and gpu.snapshot()["mig_uuid"] == "MIG-1111-2222"


def test_visible_device_resolution_is_a_pure_function() -> None:
    parents = {"MIG-x": UUIDS[0]}

    def resolve(value: str) -> list[tuple[int, str | None]]:
        return resolve_visible_devices(parse_visible_devices(value), UUIDS, parents.get)

    assert resolve(" 1 , 2 ") == [(1, None), (2, None)]
    assert resolve("GPU-aaaa") == []  # ambiguous prefix
    assert resolve("MIG-x,MIG-unknown,0") == [(0, "MIG-x")]


def test_clock_event_bits_match_pynvml() -> None:
    real = pytest.importorskip("pynvml")
    names = {
        "gpu_idle": "GpuIdle",
        "applications_clocks_setting": "ApplicationsClocksSetting",
        "sw_power_cap": "SwPowerCap",
        "hw_slowdown": "HwSlowdown",
        "sync_boost": "SyncBoost",
        "sw_thermal_slowdown": "SwThermalSlowdown",
        "hw_thermal_slowdown": "HwThermalSlowdown",
        "hw_power_brake_slowdown": "HwPowerBrakeSlowdown",
        "display_clock_setting": "DisplayClockSetting",
        "board_limit": "BoardLimit",
        "reliability": "Reliability",
    }
    for bit, name in CLOCK_EVENT_REASONS:
        assert getattr(real, f"nvmlClocksThrottleReason{names[name]}") == bit
    assert decode_clock_event_reasons(0x4 | 0x8000) == ("sw_power_cap", "unknown_0x8000")
    assert is_throttled(("gpu_idle", "sw_thermal_slowdown"))
    assert not is_throttled(("gpu_idle",)) and not is_throttled(None)


def test_without_nvidia_ml_py_there_are_no_gpus_and_the_probe_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)

    assert get_gpus() == []
    assert "nvidia-ml-py is not installed (pip install nvidia-ml-py)" in probe().reason


@pytest.mark.parametrize(
    ("system", "reason"),
    [
        ({"library_found": False}, "libnvidia-ml.so.1) was not found: no NVIDIA driver"),
        ({"driver_loaded": False}, "the NVIDIA driver is not loaded"),
    ],
)
def test_without_a_driver_the_probe_says_why(system: dict[str, bool], reason: str) -> None:
    with install_fake_pynvml(1, **system):
        assert get_gpus() == []
        result = probe()
    assert not result.available and reason in result.reason


def test_probe_names_the_visible_devices_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with install_fake_pynvml(2):
        assert probe().reason == "no GPU is visible (CUDA_VISIBLE_DEVICES='')"
        assert probe(visible="1") == devices.GpuProbe(True, 1)


def test_this_machine_without_a_driver_reports_it() -> None:
    """The real nvidia-ml-py on a machine with no NVIDIA driver: no GPUs, a clear reason."""
    pytest.importorskip("pynvml")
    result = probe()
    if result.available:
        pytest.skip("this machine has an NVIDIA GPU")
    assert get_gpus() == []
    assert "driver" in result.reason or "not visible" in result.reason


def test_importing_the_device_layer_does_not_import_pynvml() -> None:
    code = "import sys, llenergymeasure.devices; print('pynvml' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
