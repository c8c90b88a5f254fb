"""Which BLAS should fastgrad's matrix products use? The GEMMs of a Linear layer (forward
``x @ W.T``, backward ``g @ W`` and ``g.T @ x``) at the shapes of issue 5, float32, timed with
every GEMM library reachable from Python here, each in its own processes, medians.

Columns: NumPy's ``np.matmul`` (its bundled OpenBLAS: what fastgrad uses), ``np.dot`` inside a
Numba function (SciPy's OpenBLAS through ``scipy.linalg.cython_blas``), ``scipy.linalg.blas.
sgemm`` called from Python, the ``blis`` package, MKL's ``cblas_sgemm`` from the ``mkl`` wheel
(through ctypes, as C would call it), and PyTorch (its own MKL) as the yardstick. A library that
is not installed is left out. Install the candidates in a scratch environment, not fastgrad's::

    python -m venv --system-site-packages /tmp/blas && /tmp/blas/bin/pip install scipy blis mkl
    OPENBLAS_NUM_THREADS=2 BLIS_NUM_THREADS=2 /tmp/blas/bin/python bench/blas_study.py

Prints one markdown row per GEMM: median microseconds and speed relative to PyTorch.
"""
import ctypes
import glob
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

THREADS = 2
#: (batch, in, out) of the Linear layers: issue 5's MLP layer, its large layer, and the LSTM's
#: gate products (input 256 and hidden 512 to 4 x 512 gates, batch 64).
LAYERS = ((64, 784, 256), (256, 1024, 1024), (64, 256, 2048), (64, 512, 2048))
#: How each GEMM of a layer reads its operands: (name, A, B, transpose A, transpose B).
PRODUCTS = (("forward x @ W.T", "x", "w", False, True),
            ("grad_x g @ W", "g", "w", False, False),
            ("grad_W g.T @ x", "g", "x", True, False))


def _installed(name):
    return importlib.util.find_spec(name) is not None


def numpy_gemm(a, b, out, ta, tb):
    np.matmul(a.T if ta else a, b.T if tb else b, out=out)


def _numba_gemm():
    import numba

    @numba.njit
    def dot(a, b, out):
        np.dot(a, b, out)

    def gemm(a, b, out, ta, tb):
        dot(a.T if ta else a, b.T if tb else b, out)
    return gemm


def _scipy_gemm():
    from scipy.linalg import blas

    def gemm(a, b, out, ta, tb):
        out[...] = blas.sgemm(1.0, a, b, trans_a=ta, trans_b=tb)
    return gemm


def _blis_gemm():
    import blis.py

    def gemm(a, b, out, ta, tb):
        blis.py.gemm(a, b, out=out, trans1=ta, trans2=tb, beta=0.0)
    return gemm


def _mkl_gemm():
    mkl = ctypes.CDLL(_mkl_path())
    mkl.MKL_Set_Num_Threads(THREADS)
    floats = ctypes.POINTER(ctypes.c_float)
    mkl.cblas_sgemm.argtypes = [ctypes.c_int] * 6 + [ctypes.c_float, floats, ctypes.c_int,
                                                     floats, ctypes.c_int, ctypes.c_float,
                                                     floats, ctypes.c_int]
    row_major, plain, transposed = 101, 111, 112

    def gemm(a, b, out, ta, tb):
        m, n = out.shape
        k = a.shape[0] if ta else a.shape[1]
        mkl.cblas_sgemm(row_major, transposed if ta else plain, transposed if tb else plain,
                        m, n, k, 1.0, a.ctypes.data_as(floats), a.shape[1],
                        b.ctypes.data_as(floats), b.shape[1], 0.0, out.ctypes.data_as(floats),
                        n)
    return gemm


def _torch_gemm():
    import torch
    torch.set_num_threads(THREADS)

    def gemm(a, b, out, ta, tb):
        a, b = torch.from_numpy(a), torch.from_numpy(b)
        torch.matmul(a.T if ta else a, b.T if tb else b, out=torch.from_numpy(out))
    return gemm


#: column -> (the module it needs, or None, and the factory of its gemm function)
CANDIDATES = {"numba np.dot (SciPy)": ("scipy", _numba_gemm),
              "scipy sgemm": ("scipy", _scipy_gemm),
              "blis": ("blis", _blis_gemm),
              "mkl cblas": (None, _mkl_gemm),  # the mkl wheel has no Python module
              "torch": ("torch", _torch_gemm)}


def available():
    """The columns whose library is installed here, NumPy first."""
    return ["numpy"] + [column for column, (module, _) in CANDIDATES.items()
                        if module is None and _mkl_path() or module and _installed(module)]


def _mkl_path():
    paths = glob.glob(os.path.join(sys.prefix, "lib", "libmkl_rt.so*"))
    return paths[0] if paths else None


def gemm_of(column):
    """The ``gemm(a, b, out, ta, tb)`` of one column (imports only its library)."""
    return numpy_gemm if column == "numpy" else CANDIDATES[column][1]()


def median_time(call, repeats):
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(column):
    """Median seconds of each GEMM with one library, in this process: ``{gemm name: s}``."""
    gemm = gemm_of(column)
    rng = np.random.default_rng(0)
    results = {}
    for batch, n_in, n_out in LAYERS:
        arrays = dict(x=rng.standard_normal((batch, n_in), np.float32),
                      w=rng.standard_normal((n_out, n_in), np.float32),
                      g=rng.standard_normal((batch, n_out), np.float32))
        for name, a_name, b_name, ta, tb in PRODUCTS:
            a, b = arrays[a_name], arrays[b_name]
            m = a.shape[1] if ta else a.shape[0]
            k = a.shape[0] if ta else a.shape[1]
            n = b.shape[0] if tb else b.shape[1]
            out = np.empty((m, n), np.float32)
            gemm(a, b, out, ta, tb)
            expected = (a.T if ta else a) @ (b.T if tb else b)
            error = np.abs(out - expected).max() / np.abs(expected).max()
            if error > 1e-4:
                raise AssertionError(f"{column} computed {name} wrongly (error {error:.1e})")
            repeats = 30 if m * k * n < 5e7 else 10
            results[f"{name} ({m} x {k} x {n})"] = median_time(
                lambda: gemm(a, b, out, ta, tb), repeats)
    return results


def main():
    """One process per library and round (thread pools of different libraries in one process
    stall each other: PERF.md's hand-off trap), rounds interleaved, medians over rounds."""
    if len(sys.argv) == 3 and sys.argv[1] == "--only":
        print(json.dumps(measure(sys.argv[2])))
        return
    columns = available()
    samples = {column: [] for column in columns}
    for _ in range(3):
        for column in columns:
            run = subprocess.run([sys.executable, __file__, "--only", column], check=True,
                                 capture_output=True, text=True)
            samples[column].append(json.loads(run.stdout))
    medians = {column: {gemm: statistics.median(r[gemm] for r in rounds)
                        for gemm in rounds[0]} for column, rounds in samples.items()}
    print("| GEMM, float32 (M x K x N) | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for gemm in medians["numpy"]:
        base = medians.get("torch", {}).get(gemm)
        cells = [f"{medians[c][gemm] * 1e6:.0f} µs"
                 + (f" ({base / medians[c][gemm]:.2f}×)" if base else "") for c in columns]
        print(f"| {gemm} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
