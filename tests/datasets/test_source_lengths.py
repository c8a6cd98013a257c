"""Length statistics of a prompt source without a model (the dry run): words without a
tokenizer, tokens with one; reference answers where the source has them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from llenergymeasure.cli import app
from llenergymeasure.config.models import DatasetConfig
from llenergymeasure.datasets import length_stats, source_lengths
from llenergymeasure.errors import DatasetError


class CharCodec:
    """One token per character (so token and word counts differ)."""

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]


def _sharegpt(tmp_path: Path) -> DatasetConfig:
    entries = [
        {"conversations": [{"from": "human", "value": " ".join(["w"] * k)},
                           {"from": "gpt", "value": " ".join(["a"] * (2 * k))}]}
        for k in range(1, 21)
    ] + [{"conversations": []}]  # fmt: skip
    path = tmp_path / "c.json"
    path.write_text(json.dumps(entries), encoding="utf-8")
    return DatasetConfig(source="sharegpt", path=str(path))


def test_length_stats_mean_median_and_p95() -> None:
    stats = length_stats(list(range(1, 21)))
    assert (stats.n, stats.mean, stats.p50, stats.p95) == (20, 10.5, 10.5, pytest.approx(19.05))
    assert length_stats([]).n == 0 and length_stats([]).mean is None


def test_sharegpt_prompts_and_answers_in_words(tmp_path: Path) -> None:
    lengths = source_lengths(_sharegpt(tmp_path))
    assert lengths.unit == "words" and lengths.answers is not None
    assert (lengths.prompts.n, lengths.prompts.mean) == (20, 10.5)
    assert (lengths.answers.mean, lengths.answers.p50) == (21.0, 21.0)
    assert (lengths.info.n_rows, lengths.info.n_usable) == (21, 20)
    assert "(20 usable of 21 rows): prompt words mean 10.5, p50 10.5, p95 19.05; reference " \
        "answer words mean 21" in lengths.summary()  # fmt: skip


def test_a_tokenizer_counts_tokens(tmp_path: Path) -> None:
    lengths = source_lengths(_sharegpt(tmp_path), codec=CharCodec())
    assert lengths.unit == "tokens" and lengths.prompts.p50 == 2 * 10.5 - 1  # "w w ..." chars


def test_builtin_has_no_reference_answers_and_synthetic_a_set_length() -> None:
    builtin = source_lengths(DatasetConfig())
    assert builtin.answers is None and builtin.prompts.n == builtin.info.n_rows == 129
    synthetic = source_lengths(DatasetConfig(source="synthetic", synthetic_input_tokens=64))
    assert synthetic.unit == "tokens" and synthetic.prompts.p95 == 64 and synthetic.prompts.n == 0
    assert synthetic.summary() == "synthetic: prompt tokens mean 64, p50 64, p95 64"


def test_lengths_check_what_a_run_checks() -> None:
    with pytest.raises(DatasetError, match="from_dataset uses each prompt's reference answer"):
        source_lengths(DatasetConfig(output_lengths="from_dataset"))


def test_the_dry_run_shows_each_source_once(tmp_path: Path) -> None:
    sharegpt = _sharegpt(tmp_path)
    study = {
        "name": "lengths",
        "model": "smollm2-135m",
        "sweep": {"n": [2, 3]},
        "experiments": [{"dataset": {"source": "sharegpt", "path": sharegpt.path}},
                        {"dataset": "builtin"}],
    }  # fmt: skip
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study), encoding="utf-8")
    result = CliRunner().invoke(app, ["run", str(path), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    sources = {s["dataset"]["source"]: s for s in plan["prompt_sources"]}
    assert len(plan["experiments"]) == 4 and len(plan["prompt_sources"]) == 2
    assert sources["sharegpt"]["answers"]["mean"] == 21.0 and sources["builtin"]["answers"] is None
    text = CliRunner().invoke(app, ["run", str(path), "--dry-run"]).output
    assert "prompts: builtin (129 usable of 129 rows): prompt words mean" in " ".join(text.split())
