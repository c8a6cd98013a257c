"""The shipped fake pynvml behaves like nvidia-ml-py: names, signatures, units, errors."""

from __future__ import annotations

import ctypes
import inspect
import json
import sys

import pytest

from llenergymeasure.testing import fake_pynvml
from llenergymeasure.testing.fake_energy import FakeClock
from llenergymeasure.testing.fake_pynvml import (
    FakeGpuSpec,
    FakeNvml,
    build_module,
    fake_from_spec,
    install_fake_pynvml,
)

real = pytest.importorskip("pynvml")  # nvidia-ml-py: importing it needs no driver


def fake_module(*specs: FakeGpuSpec, clock: FakeClock | None = None) -> object:
    return build_module(FakeNvml(specs or (FakeGpuSpec(),), clock=clock or FakeClock()))


def test_every_fake_function_exists_in_pynvml_with_the_same_parameters() -> None:
    module = fake_module()
    names = [n for n in dir(module) if n.startswith("nvml") and callable(getattr(module, n))]
    functions = [n for n in names if not n.startswith("nvmlClocks")]

    assert len(functions) > 30
    for name in functions:
        fake_params = list(inspect.signature(getattr(module, name)).parameters)
        real_params = list(inspect.signature(getattr(real, name)).parameters)
        # pynvml's string functions are wrapped by convertStrBytes(*args, **kwargs).
        if real_params != ["args", "kwargs"]:
            assert fake_params == real_params, name


def test_constants_have_pynvml_values() -> None:
    module = fake_module()
    constants = [n for n in dir(module) if n.startswith(("NVML_", "nvmlClocks"))]

    assert {"NVML_FI_DEV_POWER_INSTANT", "NVML_ERROR_GPU_IS_LOST", "NVML_CLOCK_SM"} <= set(
        constants
    )
    for name in constants:
        assert getattr(module, name) == getattr(real, name), name


def test_structures_have_pynvml_fields() -> None:
    for name in ("c_nvmlFieldValue_t", "c_nvmlValue_t", "c_nvmlMemory_t", "c_nvmlUtilization_t"):
        fake_fields = [f[0] for f in getattr(fake_pynvml, name)._fields_]
        assert fake_fields == [f[0] for f in getattr(real, name)._fields_], name


def test_error_classes_are_generated_like_pynvml() -> None:
    real_classes = {n for n in dir(real) if n.startswith("NVMLError_")}
    fake_classes = {n for n in dir(fake_pynvml) if n.startswith("NVMLError_")}
    assert fake_classes == real_classes

    for code in (fake_pynvml.NVML_ERROR_NOT_SUPPORTED, fake_pynvml.NVML_ERROR_GPU_IS_LOST, 12):
        fake_error = fake_pynvml.NVMLError(code)
        real_error = real.NVMLError(code)
        assert type(fake_error).__name__ == type(real_error).__name__
        assert fake_error.value == real_error.value == code
        assert str(fake_error) == str(real_error)
        assert isinstance(fake_error, fake_pynvml.NVMLError)
    lost_class = fake_pynvml.nvmlExceptionClass(fake_pynvml.NVML_ERROR_GPU_IS_LOST)
    assert lost_class().value == fake_pynvml.NVML_ERROR_GPU_IS_LOST


def test_calls_need_init_which_is_reference_counted() -> None:
    fake = FakeNvml()
    error = fake_pynvml.nvmlExceptionClass(fake_pynvml.NVML_ERROR_UNINITIALIZED)
    with pytest.raises(error):
        fake.nvmlDeviceGetCount()

    fake.nvmlInit()
    fake.nvmlInit()
    fake.nvmlShutdown()
    assert fake.nvmlDeviceGetCount() == 1
    fake.nvmlShutdown()
    assert fake.init_count == 0
    assert fake.calls["nvmlInit"] == 2 and fake.calls["nvmlShutdown"] == 2
    with pytest.raises(error):
        fake.nvmlShutdown()


def test_counter_advances_in_millijoules_at_the_configured_power(clock: FakeClock) -> None:
    fake = FakeNvml([FakeGpuSpec(power_w=250.0, start_energy_mj=7_000)], clock=clock)
    fake.nvmlInit()
    handle = fake.nvmlDeviceGetHandleByIndex(0)

    assert fake.nvmlDeviceGetTotalEnergyConsumption(handle) == 7_000
    clock.advance(2.0)
    assert fake.nvmlDeviceGetTotalEnergyConsumption(handle) == 7_000 + 500_000  # 500 J in mJ
    assert fake.nvmlDeviceGetPowerUsage(handle) == 250_000  # mW


def test_counter_moves_only_at_its_update_period(clock: FakeClock) -> None:
    fake = FakeNvml(
        [FakeGpuSpec(power_w=100.0, counter_update_s=0.1, start_energy_mj=0)], clock=clock
    )
    fake.nvmlInit()
    handle = fake.nvmlDeviceGetHandleByIndex(0)

    clock.advance(0.25)
    assert fake.nvmlDeviceGetTotalEnergyConsumption(handle) == 20_000  # 0.2 s at 100 W


def test_power_usage_is_a_trailing_average_and_the_instant_field_is_not(clock: FakeClock) -> None:
    fake = FakeNvml([FakeGpuSpec(power_w=[(0.0, 100.0), (10.0, 300.0)])], clock=clock)
    fake.nvmlInit()
    handle = fake.nvmlDeviceGetHandleByIndex(0)
    clock.advance(10.5)  # half a second into the 300 W step

    instant = fake.nvmlDeviceGetFieldValues(handle, [fake_pynvml.NVML_FI_DEV_POWER_INSTANT])[0]
    assert instant.nvmlReturn == fake_pynvml.NVML_SUCCESS
    assert instant.valueType == fake_pynvml.NVML_VALUE_TYPE_UNSIGNED_INT
    assert instant.value.uiVal == 300_000
    assert fake.nvmlDeviceGetPowerUsage(handle) == 200_000  # mean of 100 W and 300 W halves
    assert fake.energy_j(0, 9.0, 11.0) == pytest.approx(100 + 300)


def test_unsupported_field_fails_in_its_own_status_not_the_call(clock: FakeClock) -> None:
    fake = FakeNvml([FakeGpuSpec(power_instant=False)], clock=clock)
    fake.nvmlInit()
    handle = fake.nvmlDeviceGetHandleByIndex(0)
    field = (fake_pynvml.NVML_FI_DEV_POWER_INSTANT, fake_pynvml.NVML_POWER_SCOPE_MODULE)

    value = fake.nvmlDeviceGetFieldValues(handle, [field])[0]

    assert value.nvmlReturn == fake_pynvml.NVML_ERROR_NOT_SUPPORTED
    assert (value.fieldId, value.scopeId) == field


def test_pre_volta_counter_is_not_supported() -> None:
    fake = FakeNvml([FakeGpuSpec(energy_counter=False)])
    fake.nvmlInit()
    with pytest.raises(fake_pynvml.nvmlExceptionClass(fake_pynvml.NVML_ERROR_NOT_SUPPORTED)):
        fake.nvmlDeviceGetTotalEnergyConsumption(fake.nvmlDeviceGetHandleByIndex(0))


def test_device_is_lost_after_n_calls_and_at_a_time(clock: FakeClock) -> None:
    fake = FakeNvml([FakeGpuSpec(fail_after_calls=2), FakeGpuSpec(fail_at_s=1.0)], clock=clock)
    fake.nvmlInit()
    first, second = (fake.nvmlDeviceGetHandleByIndex(i) for i in range(2))
    lost = fake_pynvml.nvmlExceptionClass(fake_pynvml.NVML_ERROR_GPU_IS_LOST)

    fake.nvmlDeviceGetPowerUsage(first)
    fake.nvmlDeviceGetPowerUsage(first)
    with pytest.raises(lost):
        fake.nvmlDeviceGetPowerUsage(first)
    fake.nvmlDeviceGetPowerUsage(second)
    clock.advance(1.0)
    with pytest.raises(lost):
        fake.nvmlDeviceGetPowerUsage(second)


def test_a_test_can_lose_a_gpu_at_any_moment() -> None:
    fake = FakeNvml([FakeGpuSpec()])
    fake.nvmlInit()
    handle = fake.nvmlDeviceGetHandleByIndex(0)
    fake.nvmlDeviceGetPowerUsage(handle)

    fake.lose_gpu(0, fake_pynvml.NVML_ERROR_RESET_REQUIRED)

    with pytest.raises(fake_pynvml.nvmlExceptionClass(fake_pynvml.NVML_ERROR_RESET_REQUIRED)):
        fake.nvmlDeviceGetTotalEnergyConsumption(handle)


def test_state_readings_use_pynvml_units_and_types() -> None:
    fake = FakeNvml([FakeGpuSpec(memory_used_bytes=3 * 2**30, ecc_mode=None)])
    fake.nvmlInit()
    handle = fake.nvmlDeviceGetHandleByIndex(0)

    assert fake.nvmlDeviceGetMemoryInfo(handle).used == 3 * 2**30
    assert fake.nvmlDeviceGetClockInfo(handle, fake_pynvml.NVML_CLOCK_SM) == 1980
    assert fake.nvmlDeviceGetCudaComputeCapability(handle) == (9, 0)
    assert fake.nvmlSystemGetCudaDriverVersion() == 12040
    assert isinstance(fake.nvmlDeviceIsMigDeviceHandle(handle), ctypes.c_uint)
    with pytest.raises(fake_pynvml.nvmlExceptionClass(fake_pynvml.NVML_ERROR_NOT_SUPPORTED)):
        fake.nvmlDeviceGetEccMode(handle)


def test_installer_swaps_and_restores_the_module() -> None:
    before = sys.modules.get("pynvml")
    with install_fake_pynvml(2) as fake:
        import pynvml

        assert pynvml.__llem_fake__ is fake
        pynvml.nvmlInit()
        assert pynvml.nvmlDeviceGetCount() == 2
        assert callable(pynvml._nvmlGetFunctionPointer("nvmlInit"))  # Zeus checks it exists
    assert sys.modules.get("pynvml") is before


def test_spec_from_json() -> None:
    spec = {"gpus": [{"power_w": 250}, {"power_w": [[0, 100], [2, 300]]}], "driver_version": "1"}
    fake = fake_from_spec(json.dumps(spec))

    assert fake.power_at_w(1, 3.0) == 300.0 and fake.driver_version == "1"
    with pytest.raises(ValueError, match="unknown fake GPU field"):
        fake_from_spec({"gpus": [{"watts": 1}]})


def test_the_testing_entry_point_installs_what_the_environment_asks_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from llenergymeasure.testing import __main__ as entry
    from llenergymeasure.testing.fake_zeus import FakeZeus, FakeZeusSpec, build_modules

    for name in ["pynvml", *build_modules(FakeZeus(FakeZeusSpec()))]:
        monkeypatch.setitem(sys.modules, name, None)  # restored after the test

    installed = entry.install_from_environment(
        {"LLEM_FAKE_NVML": '{"gpus": [{"power_w": 1}, {}]}', "LLEM_FAKE_ZEUS": "{}"}
    )

    assert installed == ["pynvml", "zeus"]
    assert sys.modules["pynvml"].nvmlDeviceGetCount.__self__.power_at_w(0) == 1.0
    assert hasattr(sys.modules["zeus.monitor"], "ZeusMonitor")
    assert entry.install_from_environment({}) == []


def test_the_testing_entry_point_rejects_a_bad_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    from llenergymeasure.testing import __main__ as entry

    monkeypatch.setenv("LLEM_FAKE_NVML", '{"gpus": [{"watts": 1}]}')
    with pytest.raises(SystemExit) as exit_info:
        entry.main()
    assert exit_info.value.code == 2
