"""Regenerate docs/config-reference.md, docs/parameter-support-matrix.md and docs/schema/*.json.

Usage: python scripts/generate_docs.py [--check]   (from anywhere; writes into <repo>/docs)
"""

from __future__ import annotations

import sys
from pathlib import Path

from llenergymeasure.parameters.docs import main

DOCS_DIR = Path(__file__).resolve().parents[1] / "docs"

if __name__ == "__main__":
    sys.exit(main(["--docs-dir", str(DOCS_DIR), *sys.argv[1:]]))
