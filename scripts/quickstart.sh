#!/usr/bin/env bash
# Install llenergymeasure (pytorch backend + CodeCarbon) into ./.venv and measure the
# embedded default model. Extra arguments go to `llem run` (e.g. -n 48 --batch-size 4).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh pytorch,codecarbon
exec .venv/bin/llem run "$@"
