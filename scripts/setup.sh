#!/usr/bin/env bash
# Create .venv and install pipejit from pyproject.toml with its test and bench extras.
# Without an NVIDIA GPU, torch comes first as the CPU wheel torch==2.13.0 (seconds, not GBs);
# pyproject's range then admits it and pulls no other torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
if ! command -v nvidia-smi >/dev/null 2>&1; then
    .venv/bin/pip install --quiet --disable-pip-version-check "torch==2.13.0"
fi
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[test,bench]'
