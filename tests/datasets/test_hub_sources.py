"""Hugging Face hub sources (aienergyscore, a hub dataset by name, ShareGPT from the hub),
loaded offline from datasets cached in the real on-disk form: the commit loaded, deterministic
selection, reference answer lengths, and errors naming the dataset, revision and field."""

from __future__ import annotations

import builtins
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hub_fixtures import COMMIT, HubCache

from llenergymeasure.config.models import DatasetConfig
from llenergymeasure.datasets import load_prompt_set, load_prompts, validate_source
from llenergymeasure.errors import EXIT_USAGE, DatasetError, DependencyError

pytest.importorskip("datasets")

AIENERGYSCORE = DatasetConfig(source="aienergyscore")
CHATS = DatasetConfig(hub="org/chats", revision="main", column="prompt", output_column="answer")


class WordCodec:
    """One token per whitespace-separated word."""

    def encode(self, text: str) -> list[int]:
        return [len(word) for word in text.split()]


def _aienergyscore_rows(count: int = 12) -> list[dict[str, Any]]:
    return [{"text": f"AIEnergyScore prompt number {k}"} for k in range(count)]


def test_aienergyscore_loads_offline_and_records_the_commit(hub_cache: HubCache) -> None:
    hub_cache("AIEnergyScore/text_generation", _aienergyscore_rows())
    loaded = load_prompt_set(AIENERGYSCORE, 5, seed=3)
    texts = [p.text for p in loaded.prompts]
    assert len(set(texts)) == 5 and all(t and t.startswith("AIEnergyScore") for t in texts)
    assert all(p.output_tokens is None for p in loaded.prompts)
    info = loaded.info
    assert (info.source, info.name, info.split, info.column) == (
        "aienergyscore", "AIEnergyScore/text_generation", "train", "text",
    )  # fmt: skip
    assert info.revision == "main" and info.resolved_revision == COMMIT
    assert (info.n_rows, info.n_usable, info.n_pruned) == (12, 12, 0)


def test_selection_is_deterministic_for_a_seed(hub_cache: HubCache) -> None:
    hub_cache("AIEnergyScore/text_generation", _aienergyscore_rows(30))
    first = load_prompts(AIENERGYSCORE, 10, seed=1)
    assert first == load_prompts(AIENERGYSCORE, 10, seed=1)
    assert first != load_prompts(AIENERGYSCORE, 10, seed=2)
    assert len(load_prompts(AIENERGYSCORE, 75, seed=1)) == 75  # reused in seeded passes


def test_a_pinned_commit_loads_from_the_cache(hub_cache: HubCache) -> None:
    hub_cache("AIEnergyScore/text_generation", _aienergyscore_rows())
    pinned = DatasetConfig(source="aienergyscore", revision=COMMIT)
    assert load_prompt_set(pinned, 2, seed=0).info.resolved_revision == COMMIT


def test_a_cache_holding_another_commit_than_the_pinned_one_is_an_error(
    hub_cache: HubCache,
) -> None:
    hub_cache("AIEnergyScore/text_generation", _aienergyscore_rows())
    other = "f" * 40
    with pytest.raises(DatasetError) as info:
        validate_source(DatasetConfig(source="aienergyscore", revision=other))
    assert f"the local cache holds commit {COMMIT}, not the pinned {other}" in str(info.value)


def test_an_unreachable_dataset_names_it_its_revision_and_offline_mode(
    hub_cache: HubCache,
) -> None:
    with pytest.raises(DatasetError) as info:
        validate_source(DatasetConfig(hub="org/absent", revision="v2"))
    message = str(info.value)
    assert "'org/absent' at revision 'v2' could not be fetched" in message
    assert "not in the local cache" in message and "HF_DATASETS_OFFLINE=1" in message
    assert info.value.exit_code == EXIT_USAGE


def test_a_hub_dataset_gives_prompts_and_reference_lengths(hub_cache: HubCache) -> None:
    rows = [
        {"prompt": "what is energy", "answer": "energy is the capacity to do work"},
        {"prompt": "", "answer": "blank prompts are passed over"},
        {"prompt": None, "answer": "so are missing ones"},
        {"prompt": "name a unit", "answer": None},
        {"prompt": "define power", "answer": "energy per second"},
    ]
    hub_cache("org/chats", rows)
    loaded = load_prompt_set(CHATS, 2, seed=0, codec=WordCodec())
    lengths = {p.text: p.output_tokens for p in loaded.prompts}
    assert lengths == {"what is energy": 7, "define power": 3}
    info = loaded.info
    assert (info.source, info.name, info.column, info.output_column) == (
        "hub", "org/chats", "prompt", "answer",
    )  # fmt: skip
    assert (info.n_rows, info.n_usable, info.resolved_revision) == (5, 2, COMMIT)


def test_without_output_column_rows_need_only_a_prompt(hub_cache: HubCache) -> None:
    hub_cache("org/chats", [{"prompt": "a b c", "answer": None}, {"prompt": "d", "answer": "e"}])
    config = DatasetConfig(hub="org/chats", revision="main", column="prompt")
    loaded = load_prompt_set(config, 2, seed=0)
    assert {p.text for p in loaded.prompts} == {"a b c", "d"}
    assert loaded.info.n_usable == 2 and loaded.prompts[0].output_tokens is None


def test_sharegpt_conversations_from_the_hub(hub_cache: HubCache) -> None:
    turns = [{"from": "human", "value": "tell me about solar power"},
             {"from": "gpt", "value": "solar panels turn light into electricity"}]  # fmt: skip
    hub_cache("org/sharegpt", [{"id": "a", "conversations": turns},
                               {"id": "b", "conversations": turns[:1]}])  # fmt: skip
    config = DatasetConfig(source="sharegpt", hub="org/sharegpt", revision="main")
    loaded = load_prompt_set(config, 1, seed=0, codec=WordCodec())
    assert loaded.prompts[0].text == "tell me about solar power"
    assert loaded.prompts[0].output_tokens == 6
    info = loaded.info
    assert (info.source, info.column, info.n_rows, info.n_usable) == (
        "sharegpt", "conversations", 2, 1,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (DatasetConfig(hub="org/chats", revision="main", column="question"),
         r"dataset\.column: the hub dataset 'org/chats' has no column 'question'; its columns "
         r"are 'prompt', 'answer'"),
        (DatasetConfig(hub="org/chats", revision="main", column="prompt", output_column="reply"),
         r"dataset\.output_column: the hub dataset 'org/chats' has no column 'reply'"),
        (DatasetConfig(hub="org/chats", revision="main", column="prompt", split="test"),
         r"dataset\.split 'test': Unknown split \"test\""),
        (DatasetConfig(hub="org/chats", revision="main", column="score"),
         r"dataset\.column: row 0 holds a number, not text"),
    ],
)  # fmt: skip
def test_a_wrong_field_is_named(hub_cache: HubCache, config: DatasetConfig, message: str) -> None:
    hub_cache("org/chats", [{"prompt": "p", "answer": "a", "score": 3}])
    with pytest.raises(DatasetError, match=message):
        validate_source(config)


def test_hub_sources_without_the_datasets_library_say_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_import = builtins.__import__

    def no_datasets(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "datasets":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    with pytest.raises(DependencyError, match=r"pip install 'llenergymeasure\[datasets\]'"):
        validate_source(AIENERGYSCORE)


def test_the_environment_alone_makes_a_cached_dataset_load_offline(
    hub_cache: HubCache, tmp_path: Path
) -> None:
    """A fresh process reads HF_HOME and HF_DATASETS_OFFLINE as a user sets them: the dry run
    finds the cached set (and its commit) and reads its lengths; an uncached one exits 2."""
    hub_cache("AIEnergyScore/text_generation", _aienergyscore_rows(4))
    config = tmp_path / "experiment.yaml"
    config.write_text("model: smollm2-135m\ndataset: aienergyscore\nn: 2\n", encoding="utf-8")
    command = [sys.executable, "-m", "llenergymeasure.cli", "run", str(config), "--dry-run",
               "--out", str(tmp_path / "out")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"aienergyscore AIEnergyScore/text_generation@{COMMIT} (4 usable of 4 rows)" in (
        done.stdout.replace("\n", "")
    )
    config.write_text("model: smollm2-135m\ndataset: {hub: org/x, revision: v1}\n")
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ, check=False)
    assert done.returncode == EXIT_USAGE, done.stdout + done.stderr
    assert "'org/x' at revision 'v1' could not be fetched" in " ".join(done.stderr.split())
