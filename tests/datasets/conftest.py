"""Hub datasets without a hub: a private Hugging Face cache, offline, that tests fill with
datasets written in the on-disk form ``datasets.load_dataset`` leaves after fetching one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hub_fixtures import COMMIT, HubCache, cache_hub_dataset


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HubCache:
    """An empty, offline Hugging Face cache in ``tmp_path/hf``, and a function that adds a
    dataset to it.

    ``datasets`` reads HF_HOME and HF_DATASETS_OFFLINE when it is imported, so in this process
    its ``config`` is patched as well as the environment (which a subprocess reads).
    """
    datasets = pytest.importorskip("datasets")
    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", home / "datasets")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)

    def cache(
        name: str, rows: list[dict[str, Any]], commit: str = COMMIT, split: str = "train"
    ) -> Path:
        return cache_hub_dataset(home / "datasets", name, rows, commit, split)

    return cache
