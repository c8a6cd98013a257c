#!/usr/bin/env bash
# GPU smoke test for a machine with an NVIDIA GPU and no internet (see scripts/gpu_smoke.py).
#
# Needs torch (CUDA build), transformers, accelerate and nvidia-ml-py installed, plus
# llenergymeasure's small dependencies (pydantic, typer, rich, pyarrow, pyyaml, psutil).
# Where those are missing and nothing can be downloaded, bring their wheels and set
# LLEM_WHEELS=<folder of .whl files>: they are installed into a private target first.
# Arguments go to gpu_smoke.py (e.g. --batch-sizes 1 8 --model qwen2.5-7b-arch). Part 2 runs
# every installed backend (pytorch, vllm, tensorrt) on --compare-model and prints one table;
# without a GPU, --allow-cpu runs that comparison in a degraded CPU mode.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ -n "${LLEM_WHEELS:-}" ]; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --target /tmp/llem-site \
        "$LLEM_WHEELS"/*.whl
    export PYTHONPATH=/tmp/llem-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,power.limit,persistence_mode --format=csv || true
fi
exec "$python" scripts/gpu_smoke.py "$@"
