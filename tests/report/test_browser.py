"""A report of a small real study, opened in headless Chromium: every chart renders, the page
asks the network for nothing, and a screenshot of the whole page is taken.

Chromium comes from Debian's `chromium` package (scripts/test.sh installs it); the test skips,
saying so, only where no Chromium can be found. Set LLEM_REPORT_SCREENSHOT=path.png to keep
the screenshot.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import pytest
from chromium import Chromium, find_chromium
from report_fixtures import SERVING_STUDY, arrival_good, write_serving_study
from rich.console import Console

import llenergymeasure as llem
from llenergymeasure.reporting.loading import METRIC_PATHS, dig

pytestmark = pytest.mark.slow

RENDERED = """(() => {
  const figures = [...document.querySelectorAll('.llem-figure')];
  return {
    figures: figures.length,
    rendered: figures.filter(f => f.querySelector('.main-svg') &&
                                  f.querySelectorAll('.scatterlayer .trace').length > 0).length,
    titles: figures.map(f => (f.querySelector('.gtitle') || {}).textContent || ''),
    shaded: figures.map(f => f.querySelectorAll('.shapelayer path').length),
  };
})()"""


@pytest.fixture(scope="module")
def real_study(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 configurations × 2 cycles of a tiny real model on this machine, telemetry on."""
    with pytest.MonkeyPatch.context() as patch:  # a private device lock (module scope)
        patch.setenv("LLEM_LOCK_DIR", str(tmp_path_factory.mktemp("locks")))
        return _run_study(tiny_model_dir, tmp_path_factory.mktemp("study"))


def _run_study(tiny_model_dir: Path, out_dir: Path) -> Path:
    study = llem.run(
        {
            "name": "browser", "model": str(tiny_model_dir), "n": 2, "max_output_tokens": 4,
            "chat_template": False, "warmup": {"n_warmup": 1, "max_output_tokens": 2},
            "baseline": {"enabled": False}, "telemetry": {"enabled": True, "interval_ms": 50},
            "sweep": {"pytorch.batch_size": [1, 2]},
            "execution": {"n_cycles": 2, "config_gap_s": 0, "cycle_gap_s": 0},
        },
        out_dir=out_dir,
    )  # fmt: skip
    assert not study.failed, [e.error for e in study.failed]
    return Path(study.output_dir or "")


def test_real_study_round_trips_into_the_dataframe(real_study: Path) -> None:
    frame = llem.load_results(real_study)
    assert len(frame) == 4 and set(frame["status"]) == {"done"}
    for _, row in frame.iterrows():
        raw = json.loads((Path(row["result_dir"]) / "result.json").read_text())
        for column, path in METRIC_PATHS.items():
            expected = dig(raw, path)
            value = row[column]
            if expected is None:
                assert value is None or (isinstance(value, float) and math.isnan(value)), column
            else:
                assert value == expected, column


def test_report_renders_offline_in_chromium(real_study: Path, tmp_path: Path) -> None:
    executable = find_chromium()
    if executable is None:
        pytest.skip("no Chromium found (apt-get install chromium, or set LLEM_CHROMIUM)")
    page = tmp_path / "report.html"
    llem.report(real_study, html=page, console=Console(quiet=True))
    assert not re.search(r"https?://", page.read_text(encoding="utf-8"))

    with Chromium(executable) as browser:
        browser.open(page)
        state: dict[str, Any] = browser.wait_for(
            f"(s => s.figures > 0 && s.rendered === s.figures && s)({RENDERED})"
        )
        shot = Path(os.environ.get("LLEM_REPORT_SCREENSHOT") or tmp_path / "report.png")
        browser.screenshot(shot)
        urls = browser.requested_urls()
        errors = [e for e in browser.events if e.get("method") == "Runtime.exceptionThrown"]

    assert state, "not every chart rendered"
    # 3 Pareto plots, the batch-size sweep, one timeline per configuration
    assert state["figures"] == 6 and state["rendered"] == 6
    titles = state["titles"]
    assert "Energy per output token vs output tokens/s" in titles
    assert "Effect of pytorch.batch_size" in titles
    timelines = [i for i, t in enumerate(titles) if t.startswith("Device timeline")]
    assert len(timelines) == 2 and all(state["shaded"][i] > 0 for i in timelines)
    assert urls == [page.resolve().as_uri()], urls  # the page itself, nothing else
    assert not errors, errors
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_serving_view_renders_in_chromium(tmp_path: Path) -> None:
    """The serving figure of a synthetic rate sweep draws, inf kept as the last tick."""
    executable = find_chromium()
    if executable is None:
        pytest.skip("no Chromium found (apt-get install chromium, or set LLEM_CHROMIUM)")
    page = tmp_path / "serving.html"
    study = write_serving_study(tmp_path, SERVING_STUDY, arrival_good)
    llem.report(study, html=page, console=Console(quiet=True))

    with Chromium(executable) as browser:
        browser.open(page)
        state: dict[str, Any] = browser.wait_for(
            f"(s => s.figures > 0 && s.rendered === s.figures && s)({RENDERED})"
        )
        ticks = browser.evaluate(
            "[...document.querySelectorAll('#figure-1 .xaxislayer-above .xtick text')]"
            ".map(t => t.textContent)"
        )
        knees = browser.evaluate(
            "[...document.querySelectorAll('#figure-1 .textpoint text')].map(t => t.textContent)"
        )
        errors = [e for e in browser.events if e.get("method") == "Runtime.exceptionThrown"]

    assert state, "not every chart rendered"
    assert state["titles"][0] == "Serving under load: serve"  # the first figure of the page
    assert ticks[:3] == ["1", "2", "inf (all at once)"]
    assert knees == ["knee: 4 J"]  # the poisson line's; no constant-arrival rate meets 0.9
    assert not errors, errors
