"""RAPL sampler on a fake powercap tree: what is summed, wraparound, and why it is unavailable."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from llenergymeasure.energy.base import EnergySampler
from llenergymeasure.energy.rapl import RaplSampler, counter_delta_uj, discover_domains, probe
from llenergymeasure.errors import EnergySamplerError, SamplerUnavailableError
from llenergymeasure.testing.fake_energy import FakeClock, FakePowercapTree

NEVER_MS = 3_600_000  # background interval long enough that only the test's polls count


def test_discovers_package_and_dram_zones_only(tree: FakePowercapTree) -> None:
    domains = discover_domains(tree.root)

    assert [d.key for d in domains] == [
        "cpu:package-0",
        "dram:package-0",
        "cpu:package-1",
        "dram:package-1",
    ]
    assert domains[0].energy_path == tree.root / "intel-rapl:0" / "energy_uj"
    assert domains[0].max_energy_range_uj == tree.max_energy_range_uj


def test_zones_are_ordered_numerically(tmp_path: Path) -> None:
    tree = FakePowercapTree(tmp_path, packages=11, dram=False)

    keys = [d.key for d in discover_domains(tree.root)]

    assert keys == [f"cpu:package-{n}" for n in range(11)]


def test_sums_package_and_dram_but_not_core_or_psys(
    tree: FakePowercapTree, clock: FakeClock
) -> None:
    sampler = RaplSampler(tree.root, interval_ms=NEVER_MS, clock=clock)
    sampler.start()
    tree.advance("intel-rapl:0", 10.0)
    tree.advance("intel-rapl:0:1", 2.0)
    tree.advance("intel-rapl:0:0", 7.0)  # core: already inside package-0
    tree.advance("intel-rapl:1", 5.0)
    tree.advance("intel-rapl:2", 100.0)  # psys: the whole platform
    clock.now_s += 2.5

    reading = sampler.stop()

    assert reading.method == "rapl"
    assert reading.energy_by_domain_j == {
        "cpu:package-0": pytest.approx(10.0),
        "dram:package-0": pytest.approx(2.0),
        "cpu:package-1": pytest.approx(5.0),
        "dram:package-1": 0.0,
    }
    assert reading.energy_total_j == pytest.approx(17.0)
    assert reading.scope == list(reading.energy_by_domain_j)
    assert reading.duration_s == 2.5
    assert reading.sample_count == 2  # the start read and the final read
    assert not reading.is_estimate


def test_single_wraparound_is_counted(tmp_path: Path, clock: FakeClock) -> None:
    tree = FakePowercapTree(tmp_path, max_energy_range_uj=1_000_000, start_uj=900_000)
    sampler = RaplSampler(tree.root, interval_ms=NEVER_MS, clock=clock)
    sampler.start()
    tree.advance("intel-rapl:0", 0.3)
    assert tree.energy_uj("intel-rapl:0") < 900_000  # the counter did wrap

    reading = sampler.stop()

    assert reading.energy_by_domain_j["cpu:package-0"] == pytest.approx(0.3)


def test_many_wraparounds_over_one_window(tmp_path: Path, clock: FakeClock) -> None:
    tree = FakePowercapTree(tmp_path, max_energy_range_uj=1_000_000)  # wraps every ~1 J
    sampler = RaplSampler(tree.root, interval_ms=NEVER_MS, clock=clock)
    sampler.start()
    for _ in range(5):
        tree.advance("intel-rapl:0", 0.8)
        tree.advance("intel-rapl:0:1", 0.6)
        sampler.poll()

    reading = sampler.stop()

    assert reading.energy_by_domain_j["cpu:package-0"] == pytest.approx(4.0)
    assert reading.energy_by_domain_j["dram:package-0"] == pytest.approx(3.0)
    assert reading.sample_count == 7  # start + 5 polls + final


def test_background_thread_follows_wraparounds(tmp_path: Path) -> None:
    tree = FakePowercapTree(tmp_path, max_energy_range_uj=1_000_000)
    sampler = RaplSampler(tree.root, interval_ms=1)
    sampler.start()
    for _ in range(4):
        reads_before = sampler.sample_count
        tree.advance("intel-rapl:0", 0.7)
        _wait_until(lambda before=reads_before: sampler.sample_count > before + 1)

    reading = sampler.stop()

    assert reading.energy_by_domain_j["cpu:package-0"] == pytest.approx(2.8)
    assert reading.sample_count > 4


@pytest.mark.parametrize(
    ("previous_uj", "now_uj", "expected_uj"),
    [(5, 10, 5), (10, 10, 0), (90, 10, 21), (100, 0, 1)],
)
def test_counter_delta_wraps_after_max_range(
    previous_uj: int, now_uj: int, expected_uj: int
) -> None:
    assert counter_delta_uj(previous_uj, now_uj, max_energy_range_uj=100) == expected_uj


def test_probe_without_powercap_says_so(tmp_path: Path) -> None:
    availability = probe(tmp_path / "absent")

    assert not availability.available
    assert "no powercap interface" in availability.reason


def test_probe_without_rapl_zones_says_so(tmp_path: Path) -> None:
    availability = probe(tmp_path)

    assert not availability.available
    assert "no RAPL package zones" in availability.reason


def test_unreadable_counters_are_reported_with_the_fix(
    tree: FakePowercapTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What non-root users get since Linux 5.10 (chmod cannot show it when tests run as root).
    read_text = Path.read_text

    def root_only(path: Path, *args: object, **kwargs: object) -> str:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return read_text(path)

    monkeypatch.setattr(Path, "read_text", root_only)

    availability = probe(tree.root)
    assert not availability.available
    assert "permission denied" in availability.reason
    assert "root-only since Linux 5.10" in availability.reason
    with pytest.raises(EnergySamplerError, match="permission denied"):
        RaplSampler(tree.root).start()


def test_probe_accepts_a_readable_tree(tree: FakePowercapTree) -> None:
    assert probe(tree.root).available


def test_sampler_needs_a_package_zone(tmp_path: Path) -> None:
    with pytest.raises(SamplerUnavailableError, match="no RAPL package zones"):
        RaplSampler(tmp_path)


def test_reading_notes_a_missing_dram_zone(tmp_path: Path) -> None:
    tree = FakePowercapTree(tmp_path, dram=False)
    sampler = RaplSampler(tree.root, interval_ms=NEVER_MS)
    sampler.start()

    reading = sampler.stop()

    assert reading.scope == ["cpu:package-0"]
    assert any("no DRAM zone" in note for note in reading.notes)


def test_stop_before_start_is_an_error(tree: FakePowercapTree) -> None:
    with pytest.raises(EnergySamplerError, match="before start"):
        RaplSampler(tree.root).stop()


def test_is_an_energy_sampler(tree: FakePowercapTree) -> None:
    assert isinstance(RaplSampler(tree.root), EnergySampler)


def test_fake_tree_wraps_and_rejects_out_of_range_values(tmp_path: Path) -> None:
    tree = FakePowercapTree(tmp_path, max_energy_range_uj=1_000)

    tree.advance("intel-rapl:0", 0.0015)  # 1500 uJ on a counter that holds 0..1000

    assert tree.energy_uj("intel-rapl:0") == 499
    with pytest.raises(ValueError, match="outside"):
        tree.set_energy_uj("intel-rapl:0", 1_001)


def _wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "background reader did not poll"
        time.sleep(0.001)


def test_rapl_uncertainty_is_two_counter_periods_of_mean_power() -> None:
    from llenergymeasure.energy.rapl import rapl_uncertainty_j

    assert rapl_uncertainty_j(1000.0, 10.0) == pytest.approx(2 * 0.001 * 100.0)
    assert rapl_uncertainty_j(5.0, 0.0) is None
