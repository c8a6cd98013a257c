"""The committed generated docs match what the models produce now."""

from __future__ import annotations

from pathlib import Path

from llenergymeasure.parameters.docs import REGENERATE_COMMAND, stale_files

DOCS_DIR = Path(__file__).resolve().parents[2] / "docs"


def test_generated_docs_are_fresh() -> None:
    stale = stale_files(DOCS_DIR)
    assert not stale, (
        f"generated docs are stale: {', '.join(stale)}; run `{REGENERATE_COMMAND}` and commit"
    )
