"""The Numba convolution and pooling kernels (fastgrad/backends/numba_cpu/_conv.py) beyond the
generated parity (tests/test_backend_parity.py: the registry's small examples): every geometry
against float64 NumPy checks of this file's own (loops over taps and windows, independent of
the reference's sliding windows), the tiled and the long-copy unfolding, the direct
(depthwise) loops, the parallel paths bit-identical to the serial ones and across thread
counts, pooling's ties, NaN and ceil-mode windows, fallbacks, PyTorch as the oracle where it
is installed, and the jitted bodies run as plain Python."""

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from fastgrad.backends import numpy_ref as reference  # noqa: E402
from fastgrad.backends.numba_cpu import _conv as conv  # noqa: E402
from fastgrad.backends.numba_cpu import _layers as layers  # noqa: E402



# ------------------------------------------------------------------------- NumPy checks
def _out_size(size, kernel, stride, pad, dil, ceil_mode=False):
    """PyTorch's output size (ceil_mode: the last window starts inside the padded input)."""
    span = size + 2 * pad - dil * (kernel - 1) - 1
    count = (-(-span // stride) if ceil_mode else span // stride) + 1
    return count - 1 if ceil_mode and (count - 1) * stride >= size + pad else count


def _taps(x, kh, kw, stride, pad, dil, oh, ow):
    """(N, C, KH, KW, OH, OW): tap (p, q) of window (i, j), 0 outside the image, and the
    padded shape."""
    n, c, h, w = x.shape
    xp = np.zeros((n, c, h + 2 * pad[0] + dil[0] * kh + stride[0] * oh,
                   w + 2 * pad[1] + dil[1] * kw + stride[1] * ow))
    xp[:, :, pad[0]:pad[0] + h, pad[1]:pad[1] + w] = x
    taps = np.empty((n, c, kh, kw, oh, ow))
    for p in range(kh):
        for q in range(kw):
            taps[:, :, p, q] = xp[:, :, p * dil[0]:p * dil[0] + stride[0] * oh:stride[0],
                                  q * dil[1]:q * dil[1] + stride[1] * ow:stride[1]]
    return taps, xp.shape


def _conv_check(x, weight, bias, grad_out, stride, pad, dil, groups):
    """float64 ``(out, grad_x, grad_weight, grad_bias)`` of a convolution, tap by tap."""
    x, weight, grad_out = (a.astype(np.float64) for a in (x, weight, grad_out))
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    oh, ow = grad_out.shape[2:]
    taps, padded = _taps(x, kh, kw, stride, pad, dil, oh, ow)
    taps = taps.reshape(n, groups, cg, kh, kw, oh, ow)
    wg = weight.reshape(groups, o // groups, cg, kh, kw)
    out = np.einsum("gocpq,ngcpqij->ngoij", wg, taps).reshape(n, o, oh, ow)
    if bias is not None:
        out += bias[:, None, None]
    go = grad_out.reshape(n, groups, o // groups, oh, ow)
    grad_weight = np.einsum("ngoij,ngcpqij->gocpq", go, taps).reshape(weight.shape)
    grad_taps = np.einsum("gocpq,ngoij->ngcpqij", wg, go).reshape(n, c, kh, kw, oh, ow)
    gxp = np.zeros(padded)
    for p in range(kh):
        for q in range(kw):
            gxp[:, :, p * dil[0]:p * dil[0] + stride[0] * oh:stride[0],
                q * dil[1]:q * dil[1] + stride[1] * ow:stride[1]] += grad_taps[:, :, p, q]
    grad_x = gxp[:, :, pad[0]:pad[0] + h, pad[1]:pad[1] + w]
    return out, grad_x, grad_weight, grad_out.sum(axis=(0, 2, 3))


def _run_conv(x, weight, bias, grad_out, stride, pad, dil, groups, with_bias_grad=True):
    """The three Numba kernels, outputs pre-filled with NaN (every element must be written)."""
    geometry = (*stride, *pad, *dil, groups)
    out = np.full(grad_out.shape, np.nan, x.dtype)
    grad_x = np.full(x.shape, np.nan, x.dtype)
    grad_weight = np.full(weight.shape, np.nan, x.dtype)
    grad_bias = np.full(weight.shape[0], np.nan, x.dtype) if with_bias_grad else None
    conv.conv2d_fwd(x, weight, bias, *geometry, out)
    conv.conv2d_bwd_input(grad_out, weight, *geometry, grad_x)
    conv.conv2d_bwd_weight(grad_out, x, *geometry, grad_weight, grad_bias)
    return out, grad_x, grad_weight, grad_bias


def _conv_case(rng, dtype, n, c, h, w, o, kh, kw, stride=(1, 1), pad=(0, 0), dil=(1, 1),
               groups=1, bias=True):
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((o, c // groups, kh, kw)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype) if bias else None
    oh, ow = (_out_size(h, kh, stride[0], pad[0], dil[0]),
              _out_size(w, kw, stride[1], pad[1], dil[1]))
    grad_out = rng.standard_normal((n, o, oh, ow)).astype(dtype)
    return x, weight, b, grad_out, stride, pad, dil, groups


def _assert_conv(actual, expected, dtype, scale=1.0):
    rtol, atol = (2e-5, 2e-5 * scale) if dtype == np.float32 else (1e-12, 1e-12 * scale)
    for name, a, e in zip(("out", "grad_x", "grad_weight", "grad_bias"), actual, expected):
        if a is not None:
            np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=name)


#: (N, C, H, W, O, KH, KW, stride, pad, dilation, groups) by label: the GEMM path (3x3, a batch
#: that the weight gradient's blocks share unevenly, strided, dilated, grouped, non-square, 1x1
#: with and without unfolding, one input channel with many outputs), the long-copy unfolding
#: (stride 1, as many output as input columns) and the row-by-row one, windows larger than the
#: image, padding beyond the kernel, input rows no window reads, and the direct loops
#: (depthwise, with 2 outputs per channel).
CONV_GEOMETRIES = {
    "3x3-pad1": (2, 3, 7, 6, 4, 3, 3, (1, 1), (1, 1), (1, 1), 1),
    "batch-of-9-in-8-blocks": (9, 3, 5, 5, 4, 3, 3, (1, 1), (1, 1), (1, 1), 1),
    "3x3-stride2": (2, 4, 9, 8, 6, 3, 3, (2, 2), (1, 1), (1, 1), 1),
    "3x3-dilation2-same": (2, 3, 7, 9, 4, 3, 3, (1, 1), (2, 2), (2, 2), 1),
    "3x3-dilation2-pad2x1": (2, 3, 9, 10, 4, 3, 3, (1, 1), (2, 1), (2, 2), 1),
    "2x3-groups2-stride2x1": (2, 4, 9, 8, 6, 2, 3, (2, 1), (1, 0), (1, 2), 2),
    "5x5-pad2-same": (2, 3, 8, 8, 4, 5, 5, (1, 1), (2, 2), (1, 1), 1),
    "3x3-valid-wide": (2, 3, 6, 9, 4, 3, 3, (1, 1), (0, 0), (1, 1), 1),
    "5x5-larger-than-image": (5, 3, 4, 4, 2, 5, 5, (1, 1), (2, 2), (1, 1), 1),
    "pad-beyond-kernel": (1, 2, 3, 3, 2, 3, 3, (3, 3), (3, 3), (2, 2), 1),
    "rows-no-window-reads": (2, 2, 8, 8, 3, 2, 2, (3, 3), (0, 0), (1, 1), 1),
    "1x1": (2, 8, 5, 7, 4, 1, 1, (1, 1), (0, 0), (1, 1), 1),
    "1x1-stride2": (2, 8, 5, 7, 4, 1, 1, (2, 2), (0, 0), (1, 1), 1),
    "1x1-groups4": (2, 8, 5, 7, 4, 1, 1, (1, 1), (0, 0), (1, 1), 4),
    "one-input-channel": (2, 1, 9, 9, 8, 3, 3, (1, 1), (1, 1), (1, 1), 1),
    "depthwise": (3, 6, 8, 8, 6, 3, 3, (1, 1), (1, 1), (1, 1), 6),
    "depthwise-x2-strided-dilated": (3, 6, 8, 8, 12, 3, 3, (2, 2), (2, 1), (2, 1), 6),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("geometry", CONV_GEOMETRIES)
def test_conv_matches_numpy_check(rng, geometry, bias, dtype):
    case = _conv_case(rng, dtype, *CONV_GEOMETRIES[geometry], bias=bias)
    expected = _conv_check(*case)
    _assert_conv(_run_conv(*case, with_bias_grad=bias), expected, dtype,
                 scale=np.sqrt(case[1][0].size))


def test_unreached_input_rows_get_zero_gradient(rng):
    x, weight, bias, grad_out, *geometry = _conv_case(
        rng, np.float64, *CONV_GEOMETRIES["rows-no-window-reads"])
    grad_x = _run_conv(x, weight, bias, grad_out, *geometry)[1]
    assert np.all(grad_x[:, :, 2::3] == 0) and np.all(grad_x[:, :, :, 2::3] == 0)
    assert np.all(grad_x[:, :, :2, :2] != 0)


@pytest.mark.parametrize("geometry", ["depthwise", "3x3-pad1", "1x1"])
def test_non_finite_weight_stays_in_its_output_channel(rng, geometry):
    """An inf weight leaves the other output channels exact (no ``weight * 0`` stands in for
    a missing bias)."""
    x, weight, _, grad_out, stride, pad, dil, groups = _conv_case(
        rng, np.float64, *CONV_GEOMETRIES[geometry])
    weight[0, 0, 0, 0] = np.inf
    out = np.empty(grad_out.shape)
    conv.conv2d_fwd(x, weight, None, *stride, *pad, *dil, groups, out)
    finite = weight.copy()
    finite[0] = 0
    expected = _conv_check(x, finite, None, grad_out, stride, pad, dil, groups)[0]
    np.testing.assert_allclose(out[:, 1:], expected[:, 1:], rtol=1e-12, atol=1e-12)
    assert np.isinf(out[:, 0]).any()


@pytest.mark.parametrize("geometry", ["3x3-pad1", "3x3-stride2", "3x3-dilation2-same",
                                      "2x3-groups2-stride2x1"])
def test_tiles_of_output_rows(rng, monkeypatch, geometry):
    """Columns cut into tiles of one or two output rows (the forward's tiles on several
    threads, the gradients' tiles in order on one) give the untiled results."""
    case = _conv_case(rng, np.float64, *CONV_GEOMETRIES[geometry])
    whole = _run_conv(*case)
    depth = case[1][0].size
    monkeypatch.setattr(conv, "TILE_BYTES", depth * 8 * case[3].shape[3] * 2)
    monkeypatch.setattr(conv, "CONV_PARALLEL_MIN", 0)
    assert _plan(case)[1:3] == (1, -(-case[3].shape[2] // 2))
    tiled = _run_conv(*case)
    _assert_conv(tiled, whole, np.float64)
    _assert_conv(tiled, _conv_check(*case), np.float64, scale=np.sqrt(depth))


def _plan(case):
    """The GEMM plan of a case: (groups, items, tiles, H, W, OH, OW, columns, same)."""
    x, weight, _, grad_out, stride, pad, dil, groups = case
    geometry = conv._geometry(*weight.shape[2:], *stride, *pad, *dil)
    return conv._gemm_plan(x.shape[0], *x.shape[2:], *grad_out.shape[2:], groups,
                           weight[0].size, weight.shape[0] // groups, x.dtype, geometry, False,
                           lambda items, tiles: 1, 0)[0]


@pytest.mark.parametrize("geometry", ["3x3-pad1", "3x3-dilation2-same", "5x5-pad2-same",
                                      "1x1-groups4", "3x3-stride2", "2x3-groups2-stride2x1"])
def test_items_side_by_side(rng, monkeypatch, geometry):
    """Small images, several batch items per product (and a last unit with fewer), serial
    and parallel, staged when "same" (stride 1, output as large as the input), give the
    one-item results."""
    _, *rest = CONV_GEOMETRIES[geometry]
    case = _conv_case(rng, np.float64, 22, *rest)
    plan = _plan(case)
    assert plan[1] > 1 and plan[8] == (case[3].shape[2:] == case[0].shape[2:])
    batched = _run_conv(*case)
    monkeypatch.setattr(conv, "CONV_PARALLEL_MIN", 0)
    _assert_conv(_run_conv(*case), batched, np.float64)
    monkeypatch.setattr(conv, "BATCH_COLUMNS", 1)
    assert _plan(case)[1] == 1
    _assert_conv(_run_conv(*case), batched, np.float64)
    _assert_conv(batched, _conv_check(*case), np.float64, scale=np.sqrt(case[1][0].size))


# ------------------------------------------------------------------ determinism, threads
@pytest.fixture
def threads():
    """The thread counts to compare (1, and 2 where Numba's pool has 2); restores the count."""
    before = numba.get_num_threads()
    yield [n for n in (1, 2) if n <= numba.config.NUMBA_NUM_THREADS]
    numba.set_num_threads(before)


def _per_thread_count(counts, run):
    results = []
    for count in counts:
        numba.set_num_threads(count)
        results.append(run())
    return results


def _assert_identical(results):
    for other in results[1:]:
        for a, b in zip(results[0], other):
            if a is not None:
                np.testing.assert_array_equal(a, b)


def test_conv_bit_identical_across_thread_counts(rng, threads):
    """A shape above the parallel threshold: the forward's units, the input gradient's
    items and the weight gradient's batch blocks on 1 and 2 threads, bit for bit; the result
    right as well."""
    case = _conv_case(rng, np.float32, 16, 8, 12, 12, 16, 3, 3, pad=(1, 1))
    assert case[3].size * 72 >= conv.CONV_PARALLEL_MIN
    results = _per_thread_count(threads, lambda: _run_conv(*case))
    _assert_identical(results)
    _assert_conv(results[0], _conv_check(*case), np.float32, scale=np.sqrt(72))


@pytest.mark.parametrize("geometry", ["depthwise-x2-strided-dilated", "1x1-groups4",
                                      "2x3-groups2-stride2x1"])
def test_parallel_paths_match_serial(rng, monkeypatch, threads, geometry):
    """Every convolution path forced parallel on small shapes (several pieces of planes for
    the direct loops) is bit-identical to its serial run and across thread counts."""
    n, *rest = CONV_GEOMETRIES[geometry]
    case = _conv_case(rng, np.float64, n + 7, *rest)
    serial = _run_conv(*case)
    monkeypatch.setattr(conv, "CONV_PARALLEL_MIN", 0)
    monkeypatch.setattr(conv, "CHUNK", 1)
    _assert_identical([serial] + _per_thread_count(threads, lambda: _run_conv(*case)))


# -------------------------------------------------------------------------------- pooling
def _max_pool_check(x, kernel, stride, pad, dil, oh, ow):
    """``(out, indices)`` of max pooling by a loop over windows: PyTorch's
    ``v > best or isnan(v)`` from the first element inside the window."""
    n, c, h, w = x.shape
    out = np.empty((n, c, oh, ow), x.dtype)
    indices = np.empty((n, c, oh, ow), np.int64)
    for i in range(oh):
        for j in range(ow):
            rows = [r for r in range(i * stride[0] - pad[0],
                                     i * stride[0] - pad[0] + dil[0] * kernel[0], dil[0])
                    if 0 <= r < h]
            cols = [s for s in range(j * stride[1] - pad[1],
                                     j * stride[1] - pad[1] + dil[1] * kernel[1], dil[1])
                    if 0 <= s < w]
            flat = [r * w + s for r in rows for s in cols]
            values = x.reshape(n, c, h * w)[:, :, flat]
            pick = np.zeros((n, c), np.int64)
            best = values[:, :, 0].copy()
            for k in range(1, len(flat)):
                v = values[:, :, k]
                better = (v > best) | np.isnan(v)
                best = np.where(better, v, best)
                pick = np.where(better, k, pick)
            out[:, :, i, j] = best
            indices[:, :, i, j] = np.asarray(flat)[pick]
    return out, indices


def _avg_pool_check(x, kernel, stride, pad, count_include_pad, divisor_override, oh, ow):
    n, c, h, w = x.shape
    out = np.empty((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            h0, w0 = i * stride[0] - pad[0], j * stride[1] - pad[1]
            h1, w1 = min(h0 + kernel[0], h + pad[0]), min(w0 + kernel[1], w + pad[1])
            padded = (h1 - h0) * (w1 - w0)
            h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, h), min(w1, w)
            divisor = (divisor_override or (padded if count_include_pad
                                            else (h1 - h0) * (w1 - w0)))
            out[:, :, i, j] = x[:, :, h0:h1, w0:w1].astype(np.float64).sum(axis=(2, 3)) / divisor
    return out


def _pool_backward_check(grad_out, windows_of, shape):
    """The adjoint of a pooling forward given as ``windows_of(i, j) -> [(flat, weight)]``."""
    n, c = grad_out.shape[:2]
    grad = np.zeros((n, c, shape[0] * shape[1]))
    for i in range(grad_out.shape[2]):
        for j in range(grad_out.shape[3]):
            for flat, weight in windows_of(i, j):
                np.add.at(grad, (slice(None), slice(None), flat), grad_out[:, :, i, j] * weight)
    return grad.reshape(n, c, *shape)


#: (shape, kernel, stride, pad, dilation, ceil_mode) by label: 2x2 stride 2, ResNet's 3x3 of
#: stride 2 with padding, overlapping dilated non-square windows, ceil_mode's clipped last
#: window.
POOL_GEOMETRIES = {
    "2x2-stride2": ((2, 3, 8, 8), (2, 2), (2, 2), (0, 0), (1, 1), False),
    "3x3-stride2-pad1": ((2, 3, 9, 7), (3, 3), (2, 2), (1, 1), (1, 1), False),
    "3x2-stride1-pad1-dilation2": ((2, 3, 9, 10), (3, 2), (1, 1), (1, 1), (2, 2), False),
    "3x3-stride2-pad1-ceil": ((2, 3, 10, 11), (3, 3), (2, 2), (1, 1), (1, 1), True),
    "2x3-stride3x2-ceil": ((2, 3, 10, 11), (2, 3), (3, 2), (1, 0), (1, 1), True),
}


def _pool_case(geometry, dilated=True):
    """The geometry and its output size; ``dilated`` False: without the dilation (average
    pooling has none)."""
    shape, kernel, stride, pad, dil, ceil_mode = POOL_GEOMETRIES[geometry]
    dil = dil if dilated else (1, 1)
    oh = _out_size(shape[2], kernel[0], stride[0], pad[0], dil[0], ceil_mode)
    ow = _out_size(shape[3], kernel[1], stride[1], pad[1], dil[1], ceil_mode)
    return shape, kernel, stride, pad, dil, oh, ow


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geometry", POOL_GEOMETRIES)
def test_max_pool_matches_numpy_check(rng, geometry, dtype):
    """Small integers (ties in most windows), NaN and -inf; the maxima, their indices and
    the gradient (summed where overlapping windows pick one element)."""
    shape, kernel, stride, pad, dil, oh, ow = _pool_case(geometry)
    x = rng.integers(-3, 4, shape).astype(dtype)
    flat = x.reshape(-1)
    flat[::13] = np.nan
    flat[5::17] = -np.inf
    out = np.empty((*shape[:2], oh, ow), dtype)
    indices = np.empty(out.shape, np.int64)
    conv.max_pool2d_fwd(x, *kernel, *stride, *pad, *dil, out, indices)
    expected, expected_indices = _max_pool_check(x, kernel, stride, pad, dil, oh, ow)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(indices, expected_indices)

    grad_out = rng.standard_normal(out.shape).astype(dtype)
    grad_x = np.full(x.shape, np.nan, dtype)
    conv.max_pool2d_bwd(grad_out, indices, grad_x)
    check = np.zeros((shape[0] * shape[1], shape[2] * shape[3]))
    np.add.at(check, (np.arange(check.shape[0])[:, None], indices.reshape(check.shape[0], -1)),
              grad_out.reshape(check.shape[0], -1))
    np.testing.assert_allclose(grad_x.reshape(check.shape), check, rtol=1e-6, atol=1e-6)
    if stride[0] < kernel[0]:
        assert np.bincount(indices[0, 0].reshape(-1)).max() > 1  # repeated indices summed


def test_max_pool_window_of_minus_inf_takes_its_first_element():
    x = np.full((1, 1, 4, 4), -np.inf, np.float32)
    out = np.empty((1, 1, 2, 2), np.float32)
    indices = np.empty(out.shape, np.int64)
    conv.max_pool2d_fwd(x, 3, 3, 2, 2, 1, 1, 1, 1, out, indices)
    assert np.all(out == -np.inf)
    np.testing.assert_array_equal(indices[0, 0], [[0, 1], [4, 5]])


def test_max_pool_backward_rejects_an_index_outside_the_plane():
    indices = np.array([[[[0, 16]]]], np.int64)
    with pytest.raises(IndexError, match="16"):
        conv.max_pool2d_bwd(np.ones((1, 1, 1, 2), np.float32), indices,
                            np.empty((1, 1, 4, 4), np.float32))


@pytest.mark.parametrize("divisor", [(True, 0), (False, 0), (True, 3)],
                         ids=["include-pad", "exclude-pad", "divisor-override"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geometry", POOL_GEOMETRIES)
def test_avg_pool_matches_numpy_check(rng, geometry, dtype, divisor):
    shape, kernel, stride, pad, _, oh, ow = _pool_case(geometry, dilated=False)
    count_include_pad, divisor_override = divisor
    x = rng.standard_normal(shape).astype(dtype)
    out = np.full((*shape[:2], oh, ow), np.nan, dtype)
    conv.avg_pool2d_fwd(x, *kernel, *stride, *pad, count_include_pad, divisor_override, out)
    expected = _avg_pool_check(x, kernel, stride, pad, count_include_pad, divisor_override, oh,
                               ow)
    tolerance = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(out, expected, rtol=tolerance, atol=tolerance)

    grad_out = rng.standard_normal(out.shape).astype(dtype)
    grad_x = np.full(shape, np.nan, dtype)
    conv.avg_pool2d_bwd(grad_out, *kernel, *stride, *pad, count_include_pad, divisor_override,
                        grad_x)
    # the forward is linear: its adjoint is read off the forward of each unit input
    ones = np.eye(shape[2] * shape[3]).reshape(-1, 1, shape[2], shape[3])
    response = _avg_pool_check(ones, kernel, stride, pad, count_include_pad, divisor_override,
                               oh, ow).reshape(shape[2] * shape[3], oh * ow)
    check = (grad_out.reshape(shape[0] * shape[1], oh * ow) @ response.T).reshape(shape)
    np.testing.assert_allclose(grad_x, check, rtol=10 * tolerance, atol=10 * tolerance)


def test_pooling_bit_identical_across_thread_counts(rng, threads):
    """Above the parallel threshold, pieces of planes on 1 and 2 threads, bit for bit."""
    x = rng.standard_normal((8, 16, 24, 24)).astype(np.float32)
    assert x.size >= conv.POOL_PARALLEL_MIN
    grad_out = rng.standard_normal((8, 16, 12, 12)).astype(np.float32)

    def run():
        out, indices = np.empty_like(grad_out), np.empty(grad_out.shape, np.int64)
        conv.max_pool2d_fwd(x, 3, 3, 2, 2, 1, 1, 1, 1, out, indices)
        grad_x = np.empty_like(x)
        conv.max_pool2d_bwd(grad_out, indices, grad_x)
        avg, avg_grad = np.empty_like(grad_out), np.empty_like(x)
        conv.avg_pool2d_fwd(x, 3, 3, 2, 2, 1, 1, False, 0, avg)
        conv.avg_pool2d_bwd(grad_out, 3, 3, 2, 2, 1, 1, False, 0, avg_grad)
        return out, indices, grad_x, avg, avg_grad

    results = _per_thread_count(threads, run)
    _assert_identical(results)
    expected, expected_indices = _max_pool_check(x, (3, 3), (2, 2), (1, 1), (1, 1), 12, 12)
    np.testing.assert_array_equal(results[0][0], expected)
    np.testing.assert_array_equal(results[0][1], expected_indices)


# ------------------------------------------------------------------- fallbacks and edges
def _conv_args(rng, dtype):
    x, weight, bias, grad_out, stride, pad, dil, groups = _conv_case(
        rng, dtype, *CONV_GEOMETRIES["3x3-stride2"])
    return x, weight, bias, grad_out, (*stride, *pad, *dil, groups)


def test_float16_and_strided_arrays_fall_back_counted(rng):
    x, weight, bias, grad_out, geometry = _conv_args(rng, np.float16)
    before = dict(layers.FALLBACKS.of("conv2d_fwd"))
    out, expected = np.empty(grad_out.shape, np.float16), np.empty(grad_out.shape, np.float16)
    conv.conv2d_fwd(x, weight, bias, *geometry, out)
    reference.conv2d_fwd(x, weight, bias, *geometry, expected)
    np.testing.assert_array_equal(out, expected)
    assert layers.FALLBACKS.of("conv2d_fwd").get("float16", 0) == before.get("float16", 0) + 1

    x, weight, bias, grad_out, geometry = _conv_args(rng, np.float32)
    wide = np.repeat(x, 2, axis=3)[:, :, :, ::2]
    assert not wide.flags.c_contiguous
    out, expected = np.empty_like(grad_out), np.empty_like(grad_out)
    conv.conv2d_fwd(wide, weight, bias, *geometry, out)
    reference.conv2d_fwd(x, weight, bias, *geometry, expected)
    np.testing.assert_array_equal(out, expected)
    assert layers.FALLBACKS.of("conv2d_fwd").get("a strided array", 0) == \
        before.get("a strided array", 0) + 1


def test_without_blas_gemm_convolutions_fall_back_depthwise_runs(rng, monkeypatch):
    monkeypatch.setattr(conv.blas, "AVAILABLE", False)
    x, weight, bias, grad_out, geometry = _conv_args(rng, np.float64)
    before = layers.FALLBACKS.of("conv2d_bwd_weight").get("no usable BLAS", 0)
    grad_weight, expected = np.empty_like(weight), np.empty_like(weight)
    grad_bias, expected_bias = np.empty_like(bias), np.empty_like(bias)
    conv.conv2d_bwd_weight(grad_out, x, *geometry, grad_weight, grad_bias)
    reference.conv2d_bwd_weight(grad_out, x, *geometry, expected, expected_bias)
    np.testing.assert_array_equal(grad_weight, expected)
    assert layers.FALLBACKS.of("conv2d_bwd_weight")["no usable BLAS"] == before + 1

    case = _conv_case(rng, np.float64, *CONV_GEOMETRIES["depthwise"])
    counted = sum(layers.FALLBACKS.values())
    _assert_conv(_run_conv(*case), _conv_check(*case), np.float64, scale=3.0)
    assert sum(layers.FALLBACKS.values()) == counted


def test_empty_batch(rng):
    x, weight, bias, grad_out, geometry = _conv_args(rng, np.float32)
    x, grad_out = x[:0], grad_out[:0]
    out = np.empty_like(grad_out)
    conv.conv2d_fwd(x, weight, bias, *geometry, out)
    conv.conv2d_bwd_input(grad_out, weight, *geometry, np.empty_like(x))
    grad_weight, grad_bias = np.full_like(weight, np.nan), np.full_like(bias, np.nan)
    conv.conv2d_bwd_weight(grad_out, x, *geometry, grad_weight, grad_bias)
    assert np.all(grad_weight == 0) and np.all(grad_bias == 0)


# ------------------------------------------------------------------------------- PyTorch
@pytest.mark.parametrize("geometry", ["3x3-stride2", "2x3-groups2-stride2x1",
                                      "3x3-dilation2-pad2x1", "depthwise-x2-strided-dilated",
                                      "1x1-groups4"])
def test_conv_matches_pytorch(rng, geometry):
    torch = pytest.importorskip("torch")
    x, weight, bias, grad_out, stride, pad, dil, groups = _conv_case(
        rng, np.float64, *CONV_GEOMETRIES[geometry])
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, weight, bias))
    y = torch.nn.functional.conv2d(tx, tw, tb, stride, pad, dil, groups)
    y.backward(torch.tensor(grad_out))
    expected = (y.detach().numpy(), tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy())
    actual = _run_conv(x, weight, bias, grad_out, stride, pad, dil, groups)
    _assert_conv(actual, expected, np.float64, scale=10.0)


@pytest.mark.parametrize("geometry", POOL_GEOMETRIES)
def test_pooling_matches_pytorch(rng, geometry):
    torch = pytest.importorskip("torch")
    shape, kernel, stride, pad, dil, oh, ow = _pool_case(geometry)
    ceil_mode = POOL_GEOMETRIES[geometry][5]
    x = rng.integers(-3, 4, shape).astype(np.float32)
    x.reshape(-1)[::11] = np.nan
    out = np.empty((*shape[:2], oh, ow), np.float32)
    indices = np.empty(out.shape, np.int64)
    conv.max_pool2d_fwd(x, *kernel, *stride, *pad, *dil, out, indices)
    t_out, t_indices = torch.nn.functional.max_pool2d(
        torch.tensor(x), kernel, stride, pad, dil, ceil_mode=ceil_mode, return_indices=True)
    np.testing.assert_array_equal(out, t_out.numpy())
    np.testing.assert_array_equal(indices, t_indices.numpy())

    shape, kernel, stride, pad, _, oh, ow = _pool_case(geometry, dilated=False)
    x = rng.standard_normal(shape).astype(np.float32)
    grad_out = rng.standard_normal((*shape[:2], oh, ow)).astype(np.float32)
    for count_include_pad, divisor_override in ((True, 0), (False, 0), (True, 5)):
        tx = torch.tensor(x, requires_grad=True)
        y = torch.nn.functional.avg_pool2d(tx, kernel, stride, pad, ceil_mode, count_include_pad,
                                           divisor_override or None)
        y.backward(torch.tensor(grad_out))
        avg, grad_x = np.empty_like(grad_out), np.empty_like(x)
        conv.avg_pool2d_fwd(x, *kernel, *stride, *pad, count_include_pad, divisor_override, avg)
        conv.avg_pool2d_bwd(grad_out, *kernel, *stride, *pad, count_include_pad,
                            divisor_override, grad_x)
        np.testing.assert_allclose(avg, y.detach().numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(grad_x, tx.grad.numpy(), rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------- as plain Python
_PLAIN_PYTHON = """
import copy
import numpy as np
from fastgrad.backends import KERNELS
from fastgrad.backends.numba_cpu import _conv as conv

assert not hasattr(conv._im2col, "py_func"), "NUMBA_DISABLE_JIT did not apply"
checked = 0
for parallel in (False, True):
    conv.CONV_PARALLEL_MIN = 0 if parallel else 1 << 62
    conv.POOL_PARALLEL_MIN = 0 if parallel else 1 << 62
    # parallel: one output row per tile; serial: a batch of 8, two items side by side
    conv.TILE_BYTES = 1 if parallel else 1 << 19
    conv.BATCH_COLUMNS = 1 << 12
    for name in conv.__all__:
        spec = KERNELS[name]
        for variant in spec.variants:
            size = 2 if parallel or not name.startswith("conv") else 8
            args = spec.arguments(np.random.default_rng(checked), np.float64, size, variant)
            expected, actual = copy.deepcopy(args), copy.deepcopy(args)
            spec.reference(**expected)
            getattr(conv, name)(**actual)
            rtol, atol = spec.tolerances[np.dtype(np.float64)]
            for key in spec.writes:
                if expected[key] is not None:
                    np.testing.assert_allclose(actual[key], expected[key], rtol=rtol, atol=atol,
                                               err_msg=f"{name} {variant}")
            checked += 1
print("checked", checked)
"""


def test_jitted_bodies_run_as_plain_python(run_without_jit):
    from fastgrad.backends import KERNELS
    variants = sum(len(KERNELS[name].variants) for name in conv.__all__)
    assert f"checked {2 * variants}" in run_without_jit(_PLAIN_PYTHON, timeout=300)
