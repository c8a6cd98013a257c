"""Datasets in the on-disk form ``datasets.load_dataset`` leaves in the Hugging Face cache after
fetching one from the hub, written without a hub."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

HubCache = Callable[..., Path]
"""``cache(name, rows, commit=COMMIT, split="train") -> the cached split's folder``."""

COMMIT = "0123456789abcdef0123456789abcdef01234567"
"""The commit SHA tests cache their datasets at (any 40 hex digits)."""


def cache_hub_dataset(
    cache_dir: Path, name: str, rows: list[dict[str, Any]], commit: str, split: str
) -> Path:
    """Write ``rows`` as ``split`` of the hub dataset ``name`` at ``commit`` into the
    ``datasets`` cache ``cache_dir``, built by the library's own JSON builder in the folder a
    fetch from the hub fills: ``<namespace>___<name>/default/0.0.0/<commit>/``."""
    from datasets.naming import camelcase_to_snakecase
    from datasets.packaged_modules.json.json import Json

    namespace, _, short = name.rpartition("/")
    dataset_name = camelcase_to_snakecase(short)
    scratch = cache_dir.parent / "scratch" / f"{dataset_name}-{commit}-{split}"
    scratch.mkdir(parents=True, exist_ok=True)
    data = scratch / f"{split}.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    target = cache_dir / f"{namespace}___{dataset_name}" / "default" / "0.0.0" / commit
    builder = Json(
        dataset_name=dataset_name,
        config_name="default",
        data_files={split: str(data)},
        cache_dir=str(scratch / "cache"),
    )
    builder.download_and_prepare(output_dir=str(target))
    return target


def run_with_dataset(
    tmp_path: Path, dataset: dict[str, Any], **fields: Any
) -> tuple[int, str, Path]:
    """``llem run`` of the embedded model on ``dataset`` (3 prompts in one batch, 4 output
    tokens, no warmup, baseline or energy; ``fields`` override): exit code, output, results
    folder."""
    import yaml
    from typer.testing import CliRunner

    from llenergymeasure.cli import app

    config = {
        "model": "smollm2-135m", "n": 3, "max_output_tokens": 4, "dataset": dataset,
        "warmup": {"n_warmup": 0}, "baseline": {"enabled": False},
        "energy": {"sampler": "null"}, "pytorch": {"batch_size": 3}, **fields,
    }  # fmt: skip
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "-q"])
    return result.exit_code, result.output, out
