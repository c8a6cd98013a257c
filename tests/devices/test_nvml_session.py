"""One NVML session per process: opened on first use, shared by every caller, shut at exit."""

from __future__ import annotations

import gc
import multiprocessing
import subprocess
import sys
from collections.abc import Iterator
from multiprocessing.connection import Connection

import pytest

from llenergymeasure import devices
from llenergymeasure.devices import GpuError, get_gpus, gpu_snapshot, probe
from llenergymeasure.devices.nvidia import close_shared_session
from llenergymeasure.energy.nvml import select_gpus
from llenergymeasure.testing import FakeGpuSpec, install_fake_pynvml


@pytest.fixture(autouse=True)
def _no_session_left_open() -> Iterator[None]:
    close_shared_session()
    yield
    close_shared_session()


def test_every_caller_shares_one_nvml_initialisation() -> None:
    with install_fake_pynvml(2) as fake:
        first = get_gpus()
        get_gpus()
        probe()
        gpu_snapshot()
        select_gpus([1])  # the NVML energy sampler's discovery
        devices.get_gpus(visible="0")

        assert fake.calls["nvmlInit"] == 1 and fake.calls["nvmlShutdown"] == 0
        assert fake.init_count == 1
        del first
        gc.collect()
        assert fake.init_count == 1  # dropping GPUs does not shut the process's session
        assert get_gpus()[0].power_w() > 0


def test_closing_shuts_nvml_down_once_and_the_next_use_opens_it_again() -> None:
    with install_fake_pynvml(1) as fake:
        (stale,) = get_gpus()
        close_shared_session()
        close_shared_session()

        assert fake.calls["nvmlShutdown"] == 1 and fake.init_count == 0
        with pytest.raises(GpuError, match="Uninitialized"):
            stale.power_w()
        (fresh,) = get_gpus()
        assert fresh.power_w() > 0 and fake.calls["nvmlInit"] == 2


def test_a_failed_start_keeps_nothing_and_the_next_call_retries() -> None:
    with install_fake_pynvml(1, driver_loaded=False) as fake:
        assert get_gpus() == [] and get_gpus() == []
        assert fake.calls["nvmlInit"] == 2  # a driver loaded later is found
        fake.driver_loaded = True
        assert len(get_gpus()) == 1 and len(get_gpus()) == 1
        assert fake.calls["nvmlInit"] == 3


def test_another_pynvml_module_gets_its_own_session_and_the_old_one_closes_with_its_gpus() -> None:
    with install_fake_pynvml(1) as first:
        kept = get_gpus()
    with install_fake_pynvml(1) as second:
        get_gpus()
        assert second.init_count == 1
        assert first.init_count == 1  # its GPU still holds it
        del kept
        gc.collect()
        assert first.init_count == 0 and first.calls["nvmlShutdown"] == 1


def _child(connection: Connection) -> None:
    fake = sys.modules["pynvml"].__llem_fake__
    (gpu,) = get_gpus()
    get_gpus()
    connection.send((fake.calls["nvmlInit"], gpu.power_w()))


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this platform"
)
def test_a_forked_child_opens_its_own_session() -> None:
    with install_fake_pynvml([FakeGpuSpec(power_w=120.0)]) as fake:
        get_gpus()
        parent_end, child_end = multiprocessing.get_context("fork").Pipe()
        child = multiprocessing.get_context("fork").Process(target=_child, args=(child_end,))
        child.start()
        inits_seen_by_child, power_w = parent_end.recv()
        child.join(timeout=30)

        assert child.exitcode == 0
        assert inits_seen_by_child == 2  # the parent's one, copied, and the child's own
        assert power_w == 120.0
        assert fake.calls["nvmlInit"] == 1  # the parent's session is untouched


EXIT_SCRIPT = """
import atexit
from llenergymeasure.devices import get_gpus
from llenergymeasure.testing import install_fake_pynvml

installed = install_fake_pynvml(2)  # kept: dropping it would uninstall the fake
fake = installed.__enter__()
# Registered before the first use, so it runs after the session's own exit hook.
atexit.register(lambda: print(fake.calls["nvmlInit"], fake.calls["nvmlShutdown"],
                              fake.init_count))
for _ in range(5):
    get_gpus()
"""


def test_the_session_is_shut_down_at_exit() -> None:
    result = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["1", "1", "0"]
