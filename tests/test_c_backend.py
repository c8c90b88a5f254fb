"""The C backend beyond the generated parity tests (which run every variant the registry
declares): its header from C alone, the shapes and argument types the registry's examples do
not reach, the reference fallback, thread-count determinism, its matrix products (blocks, BLAS
thread count, agreement with the Numba backend), its import cost (no Numba) and how it reports
a missing build."""
import copy
import ctypes
import importlib.util
import itertools
import os
import pathlib
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest

from fastgrad import backends
from fastgrad.backends import ACTIVATIONS, KERNELS, K, blas
from fastgrad.backends.numpy_ref import update_running_stats

ROOT = pathlib.Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"
_SOURCES = [str(CSRC / name) for name in ("arena.c", "layers.c", "gemm.c")]


# ------------------------------------------------------------------------- the header alone
_PROGRAM = r"""
#include <math.h>
#include <stdio.h>
#include "fastgrad.h"

static int close_to(double got, double want, double tol)
{
    return fabs(got - want) <= tol * (1.0 + fabs(want));
}

int main(void)
{
    int failures = 0;
    if (fg_abi_version() != FG_ABI_VERSION)
        failures++;
    /* an arena of three parameters: [3, 4], [], [12] */
    double grads[3] = {3.0, 4.0, 12.0};
    int64_t offsets[4] = {0, 2, 2, 3};
    double norms[3], total;
    if (fg_clip_grad_norm_f64(grads, 3, offsets, 3, 1.0, 2.0, 0, norms, &total,
                              FG_PAR_NORMS) != FG_OK)
        failures++;
    double coef = 1.0 / (13.0 + 1e-6);
    failures += !close_to(total, 13.0, 1e-15) || !close_to(norms[0], 5.0, 1e-15) ||
                norms[1] != 0.0 || !close_to(norms[2], 12.0, 1e-15);
    failures += !close_to(grads[0], 3.0 * coef, 1e-15) || !close_to(grads[2], 12.0 * coef, 1e-15);
    int64_t bad[4] = {0, 2, 1, 3};
    failures += fg_segment_norms_f64(grads, 3, bad, 3, 2.0, norms, &total, FG_PAR_NORMS) !=
                FG_ERR_OFFSETS;
    /* one SGD step with momentum (first step: the buffer takes the gradient) */
    float param[2] = {1.0f, -2.0f}, grad[2] = {0.5f, 0.25f}, buffer[2] = {9.0f, 9.0f};
    fg_sgd_step_f32(param, grad, buffer, 2, 0.1, 0.9, 0.0, 0.0, 0, 0, 1, FG_PAR_SGD);
    failures += !close_to(param[0], 0.95, 1e-7) || !close_to(param[1], -2.025, 1e-7) ||
                buffer[0] != 0.5f;
    /* one Adam step: the first step moves each parameter by about lr against its gradient */
    double p[2] = {1.0, 1.0}, g[2] = {0.5, -3.0}, m[2] = {0, 0}, v[2] = {0, 0};
    fg_adam_step_f64(p, g, m, v, NULL, 2, 1, 0.01, 0.9, 0.999, 1e-8, 0.0, 0, 0, FG_PAR_ADAM);
    failures += !close_to(p[0], 0.99, 1e-7) || !close_to(p[1], 1.01, 1e-7);
    printf("%.17g %.17g %.17g %.17g\n", total, grads[0], p[0], p[1]);
    return failures;
}
"""


def _build_and_run(tmp_path, source):
    """Compile ``source`` with csrc/'s sources (warnings are errors) and run it: its result."""
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler (cc) on PATH")
    program = tmp_path / "program.c"
    program.write_text(source)
    binary = tmp_path / "program"
    build = subprocess.run(
        [compiler, "-O2", "-std=c11", "-Wall", "-Werror", "-Wno-unknown-pragmas", f"-I{CSRC}",
         str(program), *_SOURCES, "-o", str(binary), "-lm"],
        capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    return subprocess.run([str(binary)], capture_output=True, text=True, timeout=60)


def test_header_and_sources_build_and_run_from_c_alone(tmp_path):
    run = _build_and_run(tmp_path, _PROGRAM)
    assert run.returncode == 0, f"{run.returncode} checks failed in C: {run.stdout}"
    total, first, p0, p1 = map(float, run.stdout.split())
    # the same calls on the NumPy reference
    grads, offsets = np.array([3.0, 4.0, 12.0]), np.array([0, 2, 2, 3])
    assert total == KERNELS["clip_grad_norm"].reference(grads, offsets, 1.0, 2.0, False,
                                                        np.empty(3))
    assert first == grads[0]
    p, m, v = np.ones(2), np.zeros(2), np.zeros(2)
    KERNELS["adam_step"].reference(p, np.array([0.5, -3.0]), m, v, None, 1, 0.01, 0.9, 0.999,
                                   1e-8, 0.0, False, False)
    np.testing.assert_allclose([p0, p1], p, rtol=1e-15)


_GEMM_PROGRAM = r"""
#include <string.h>
#include "fastgrad.h"

/* a row-major CBLAS dgemm with 32-bit integers (an LP64 BLAS), naive */
static void naive_dgemm(int order, int trans_a, int trans_b, int32_t m, int32_t n, int32_t k,
                        double alpha, const double *a, int32_t lda, const double *b,
                        int32_t ldb, double beta, double *c, int32_t ldc)
{
    (void)order;
    for (int32_t i = 0; i < m; i++)
        for (int32_t j = 0; j < n; j++) {
            double s = 0.0;
            for (int32_t p = 0; p < k; p++)
                s += (trans_a == 112 ? a[p * lda + i] : a[i * lda + p]) *
                     (trans_b == 112 ? b[j * ldb + p] : b[p * ldb + j]);
            c[i * ldc + j] = alpha * s + (beta == 0.0 ? 0.0 : beta * c[i * ldc + j]);
        }
}

#define M 200
#define N 100
#define K 300
int main(void)
{
    static double a[M * K], b[N * K], bias[N], out[M * N], want[M * N];
    for (int i = 0; i < M * K; i++)
        a[i] = (double)(i % 17) - 8.0;
    for (int i = 0; i < N * K; i++)
        b[i] = (double)(i % 13) / 4.0 - 1.5;
    for (int j = 0; j < N; j++)
        bias[j] = j - 50.0;
    fg_blas blas = {0, (uintptr_t)naive_dgemm, 0, 0, 32};
    int along_rows;
    int64_t edges[FG_GEMM_MAX_BLOCKS + 1];
    if (fg_gemm_blocks(M, N, K, &along_rows, edges) != 5 || !along_rows || edges[5] != M)
        return 10;
    /* out = a @ b.T in five blocks: each element from the same loop as in one call */
    if (fg_gemm_f64(a, b, M, N, K, 0, 1, 0, out, &blas) != FG_OK)
        return 11;
    naive_dgemm(101, 111, 112, M, N, K, 1.0, a, K, b, K, 0.0, want, N);
    if (memcmp(out, want, sizeof out) != 0)
        return 12;
    /* the linear layer: relu(a @ b.T + bias), the epilogue on each block */
    if (fg_linear_fwd_f64(a, b, bias, M, K, N, FG_RELU, out, &blas, FG_PAR_ACTIVATION) != FG_OK)
        return 13;
    for (int i = 0; i < M * N; i++) {
        double v = want[i] + bias[i % N];
        if (out[i] != (v < 0 ? 0 : v))
            return 14;
    }
    /* no sgemm, or an integer width BLAS does not have: refused, nothing written */
    float f[4] = {1, 2, 3, 4};
    if (fg_gemm_f32(f, f, 2, 2, 1, 0, 0, 0, f, &blas) != FG_ERR_BLAS || f[0] != 1)
        return 15;
    blas.int_bits = 16;
    if (fg_gemm_f64(a, b, M, N, K, 0, 1, 0, out, &blas) != FG_ERR_BLAS)
        return 16;
    return 0;
}
"""


def test_products_from_c_alone_with_a_32_bit_blas(tmp_path):
    """The block GEMM and the fused linear layer through the header alone, with a BLAS of
    32-bit integers (NumPy's is 64-bit): every block the same as one whole call."""
    run = _build_and_run(tmp_path, _GEMM_PROGRAM)
    assert run.returncode == 0, f"check {run.returncode} failed in C"


# ------------------------------------ shapes and argument types the registry's examples miss
def _example(name, dtype, size=17, **changes):
    args = KERNELS[name].example(np.random.default_rng(size), dtype, size)
    args.update(changes)
    return args


_NONE = ACTIVATIONS["none"]


def _bn_example(dtype, shape, activation=_NONE, **changes):
    rng = np.random.default_rng(sum(shape))
    x = (2 * rng.standard_normal(shape) + 3).astype(dtype)
    channels = shape[1]
    args = dict(x=x, weight=rng.uniform(0.5, 1.5, channels).astype(dtype),
                bias=rng.standard_normal(channels).astype(dtype), eps=1e-5,
                activation=activation,
                running_mean=rng.standard_normal(channels).astype(dtype),
                running_var=rng.uniform(0.5, 2, channels).astype(dtype), momentum=0.1,
                mean=np.empty(channels), var=np.empty(channels), invstd=np.empty(channels),
                out=np.empty_like(x))
    args.update(changes)
    return args


def _bn_bwd_example(dtype, shape, activation=_NONE, **changes):
    forward = _bn_example(dtype, shape, activation)
    KERNELS["batchnorm_fwd"].reference(**forward)
    x, weight = forward["x"], forward["weight"]
    args = dict(grad_out=np.random.default_rng(1).standard_normal(x.shape).astype(dtype), x=x,
                weight=weight, mean=forward["mean"], invstd=forward["invstd"],
                out=forward["out"], activation=activation, grad_x=np.empty_like(x),
                grad_weight=np.empty_like(weight), grad_bias=np.empty_like(weight))
    args.update(changes)
    return args


def _linear_blocks(dtype, rows, in_features, out_features, activation, bias=True):
    """A linear layer whose product the C backend cuts into several blocks."""
    rng = np.random.default_rng(rows + in_features + out_features)
    weight = rng.standard_normal((out_features, in_features)) / np.sqrt(in_features)
    return dict(x=rng.standard_normal((rows, in_features)).astype(dtype),
                weight=weight.astype(dtype),
                bias=rng.standard_normal(out_features).astype(dtype) if bias else None,
                activation=activation, out=np.empty((rows, out_features), dtype))


def _linear_bwd_blocks(dtype, activation):
    forward = _linear_blocks(dtype, 300, 100, 130, activation)
    KERNELS["linear_fwd"].reference(**forward)
    x, weight, out = forward["x"], forward["weight"], forward["out"]
    return dict(grad_out=np.random.default_rng(2).standard_normal(out.shape).astype(dtype), x=x,
                weight=weight, out=out, activation=activation, grad_x=np.empty_like(x),
                grad_weight=np.empty_like(weight), grad_bias=np.empty_like(forward["bias"]))


_RELU, _SIGMOID = ACTIVATIONS["relu"], ACTIVATIONS["sigmoid"]
#: The registry's variants (activation codes, norm types, optimiser flags, optional arrays)
#: are the generated parity tests' (tests/test_backend_parity.py); these are the shapes and
#: argument types its examples do not have.
VARIANTS = {
    "segment_norms-empty-segments": lambda d: ("segment_norms", dict(
        values=np.arange(5, dtype=d), offsets=np.array([0, 0, 3, 3, 5]), norm_type=2.0,
        out=np.empty(4))),
    "monitor_norms-inner-segments": lambda d: ("monitor_norms", dict(
        grads=np.arange(12, dtype=d), values=np.linspace(-1, 1, 12).astype(d),
        prev=np.zeros(12, d), offsets=np.array([2, 5, 5, 9]), have_prev=True,
        out=np.empty((3, 3)), layer_of=np.array([1, -1, 1]), layer_sq=np.ones(2))),
    "adam-float-step": lambda d: ("adam_step", _example("adam_step", d, step=7.0)),
    "adagrad-float-step": lambda d: ("adagrad_step", _example("adagrad_step", d, step=4.0)),
    "adamax-maximize-float-step": lambda d: ("adamax_step", _example(
        "adamax_step", d, maximize=True, step=3.0)),
    "nadam-no-decay-float-step": lambda d: ("nadam_step", _example(
        "nadam_step", d, weight_decay=0.0, step=2.0, mu_product=0.2)),
    # 3.9M multiply-adds: 3 blocks of rows; 12M: 8 blocks of columns
    "linear-blocks-rows-tanh": lambda d: ("linear_fwd", _linear_blocks(
        d, 300, 100, 130, ACTIVATIONS["tanh"])),
    "linear-blocks-columns-relu-no-bias": lambda d: ("linear_fwd", _linear_blocks(
        d, 40, 300, 1000, _RELU, bias=False)),
    "linear-bwd-blocks-sigmoid": lambda d: ("linear_bwd", _linear_bwd_blocks(
        d, ACTIVATIONS["sigmoid"])),
    "cross-entropy-negative-target": lambda d: ("cross_entropy_fwd", _example(
        "cross_entropy_fwd", d, target=np.full(17, -1, np.int64))),
    "batchnorm-wide-rows": lambda d: ("batchnorm_fwd", _bn_example(d, (3, 2, 9000))),
    "batchnorm-1d": lambda d: ("batchnorm_fwd", _bn_example(d, (7, 6, 1))),
    "batchnorm-bwd-wide-rows": lambda d: ("batchnorm_bwd", _bn_bwd_example(d, (3, 2, 9000))),
    "batchnorm-wide-rows-tanh": lambda d: ("batchnorm_fwd", _bn_example(
        d, (3, 2, 9000), ACTIVATIONS["tanh"])),
    "batchnorm-1d-relu": lambda d: ("batchnorm_fwd", _bn_example(d, (7, 6, 1), _RELU)),
    "batchnorm-bwd-wide-rows-sigmoid": lambda d: ("batchnorm_bwd", _bn_bwd_example(
        d, (3, 2, 9000), _SIGMOID)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_matches_reference(c, variant, dtype):
    name, args = VARIANTS[variant](dtype)
    spec = KERNELS[name]
    expected_args, actual_args = copy.deepcopy(args), copy.deepcopy(args)
    with np.errstate(all="ignore"):
        expected = spec.reference(**expected_args)
    actual = getattr(c, name)(**actual_args)
    rtol, atol = spec.tolerances[np.dtype(dtype)]
    for key in spec.writes:
        if expected_args[key] is None:
            assert actual_args[key] is None
        else:
            np.testing.assert_allclose(actual_args[key], expected_args[key], rtol=rtol,
                                       atol=atol, err_msg=f"{variant}: {key}")
    if expected is not None:
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def test_variants_run_in_c_not_in_the_reference(c, monkeypatch):
    """The variants above exercise the C code: none of them falls back to the reference."""
    fallbacks = []
    reference = types.SimpleNamespace(**{
        name: (lambda n: lambda *a, **k: fallbacks.append(n))(name) for name in KERNELS})
    monkeypatch.setattr(c, "_reference", reference)
    for make in VARIANTS.values():
        name, args = make(np.float32)
        getattr(c, name)(**args)
    assert fallbacks == []


def test_strided_and_float16_arrays_go_to_the_reference(c):
    values = np.arange(20, dtype=np.float32)[::2]   # not contiguous
    expected = values * np.float32(0.5)
    c.scale(values, 0.5)
    np.testing.assert_array_equal(values, expected)
    half = np.linspace(-1, 1, 9).astype(np.float16)
    expected = half.copy()
    KERNELS["clip_grad_range"].reference(expected, -0.5, 0.25)
    c.clip_grad_range(half, -0.5, 0.25)
    np.testing.assert_array_equal(half, expected)
    # mismatched sizes never reach C: the reference's own error
    with pytest.raises(ValueError):
        c.axpy(np.zeros(4), np.ones(5), 1.0)


def test_invalid_offsets_and_targets_raise_before_any_out_of_bounds_access(c):
    with pytest.raises(ValueError, match="offsets must be non-decreasing"):
        c.segment_norms(np.ones(4), np.array([0, 3, 2, 4]), 2.0, np.empty(3))
    with pytest.raises(ValueError, match="offsets must be non-decreasing"):
        c.clip_grad_norm(np.ones(4), np.array([0, 5]), 1.0, 2.0, False, np.empty(1))
    args = _example("cross_entropy_fwd", np.float32, target=np.full(17, 30, np.int64))
    with pytest.raises(IndexError, match="target 30 is out of bounds for 21 classes"):
        c.cross_entropy_fwd(**args)


def test_read_only_output_raises(c):
    values = np.ones(3, np.float32)
    values.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        c.scale(values, 2.0)


#: narrow (S = 1, and S > 1 with blocks of several channels) and wide (S >= 512) layouts
_BN_PRECISION_SHAPES = [(1000, 6, 1), (37, 5, 9), (7, 3, 600)]


@pytest.mark.parametrize("shape", _BN_PRECISION_SHAPES, ids=str)
def test_batchnorm_statistics_keep_their_precision_when_the_mean_dwarfs_the_spread(c, shape):
    """|mean| / std = 1e6 in float32: the one-read statistics (sums about a sample of each
    channel) and the split mean of the elementwise passes lose nothing to cancellation."""
    rng = np.random.default_rng(sum(shape))
    x = (1e4 + 1e-2 * rng.standard_normal(shape)).astype(np.float32)
    forward = _bn_example(np.float32, shape, x=x, out=np.empty_like(x))
    expected = copy.deepcopy(forward)
    KERNELS["batchnorm_fwd"].reference(**expected)
    c.batchnorm_fwd(**forward)
    np.testing.assert_allclose(forward["mean"], expected["mean"], rtol=1e-12, atol=0)
    np.testing.assert_allclose(forward["var"], expected["var"], rtol=1e-7, atol=0)
    np.testing.assert_allclose(forward["invstd"], expected["invstd"], rtol=1e-7, atol=0)
    np.testing.assert_allclose(forward["out"], expected["out"], rtol=0, atol=1e-4)
    backward = dict(grad_out=rng.standard_normal(shape).astype(np.float32), x=x,
                    weight=forward["weight"], mean=expected["mean"],
                    invstd=expected["invstd"], out=None, activation=_NONE,
                    grad_x=np.empty_like(x),
                    grad_weight=np.empty_like(forward["weight"]),
                    grad_bias=np.empty_like(forward["weight"]))
    expected = copy.deepcopy(backward)
    KERNELS["batchnorm_bwd"].reference(**expected)
    c.batchnorm_bwd(**backward)
    scale = np.abs(expected["grad_x"]).max()
    np.testing.assert_allclose(backward["grad_x"], expected["grad_x"], rtol=0,
                               atol=1e-5 * scale)
    for key in ("grad_weight", "grad_bias"):
        np.testing.assert_allclose(backward[key], expected[key], rtol=1e-5,
                                   atol=1e-5 * np.abs(expected[key]).max(), err_msg=key)


# ------------------------------------------------------------------------------- threads
_THREADS_PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fastgrad.h"

#define N 300007
int main(void)
{
    static float values[N], param[2][N], grad[N], m[2][N], v[2][N];
    int64_t offsets[4] = {0, 3, 100001, N};
    double out[2][3], total[2];
    unsigned seed = 1;
    for (int i = 0; i < N; i++) {
        seed = seed * 1103515245u + 12345u;
        values[i] = (float)((seed >> 8) % 20001) / 1000.0f - 10.0f;
        grad[i] = values[(i * 7919) % N];
    }
    for (int t = 0; t < 2; t++) {
        fg_set_num_threads(t + 1);
        if (fg_get_num_threads() != t + 1)
            return 100;
        /* parallel from 4096 elements: the OpenMP paths at this size */
        if (fg_segment_norms_f32(values, N, offsets, 3, 2.0, out[t], &total[t], 4096) != FG_OK)
            return 101;
        memcpy(param[t], values, sizeof values);
        memset(m[t], 0, sizeof m[t]);
        memset(v[t], 0, sizeof v[t]);
        for (int step = 1; step <= 3; step++)
            fg_adam_step_f32(param[t], grad, m[t], v[t], NULL, N, step, 1e-3, 0.9, 0.999, 1e-8,
                             0.01, 1, 0, 4096);
    }
    int differ = total[0] != total[1] || memcmp(out[0], out[1], sizeof out[0]) != 0 ||
                 memcmp(param[0], param[1], sizeof param[0]) != 0;
    printf("%.17g\n", total[0]);
    return differ;
}
"""


def test_parallel_kernels_are_bit_identical_for_one_and_two_threads(tmp_path):
    """Kernels run with a low threshold (their OpenMP paths) must not change a bit between 1
    and 2 threads."""
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler (cc) on PATH")
    program = tmp_path / "threads.c"
    program.write_text(_THREADS_PROGRAM)
    binary = tmp_path / "threads"
    build = subprocess.run(
        [compiler, "-O2", "-std=c11", "-fopenmp", f"-I{CSRC}", str(program), *_SOURCES,
         "-o", str(binary), "-lm"], capture_output=True, text=True, timeout=120)
    if build.returncode != 0 and "openmp" in build.stderr.lower():
        pytest.skip(f"the compiler has no OpenMP: {build.stderr.strip()[:200]}")
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(binary)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, f"1 and 2 threads differ (exit {run.returncode})"
    assert float(run.stdout) > 0


#: batchnorm layouts of several tiles: narrow with S = 1 (one block, and two blocks), narrow
#: with S > 1 (blocks of whole channels, a last piece of 1 to 3 rows), wide (blocks of several
#: channels, a channel longer than a block, a segment not a multiple of the lanes)
_BN_THREAD_SHAPES = [(1000, 6, 1), (130, 700, 1), (203, 70, 9), (7, 3, 600), (64, 40, 1024),
                     (3, 2, 17000)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_batchnorm_is_bit_identical_for_one_and_two_threads(c, threads, monkeypatch, dtype):
    """The batchnorm sums' tiles depend on the shape only: 1 and 2 threads (parallel at every
    size) give the same bits, forward and backward (with a fused activation, whose backward
    has a pass of its own), narrow and wide layouts."""
    monkeypatch.setitem(c.PARALLEL_MIN, "batchnorm", 0)
    results = {}
    for count in (1, 2):
        threads(count)
        outputs = []
        for shape in _BN_THREAD_SHAPES:
            forward = _bn_example(dtype, shape, _SIGMOID)
            c.batchnorm_fwd(**forward)
            backward = _bn_bwd_example(dtype, shape, _SIGMOID, mean=forward["mean"],
                                       invstd=forward["invstd"], out=forward["out"])
            c.batchnorm_bwd(**backward)
            outputs += [forward[key] for key in ("running_mean", "running_var", "mean", "var",
                                                 "invstd", "out")]
            outputs += [backward[key] for key in ("grad_x", "grad_weight", "grad_bias")]
        results[count] = outputs
    for one, two in zip(results[1], results[2]):
        assert one.tobytes() == two.tobytes()


#: narrow with S = 1, narrow with S > 1, wide (S >= 512)
_BN_FUSED_SHAPES = [(7, 6, 1), (5, 3, 40), (3, 2, 9000)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("shape", _BN_FUSED_SHAPES, ids=str)
def test_batchnorm_fused_activation_is_bit_identical_to_the_separate_kernels(
        c, shape, activation, dtype):
    """The activation batchnorm_fwd applies to its output is activation_fwd's, bit for bit;
    batchnorm_bwd's derivative is activation_bwd's, followed by the plain backward."""
    code = ACTIVATIONS[activation]
    fused = _bn_example(dtype, shape, code)
    c.batchnorm_fwd(**fused)
    separate = _bn_example(dtype, shape)
    c.batchnorm_fwd(**separate)
    activated = np.empty_like(separate["out"])
    c.activation_fwd(separate["out"], code, activated)
    for key in ("running_mean", "running_var", "mean", "var", "invstd"):
        np.testing.assert_array_equal(fused[key], separate[key], err_msg=key)
    np.testing.assert_array_equal(fused["out"], activated, err_msg="out")

    fused = _bn_bwd_example(dtype, shape, code, mean=fused["mean"], invstd=fused["invstd"],
                            out=fused["out"])
    c.batchnorm_bwd(**fused)
    dy = np.empty_like(fused["grad_out"])
    c.activation_bwd(fused["grad_out"], fused["out"], code, dy)
    separate = _bn_bwd_example(dtype, shape, grad_out=dy, mean=fused["mean"],
                               invstd=fused["invstd"], out=None)
    c.batchnorm_bwd(**separate)
    for key in ("grad_x", "grad_weight", "grad_bias"):
        np.testing.assert_array_equal(fused[key], separate[key], err_msg=key)


#: narrow with S = 1, narrow with S > 1, wide (S >= 512), and one of several tiles
_BN_RUNNING_SHAPES = [(7, 6, 1), (5, 3, 40), (3, 2, 9000), (64, 40, 1024)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("momentum", [0.1, 0.37])
@pytest.mark.parametrize("shape", _BN_RUNNING_SHAPES, ids=str)
def test_batchnorm_running_statistics_are_the_references_bit_for_bit(
        c, monkeypatch, shape, momentum, dtype):
    """The running statistics are updated in C with the reference's operations in its order
    (double, rounded once, no FMA): bit for bit the reference's update of the batch mean and
    variance the kernel wrote. (Those differ from the reference's own in the last bits of a
    double, which float32's rounding hides: there, the reference's whole forward gives the
    same running bits.) Without them (None), everything else is written bit for bit as
    with them, and nothing falls back to the reference."""
    _no_reference(c, monkeypatch)
    with_running = _bn_example(dtype, shape, momentum=momentum)
    expected_mean = with_running["running_mean"].copy()
    expected_var = with_running["running_var"].copy()
    c.batchnorm_fwd(**with_running)
    update_running_stats(expected_mean, expected_var, with_running["mean"], with_running["var"],
                         momentum, shape[0] * shape[2])
    np.testing.assert_array_equal(with_running["running_mean"], expected_mean)
    np.testing.assert_array_equal(with_running["running_var"], expected_var)

    reference = _bn_example(dtype, shape, momentum=momentum)
    KERNELS["batchnorm_fwd"].reference(**reference)
    compare = (np.testing.assert_array_equal if dtype == np.float32 else
               lambda a, b, err_msg: np.testing.assert_allclose(a, b, rtol=1e-13,
                                                                err_msg=err_msg))
    for key in ("running_mean", "running_var"):
        compare(with_running[key], reference[key], err_msg=key)

    without = _bn_example(dtype, shape, momentum=momentum, running_mean=None,
                          running_var=None)
    c.batchnorm_fwd(**without)
    assert without["running_mean"] is None and without["running_var"] is None
    for key in ("mean", "var", "invstd", "out"):
        np.testing.assert_array_equal(without[key], with_running[key], err_msg=key)


def test_batchnorm_running_statistics_the_c_code_does_not_take_go_to_the_reference(
        c, monkeypatch):
    """One running statistic without the other, or one value per channel (no unbiased
    variance), run the reference with every argument: its behaviour and its error, not NaN
    from C. One value per channel without running statistics stays in C."""
    calls = []
    monkeypatch.setattr(c, "_reference", types.SimpleNamespace(
        batchnorm_fwd=lambda *args: calls.append(args)))
    cases = [_bn_example(np.float32, (1, 3, 1)),
             _bn_example(np.float64, (7, 6, 1), running_mean=None),
             _bn_example(np.float32, (3, 2, 9000), running_var=None)]
    for args in cases:
        c.batchnorm_fwd(**args)
        assert len(calls) == 1
        passed = calls.pop()  # every argument, in the reference's order
        assert len(passed) == len(args)
        assert all(a is b for a, b in zip(passed, args.values()))
    single = _bn_example(np.float32, (1, 3, 1), running_mean=None, running_var=None)
    c.batchnorm_fwd(**single)
    assert calls == []
    np.testing.assert_array_equal(single["var"], 0.0)


# --------------------------------------------------------------------------- matrix products
#: (m, n, k): odd sizes, empty dimensions, and products of several blocks (the comments)
GEMM_SHAPES = [(1, 1, 1), (5, 7, 3), (17, 33, 9), (0, 6, 4), (6, 0, 4), (6, 5, 0),
               (100, 100, 100),   # 1 block, beyond OpenBLAS's serial size
               (300, 200, 100),   # 5 blocks of rows
               (45, 1001, 70),    # 3 blocks of columns, the last one ragged
               (1000, 129, 257)]  # 8 blocks of rows
GEMM_FLAGS = list(itertools.product((False, True), repeat=3))  # trans_a, trans_b, accumulate
_MULTI_BLOCK = [shape for shape in GEMM_SHAPES if shape[0] * shape[1] * shape[2] >= 1 << 21]


def _gemm_args(dtype, shape, trans_a, trans_b, accumulate):
    m, n, k = shape
    rng = np.random.default_rng(m + 3 * n + 7 * k)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    return dict(a=a, b=b, trans_a=trans_a, trans_b=trans_b, accumulate=accumulate,
                out=rng.standard_normal((m, n)).astype(dtype))


def _no_reference(module, monkeypatch):
    """Make every fallback of ``module`` to the reference fail the test."""
    def refuse(name):
        def call(*args, **kwargs):
            raise AssertionError(f"{name} fell back to the reference")
        return call
    monkeypatch.setattr(module, "_reference",
                        types.SimpleNamespace(**{name: refuse(name) for name in KERNELS}))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("shape", GEMM_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_gemm_matches_numpy_in_c(c_products, monkeypatch, shape, dtype):
    _no_reference(c_products, monkeypatch)
    rtol, atol = (1e-4, 1e-4) if dtype == np.float32 else (1e-12, 1e-12)
    for flags in GEMM_FLAGS:
        args = _gemm_args(dtype, shape, *flags)
        a, b = args["a"].astype(np.float64), args["b"].astype(np.float64)
        expected = (a.T if flags[0] else a) @ (b.T if flags[1] else b)
        if flags[2]:
            expected += args["out"]
        c_products.gemm(**args)
        np.testing.assert_allclose(args["out"], expected, rtol=rtol, atol=atol,
                                   err_msg=f"trans_a, trans_b, accumulate = {flags}")


def test_gemm_blocks_follow_the_header_rule(c):
    """fg_gemm_blocks: at most FG_GEMM_MAX_BLOCKS blocks of FG_GEMM_MIN_BLOCK_WORK
    multiply-adds or more, edges at multiples of FG_GEMM_ALIGN covering the longer side."""
    lib, edges, along = c._lib, c._ffi.new("int64_t[]", c._lib.FG_GEMM_MAX_BLOCKS + 1), \
        c._ffi.new("int *")
    for m, n, k in [(1000, 129, 257), (45, 1001, 70), (300, 200, 100), (8, 8, 1 << 20),
                    (64, 64, 64), (0, 5, 3), (33, 2, 1 << 16)]:
        blocks = lib.fg_gemm_blocks(m, n, k, along, edges)
        side = m if along[0] else n
        assert bool(along[0]) == (m > n)
        assert 1 <= blocks <= lib.FG_GEMM_MAX_BLOCKS
        assert blocks == 1 or m * n * k // blocks >= lib.FG_GEMM_MIN_BLOCK_WORK
        cuts = list(edges[0:blocks + 1])
        assert cuts[0] == 0 and cuts[-1] == side and cuts == sorted(cuts)
        assert all(cut % lib.FG_GEMM_ALIGN == 0 for cut in cuts[:-1])
    assert lib.fg_gemm_blocks(300, 200, 100, along, edges) == 5  # the shapes above rely on it


def test_products_are_bit_identical_for_one_and_two_threads(c_products, threads):
    results = {}
    for count in (1, 2):
        threads(count)
        outputs = []
        for dtype, shape, flags in itertools.product((np.float32, np.float64), _MULTI_BLOCK,
                                                     GEMM_FLAGS):
            args = _gemm_args(dtype, shape, *flags)
            c_products.gemm(**args)
            outputs.append(args["out"])
        for dtype in (np.float32, np.float64):
            for name, args in [
                    ("linear_fwd", _linear_blocks(dtype, 300, 100, 130, ACTIVATIONS["tanh"])),
                    ("linear_bwd", _linear_bwd_blocks(dtype, _RELU))]:
                getattr(c_products, name)(**args)
                outputs += [args[key] for key in KERNELS[name].writes]
        results[count] = outputs
    for one, two in zip(results[1], results[2]):
        assert one.tobytes() == two.tobytes()


def test_gemm_is_bit_identical_to_the_numba_backends(c_products):
    numba_backend = backends._load("numba") if "numba" in backends.BACKEND_MODULES else None
    if numba_backend is None or not hasattr(numba_backend, "gemm"):
        pytest.skip(f"the numba backend's gemm is unavailable: "
                    f"{backends.describe().get('numba', 'not registered')}")
    for dtype, shape, flags in itertools.product((np.float32, np.float64), GEMM_SHAPES,
                                                 GEMM_FLAGS):
        args = _gemm_args(dtype, shape, *flags)
        twin = copy.deepcopy(args)
        c_products.gemm(**args)
        numba_backend.gemm(**twin)
        assert args["out"].tobytes() == twin["out"].tobytes(), \
            f"{np.dtype(dtype).name} {shape} trans_a, trans_b, accumulate = {flags}"


def test_gemm_blocks_are_the_numba_backends(c):
    """One blocking rule for both compiled backends: the same constants and the same edges."""
    if "numba" not in backends.available():
        pytest.skip(f"the numba backend is unavailable: {backends.describe().get('numba')}")
    from fastgrad.backends.numba_cpu import _layers as _gemm

    lib = c._lib
    assert (_gemm.ALIGN, _gemm.MIN_BLOCK_WORK, _gemm.MAX_BLOCKS, _gemm.BLAS_SERIAL_WORK) == (
        lib.FG_GEMM_ALIGN, lib.FG_GEMM_MIN_BLOCK_WORK, lib.FG_GEMM_MAX_BLOCKS,
        lib.FG_GEMM_BLAS_SERIAL_WORK)
    edges, along = c._ffi.new("int64_t[]", lib.FG_GEMM_MAX_BLOCKS + 1), c._ffi.new("int *")
    for m, n, k in GEMM_SHAPES + [(8, 8, 1 << 20), (33, 2, 1 << 16), (129, 4000, 999)]:
        blocks, along_rows = _gemm._gemm_pieces(m, n, k)
        side = m if along_rows else n
        bounds = [_gemm._piece_bounds(side, blocks, p) for p in range(blocks)]
        assert lib.fg_gemm_blocks(m, n, k, along, edges) == blocks, (m, n, k)
        assert bool(along[0]) == bool(along_rows), (m, n, k)
        assert list(zip(edges[0:blocks], edges[1:blocks + 1])) == bounds, (m, n, k)


def test_products_leave_the_blas_thread_count_as_it_was(c_products):
    get_threads = ctypes.CFUNCTYPE(ctypes.c_int)(blas.GET_THREADS)
    set_threads = ctypes.CFUNCTYPE(None, ctypes.c_int)(blas.SET_THREADS)
    original = get_threads()
    try:
        for count in (2, 1, original):
            set_threads(count)
            expected = get_threads()  # BLAS may cap the count
            for shape in [(1000, 129, 257), (100, 100, 100), (5, 7, 3)]:  # 8 blocks, 1, tiny
                c_products.gemm(**_gemm_args(np.float32, shape, False, True, True))
                assert get_threads() == expected, f"after a {shape} product"
            c_products.linear_fwd(**_linear_blocks(np.float64, 300, 100, 130, _RELU))
            c_products.linear_bwd(**_linear_bwd_blocks(np.float32, _RELU))
            assert get_threads() == expected, "after the linear layer"
    finally:
        set_threads(original)


def test_without_a_usable_blas_products_are_numpys_and_kernels_serial_longer(c, monkeypatch):
    """The C backend loaded where no usable BLAS was found: gemm is the reference, the linear
    layer multiplies with NumPy, and the thresholds are the FG_PAR_*_SPINNING ones."""
    monkeypatch.setattr(blas, "AVAILABLE", False)
    spec = importlib.util.find_spec("fastgrad.backends.c")
    module = importlib.util.module_from_spec(spec)  # a second instance: the first is untouched
    spec.loader.exec_module(module)
    assert module.PARALLEL_MIN["adam"] == module._lib.FG_PAR_ADAM_SPINNING
    assert module.PARALLEL_MIN["activation"] == module._lib.FG_PAR_ACTIVATION_SPINNING
    for name, args in [("linear_fwd", _linear_blocks(np.float64, 300, 100, 130, _RELU)),
                       ("linear_bwd", _linear_bwd_blocks(np.float64, ACTIVATIONS["tanh"]))]:
        expected = copy.deepcopy(args)
        KERNELS[name].reference(**expected)
        getattr(module, name)(**args)
        for key in KERNELS[name].writes:
            np.testing.assert_allclose(args[key], expected[key], rtol=1e-12, atol=1e-12)
    fallbacks = []
    monkeypatch.setattr(module, "_reference", types.SimpleNamespace(
        gemm=lambda *args: fallbacks.append("gemm")))
    module.gemm(**_gemm_args(np.float64, (5, 7, 3), False, False, False))
    assert fallbacks == ["gemm"]


def test_with_a_usable_blas_kernels_use_the_one_pool_thresholds(c_products):
    lib = c_products._lib
    for group, value in c_products.PARALLEL_MIN.items():
        name = f"FG_PAR_{group.upper()}"
        assert value == getattr(lib, name) < getattr(lib, f"{name}_SPINNING"), group

# -------------------------------------------------------------------- import and availability
_TRAIN_STEP = """
import sys
import numpy as np
import fastgrad as fg
from fastgrad import backends, nn, optim
backends.use("c")
model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))
opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
x = fg.tensor(np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32))
loss = nn.CrossEntropyLoss()(model(x), fg.tensor(np.array([0, 1, 2, 1])))
opt.zero_grad(); loss.backward(); opt.step()
assert backends.current() == "c"
print(sorted(m for m in ("numba", "llvmlite", "fastgrad.backends.numba_cpu") if m in sys.modules))
"""


def test_using_the_c_backend_does_not_import_numba(c):
    environ = {k: v for k, v in os.environ.items() if k != "FASTGRAD_BACKEND"}
    run = subprocess.run([sys.executable, "-c", _TRAIN_STEP], env=environ, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


@pytest.fixture
def registry(monkeypatch):
    """The registry with private caches, restored afterwards."""
    monkeypatch.setattr(backends, "_modules", dict(backends._modules))
    monkeypatch.setattr(backends, "_reasons", dict(backends._reasons))
    forced, table = backends._forced[0], dict(K.__dict__)
    backends._modules.pop("c", None)
    backends._reasons.pop("c", None)
    monkeypatch.delitem(sys.modules, "fastgrad.backends.c", raising=False)
    yield backends
    backends._forced[0] = forced
    K.__dict__.clear()
    K.__dict__.update(table)


def test_missing_compiled_module_reports_the_backend_unavailable(registry, monkeypatch):
    if "c" not in registry.BACKEND_MODULES:
        pytest.skip("the c backend is not registered")
    # None in sys.modules makes `from ._ckernels import ...` raise ImportError
    monkeypatch.setitem(sys.modules, "fastgrad.backends._ckernels", None)
    assert "c" not in registry.available()
    reason = registry.describe()["c"]
    assert reason.startswith("unavailable (ImportError: the compiled C kernels")
    assert "reinstall with a C compiler" in reason
    with pytest.raises(ValueError, match="backend 'c' is unavailable"):
        registry.use("c")


def test_stale_build_reports_the_backend_unavailable(registry, monkeypatch):
    if "c" not in registry.BACKEND_MODULES:
        pytest.skip("the c backend is not registered")
    stale = types.ModuleType("fastgrad.backends._ckernels")
    stale.ffi = None
    stale.lib = types.SimpleNamespace(fg_abi_version=lambda: 0)
    monkeypatch.setitem(sys.modules, "fastgrad.backends._ckernels", stale)
    assert "c" not in registry.available()
    assert "a stale build" in registry.describe()["c"]
