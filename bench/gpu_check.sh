#!/usr/bin/env bash
# The GPU check (issue 16): on a machine with an NVIDIA GPU and only the package registries
# reachable, install fastgrad with the cuda extra in a fresh environment, run the CUDA kernel
# tests on the GPU (not the simulator), and time the CUDA kernels against the host's.
# About 2-4 minutes, most of it the install.
#
#     bash bench/gpu_check.sh 2>&1 | tee gpu_check.txt
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-gpu
[ -d "$venv" ] || python3 -m venv "$venv"
. "$venv/bin/activate"
python -m pip install --quiet --upgrade pip
pip install --quiet -e ".[test,cuda]"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true

export NUMBA_ENABLE_CUDASIM=0          # the real device, not Numba's simulator
export NUMBA_CACHE_DIR="$(mktemp -d)"  # compiled kernels: a throw-away cache
python -c "from numba import cuda; cuda.detect()"
python -m pytest -q -p no:cacheprovider tests/test_cuda_kernels.py
python bench/cuda_kernels.py
