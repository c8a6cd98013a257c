"""Each prompt source through ``llem run`` on the embedded model: the AIEnergyScore set and a hub
dataset from an offline cache, ShareGPT from a file and from the hub; the result records where
the prompts came from. An unreachable hub dataset stops the run (exit 2) before a model loads.

(The real vLLM engine runs these sources in test_sources_vllm.py, which also forces each
request's length; here every run uses fixed lengths, and test_output_lengths_end_to_end.py
forces them on pytorch.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hub_fixtures import COMMIT, HubCache, run_with_dataset

import llenergymeasure as llem
from llenergymeasure.errors import EXIT_USAGE

pytest.importorskip("datasets")
pytest.importorskip("transformers")
pytestmark = pytest.mark.slow

TURNS = [{"from": "human", "value": "Why do GPUs draw more power when generating longer text?"},
         {"from": "gpt", "value": "Each new token needs another pass through the model, and "
                                  "every pass reads the weights from memory."}]  # fmt: skip


def _sharegpt_file(tmp_path: Path) -> str:
    path = tmp_path / "sharegpt.json"
    entries = [{"id": str(k), "conversations": TURNS} for k in range(3)]
    path.write_text(json.dumps(entries), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("source", ["aienergyscore", "hub", "sharegpt-file", "sharegpt-hub"])
def test_each_source_runs_end_to_end(
    source: str, hub_cache: HubCache, tmp_path: Path, embedded_folder: Path
) -> None:
    hub_cache(
        "AIEnergyScore/text_generation",
        [{"text": f"Explain the energy cost of task {k}."} for k in range(5)],
    )
    hub_cache(
        "org/chats",
        [{"question": f"Name {k} renewable sources.", "reply": "Solar."} for k in range(1, 5)],
    )
    hub_cache("org/sharegpt", [{"id": "a", "conversations": TURNS}])  # fmt: skip
    dataset = {
        "aienergyscore": {"source": "aienergyscore"},
        "hub": {"hub": "org/chats", "revision": "main", "column": "question",
                "output_column": "reply"},
        "sharegpt-file": {"source": "sharegpt", "path": _sharegpt_file(tmp_path)},
        "sharegpt-hub": {"source": "sharegpt", "hub": "org/sharegpt", "revision": "main"},
    }[source]  # fmt: skip
    code, output, out = run_with_dataset(tmp_path, dataset)
    assert code == 0, output
    (folder,) = out.iterdir()
    result = llem.load_result(folder)
    assert result.metrics.n_requests == 3 and result.metrics.total_output_tokens > 0
    info = result.dataset
    assert info is not None and info.source == dataset.get("source", "hub")
    if source == "sharegpt-file":
        assert info.name == dataset["path"] and info.resolved_revision is None
        assert (info.n_rows, info.n_usable) == (3, 3)
    else:
        assert info.resolved_revision == COMMIT and info.revision == "main"
    assert result.config.dataset.model_dump(exclude_none=True) == {
        "split": "train", "output_lengths": "fixed", "synthetic_input_tokens": 128,
        "source": info.source, **dataset,
    }  # fmt: skip


def test_an_unreachable_hub_dataset_stops_before_a_model_loads(
    hub_cache: HubCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_backend(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a backend was created for an unreachable dataset")

    monkeypatch.setattr("llenergymeasure.harness.runner.create_backend", no_backend)
    code, output, out = run_with_dataset(tmp_path, {"hub": "org/missing", "revision": "v3"})
    assert code == EXIT_USAGE, output
    text = " ".join(output.split())
    assert "'org/missing' at revision 'v3' could not be fetched" in text
    assert "HF_DATASETS_OFFLINE=1" in text and "Traceback" not in output
    assert not out.exists() or not any(out.iterdir())
