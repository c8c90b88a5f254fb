"""Products with a packed operand (gemm_pack, gemm_packed): fastgrad's own product in
csrc/gemm.inc, run by the C backend on its OpenMP threads and by the Numba backend on its
own, and what the recurrent layers multiply by W_hh with. Registry parity is in
test_backend_parity.py; here: the summation order the header promises, bit-identity across
thread counts and backends, and the fallback where the C kernels are not built."""
import copy
import itertools
import os

import numba
import numpy as np
import pytest

from fastgrad.backends import numpy_ref
from fastgrad.backends.numba_cpu import _layers as layers

#: (m, k, n): full row tiles, a tail of rows, a partial last panel, several blocks
SHAPES = [(64, 512, 2048), (64, 2048, 512), (37, 300, 200), (19, 70, 70), (1, 1, 1)]


def _args(dtype, m, k, n, trans_b, accumulate, seed=0):
    rng = np.random.default_rng(seed)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    packed = np.empty(numpy_ref.packed_shape(k, n, dtype), dtype)
    numpy_ref.gemm_pack(b, trans_b, packed)
    return dict(a=rng.standard_normal((m, k)).astype(dtype), packed=packed,
                accumulate=accumulate, out=rng.standard_normal((m, n)).astype(dtype)), b


def _sequential(a, b, out, accumulate, block=256):
    """Each element as the header says: out (with accumulate) or 0, plus each block of
    ``block`` depths' sum in turn, a block's sum the rounded products a[i, d] b[d, j] added in
    ascending d from 0, every step rounded to the dtype."""
    total = out.copy() if accumulate else None
    for d0 in range(0, max(a.shape[1], 1), block):
        part = np.zeros(out.shape, out.dtype)
        for d in range(d0, min(a.shape[1], d0 + block)):
            part += np.multiply.outer(a[:, d], b[d])
        total = part if total is None else total + part
    return total


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_b, accumulate", list(itertools.product((False, True), repeat=2)))
def test_each_element_is_one_ascending_sum_of_rounded_products(c, dtype, trans_b, accumulate):
    for m, k, n in [(19, 70, 70), (8, 33, 16), (3, 5, 40), (9, 600, 40)]:
        args, b = _args(dtype, m, k, n, trans_b, accumulate)
        expected = _sequential(args["a"], b.T if trans_b else b, args["out"], accumulate)
        c.gemm_packed(**args)
        assert args["out"].tobytes() == expected.tobytes(), (m, k, n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_c_and_numba_give_the_same_bits_for_one_and_two_threads(c, threads, dtype):
    runs = {}
    for count in (1, 2):
        threads(count)
        numba.set_num_threads(count)
        for backend, (shape, accumulate) in itertools.product(
                (c, layers), itertools.product(SHAPES, (False, True))):
            args, _ = _args(dtype, *shape, trans_b=False, accumulate=accumulate)
            backend.gemm_packed(**args)
            runs.setdefault((shape, accumulate), []).append(args["out"].tobytes())
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    for key, outputs in runs.items():
        assert len(set(outputs)) == 1, key
        args, _ = _args(dtype, *key[0], trans_b=False, accumulate=key[1])
        expected = copy.deepcopy(args)
        numpy_ref.gemm_packed(**expected)
        actual = np.frombuffer(outputs[0], dtype).reshape(expected["out"].shape)
        np.testing.assert_allclose(actual, expected["out"], rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("trans_b", [False, True])
def test_packing_is_the_references_on_both_backends(c, trans_b):
    for dtype, (_, k, n) in itertools.product((np.float32, np.float64), SHAPES):
        rng = np.random.default_rng(k)
        b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
        packed = [np.full(numpy_ref.packed_shape(k, n, dtype), np.nan, dtype) for _ in range(3)]
        for backend, into in zip((numpy_ref, c, layers), packed):
            backend.gemm_pack(b, trans_b, into)
        assert packed[0].tobytes() == packed[1].tobytes() == packed[2].tobytes()


def test_numba_packs_in_parallel_from_the_c_backends_size(c):
    assert layers.PACK_PARALLEL_MIN == c._lib.FG_PACK_PARALLEL_MIN


def test_numba_without_the_c_kernels_runs_the_reference_and_says_why(monkeypatch):
    monkeypatch.setattr(layers, "PACKED_PANELS", np.zeros(2, np.int64))
    args, _ = _args(np.float32, 19, 70, 70, False, True)
    expected = copy.deepcopy(args)
    before = layers.FALLBACKS.of("gemm_packed").get("the C kernels are not built", 0)
    layers.gemm_packed(**args)
    numpy_ref.gemm_packed(**expected)
    assert args["out"].tobytes() == expected["out"].tobytes()
    assert layers.FALLBACKS.of("gemm_packed")["the C kernels are not built"] == before + 1


def test_packed_shape_pads_the_last_panel():
    assert numpy_ref.packed_width(np.float32) == 32 and numpy_ref.packed_width(np.float64) == 16
    assert numpy_ref.packed_shape(5, 70, np.float32) == (3, 5, 32)
    assert numpy_ref.packed_shape(5, 64, np.float32) == (2, 5, 32)
    assert numpy_ref.packed_shape(5, 1, np.float64) == (1, 5, 16)
    b = np.arange(6, dtype=np.float32).reshape(2, 3)
    packed = np.full(numpy_ref.packed_shape(2, 3, np.float32), np.nan, np.float32)
    numpy_ref.gemm_pack(b, False, packed)
    assert packed[0, :, :3].tolist() == b.tolist() and not packed[0, :, 3:].any()


# ------------------------------------------------------------------ fastgrad's own GEMM
_TRANS, _NO_TRANS = 112, 111


def _own_gemm(c, dtype, trans_a, trans_b, a, b, out, beta, k=None):
    """``out = op(a) @ op(b) (+ out)`` by ``fg_own_gemm_*`` (CBLAS's row-major interface);
    ``a`` and ``b`` may hold more columns than op() reads (their leading dimensions)."""
    m, n = out.shape
    if k is None:
        k = a.shape[0] if trans_a else a.shape[1]
    suffix, ctype = ("f32", "float[]") if dtype == np.float32 else ("f64", "double[]")

    def pointer(array):
        return c._ffi.from_buffer(ctype, array)
    getattr(c._lib, f"fg_own_gemm_{suffix}")(
        101, _TRANS if trans_a else _NO_TRANS, _TRANS if trans_b else _NO_TRANS, m, n, k, 1.0,
        pointer(a), a.shape[1], pointer(b), b.shape[1], beta, pointer(out), n)


#: (m, n, k): row tiles and tails, partial and full panels, several depth blocks (> 256), k = 0
OWN_SHAPES = [(19, 70, 300), (8, 64, 33), (3, 40, 5), (1, 1, 1), (130, 33, 600), (5, 100, 0)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a, trans_b, beta",
                         list(itertools.product((False, True), (False, True), (0.0, 1.0))))
def test_own_gemm_is_one_ascending_sum_per_element_for_every_layout(c, dtype, trans_a, trans_b,
                                                                     beta):
    rng = np.random.default_rng(3)
    for m, n, k in OWN_SHAPES:
        a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
        b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
        out = np.full((m, n), np.nan, dtype) if beta == 0 else rng.standard_normal((m, n)).astype(
            dtype)
        expected = _sequential(np.ascontiguousarray(a.T if trans_a else a),
                               np.ascontiguousarray(b.T if trans_b else b),
                               np.nan_to_num(out), beta == 1)
        _own_gemm(c, dtype, trans_a, trans_b, a, b, out, beta)
        assert out.tobytes() == expected.tobytes(), (m, n, k)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a, trans_b", list(itertools.product((False, True), repeat=2)))
def test_own_gemm_packs_rows_a_crowded_stride_apart_without_changing_a_sum(c, dtype, trans_a,
                                                                            trans_b):
    """Leading dimensions of 512 elements, 300 depths (the rows are packed: csrc's
    ``crowded``) and 8 panels or more (a transposed a is packed too): two blocks of rows,
    the last row tile partial, two depth blocks, a partial panel; the same bits as the sums
    in order."""
    m, n, k, lead = 203, 250, 300, 512
    rng = np.random.default_rng(4)
    a = rng.standard_normal((k, lead) if trans_a else (m, lead)).astype(dtype)
    b = rng.standard_normal((n, lead) if trans_b else (k, lead)).astype(dtype)
    op_a = a[:, :m].T if trans_a else a[:, :k]
    op_b = b[:, :k].T if trans_b else b[:, :n]
    out = np.full((m, n), np.nan, dtype)
    _own_gemm(c, dtype, trans_a, trans_b, a, b, out, 0.0, k=k)
    expected = _sequential(np.ascontiguousarray(op_a), np.ascontiguousarray(op_b),
                           np.zeros((m, n), dtype), False)
    assert out.tobytes() == expected.tobytes()


def test_products_run_fastgrads_own_gemm_unless_the_environment_says_blas():
    import subprocess
    import sys
    script = ("from fastgrad.backends import blas; "
              "print(blas.PRODUCTS[-1] if blas.AVAILABLE else 'none')")
    chosen = {}
    for choice in (None, "blas", "bogus"):
        env = {key: value for key, value in os.environ.items() if key != "FASTGRAD_GEMM"}
        if choice:
            env["FASTGRAD_GEMM"] = choice
        chosen[choice] = subprocess.run([sys.executable, "-c", script], env=env,
                                        capture_output=True, text=True, timeout=120)
    if chosen["blas"].stdout.strip() == "none":
        pytest.skip("no usable BLAS: the products are NumPy's either way")
    assert chosen[None].stdout.split() == ["fastgrad"]
    assert chosen["blas"].stdout.split() == ["blas"]
    assert chosen["bogus"].returncode == 1
    assert "ValueError: FASTGRAD_GEMM must be fastgrad or blas, got 'bogus'" in \
        chosen["bogus"].stderr
