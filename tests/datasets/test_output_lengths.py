"""Each request's output length (``dataset.output_lengths``): fixed, a prompt's reference answer
(clipped to max_output_tokens, counted), or drawn from a named distribution (seeded, clipped to
[min_tokens, max_output_tokens]); what the dry run shows; settings that cannot honour a forced
length are refused."""

from __future__ import annotations

import json
import math
import os
import statistics
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from llenergymeasure.cli import app
from llenergymeasure.cli.run_command import _quiet_libraries
from llenergymeasure.config.models import DatasetConfig, ExperimentConfig
from llenergymeasure.datasets import (
    Prompt,
    draw_lengths,
    expected_output_lengths,
    length_stats,
    plan_output_lengths,
)
from llenergymeasure.errors import DatasetError


def drawn(name: str, mean: float, std: float | None = None, **extra: Any) -> DatasetConfig:
    shape = {"name": name, "mean_tokens": mean, **({"std_tokens": std} if std else {}), **extra}
    return DatasetConfig(output_lengths="distribution", output_length_distribution=shape)


def answered(*tokens: int | None) -> list[Prompt]:
    return [
        Prompt(text="q", token_ids=None, index=i, output_tokens=t) for i, t in enumerate(tokens)
    ]


def test_fixed_asks_no_length() -> None:
    plan = plan_output_lengths(DatasetConfig(), answered(3, 4), 16, 42)
    assert (plan.mode, plan.lengths, plan.n_clipped, plan.clipped_note) == ("fixed", None, 0, None)


def test_from_dataset_is_each_answer_clipped_to_the_cap_and_counted() -> None:
    config = DatasetConfig(source="sharegpt", path="c.json", output_lengths="from_dataset")
    plan = plan_output_lengths(config, answered(3, 40, 7, 0), 16, 42)
    assert plan.lengths == [3, 16, 7, 1] and plan.n_clipped == 2
    assert plan.clipped_note is not None
    assert "2 of 4 reference answers are longer than max_output_tokens (16)" in plan.clipped_note


def test_from_dataset_needs_every_answer() -> None:
    config = DatasetConfig(source="sharegpt", path="c.json", output_lengths="from_dataset")
    with pytest.raises(DatasetError, match="prompt 1 has none"):
        plan_output_lengths(config, answered(3, None), 16, 42)


def test_draws_are_deterministic_for_a_seed_and_a_prefix_of_a_longer_run() -> None:
    config = drawn("lognormal", 20.0, 15.0)
    first = plan_output_lengths(config, answered(*[None] * 50), 64, 7).lengths
    assert first == plan_output_lengths(config, answered(*[None] * 50), 64, 7).lengths
    assert first != plan_output_lengths(config, answered(*[None] * 50), 64, 8).lengths
    assert first is not None and first[:10] == plan_output_lengths(
        config, answered(*[None] * 10), 64, 7).lengths  # fmt: skip
    # the stream Python keeps stable across versions: pinned, so a change is seen
    assert draw_lengths(drawn("exponential", 32.0).output_length_distribution, 5, 42) == [
        111, 0, 9, 24, 2]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "mean", "std"),
    [("uniform", 50.0, 10.0), ("normal", 50.0, 10.0), ("lognormal", 200.0, 150.0),
     ("exponential", 32.0, None)],
)  # fmt: skip
def test_each_shape_has_its_mean_and_spread(name: str, mean: float, std: float | None) -> None:
    shape = drawn(name, mean, std).output_length_distribution
    assert shape is not None
    lengths = draw_lengths(shape, 20_000, 1)
    assert statistics.fmean(lengths) == pytest.approx(mean, rel=0.03)
    assert statistics.pstdev(lengths) == pytest.approx(std or mean, rel=0.05)
    if name == "uniform":  # integers evenly spread over mean ± √3·std
        assert (min(lengths), max(lengths)) == (33, 67)


def test_draws_are_clipped_to_min_tokens_and_the_cap() -> None:
    config = drawn("normal", 10.0, 8.0, min_tokens=4)
    plan = plan_output_lengths(config, answered(*[None] * 200), 16, 3)
    assert plan.lengths is not None and min(plan.lengths) == 4 and max(plan.lengths) == 16
    raw = draw_lengths(config.output_length_distribution, 200, 3)  # type: ignore[arg-type]
    assert plan.n_clipped == sum(not 4 <= length <= 16 for length in raw) > 0
    assert (
        plan.clipped_note is not None and "drawn output lengths fell outside" in plan.clipped_note
    )


def test_the_dry_run_plan_gives_the_drawn_lengths() -> None:
    config = drawn("uniform", 6.0, 1.0)
    described = expected_output_lengths(config, 30, 42, 8)
    wanted = length_stats(plan_output_lengths(config, answered(*[None] * 30), 8, 42).lengths or [])
    assert described["requested"] == wanted.model_dump(mode="json")
    assert described["summary"].startswith(
        "distribution: uniform (mean 6, std 1), clipped to [1, 8]"
    )
    fixed = expected_output_lengths(DatasetConfig(), 30, 42, 8)
    assert fixed["summary"] == "fixed: up to 8 tokens per request (the model may stop earlier)"
    answers = DatasetConfig(source="sharegpt", path="c.json", output_lengths="from_dataset")
    assert "reference answer length" in expected_output_lengths(answers, 3, 42, 8)["summary"]


def test_llem_dry_run_shows_the_output_lengths(tmp_path: Path) -> None:
    config = {
        "model": "smollm2-135m", "n": 30, "max_output_tokens": 8,
        "dataset": {"output_lengths": "distribution",
                    "output_length_distribution": {"name": "uniform", "mean_tokens": 6,
                                                   "std_tokens": 1}},
    }  # fmt: skip
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    text = CliRunner().invoke(app, ["run", str(path), "--dry-run"], env={"COLUMNS": "250"})
    assert text.exit_code == 0, text.output
    assert "output lengths: distribution: uniform (mean 6, std 1), clipped to [1, 8]" in text.output
    plan = json.loads(CliRunner().invoke(app, ["run", str(path), "--dry-run", "--json"]).output)
    (experiment,) = plan["experiments"]
    assert experiment["output_lengths"]["mode"] == "distribution"
    assert math.isclose(experiment["output_lengths"]["requested"]["mean"],
                        expected_output_lengths(ExperimentConfig.model_validate(config).dataset,
                                                30, 42, 8)["requested"]["mean"])  # fmt: skip


def test_a_forced_length_refuses_stop_sequences_and_pytorch_beams() -> None:
    forced = {"model": "m", "dataset": {"source": "sharegpt", "path": "c.json",
                                        "output_lengths": "from_dataset"}}  # fmt: skip
    with pytest.raises(ValidationError, match=r"decoder\.stop cannot be set with dataset"):
        ExperimentConfig.model_validate({**forced, "decoder": {"stop": ["\n"]}})
    with pytest.raises(ValidationError, match=r"not supported with decoder\.num_beams > 1"):
        ExperimentConfig.model_validate({**forced, "decoder": {"num_beams": 2}})
    assert ExperimentConfig.model_validate({**forced, "backend": "tensorrt", "decoder":
                                            {"num_beams": 2}})  # fmt: skip


def test_fixed_lengths_keep_the_measurement_hash() -> None:
    plain = ExperimentConfig(model="m")
    explicit = ExperimentConfig.model_validate(
        {"model": "m", "dataset": {"output_lengths": "fixed"}}
    )
    assert plain.measurement_config_hash() == explicit.measurement_config_hash()


def test_the_cli_hides_the_datasets_progress_bars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_DATASETS_DISABLE_PROGRESS_BARS", raising=False)
    _quiet_libraries(verbose=True)
    assert "HF_DATASETS_DISABLE_PROGRESS_BARS" not in os.environ  # -v shows everything
    _quiet_libraries(verbose=False)
    assert os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] == "1"
