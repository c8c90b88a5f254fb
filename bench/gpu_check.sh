#!/usr/bin/env bash
# The GPU check (issue 16): on a machine with an NVIDIA GPU and only the package registries
# reachable, install fastgrad with the cuda extra (CuPy, numba-cuda) in a fresh environment,
# run the CUDA tests on the GPU (not the simulator): the kernels against the reference, CUDA
# tensors (CuPy's arrays, the CUDA kernels, cuBLAS) training against the CPU, the device-aware
# core on the stand-in device; time the CUDA kernels against the host's; then train the
# benchmark workloads on the GPU against PyTorch CUDA (bench/vs_torch.py --device cuda, each
# library in its own process, one round), the table also written to gpu_vs_torch.json.
# About 5 minutes, half of it the installs.
#
#     bash bench/gpu_check.sh 2>&1 | tee gpu_check.txt
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-gpu
[ -d "$venv" ] || python3 -m venv "$venv"
. "$venv/bin/activate"
python -m pip install --quiet --upgrade pip
pip install --quiet -e ".[test,cuda]" torch==2.13.0   # PyPI's Linux torch wheels are CUDA builds
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true

export NUMBA_ENABLE_CUDASIM=0          # the real device, not Numba's simulator
export NUMBA_CACHE_DIR="$(mktemp -d)"  # compiled kernels: a throw-away cache
python -c "from numba import cuda; cuda.detect()"
python -c "from fastgrad.device import device_count, why_unavailable as why
assert not why('cuda'), why('cuda'); print('CUDA tensors on', device_count('cuda'), 'device(s)')"
python -m pytest -q -p no:cacheprovider -rs tests/test_cuda_kernels.py tests/test_cuda_table.py \
    tests/test_device_arrays.py
python bench/cuda_kernels.py
python bench/vs_torch.py --device cuda --rounds 1 --seconds 0.5 --retries 0 \
    --only clip adam_fused adam_default batchnorm mlp tiny tiny_captured sigmoid_bn \
    sigmoid_bn_captured lstm cnn cnn_captured --json gpu_vs_torch.json
