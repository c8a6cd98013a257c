"""Hostile config input (#14): alias bombs, recursive aliases, duplicate keys, bad tags, secrets.

Each is a config error (exit 2) naming the file and where, refused quickly, never a traceback.
A test that would hang on a broken loader runs it in a child process with a timeout.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from llenergymeasure.cli.app import app
from llenergymeasure.config.loader import (
    build_experiment_config,
    check_no_credentials,
    read_yaml,
)
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.config.study import StudyConfig, build_study_config
from llenergymeasure.config.user_config import UserConfig, load_user_config, user_config_path
from llenergymeasure.config.walk import walk_fields
from llenergymeasure.errors import ConfigError


def write(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def llem_run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["run", *args])
    return result.exit_code, result.output


def assert_exit_2(code: int, output: str, *needles: str) -> None:
    assert code == 2, output
    assert "Traceback" not in output
    for needle in needles:
        assert needle in output, output


# --- 10. alias bombs and recursive aliases ---------------------------------------------------

LIST_BOMB = "model: org/tiny\na: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)
MAPPING_BOMB = (
    "model: org/tiny\npytorch:\n  extra:\n"
    + "    a: &a {"
    + ", ".join(f"k{i}: x" for i in range(9))
    + "}\n"
    + "".join(
        f"    {b}: &{b} {{{', '.join(f'k{i}: *{a}' for i in range(9))}}}\n"
        for a, b in zip("abcdefg", "bcdefgh", strict=True)
    )
)

# read_yaml(FILE) in a child with a memory cap: on a loader without the budget the bomb spins
# (or grows to gigabytes) and the timeout kills it before `llem run` gets to try in-process.
_CHILD = """
import json, resource, sys, time
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
from llenergymeasure.config.loader import read_yaml
from llenergymeasure.errors import ConfigError
start = time.perf_counter()
try:
    read_yaml(Path(sys.argv[1]))
    message = None
except ConfigError as exc:
    message = str(exc)
print(json.dumps({"message": message, "elapsed_s": time.perf_counter() - start}))
"""


def read_yaml_in_child(path: Path, timeout_s: float = 5.0) -> tuple[str | None, float]:
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(path)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"reading {path.name} still running after {timeout_s} s")
    assert done.stdout, done.stderr[-2000:]
    result = json.loads(done.stdout.splitlines()[-1])
    return result["message"], float(result["elapsed_s"])


@pytest.mark.parametrize(("text", "where"), [(LIST_BOMB, "line"), (MAPPING_BOMB, "pytorch.extra")])
def test_alias_bombs_are_refused_within_a_second(tmp_path: Path, text: str, where: str) -> None:
    assert len(text) < 1000  # a few hundred bytes that expand to ~10^8 values
    path = write(tmp_path, text)
    message, elapsed_s = read_yaml_in_child(path)
    assert message is not None and "aliases expand too far" in message and where in message
    assert elapsed_s < 1.0
    code, output = llem_run(str(path), "--out", str(tmp_path / "out"))  # refused: safe here
    assert_exit_2(code, output, str(path), "aliases expand too far")


@pytest.mark.parametrize(
    "text",
    [
        "model: &a [*a]\n",
        "model: org/tiny\npytorch:\n  extra: &e {child: *e}\n",
        "model: org/tiny\npytorch:\n  extra: &e {<<: *e, n: 1}\n",
    ],
)
def test_a_recursive_alias_is_a_config_error(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match="recursive YAML alias") as caught:
        read_yaml(path)
    assert str(path) in str(caught.value) and "line " in str(caught.value)


def test_llem_run_refuses_a_recursive_alias(tmp_path: Path) -> None:
    path = write(tmp_path, "model: &a [*a]\n")
    assert_exit_2(*llem_run(str(path), "--out", str(tmp_path / "out")), str(path), "recursive")


def test_sharing_a_small_mapping_with_anchors_still_works(tmp_path: Path) -> None:
    """Anchors, aliases and merge keys used as intended load as before."""
    experiments = "\n".join(
        f"  - {{pytorch: {{<<: *pt, batch_size: {size}}}, decoder: *greedy}}"
        for size in range(1, 50)
    )
    path = write(
        tmp_path,
        "name: shared\nmodel: org/tiny\n"
        "pytorch: &pt {batch_size: 1, attn_implementation: sdpa}\n"
        "decoder: &greedy {do_sample: false}\n"
        f"experiments:\n{experiments}\n",
        name="study.yaml",
    )
    data = read_yaml(path)
    assert data["experiments"][3]["pytorch"] == {"batch_size": 4, "attn_implementation": "sdpa"}
    study = build_study_config(data, source=str(path))
    assert len(study.experiments_resolved) == 49


# --- 11. duplicate keys ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "lines"),
    [
        ("model: org/tiny\nn: 3\nn: 5\n", "'n'", "line 2 and line 3"),
        (
            "model: org/tiny\npytorch:\n  batch_size: 2\n  extra: {a: 1}\n  batch_size: 4\n",
            "'pytorch.batch_size'",
            "line 3 and line 5",
        ),
        ("model: org/tiny\nexperiments:\n  - {n: 1, 'n': 2}\n", "'experiments.0.n'", "line 3"),
    ],
)
def test_a_duplicate_key_is_a_config_error(tmp_path: Path, text: str, key: str, lines: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        read_yaml(path)
    message = str(caught.value)
    assert str(path) in message and "duplicate key" in message and key in message
    assert lines in message


def test_llem_run_refuses_a_duplicate_key(tmp_path: Path) -> None:
    path = write(tmp_path, "model: org/tiny\nn: 3\nn: 5\n")
    assert_exit_2(*llem_run(str(path), "--dry-run"), str(path), "duplicate key 'n'", "line 3")


def test_a_merge_key_overridden_in_place_is_not_a_duplicate(tmp_path: Path) -> None:
    path = write(tmp_path, "base: &b {n: 1, seed: 2}\nrun: {<<: *b, n: 3}\nother: {n: 1}\n")
    assert read_yaml(path)["run"] == {"n": 3, "seed": 2}


# --- 12. construction and tag errors --------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "!!int '12abc'",
        "!!float 'abc'",
        "!!timestamp 'yesterday'",
        "!!bool maybe",
        "!!binary 'abc'",
        "!!python/object:os.system {}",
        "!!python/name:os.system",
        "!custom 3",
    ],
)
def test_a_value_its_tag_cannot_build_is_a_config_error(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, f"model: org/tiny\nmax_output_tokens: {value}\n")
    with pytest.raises(ConfigError) as caught:
        read_yaml(path)
    assert str(path) in str(caught.value) and "line 2" in str(caught.value)


def test_llem_run_refuses_a_bad_int_tag(tmp_path: Path) -> None:
    path = write(tmp_path, "model: org/tiny\nmax_output_tokens: !!int '12abc'\n")
    code, output = llem_run(str(path), "--out", str(tmp_path / "out"))
    assert_exit_2(code, output, str(path), "line 2", "max_output_tokens", "!!int")


def test_yaml_nested_thousands_deep_is_refused_quickly(tmp_path: Path) -> None:
    """The scanner is quadratic in bracket depth and the composer recursive: refuse early."""
    path = write(tmp_path, "model: " + "[" * 5000 + "]" * 5000 + "\n")
    code, output = llem_run(str(path), "--out", str(tmp_path / "out"))
    assert_exit_2(code, output, str(path), "nested too deeply")
    assert read_yaml(write(tmp_path, "model: [[[[[[x]]]]]]\n", "ok.yaml"))["model"]


# --- 15. credentials ------------------------------------------------------------------------

SECRET = "s3cr3t-VALUE"

CREDENTIALS = [
    ({"access_key": SECRET}, "pytorch.extra.access_key"),
    ({"aws_secret_access_key": SECRET}, "pytorch.extra.aws_secret_access_key"),
    ({"AWS_ACCESS_KEY_ID": SECRET}, "pytorch.extra.AWS_ACCESS_KEY_ID"),
    ({"passphrase": SECRET}, "pytorch.extra.passphrase"),
    ({"authorization": f"Bearer {SECRET}"}, "pytorch.extra.authorization"),
    ({"headers": {"Authorization": f"Bearer {SECRET}"}}, "pytorch.extra.headers.Authorization"),
    ({"headers": {"X-Api-Key": SECRET}}, "pytorch.extra.headers.X-Api-Key"),
    ({"hf-token": SECRET}, "pytorch.extra.hf-token"),
    ({"hfToken": SECRET}, "pytorch.extra.hfToken"),
    ({"client_secret": SECRET}, "pytorch.extra.client_secret"),
    ({"db_password": SECRET}, "pytorch.extra.db_password"),
    ({"mirror": f"http://user:{SECRET}@host/x"}, "pytorch.extra.mirror (a URL with a password)"),
    ({"urls": ["https://ok.example", f"s3://k:{SECRET}@b/p"]}, "pytorch.extra.urls.1"),
]

HARMLESS = [
    "max_tokens",
    "tokenizer",
    "tokenizer_mode",
    "min_new_tokens",
    "max_num_batched_tokens",
    "pad_token",
    "pad_token_id",
    "key_value_cache",
    "kv_cache_dtype",
    "api_key_env",
    "top_k",
    "secret_santa_count_tokens",
]


@pytest.mark.parametrize(("extra", "where"), CREDENTIALS)
def test_credential_keys_and_url_passwords_are_refused(
    extra: dict[str, object], where: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        build_experiment_config({"model": "org/tiny", "pytorch": {"extra": extra}}, source="x")
    message = str(caught.value)
    assert where in message and "credentials do not belong" in message
    assert SECRET not in message


@pytest.mark.parametrize("key", HARMLESS)
def test_harmless_keys_are_not_credentials(key: str) -> None:
    check_no_credentials({"pytorch": {"extra": {key: "x", "nested": {key: 1}}}}, "x")


@pytest.mark.parametrize(
    "url", ["https://huggingface.co/org/m", "ssh://git@host/repo", "http://host:8080/a@b"]
)
def test_urls_without_a_password_are_not_credentials(url: str) -> None:
    check_no_credentials({"dataset": url, "pytorch": {"extra": {"urls": [url]}}}, "x")


@pytest.mark.parametrize("model", [ExperimentConfig, StudyConfig, UserConfig])
def test_no_declared_field_looks_like_a_credential(model: type) -> None:
    names = {field.path.rsplit(".", 1)[-1]: None for field in walk_fields(model)}
    check_no_credentials(names, model.__name__)


def test_llem_run_refuses_a_credential_in_an_experiment_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"model: org/tiny\npytorch:\n  extra:\n    headers: {{Authorization: Bearer {SECRET}}}\n",
    )
    code, output = llem_run(str(path), "--dry-run")
    assert_exit_2(code, output, str(path), "pytorch.extra.headers.Authorization")
    assert SECRET not in output


def test_llem_run_refuses_a_credential_in_a_study_file(tmp_path: Path) -> None:
    study = {"model": "org/tiny", "sweep": {"n": [1, 2]}, "experiments": [{"hf-token": SECRET}]}
    path = write(tmp_path, yaml.safe_dump(study), name="study.yaml")
    code, output = llem_run(str(path), "--dry-run")
    assert_exit_2(code, output, str(path), "experiments.0.hf-token")
    assert SECRET not in output


def test_llem_run_refuses_a_password_in_a_cli_override(tmp_path: Path) -> None:
    code, output = llem_run("--model", f"https://me:{SECRET}@hub.example/org/m", "--dry-run")
    assert_exit_2(code, output, "model (a URL with a password)")
    assert SECRET not in output


def test_a_credential_in_the_user_config_file_is_refused() -> None:
    path = user_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"aws_secret_access_key: {SECRET}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_user_config()
    message = str(caught.value)
    assert str(path) in message and "aws_secret_access_key" in message
    assert "credentials do not belong" in message and SECRET not in message


def test_a_password_in_a_user_config_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLEM_DOCKER_IMAGE_VLLM", f"https://me:{SECRET}@registry.example/llem")
    with pytest.raises(ConfigError) as caught:
        load_user_config()
    message = str(caught.value)
    assert "LLEM_DOCKER_IMAGE_VLLM (a URL with a password)" in message
    assert SECRET not in message
