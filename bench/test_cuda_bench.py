"""CI's check of bench/cuda_kernels.py: its smoke run in Numba's CUDA simulator prints a row
per kernel the CUDA backend implements (speed is measured by bench/gpu_check.sh on a GPU)."""
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def test_smoke_run_in_the_simulator_gives_a_row_per_kernel():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    completed = subprocess.run(
        [sys.executable, os.path.join(HERE, "cuda_kernels.py"), "--smoke"],
        capture_output=True, text=True, timeout=600, env=env)
    if "the CUDA backend is unavailable" in completed.stderr:
        pytest.skip(completed.stderr.strip())
    assert completed.returncode == 0, completed.stderr[-3000:]
    check = subprocess.run(
        [sys.executable, "-c", "from fastgrad.backends import KERNELS, numba_cuda; "
         "print(sum(hasattr(numba_cuda, k) for k in KERNELS))"],
        capture_output=True, text=True, timeout=120, env=env)
    rows = [line for line in completed.stdout.splitlines() if line.startswith("| ")][1:]
    assert len(rows) == int(check.stdout.strip()) > 0
    assert "device: simulator" in completed.stdout
