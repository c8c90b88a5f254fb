"""The C backend's convolution and pooling kernels beyond the generated parity tests: against
float64 formulas of their own (plain loops over the taps and the windows, and the adjoint
identities the gradients satisfy), PyTorch where it is installed, every path the C code takes
(products per group, the 1x1 path without columns, a single batch item in the product's
blocks, direct loops for depthwise convolutions), results bit-identical for one and two
OpenMP threads at sizes that run in parallel, what falls back to the reference, and the
kernels from C alone."""
import os
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

from fastgrad import backends
from fastgrad.backends import numpy_ref
from fastgrad.backends.numpy_ref import conv_output_size

CSRC = pathlib.Path(__file__).resolve().parents[1] / "csrc"
DTYPES = (np.float32, np.float64)


@pytest.fixture
def c(c_products):
    """Every test here runs the C kernels' products: the C backend with a usable BLAS."""
    return c_products


# ------------------------------------------------------------------------------- the cases
def _case(rng, dtype, n, channels, out_channels, size, kernel, stride=(1, 1), pad=(0, 0),
          dil=(1, 1), groups=1):
    """Arguments of one convolution: x, weight, bias, grad_out and the geometry tuple
    (stride_h, stride_w, pad_h, pad_w, dil_h, dil_w)."""
    h, w = size
    out_h, out_w = (conv_output_size(s, k, st, p, d)
                    for s, k, st, p, d in zip(size, kernel, stride, pad, dil))
    x = rng.standard_normal((n, channels, h, w)).astype(dtype)
    weight = rng.standard_normal((out_channels, channels // groups) + kernel).astype(dtype)
    bias = rng.standard_normal(out_channels).astype(dtype)
    grad_out = rng.standard_normal((n, out_channels, out_h, out_w)).astype(dtype)
    return x, weight, bias, grad_out, stride + pad + dil, groups


#: (label, channels, out_channels, (H, W), kernel, stride, padding, dilation, groups): every
#: path of the C code and the geometries of conv_spec.md.
GEOMETRIES = [
    ("3x3-pad1", 4, 6, (7, 6), (3, 3), (1, 1), (1, 1), (1, 1), 1),
    ("1x1-pointwise", 5, 3, (4, 6), (1, 1), (1, 1), (0, 0), (1, 1), 1),
    ("1x1-stride2", 5, 3, (7, 6), (1, 1), (2, 2), (0, 0), (1, 1), 1),
    ("5x3-stride2x1-pad0x2", 3, 4, (11, 6), (5, 3), (2, 1), (0, 2), (1, 1), 1),
    ("3x2-dilation2x3-pad2x1", 3, 4, (9, 10), (3, 2), (1, 1), (2, 1), (2, 3), 1),
    ("stride3-pad-beyond-kernel", 2, 3, (8, 7), (3, 3), (3, 2), (4, 3), (1, 1), 1),
    ("dilation4-taps-all-padding", 2, 3, (3, 5), (3, 3), (1, 1), (4, 1), (4, 1), 1),
    ("groups2", 4, 6, (6, 7), (3, 3), (1, 1), (1, 1), (1, 1), 2),
    ("groups3-1x1", 6, 9, (5, 5), (1, 1), (1, 1), (0, 0), (1, 1), 3),
    ("depthwise", 4, 4, (7, 6), (3, 3), (1, 1), (1, 1), (1, 1), 4),
    ("depthwise-multiplier2-stride2", 3, 6, (9, 8), (3, 3), (2, 2), (1, 1), (1, 1), 3),
    ("depthwise-dilated-5x5", 2, 2, (12, 11), (5, 5), (2, 1), (4, 2), (2, 2), 2),
    ("one-input-channel", 1, 5, (8, 9), (3, 3), (1, 1), (1, 1), (1, 1), 1),
]
_IDS = [g[0] for g in GEOMETRIES]


def _geometry_case(rng, dtype, n, geometry):
    _, channels, out_channels, size, kernel, stride, pad, dil, groups = geometry
    return _case(rng, dtype, n, channels, out_channels, size, kernel, stride, pad, dil, groups)


def _run(c, x, weight, bias, grad_out, geometry, groups):
    """out, grad_x, grad_weight, grad_bias from the C kernels (outputs filled with NaN first,
    so anything left unwritten shows)."""
    out = np.full(grad_out.shape, np.nan, x.dtype)
    grad_x = np.full_like(x, np.nan)
    grad_weight = np.full_like(weight, np.nan)
    grad_bias = np.full_like(bias, np.nan)
    c.conv2d_fwd(x, weight, bias, *geometry, groups, out)
    c.conv2d_bwd_input(grad_out, weight, *geometry, groups, grad_x)
    c.conv2d_bwd_weight(grad_out, x, *geometry, groups, grad_weight, grad_bias)
    return out, grad_x, grad_weight, grad_bias


# ------------------------------------------------------------------ float64 formulas of ours
def _taps(x, geometry, out_shape, p, q):
    """x's elements under tap (p, q) of every window: (N, C, OH, OW), 0 in the padding."""
    stride_h, stride_w, pad_h, pad_w, dil_h, dil_w = geometry
    h, w = x.shape[2:]
    rows = np.arange(out_shape[0]) * stride_h - pad_h + p * dil_h
    cols = np.arange(out_shape[1]) * stride_w - pad_w + q * dil_w
    r, k = np.flatnonzero((rows >= 0) & (rows < h)), np.flatnonzero((cols >= 0) & (cols < w))
    taps = np.zeros(x.shape[:2] + tuple(out_shape))
    taps[:, :, r[:, None], k[None, :]] = x[:, :, rows[r][:, None], cols[k][None, :]]
    return taps


def _conv(x, weight, bias, geometry, groups, out_shape):
    """The convolution in float64, tap by tap and group by group."""
    out_channels, group_channels, kernel_h, kernel_w = weight.shape
    og = out_channels // groups
    out = np.zeros((x.shape[0], out_channels) + tuple(out_shape))
    for p in range(kernel_h):
        for q in range(kernel_w):
            taps = _taps(x.astype(np.float64), geometry, out_shape, p, q)
            for g in range(groups):
                out[:, g * og:(g + 1) * og] += np.einsum(
                    "oc,ncij->noij", weight[g * og:(g + 1) * og, :, p, q],
                    taps[:, g * group_channels:(g + 1) * group_channels])
    return out if bias is None else out + bias[:, None, None]


def _dot(a, b):
    return float(np.vdot(a.astype(np.float64), b.astype(np.float64)))


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=_IDS)
@pytest.mark.parametrize("n", [1, 3])
def test_conv_matches_its_formula_and_adjoints_in_float64(c, rng, geometry, n):
    """out is the formula's; grad_x and grad_weight satisfy <conv(x), g> = <x, grad_x(g)> =
    <weight, grad_weight(g, x)> (no bias), grad_bias is grad_out's sum."""
    x, weight, bias, grad_out, geo, groups = _geometry_case(rng, np.float64, n, geometry)
    out, grad_x, grad_weight, grad_bias = _run(c, x, weight, bias, grad_out, geo, groups)
    np.testing.assert_allclose(out, _conv(x, weight, bias, geo, groups, grad_out.shape[2:]),
                               rtol=1e-12, atol=1e-12)
    product = _dot(_conv(x, weight, None, geo, groups, grad_out.shape[2:]), grad_out)
    scale = _dot(np.abs(_conv(np.abs(x), np.abs(weight), None, geo, groups,
                              grad_out.shape[2:])), np.abs(grad_out))
    assert abs(_dot(x, grad_x) - product) <= 1e-12 * scale
    assert abs(_dot(weight, grad_weight) - product) <= 1e-12 * scale
    np.testing.assert_allclose(grad_bias, grad_out.sum(axis=(0, 2, 3)), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_matches_the_reference(c, rng, geometry, dtype):
    """Every output against numpy_ref's kernels (the registry's tolerances), no fallback."""
    x, weight, bias, grad_out, geo, groups = _geometry_case(rng, dtype, 2, geometry)
    before = dict(c.FALLBACKS)
    got = _run(c, x, weight, bias, grad_out, geo, groups)
    assert dict(c.FALLBACKS) == before
    want = [np.empty_like(a) for a in got]
    numpy_ref.conv2d_fwd(x, weight, bias, *geo, groups, want[0])
    numpy_ref.conv2d_bwd_input(grad_out, weight, *geo, groups, want[1])
    numpy_ref.conv2d_bwd_weight(grad_out, x, *geo, groups, want[2], want[3])
    rtol, atol = backends.KERNELS["conv2d_fwd"].tolerances[np.dtype(dtype)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol * 10)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=_IDS)
def test_conv_matches_pytorch(c, rng, geometry):
    """Outputs and all three gradients against PyTorch's conv2d and its autograd."""
    torch = pytest.importorskip("torch")
    x, weight, bias, grad_out, geo, groups = _geometry_case(rng, np.float64, 2, geometry)
    got = _run(c, x, weight, bias, grad_out, geo, groups)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, weight, bias))
    out = torch.nn.functional.conv2d(tx, tw, tb, stride=geo[0:2], padding=geo[2:4],
                                     dilation=geo[4:6], groups=groups)
    out.backward(torch.tensor(grad_out))
    for g, w in zip(got, (out, tx.grad, tw.grad, tb.grad)):
        np.testing.assert_allclose(g, w.detach().numpy(), rtol=1e-11, atol=1e-11)


def test_conv_without_bias_and_with_empty_sizes(c, rng):
    """No bias (out is the bare product, grad_bias None); an empty batch gives zero weight
    and bias gradients; no output position leaves grad_x zero."""
    x, weight, _, grad_out, geo, groups = _geometry_case(rng, np.float64, 2, GEOMETRIES[0])
    out = np.empty_like(grad_out)
    c.conv2d_fwd(x, weight, None, *geo, groups, out)
    np.testing.assert_allclose(out, _conv(x, weight, None, geo, groups, out.shape[2:]),
                               rtol=1e-12, atol=1e-12)
    grad_weight = np.full_like(weight, np.nan)
    c.conv2d_bwd_weight(grad_out, x, *geo, groups, grad_weight, None)
    np.testing.assert_allclose(_dot(weight, grad_weight),
                               _dot(_conv(x, weight, None, geo, groups, out.shape[2:]),
                                    grad_out), rtol=1e-11)
    for group_channels, groups in ((4, 1), (1, 4)):  # products, and direct loops
        grad_weight, grad_bias = np.full((4, group_channels, 3, 3), np.nan), np.full(4, np.nan)
        c.conv2d_bwd_weight(np.empty((0, 4, 5, 5)), np.empty((0, 4, 5, 5)), *geo, groups,
                            grad_weight, grad_bias)
        assert not grad_weight.any() and not grad_bias.any()
        grad_x = np.full((2, 4, 5, 5), np.nan)
        c.conv2d_bwd_input(np.empty((2, 4, 0, 5)), rng.standard_normal(grad_weight.shape), *geo,
                           groups, grad_x)
        assert not grad_x.any()


# ----------------------------------------------------------------------------------- pooling
#: (label, (H, W), kernel, stride, padding, dilation, ceil_mode)
POOLS = [
    ("2x2-stride2", (8, 7), (2, 2), (2, 2), (0, 0), (1, 1), False),
    ("3x3-stride2-pad1", (9, 8), (3, 3), (2, 2), (1, 1), (1, 1), False),
    ("3x2-stride1-pad1-dilation2", (7, 8), (3, 2), (1, 1), (1, 1), (2, 2), False),
    ("3x3-stride2-pad1-ceil", (8, 9), (3, 3), (2, 2), (1, 1), (1, 1), True),
    ("4x3-stride3x2-pad2x1-ceil", (10, 7), (4, 3), (3, 2), (2, 1), (1, 1), True),
]
_POOL_IDS = [p[0] for p in POOLS]


def _pool_case(rng, dtype, pool, n=2, channels=3):
    """x with small integers (ties in most windows), the geometry and out's shape."""
    _, size, kernel, stride, pad, dil, ceil_mode = pool
    x = rng.integers(-3, 4, (n, channels) + size).astype(dtype)
    out_shape = (n, channels) + tuple(conv_output_size(*a, ceil_mode)
                                      for a in zip(size, kernel, stride, pad, dil))
    return x, kernel + stride + pad, dil, out_shape


def _window_positions(i, j, size, kernel, stride, pad, dil):
    """The in-image (row, column) of window (i, j)'s taps, in scan order."""
    return [(r, k) for p in range(kernel[0]) for q in range(kernel[1])
            for r, k in [(i * stride[0] - pad[0] + p * dil[0], j * stride[1] - pad[1] + q * dil[1])]
            if 0 <= r < size[0] and 0 <= k < size[1]]


def _max_pool(x, geometry, dil, out_shape):
    """PyTorch's max pooling as plain loops: the maximum, ties to the first, NaN wins (the
    last NaN), a window of -inf at its first element."""
    kernel, stride, pad = geometry[0:2], geometry[2:4], geometry[4:6]
    out, indices = np.empty(out_shape), np.empty(out_shape, np.int64)
    for n, ch, i, j in np.ndindex(*out_shape):
        where = _window_positions(i, j, x.shape[2:], kernel, stride, pad, dil)
        best, at = -np.inf, where[0][0] * x.shape[3] + where[0][1]
        for r, k in where:
            v = x[n, ch, r, k]
            if v > best or np.isnan(v):
                best, at = v, r * x.shape[3] + k
        out[n, ch, i, j], indices[n, ch, i, j] = best, at
    return out, indices


def _avg_pool(x, geometry, count_include_pad, divisor_override, out_shape):
    """PyTorch's average pooling as plain loops."""
    kernel, stride, pad = geometry[0:2], geometry[2:4], geometry[4:6]
    h, w = x.shape[2:]
    out = np.empty(out_shape)
    for n, ch, i, j in np.ndindex(*out_shape):
        top, left = i * stride[0] - pad[0], j * stride[1] - pad[1]
        bottom, right = min(top + kernel[0], h + pad[0]), min(left + kernel[1], w + pad[1])
        where = _window_positions(i, j, x.shape[2:], kernel, stride, pad, (1, 1))
        if divisor_override:
            divisor = divisor_override
        elif count_include_pad:
            divisor = (bottom - top) * (right - left)
        else:
            divisor = len(where)
        out[n, ch, i, j] = sum(x[n, ch, r, k] for r, k in where) / divisor if where else 0.0
    return out


@pytest.mark.parametrize("pool", POOLS, ids=_POOL_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_matches_its_loops(c, rng, pool, dtype):
    x, geometry, dil, out_shape = _pool_case(rng, dtype, pool)
    x[0, 0, 0, 0] = x[0, 0, 1, 1] = np.nan  # two NaNs in one window: the last wins
    x[1, 1] = -np.inf
    out, indices = np.full(out_shape, np.nan, dtype), np.full(out_shape, -7, np.int64)
    c.max_pool2d_fwd(x, *geometry, *dil, out, indices)
    want, want_indices = _max_pool(x, geometry, dil, out_shape)
    np.testing.assert_array_equal(out, want.astype(dtype))
    np.testing.assert_array_equal(indices, want_indices)
    grad_out = rng.standard_normal(out_shape).astype(dtype)
    grad_x = np.full_like(x, np.nan)
    c.max_pool2d_bwd(grad_out, indices, grad_x)
    expected = np.zeros(x.shape)
    for (n, ch, i, j), at in np.ndenumerate(indices):
        expected[n, ch].flat[at] += grad_out[n, ch, i, j]
    np.testing.assert_allclose(grad_x, expected, rtol=1e-6 if dtype == np.float32 else 1e-15)


@pytest.mark.parametrize("pool", [p for p in POOLS if p[5] == (1, 1)],
                         ids=[p[0] for p in POOLS if p[5] == (1, 1)])
@pytest.mark.parametrize("divisor", [(True, 0), (False, 0), (True, 5), (False, -2)],
                         ids=["include-pad", "exclude-pad", "override", "override-negative"])
def test_avg_pool_matches_its_loops_and_adjoint(c, rng, pool, divisor):
    x, geometry, _, out_shape = _pool_case(rng, np.float64, pool)
    x += rng.uniform(-0.5, 0.5, x.shape)
    out = np.full(out_shape, np.nan)
    c.avg_pool2d_fwd(x, *geometry, *divisor, out)
    np.testing.assert_allclose(out, _avg_pool(x, geometry, *divisor, out_shape), rtol=1e-14,
                               atol=1e-15)
    grad_out = rng.standard_normal(out_shape)
    grad_x = np.full_like(x, np.nan)
    c.avg_pool2d_bwd(grad_out, *geometry, *divisor, grad_x)
    assert _dot(grad_x, x) == pytest.approx(_dot(grad_out, out), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("pool", POOLS, ids=_POOL_IDS)
def test_pooling_matches_pytorch(c, rng, pool):
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    x, geometry, dil, out_shape = _pool_case(rng, np.float64, pool)
    x += rng.uniform(-0.5, 0.5, x.shape)
    kernel, stride, pad, ceil_mode = geometry[0:2], geometry[2:4], geometry[4:6], pool[6]
    tx = torch.tensor(x, requires_grad=True)
    want, want_indices = functional.max_pool2d(tx, kernel, stride, pad, dil, ceil_mode=ceil_mode,
                                               return_indices=True)
    grad_out = rng.standard_normal(out_shape)
    want.backward(torch.tensor(grad_out))
    out, indices, grad_x = np.empty(out_shape), np.empty(out_shape, np.int64), np.empty_like(x)
    c.max_pool2d_fwd(x, *geometry, *dil, out, indices)
    c.max_pool2d_bwd(grad_out, indices, grad_x)
    np.testing.assert_array_equal(out, want.detach().numpy())
    np.testing.assert_array_equal(indices, want_indices.numpy())
    np.testing.assert_allclose(grad_x, tx.grad.numpy(), rtol=1e-15)
    if dil != (1, 1):
        return
    for include, override in ((True, None), (False, None), (True, 3)):
        tx.grad = None
        want = functional.avg_pool2d(tx, kernel, stride, pad, ceil_mode=ceil_mode,
                                     count_include_pad=include, divisor_override=override)
        want.backward(torch.tensor(grad_out))
        c.avg_pool2d_fwd(x, *geometry, include, override or 0, out)
        c.avg_pool2d_bwd(grad_out, *geometry, include, override or 0, grad_x)
        np.testing.assert_allclose(out, want.detach().numpy(), rtol=1e-14)
        np.testing.assert_allclose(grad_x, tx.grad.numpy(), rtol=1e-14, atol=1e-15)


def test_max_pool_backward_with_an_index_outside_its_plane_runs_the_reference(c, rng):
    """The C loop skips the bad index; the call then runs the reference (which raises here,
    as np.add.at does), counted as a fallback."""
    grad_out = rng.standard_normal((1, 2, 2, 2))
    indices = np.zeros((1, 2, 2, 2), np.int64)
    indices[0, 1, 1, 1] = 16
    before = c.FALLBACKS.of("max_pool2d_bwd").get("indices outside their plane", 0)
    with pytest.raises(IndexError):
        c.max_pool2d_bwd(grad_out, indices, np.empty((1, 2, 4, 4)))
    assert c.FALLBACKS.of("max_pool2d_bwd")["indices outside their plane"] == before + 1


# --------------------------------------------------------------------------- threads, paths
def _conv_outputs_bytes(c, case):
    return [a.tobytes() for a in _run(c, *case)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [
    # (N, C, O, size, groups, kernel, padding): items in parallel (pieces of 11 items:
    # uneven), a 1x1 layer, one item in the product's blocks, depthwise planes in parallel,
    # one input channel (a product of depth 9)
    (11, 16, 16, (16, 16), 1, (3, 3), (1, 1)),
    (8, 32, 32, (16, 16), 1, (1, 1), (0, 0)),
    (1, 32, 64, (32, 32), 1, (3, 3), (1, 1)),
    (9, 32, 32, (32, 32), 32, (3, 3), (1, 1)),
    (16, 1, 32, (28, 28), 1, (3, 3), (1, 1)),
], ids=["batch", "pointwise", "one-item", "depthwise", "one-input-channel"])
def test_conv_is_bit_identical_for_one_and_two_threads(c, rng, threads, dtype, shape):
    n, channels, out_channels, size, groups, kernel, pad = shape
    case = _case(rng, dtype, n, channels, out_channels, size, kernel, pad=pad, groups=groups)
    threads(1)
    one = _conv_outputs_bytes(c, case)
    threads(2)
    assert _conv_outputs_bytes(c, case) == one


@pytest.mark.parametrize("dtype", DTYPES)
def test_pooling_is_bit_identical_for_one_and_two_threads(c, rng, threads, dtype):
    x = rng.standard_normal((8, 16, 32, 32)).astype(dtype)
    assert x.size >= c.PARALLEL_MIN["pool"]
    geometry, dil, out_shape = (3, 3, 2, 2, 1, 1), (1, 1), (8, 16, 16, 16)

    def run():
        out, indices = np.empty(out_shape, dtype), np.empty(out_shape, np.int64)
        grad_out = np.linspace(-1, 1, out.size).reshape(out_shape).astype(dtype)
        grads = [np.empty_like(x) for _ in range(2)]
        c.max_pool2d_fwd(x, *geometry, *dil, out, indices)
        c.max_pool2d_bwd(grad_out, indices, grads[0])
        averages = np.empty(out_shape, dtype)
        c.avg_pool2d_fwd(x, *geometry, False, 0, averages)
        c.avg_pool2d_bwd(grad_out, *geometry, False, 0, grads[1])
        return [a.tobytes() for a in (out, indices, averages, *grads)]
    threads(1)
    one = run()
    threads(2)
    assert run() == one


def test_arguments_the_c_code_does_not_take_run_the_reference(c, rng):
    """float16, a strided view and a float geometry value run the reference, counted."""
    x, weight, bias, grad_out, geo, groups = _geometry_case(rng, np.float64, 2, GEOMETRIES[0])
    want = np.empty_like(grad_out)
    numpy_ref.conv2d_fwd(x, weight, bias, *geo, groups, want)
    before = sum(c.FALLBACKS.of("conv2d_fwd").values())
    for args in ((x.astype(np.float16), weight.astype(np.float16), bias.astype(np.float16)),
                 (np.asfortranarray(x), weight, bias)):
        out = np.empty(grad_out.shape, args[0].dtype)
        c.conv2d_fwd(*args, *geo, groups, out)
        np.testing.assert_allclose(out, want, rtol=2e-2, atol=5e-2)
    assert sum(c.FALLBACKS.of("conv2d_fwd").values()) == before + 2
    assert c.FALLBACKS.of("conv2d_fwd").get("a strided array")


# -------------------------------------------------------------------------------- C alone
_PROGRAM = r"""
#include <stddef.h>
#include "fastgrad.h"

int main(void)
{
    /* a depthwise 3x3 convolution (one channel per group: no BLAS needed) of a 1x2x3x3
     * image of ones, padding 1: the centre sees the 9 taps, a corner 4 */
    double x[18], w[18], bias[2] = {0.5, -1.0}, out[18], gx[18], gw[18], gb[2];
    for (int i = 0; i < 18; i++)
        x[i] = 1.0, w[i] = i < 9 ? 1.0 : 2.0;
    fg_window2d g = {1, 2, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1};
    if (fg_conv2d_fwd_f64(x, w, bias, &g, 2, 2, out, NULL) != FG_OK)
        return 10;
    if (out[4] != 9.5 || out[0] != 4.5 || out[13] != 17.0 || out[9] != 7.0)
        return 11;
    if (fg_conv2d_bwd_input_f64(out, w, &g, 2, 2, gx, NULL) != FG_OK ||
        fg_conv2d_bwd_weight_f64(out, x, &g, 2, 2, gw, gb, NULL) != FG_OK)
        return 12;
    if (gb[0] != 4 * 4.5 + 4 * 6.5 + 9.5 || gw[4] != gb[0])
        return 13;
    /* refused with nothing written: a zero stride, groups not dividing the channels, and a
     * product (two channels per group) without a BLAS */
    g.stride_w = 0;
    out[0] = -1;
    if (fg_conv2d_fwd_f64(x, w, bias, &g, 2, 2, out, NULL) != FG_ERR_GEOMETRY || out[0] != -1)
        return 14;
    g.stride_w = 1;
    if (fg_conv2d_fwd_f64(x, w, bias, &g, 3, 3, out, NULL) != FG_ERR_GEOMETRY ||
        fg_conv2d_fwd_f64(x, w, bias, &g, 1, 1, out, NULL) != FG_ERR_BLAS)
        return 15;
    /* 2x2 max and average pooling of 0..8 in a 3x3 plane, stride 1 */
    float plane[9], pooled[4];
    int64_t at[4];
    for (int i = 0; i < 9; i++)
        plane[i] = (float)i;
    fg_window2d p = {1, 1, 3, 3, 2, 2, 2, 2, 1, 1, 0, 0, 1, 1};
    if (fg_max_pool2d_fwd_f32(plane, &p, pooled, at, FG_PAR_POOL) != FG_OK || pooled[0] != 4 ||
        at[3] != 8)
        return 16;
    if (fg_avg_pool2d_fwd_f32(plane, &p, 1, 0, pooled, FG_PAR_POOL) != FG_OK || pooled[0] != 2)
        return 17;
    at[0] = 9;
    if (fg_max_pool2d_bwd_f32(pooled, at, 1, 9, 4, plane, FG_PAR_POOL) != 1)
        return 18;
    p.dil_h = 2;
    if (fg_avg_pool2d_fwd_f32(plane, &p, 1, 0, pooled, FG_PAR_POOL) != FG_ERR_GEOMETRY)
        return 19;
    return 0;
}
"""


def test_kernels_from_c_alone(tmp_path):
    """The header and csrc/conv.c (with gemm.c, whose blocks it calls) from C alone."""
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler (cc) on PATH")
    program = tmp_path / "program.c"
    program.write_text(_PROGRAM)
    binary = tmp_path / "program"
    build = subprocess.run(
        [compiler, "-O1", "-std=c11", "-Wall", "-Werror", "-Wno-unknown-pragmas", f"-I{CSRC}",
         str(program), str(CSRC / "conv.c"), str(CSRC / "gemm.c"), "-o", str(binary), "-lm"],
        capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(binary)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, f"check {run.returncode} failed in C"
