#!/usr/bin/env bash
# The GPU check (issue 16): on a machine with an NVIDIA GPU and only the package registries
# reachable, install fastgrad with the cuda extra (CuPy, numba-cuda) in a fresh environment,
# run the CUDA tests on the GPU (not the simulator): the kernels against the reference, CUDA
# tensors (CuPy's arrays, the CUDA kernels, cuBLAS) training against the CPU, the device-aware
# core on the stand-in device; then time the CUDA kernels against the host's.
# A few minutes, most of it the install.
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
python -c "import fastgrad; from fastgrad.device import _OFFERED
assert fastgrad.cuda.is_available(), _OFFERED; print('CUDA tensors:', fastgrad.cuda.device_count(), 'device(s)')"
python -m pytest -q -p no:cacheprovider -rs tests/test_cuda_kernels.py tests/test_cuda_table.py \
    tests/test_device_arrays.py
python bench/cuda_kernels.py
