"""The generated docs, the support-outcomes file, the JSON Schemas and the API coverage data."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from llenergymeasure.errors import ConfigError
from llenergymeasure.parameters import docs, introspection
from llenergymeasure.parameters.coverage import COVERAGE, LibraryCoverage, LibraryParameter
from llenergymeasure.parameters.schema import experiment_schema, schema, study_schema
from llenergymeasure.parameters.support import (
    SupportOutcome,
    SupportTable,
    load_support,
    save_support,
    static_status,
)

TODAY = dt.date(2025, 6, 1)


def _outcome(kind: str = "supported", message: str | None = None) -> SupportOutcome:
    return SupportOutcome.model_validate(
        {
            "outcome": kind,
            "values": [8, 64],
            "message": message,
            "verified_on": "cpu · torch 2.13.0",
            "date": TODAY,
        }
    )


def test_reference_lists_every_parameter_with_its_metadata() -> None:
    text = docs.render_reference()
    for info in introspection.parameters():
        assert f"`{info.path}`" in text, info.path
    for info in introspection.study_parameters():
        assert f"`{info.path}`" in text, info.path
    line = next(row for row in text.splitlines() if row.startswith("| `energy.sample_interval_ms`"))
    assert "`100`" in line and "≥ 10, ≤ 60000" in line and "Polling interval" in line
    assert "`int \\| None`" in text  # pipes inside cells are escaped


def test_reference_reports_coverage_per_backend() -> None:
    text = docs.render_reference()
    for entry in COVERAGE:
        row = next(r for r in text.splitlines() if r.startswith(f"| {entry.backend} | "))
        assert f"{entry.ratio:.0%}" in row and str(len(entry.parameters)) in row
        for parameter in entry.missing:
            assert f"`{parameter.name}`" in text


def test_coverage_paths_exist_and_apply_to_their_backend() -> None:
    for entry in COVERAGE:
        paths = {info.path for info in introspection.parameters(entry.backend)}
        names = [parameter.name for parameter in entry.parameters]
        assert len(names) == len(set(names)), entry.backend
        for parameter in entry.modelled:
            assert parameter.path in paths, (entry.backend, parameter)
        assert 0.0 < entry.ratio <= 1.0


def test_coverage_ratio_counts_modelled_over_relevant() -> None:
    entry = LibraryCoverage(
        "vllm", "lib", 0.9, (LibraryParameter("a", "vllm.seed"), LibraryParameter("b", None))
    )
    assert entry.ratio == 0.5
    assert [p.name for p in entry.missing] == ["b"]


def test_tensorrt_coverage_names_exist_in_the_shipped_fake() -> None:
    from llenergymeasure.testing import fake_tensorrt_llm as fake

    classes = {
        "KvCacheConfig": set(fake._KvCacheConfigWithBlocks.model_fields),
        "BuildConfig": set(fake.BuildConfig.__dataclass_fields__),
        "QuantConfig": set(fake.QuantConfig.__dataclass_fields__),
        "SamplingParams": set(fake.SamplingParams.__dataclass_fields__),
        "LlmArgs": fake._BASE_ARGS | {"dtype", "tensor_parallel_size"},
        "TorchLlmArgs": fake._TORCH_ONLY_ARGS,
    }
    entry = next(e for e in COVERAGE if e.backend == "tensorrt")
    for parameter in entry.parameters:
        owner, _, field = parameter.name.partition(".")
        if owner in classes and "/" not in field:
            assert field in classes[owner], parameter.name


def test_transformers_coverage_names_exist() -> None:
    transformers = pytest.importorskip("transformers")
    generation = transformers.GenerationConfig()
    bnb_fields = set(transformers.BitsAndBytesConfig().to_dict())
    entry = next(e for e in COVERAGE if e.backend == "pytorch")
    for parameter in entry.parameters:
        owner, _, field = parameter.name.partition(".")
        if owner == "GenerationConfig":
            assert hasattr(generation, field), parameter.name
        if owner == "BitsAndBytesConfig":
            assert field in bnb_fields, parameter.name


@pytest.mark.vllm
def test_vllm_coverage_names_exist_in_real_vllm() -> None:
    import dataclasses

    pytest.importorskip("vllm")
    from vllm import SamplingParams
    from vllm.engine.arg_utils import EngineArgs

    known = {
        "EngineArgs": {f.name for f in dataclasses.fields(EngineArgs)},
        "SamplingParams": set(SamplingParams.__struct_fields__),
    }
    entry = next(e for e in COVERAGE if e.backend == "vllm")
    for parameter in entry.parameters:
        owner, _, field = parameter.name.partition(".")
        assert field in known[owner], parameter.name


def test_matrix_shows_static_status_until_an_outcome_is_recorded() -> None:
    empty = docs.render_matrix(SupportTable())
    for info in docs.matrix_parameters():
        assert f"| `{info.path}` |" in empty
    assert "0 of" in empty and "○ modelled, not yet verified" in empty
    assert "🖥️ needs an NVIDIA GPU" in empty
    top_k = introspection.parameter("decoder.top_k")
    assert static_status(top_k, "pytorch") == (None, "modelled, not yet verified")
    assert static_status(top_k, "tensorrt")[0] == "needs_hardware"


def test_matrix_renders_recorded_outcomes_with_where_and_messages() -> None:
    table = SupportTable()
    table.record("pytorch", "decoder.top_k", _outcome())
    table.record("vllm", "decoder.top_k", _outcome("fails", "ValueError: top_k | must be > 1"))
    text = docs.render_matrix(table)
    row = next(r for r in text.splitlines() if r.startswith("| `decoder.top_k` |"))
    assert "✅ supported (cpu · torch 2.13.0, 2025-06-01)" in row
    assert "❌ fails ValueError: top_k \\| must be > 1" in row
    assert "2 of" in text
    assert "- `decoder.top_k` on vllm (fails; values 8, 64): ValueError" in text


def test_outcomes_file_round_trips_and_rejects_other_layouts(tmp_path: Path) -> None:
    path = tmp_path / "support.json"
    assert load_support(path).outcomes == {}
    table = SupportTable()
    table.record("vllm", "vllm.max_num_seqs", _outcome("supported_with_warnings", "slow"))
    save_support(table, path)
    assert load_support(path) == table
    assert json.loads(path.read_text())["outcomes"]["vllm"]["vllm.max_num_seqs"]["date"] == (
        "2025-06-01"
    )
    path.write_text(json.dumps({"format": 1, "outcomes": {"vllm": {"x": {"outcome": "maybe"}}}}))
    with pytest.raises(ConfigError, match="not a parameter-support file"):
        load_support(path)


def test_write_docs_writes_then_reports_nothing_stale(tmp_path: Path) -> None:
    written = docs.write_docs(tmp_path)
    assert set(written) == set(docs.generated_files(tmp_path))
    assert docs.stale_files(tmp_path) == []
    (tmp_path / docs.REFERENCE_FILE).write_text("edited by hand\n")
    assert docs.stale_files(tmp_path) == [docs.REFERENCE_FILE]
    assert docs.main(["--docs-dir", str(tmp_path), "--check"]) == 1
    assert docs.main(["--docs-dir", str(tmp_path)]) == 0
    assert docs.main(["--docs-dir", str(tmp_path), "--check"]) == 0


def test_study_schema_accepts_a_study_file_and_rejects_typos() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    study = {
        "model": "smollm2-135m",
        "sweep": {"pytorch.batch_size": [1, 8]},
        "experiments": [{"precision": "fp32"}],
        "execution": {"n_cycles": 2},
    }
    jsonschema.validate(study, study_schema())
    for bad in ({**study, "swep": {}}, {"model": "m"}, {**study, "execution": {"n_cycle": 2}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, study_schema())
    jsonschema.validate({"model": "m", "decoder": {"top_k": 5}}, experiment_schema())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"model": "m", "decoder": {"top_kk": 5}}, experiment_schema())


def test_schema_by_name() -> None:
    assert schema("experiment") == experiment_schema()
    with pytest.raises(ConfigError, match="did you mean 'study'"):
        schema("studdy")
