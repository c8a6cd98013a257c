"""Study config: sweep grammar, resolution errors, names, design hash, profiles, cycle schedules."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from llenergymeasure.config import (
    PROFILES,
    ExecutionConfig,
    StudyConfig,
    apply_profile,
    build_study_config,
    cycle_schedule,
    is_study_data,
    load_study_config,
    study_design_hash,
)
from llenergymeasure.config.study import (
    EFFECTIVE_DEFAULTS,
    ProfileName,
    expand_sweep,
    experiment_field_paths,
    safe_name,
)
from llenergymeasure.errors import ConfigError

SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def study(**fields: Any) -> dict[str, Any]:
    return {"name": "batch-sweep", "model": "m", **fields}


def write(tmp_path: Path, text: str, name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- sweep grammar --------------------------------------------------------------------------------


def test_product_size_order_and_values() -> None:
    config = build_study_config(
        study(sweep={"pytorch.batch_size": [1, 8, 32], "precision": ["fp16", "bf16"]})
    )
    resolved = config.experiments_resolved
    assert len(resolved) == 6
    # keys sorted (precision before pytorch.batch_size); the last key varies fastest
    assert [(e.precision, e.pytorch_options.batch_size) for e in resolved] == [
        ("fp16", 1),
        ("fp16", 8),
        ("fp16", 32),
        ("bf16", 1),
        ("bf16", 8),
        ("bf16", 32),
    ]
    assert all(e.model == "m" for e in resolved)


def test_scoped_key_for_an_unused_backend_expands_nothing() -> None:
    config = build_study_config(
        study(sweep={"precision": ["fp16", "bf16"], "vllm.max_num_seqs": [8, 64, 256]})
    )
    assert len(config.experiments_resolved) == 2
    assert [e.name for e in config.experiments_resolved] == ["batch-sweep_fp16", "batch-sweep_bf16"]


def test_only_scoped_keys_for_other_backends_leave_the_base_once() -> None:
    config = build_study_config(study(sweep={"tensorrt.max_batch_size": [1, 2]}))
    assert len(config.experiments_resolved) == 1
    assert config.experiments_resolved[0].name == "batch-sweep"


def test_scoped_keys_join_only_their_backends_product() -> None:
    """Raw expansion with two backends (only pytorch exists today, so no validation here)."""
    base = {"model": "m", "pytorch": {"batch_size": 2}, "vllm": {"enforce_eager": True}}
    sweep: dict[str, list[Any]] = {
        "backend": ["pytorch", "vllm"],
        "precision": ["fp16", "bf16"],
        "pytorch.batch_size": [1, 8, 32],
        "vllm.max_num_seqs": [64],
    }
    points = expand_sweep(base, sweep)
    by_backend = {b: [p for p in points if p.data["backend"] == b] for b in ("pytorch", "vllm")}
    assert len(by_backend["pytorch"]) == 2 * 3 and len(by_backend["vllm"]) == 2 * 1
    assert all("vllm" not in p.data for p in by_backend["pytorch"])
    assert all("pytorch" not in p.data for p in by_backend["vllm"])
    assert {p.data["pytorch"]["batch_size"] for p in by_backend["pytorch"]} == {1, 8, 32}
    assert by_backend["vllm"][0].data["vllm"] == {"enforce_eager": True, "max_num_seqs": 64}
    assert points[0].describe() == "backend=pytorch, precision=fp16, pytorch.batch_size=1"
    assert points[0].label() == "pytorch_fp16_bs1"


def test_none_is_a_sweep_value_and_points_do_not_share_objects() -> None:
    points = expand_sweep({"model": "m"}, {"decoder.temperature": [None, 0.7]})
    assert [p.data["decoder"]["temperature"] for p in points] == [None, 0.7]
    points[0].data["decoder"]["top_k"] = 5
    assert "top_k" not in points[1].data["decoder"]


def test_passthrough_mapping_keys_may_be_swept() -> None:
    config = build_study_config(study(sweep={"pytorch.extra.num_beams": [1, 2]}))
    assert [e.pytorch_options.extra for e in config.experiments_resolved] == [
        {"num_beams": 1},
        {"num_beams": 2},
    ]


def test_explicit_experiments_are_merged_over_the_base_after_the_sweep() -> None:
    config = build_study_config(
        study(
            n=7,
            pytorch={"batch_size": 2, "use_cache": True},
            sweep={"precision": ["fp16", "bf16"]},
            experiments=[{"precision": "fp32", "pytorch": {"batch_size": 4}}, {"name": "mine"}],
        )
    )
    resolved = config.experiments_resolved
    assert len(resolved) == 4
    extra = resolved[2]
    assert (extra.precision, extra.n) == ("fp32", 7)
    assert extra.pytorch_options.batch_size == 4 and extra.pytorch_options.use_cache is True
    assert extra.name == "batch-sweep_fp32_bs4"
    assert resolved[3].name == "mine" and resolved[3].precision == "auto"


def test_experiments_without_a_sweep_need_no_valid_base() -> None:
    config = build_study_config(
        {"name": "pair", "experiments": [{"model": "a"}, {"model": "org/b", "n": 3}]}
    )
    assert [(e.model, e.name) for e in config.experiments_resolved] == [
        ("a", "pair_a"),
        ("org/b", "pair_b_n3"),
    ]


def test_duplicates_are_dropped_keeping_the_first() -> None:
    config = build_study_config(
        study(
            sweep={"pytorch.batch_size": [1, 8, 1]},
            experiments=[{"pytorch": {"batch_size": 8}, "name": "again"}],
        )
    )
    assert [e.pytorch_options.batch_size for e in config.experiments_resolved] == [1, 8]
    assert config.dropped_duplicates == [
        "point 3 (pytorch.batch_size=1) duplicates point 1 (pytorch.batch_size=1)",
        "experiments[0] duplicates point 2 (pytorch.batch_size=8)",
    ]


def test_a_study_without_any_experiment_is_an_error() -> None:
    with pytest.raises(ConfigError, match="no experiments"):
        build_study_config(study(experiments=[]))


# --- errors ---------------------------------------------------------------------------------------


def test_every_invalid_point_is_reported_at_once_with_its_point() -> None:
    with pytest.raises(ConfigError) as info:
        build_study_config(
            study(sweep={"pytorch.batch_size": [0, 8], "precision": ["fp16", "fp12"]}),
            source="s.yaml",
        )
    lines = str(info.value).splitlines()
    assert lines[0] == "Invalid configuration in s.yaml: 3 of 4 experiments are invalid:"
    assert (
        "  point 1 (precision=fp16, pytorch.batch_size=0): pytorch.batch_size: "
        "Input should be greater than or equal to 1 (got 0)" in lines
    )
    assert (
        sum(line.startswith("  point 3 (precision=fp12, pytorch.batch_size=0): ") for line in lines)
        == 2
    )
    assert any(
        line.startswith("  point 4 (precision=fp12, pytorch.batch_size=8): precision:")
        for line in lines
    )
    assert not any(line.startswith("  point 2") for line in lines)


def test_a_problem_shared_by_every_point_is_listed_once() -> None:
    with pytest.raises(ConfigError) as info:
        build_study_config(study(n=0, sweep={"precision": ["fp16", "bf16"]}))
    message = str(info.value)
    assert message.count("n: Input should be greater than or equal to 1") == 1
    assert "  every experiment: n: " in message


def test_invalid_explicit_experiment_names_its_index() -> None:
    with pytest.raises(ConfigError, match=r"  experiments\[1\]: max_output_tokens: "):
        build_study_config(study(experiments=[{"n": 2}, {"max_output_tokens": 0}]))


def test_typo_in_a_sweep_key_gets_did_you_mean() -> None:
    with pytest.raises(ConfigError) as info:
        build_study_config(
            study(
                sweep={"pytorch.batch_sise": [1], "precison": ["fp16"], "pytroch.batch_size": [2]}
            )
        )
    message = str(info.value)
    assert "sweep.pytorch.batch_sise: unknown field (did you mean 'pytorch.batch_size'?)" in message
    assert "sweep.precison: unknown field (did you mean 'precision'?)" in message
    assert "sweep.pytroch.batch_size: unknown field (did you mean 'pytorch.batch_size'?)" in message


@pytest.mark.parametrize(
    ("sweep", "expected"),
    [
        ({"n": []}, "sweep.n: empty list"),
        ({"backend": ["pytorch", "vlm"]}, "sweep.backend: unknown backend 'vlm'"),
        ({"name": ["a", "b"]}, "sweep.name: experiment names derive"),
        ({"pytorch": [{}], "pytorch.batch_size": [1]}, "overlaps sweep.pytorch"),
        ({"precision": "fp16"}, "sweep.precision: Input should be a valid list"),
    ],
)
def test_malformed_sweeps_are_config_errors(sweep: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected)):
        build_study_config(study(sweep=sweep))


def test_sweeping_inside_a_shorthand_value_says_to_write_a_mapping() -> None:
    with pytest.raises(ConfigError, match="base sets dataset to 'synthetic', not a mapping"):
        build_study_config(
            study(dataset="synthetic", sweep={"dataset.synthetic_input_tokens": [8]})
        )


def test_unknown_top_level_and_execution_keys_are_reported_together() -> None:
    with pytest.raises(ConfigError) as info:
        build_study_config(study(sweeps={}, experiments=[{}], execution={"n_cycle": 5}))
    message = str(info.value)
    assert "execution.n_cycle: unknown field (did you mean 'n_cycles'?)" in message
    assert "sweeps: unknown field (did you mean 'sweep'?)" in message


def test_field_paths_cover_nested_sections() -> None:
    paths = experiment_field_paths()
    assert {
        "precision",
        "pytorch.batch_size",
        "decoder.temperature",
        "warmup.thermal_floor_s",
    } <= set(paths)


# --- names ----------------------------------------------------------------------------------------


def test_names_are_unique_filesystem_safe_and_labelled() -> None:
    config = build_study_config(
        {
            "name": "My Study: v1/α",
            "model": "m",
            "sweep": {
                "model": ["org/model-a", "other/model-a"],
                "decoder.temperature": [0.5],
                "pytorch.attn_implementation": ["sdpa"],
            },
            "experiments": [{"name": "my study", "n": 2}, {"name": "My-Study", "n": 3}],
        }
    )
    names = [e.name or "" for e in config.experiments_resolved]
    assert names[0] == "My-Study-v1_temp0.5_model-a_attn-implementation-sdpa"
    assert names[1] == names[0] + "-2"  # same label from different orgs
    assert names[2:] == ["my-study", "My-Study-2"]  # unique even on case-insensitive filesystems
    assert len({n.casefold() for n in names}) == len(names)
    assert all(SAFE.match(n) for n in names)


def test_safe_name_truncates_long_names_distinctly() -> None:
    a, b = safe_name("x" * 300 + "a"), safe_name("x" * 300 + "b")
    assert len(a) == 100 and a != b and SAFE.match(a)
    assert safe_name("../.hidden") == "hidden"
    assert safe_name("///") == "experiment"


# --- design hash ----------------------------------------------------------------------------------


def test_hash_ignores_execution_and_yaml_key_order(tmp_path: Path) -> None:
    first = load_study_config(
        write(
            tmp_path,
            "name: s\nmodel: m\nn: 4\nsweep:\n  precision: [fp16, bf16]\n"
            "  pytorch.batch_size: [1, 8]\nexecution:\n  n_cycles: 3\n",
            "a.yaml",
        )
    )
    second = load_study_config(
        write(
            tmp_path,
            "execution:\n  n_cycles: 10\n  cycle_order: shuffled\nsweep:\n"
            "  pytorch.batch_size: [1, 8]\n  precision: [fp16, bf16]\nn: 4\nmodel: m\nname: s\n",
            "b.yaml",
        )
    )
    assert first.design_hash() == second.design_hash()
    assert [e.name for e in first.experiments_resolved] == [
        e.name for e in second.experiments_resolved
    ]
    assert len(first.design_hash()) == 16


def test_hash_is_sensitive_to_a_changed_value_and_to_order() -> None:
    base = build_study_config(study(sweep={"pytorch.batch_size": [1, 8]}))
    changed = build_study_config(study(sweep={"pytorch.batch_size": [1, 16]}))
    reordered = build_study_config(study(sweep={"pytorch.batch_size": [8, 1]}))
    other_n = build_study_config(study(n=9, sweep={"pytorch.batch_size": [1, 8]}))
    hashes = {c.design_hash() for c in (base, changed, reordered, other_n)}
    assert len(hashes) == 4
    assert base.design_hash() == study_design_hash(base.experiments_resolved)


# --- profiles -------------------------------------------------------------------------------------


def test_quick_profile_fills_unset_fields() -> None:
    config = build_study_config(study(experiments=[{}]), profile="quick")
    assert config.execution.n_cycles == 1 and config.execution.profile == "quick"
    assert config.execution.config_gap_s == 0 and config.execution.cycle_gap_s == 0
    assert config.experiments_resolved[0].warmup.thermal_floor_s == 0


def test_publication_profile_and_explicit_fields_win() -> None:
    raw = study(
        warmup={"n_warmup": 2},
        sweep={"precision": ["fp16"]},
        experiments=[{"warmup": {"thermal_floor_s": 5.0}}],
        execution={"n_cycles": 8, "cycle_gap_s": 10},
    )
    config = build_study_config(raw, profile="publication")
    execution = config.execution
    assert (execution.n_cycles, execution.cycle_gap_s) == (8, 10)  # explicit
    assert (execution.cycle_order, execution.config_gap_s) == ("shuffled", 60)  # profile
    assert execution.profile == "publication"
    swept, explicit = config.experiments_resolved
    assert swept.warmup.thermal_floor_s == 60 and swept.warmup.n_warmup == 2
    assert explicit.warmup.thermal_floor_s == 5.0  # the explicit experiment wins
    assert swept.baseline.enabled is True
    assert raw["execution"] == {"n_cycles": 8, "cycle_gap_s": 10}  # input not mutated


def test_publication_profile_turns_baseline_on_only_when_unset() -> None:
    on = apply_profile(study(sweep={}), "publication")
    off = apply_profile(study(sweep={}, baseline={"enabled": False}), "publication")
    assert on["baseline"] == {"enabled": True} and off["baseline"] == {"enabled": False}
    assert on["execution"]["n_cycles"] >= 5


def test_cli_overrides_count_as_explicit_and_cannot_touch_swept_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "model: m\nsweep:\n  precision: [fp16]\n", "overrides.yaml")
    config = load_study_config(
        path,
        overrides={"execution.n_cycles": 2, "n": 5, "max_output_tokens": None},
        profile="publication",
    )
    assert config.name == "overrides" and config.execution.n_cycles == 2
    assert config.experiments_resolved[0].n == 5
    with pytest.raises(ConfigError, match=r"precision: swept by sweep\.precision"):
        load_study_config(path, overrides={"precision": "bf16"})


def test_unknown_profile_gets_did_you_mean() -> None:
    with pytest.raises(
        ConfigError, match="unknown profile 'publicaton' \\(did you mean 'publication'\\?\\)"
    ):
        apply_profile(study(sweep={}), "publicaton")


def test_profile_names_match_the_execution_field() -> None:
    from typing import get_args

    assert set(PROFILES) == set(get_args(ProfileName))


# --- study detection and execution defaults -------------------------------------------------------


def test_is_study_data() -> None:
    assert is_study_data({"model": "m", "sweep": {}})
    assert is_study_data({"experiments": [{"model": "m"}]})
    assert not is_study_data({"model": "m", "execution": {"n_cycles": 3}})


def test_a_file_without_sweep_or_experiments_is_not_a_study(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a study"):
        load_study_config(write(tmp_path, "model: m\nn: 3\n"))


def test_study_file_without_execution_uses_documented_defaults(tmp_path: Path) -> None:
    config = load_study_config(write(tmp_path, "name: s\nmodel: m\nsweep:\nexperiments:\n  - {}\n"))
    assert config.sweep is None and len(config.experiments_resolved) == 1
    assert (config.execution.n_cycles, config.execution.cycle_order) == (3, "interleaved")
    assert config.execution.profile is None
    assert "n_cycles=3, cycle_order=interleaved" in EFFECTIVE_DEFAULTS


def test_execution_rejects_ray_address_without_ray() -> None:
    with pytest.raises(ValueError, match="ray_address"):
        ExecutionConfig(ray_address="ray://head:10001")
    assert ExecutionConfig(runner="ray", ray_address="ray://head:10001").runner == "ray"


def test_study_config_built_in_python_resolves_and_rejects_bad_points() -> None:
    config = StudyConfig(name="py", base={"model": "m"}, sweep={"n": [1, 2]})
    assert [e.n for e in config.experiments_resolved] == [1, 2]
    with pytest.raises(ConfigError, match=r"point 1 \(n=0\)"):
        StudyConfig(name="py", base={"model": "m"}, sweep={"n": [0]})


# --- cycle schedules ------------------------------------------------------------------------------


def test_sequential_and_interleaved_orders() -> None:
    sequential = cycle_schedule(2, ExecutionConfig(n_cycles=3, cycle_order="sequential"))
    assert sequential == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    interleaved = cycle_schedule(2, ExecutionConfig(n_cycles=3))
    assert interleaved == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)]


def test_shuffled_order_is_a_seeded_permutation_per_cycle() -> None:
    execution = ExecutionConfig(n_cycles=6, cycle_order="shuffled", shuffle_seed=7)
    schedule = cycle_schedule(5, execution)
    assert len(schedule) == 30 and len(set(schedule)) == 30
    per_cycle = [[e for e, c in schedule if c == cycle] for cycle in range(6)]
    assert all(sorted(order) == list(range(5)) for order in per_cycle)
    assert len({tuple(order) for order in per_cycle}) > 1  # the order differs between cycles
    assert schedule == cycle_schedule(5, execution)  # deterministic
    other_seed = execution.model_copy(update={"shuffle_seed": 8})
    assert cycle_schedule(5, other_seed) != schedule


def test_shuffled_schedule_ignores_the_global_rng_and_tops_up_as_a_prefix() -> None:
    import random

    execution = ExecutionConfig(n_cycles=2, cycle_order="shuffled")
    random.seed(1)
    first = cycle_schedule(4, execution)
    random.seed(2)
    assert cycle_schedule(4, execution) == first
    more = cycle_schedule(4, execution.model_copy(update={"n_cycles": 5}))
    assert more[: len(first)] == first


def test_empty_schedule_and_negative_count() -> None:
    assert cycle_schedule(0, ExecutionConfig()) == []
    with pytest.raises(ValueError):
        cycle_schedule(-1, ExecutionConfig())


def test_profile_value_type_is_recorded() -> None:
    profile: ProfileName = "quick"
    assert ExecutionConfig(profile=profile).profile == "quick"
