"""JSONL sources: the happy path and every malformed-input message, with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from llenergymeasure.config.models import DatasetConfig
from llenergymeasure.datasets import load_prompts, validate_source
from llenergymeasure.errors import ConfigError, DatasetError


def _write(tmp_path: Path, content: str | bytes, name: str = "prompts.jsonl") -> DatasetConfig:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return DatasetConfig(source=str(path))


def _error(config: DatasetConfig) -> str:
    """The message validate_source raises; load_prompts must raise the same one."""
    with pytest.raises(DatasetError) as from_validate:
        validate_source(config)
    with pytest.raises(DatasetError) as from_load:
        load_prompts(config, 1, seed=0)
    assert str(from_validate.value) == str(from_load.value)
    return str(from_validate.value)


def test_happy_path_reads_prompts_categories_and_skips_blank_lines(tmp_path: Path) -> None:
    config = _write(
        tmp_path,
        '{"prompt": "Ünïcode ok?", "category": "factual"}\n'
        "\n"
        '   \n{"prompt": "Second", "id": 7}\r\n'
        '{"prompt": "Third", "category": null}',  # no final newline
    )
    validate_source(config)
    prompts = load_prompts(config, 3, seed=1)
    by_text = {p.text: p for p in prompts}
    assert set(by_text) == {"Ünïcode ok?", "Second", "Third"}
    assert by_text["Ünïcode ok?"].category == "factual"
    assert by_text["Second"].category is None
    assert all(p.token_ids is None for p in prompts)


def test_byte_order_mark_is_tolerated(tmp_path: Path) -> None:
    config = _write(tmp_path, '\ufeff{"prompt": "hello"}\n'.encode())
    assert [p.text for p in load_prompts(config, 1, seed=0)] == ["hello"]


def test_broken_line_reports_file_and_line_number(tmp_path: Path) -> None:
    config = _write(tmp_path, '{"prompt": "a"}\n\n{"prompt": "b"}\n{"prompt": "c",}\n')
    message = _error(config)
    assert message.startswith(f"{config.source}, line 4: not valid JSON")
    assert "Traceback" not in message


def test_missing_prompt_key(tmp_path: Path) -> None:
    config = _write(tmp_path, '{"prompt": "a"}\n{"text": "b"}\n')
    assert _error(config) == f'{config.source}, line 2: the object has no "prompt" key.'


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('["a list"]', 'expected a JSON object like {"prompt": "..."}, got an array.'),
        ('"just a string"', 'expected a JSON object like {"prompt": "..."}, got a string.'),
        ('{"prompt": 42}', '"prompt" must be a string, got a number.'),
        ('{"prompt": null}', '"prompt" must be a string, got null.'),
        ('{"prompt": "   "}', '"prompt" is empty.'),
        ('{"prompt": "ok", "category": true}', '"category" must be a string, got a boolean.'),
    ],
)
def test_bad_values_are_named(tmp_path: Path, line: str, problem: str) -> None:
    config = _write(tmp_path, line + "\n")
    assert _error(config) == f"{config.source}, line 1: {problem}"


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_file_is_an_error(tmp_path: Path, content: str) -> None:
    config = _write(tmp_path, content)
    assert _error(config) == (
        f"{config.source} contains no prompts: the file is empty or only blank lines."
    )


def test_non_utf8_is_an_error_with_line_number(tmp_path: Path) -> None:
    config = _write(tmp_path, b'{"prompt": "fine"}\n{"prompt": "caf\xe9"}\n')
    expected = f"{config.source}, line 2: not valid UTF-8 text; save the file as UTF-8."
    assert _error(config) == expected


def test_nonexistent_path_names_it_and_the_accepted_sources(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    message = _error(DatasetConfig(source=str(missing)))
    assert str(missing) in message
    assert (
        "'builtin', 'synthetic', 'aienergyscore', 'sharegpt', 'hub' or the path of an existing "
        "JSONL file" in message
    )


def test_typo_of_a_keyword_suggests_it() -> None:
    assert "Did you mean 'builtin'?" in _error(DatasetConfig(source="biultin"))


def test_directory_is_rejected(tmp_path: Path) -> None:
    assert "is a directory" in _error(DatasetConfig(source=str(tmp_path)))


def test_dataset_errors_exit_with_usage_code(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        validate_source(DatasetConfig(source=str(tmp_path / "absent.jsonl")))
    assert info.value.exit_code == 2


def test_unreadable_names_are_dataset_errors_not_crashes(tmp_path: Path) -> None:
    assert "Cannot read dataset file" in _error(DatasetConfig(source="x" * 5000))
    assert "Cannot read dataset file" in _error(DatasetConfig(source="bad\0name.jsonl"))
