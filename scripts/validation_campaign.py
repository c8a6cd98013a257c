"""Validation campaign: run every parameter's test value on one backend as a study and record
the outcomes in docs/parameter-support.json, then regenerate docs/parameter-support-matrix.md.

Usage (from the repository root, in the environment of the backend):
    python scripts/validation_campaign.py --backend pytorch
    .venv-vllm/bin/python scripts/validation_campaign.py --backend vllm
    python scripts/validation_campaign.py --backend tensorrt      # on a GPU with tensorrt_llm
Flags: --all-values, --only PATH..., --out DIR, --dry (write the study file only), --timeout S,
--resume STUDY_DIR, --lora-adapter DIR. See docs/validation-campaign.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

from llenergymeasure.campaign import main

DOCS_DIR = Path(__file__).resolve().parents[1] / "docs"

if __name__ == "__main__":
    sys.exit(main(["--docs-dir", str(DOCS_DIR), *sys.argv[1:]]))
