"""Pooling: the pooling kernels against PyTorch's CPU loops written out in Python, F.max_pool2d,
F.avg_pool2d and the adaptive poolings (values, indices and input gradients) and the pooling
layers against PyTorch, float64 gradchecks and errors.

The reference-kernel, gradcheck, error and layer tests run everywhere; the PyTorch
comparisons skip when it is not installed.
"""
import numpy as np
import pytest

import fastgrad as fg
import fastgrad.nn.functional as F
from fastgrad import nn
from fastgrad.autograd import gradcheck
from fastgrad.backends import KERNELS

POOL = ("kernel_h", "kernel_w", "stride_h", "stride_w", "pad_h", "pad_w")


def _t(array, requires_grad=False):
    return fg.tensor(np.asarray(array), requires_grad=requires_grad)


# ------------------------------------------------------------------ the reference kernels
def _direct_max_pool(x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w,
                     out_shape):
    """PyTorch's CPU max pooling loop: the window clipped to the image, a running maximum
    replaced by a greater value or a NaN, starting from -inf at the first element inside."""
    h, w = x.shape[2:]
    out, indices = np.empty(out_shape, x.dtype), np.empty(out_shape, np.int64)
    for i in range(out_shape[2]):
        for j in range(out_shape[3]):
            top, left = i * stride_h - pad_h, j * stride_w - pad_w
            bottom = min(top + (kernel_h - 1) * dil_h + 1, h)
            right = min(left + (kernel_w - 1) * dil_w + 1, w)
            while top < 0:
                top += dil_h
            while left < 0:
                left += dil_w
            for n in range(x.shape[0]):
                for c in range(x.shape[1]):
                    best, where = -np.inf, top * w + left
                    for row in range(top, bottom, dil_h):
                        for col in range(left, right, dil_w):
                            value = x[n, c, row, col]
                            if value > best or np.isnan(value):
                                best, where = value, row * w + col
                    out[n, c, i, j], indices[n, c, i, j] = best, where
    return out, indices


def _direct_avg_pool(x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, count_include_pad,
                     divisor_override, out_shape):
    """PyTorch's CPU average pooling loop."""
    h, w = x.shape[2:]
    out = np.empty(out_shape)
    for i in range(out_shape[2]):
        for j in range(out_shape[3]):
            top, left = i * stride_h - pad_h, j * stride_w - pad_w
            bottom, right = min(top + kernel_h, h + pad_h), min(left + kernel_w, w + pad_w)
            pool_size = (bottom - top) * (right - left)
            top, left, bottom, right = max(top, 0), max(left, 0), min(bottom, h), min(right, w)
            divisor = divisor_override or (
                pool_size if count_include_pad else (bottom - top) * (right - left))
            out[:, :, i, j] = x[:, :, top:bottom, left:right].sum(axis=(2, 3)) / divisor
    return out


@pytest.mark.parametrize("variant", KERNELS["max_pool2d_fwd"].variants)
def test_max_pool2d_kernels_are_pytorchs_loop(variant):
    spec = KERNELS["max_pool2d_fwd"]
    rng = np.random.default_rng(4)
    args = spec.arguments(rng, np.float64, 3, variant)
    args["x"][0, 0, 1, :3] = np.nan  # NaNs win, the last one's index
    args["x"][1, 1] = -np.inf  # windows of -inf: the first element inside
    expected = _direct_max_pool(args["x"], *(args[k] for k in POOL), args["dil_h"],
                                args["dil_w"], args["out"].shape)
    args["out"][...], args["indices"][...] = np.nan, -1
    spec.reference(**args)
    np.testing.assert_array_equal(args["out"], expected[0])
    np.testing.assert_array_equal(args["indices"], expected[1])
    grad_out = rng.standard_normal(args["out"].shape)
    grad_x = np.full_like(args["x"], np.nan)
    KERNELS["max_pool2d_bwd"].reference(grad_out, args["indices"], grad_x)
    scattered = np.zeros_like(args["x"])
    for (n, c, i, j), index in np.ndenumerate(args["indices"]):
        scattered[n, c].flat[index] += grad_out[n, c, i, j]
    np.testing.assert_allclose(grad_x, scattered, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("variant", KERNELS["avg_pool2d_fwd"].variants)
def test_avg_pool2d_kernels_are_pytorchs_loop_and_its_adjoint(variant):
    spec = KERNELS["avg_pool2d_fwd"]
    rng = np.random.default_rng(5)
    args = spec.arguments(rng, np.float64, 3, variant)
    geometry = [args[k] for k in POOL + ("count_include_pad", "divisor_override")]
    args["out"][...] = np.nan
    spec.reference(**args)
    np.testing.assert_allclose(args["out"], _direct_avg_pool(args["x"], *geometry,
                                                             args["out"].shape), rtol=1e-13,
                               atol=1e-15)
    grad_out = rng.standard_normal(args["out"].shape)
    grad_x = np.full_like(args["x"], np.nan)
    KERNELS["avg_pool2d_bwd"].reference(grad_out, *geometry, grad_x)
    np.testing.assert_allclose(np.vdot(args["x"], grad_x), np.vdot(args["out"], grad_out),
                               rtol=1e-12)


# ---------------------------------------------------------------------- against PyTorch
def _compare(torch, ours_fn, theirs_fn, x, seed=6):
    """Outputs (and indices, when a pair comes back) and the input gradient for one random
    output gradient, exactly where no arithmetic is involved."""
    ours, theirs = _t(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out_o, out_t = ours_fn(ours), theirs_fn(theirs)
    if isinstance(out_t, tuple):
        (out_o, indices_o), (out_t, indices_t) = out_o, out_t
        assert indices_o.dtype == np.int64
        np.testing.assert_array_equal(indices_o.numpy(), indices_t.numpy())
    assert out_o.shape == tuple(out_t.shape) and out_o.dtype == x.dtype
    np.testing.assert_allclose(out_o.numpy(), out_t.detach().numpy(), rtol=1e-12, atol=1e-14)
    grad = np.random.default_rng(seed).standard_normal(out_o.shape)
    out_o.backward(_t(grad))
    out_t.backward(torch.from_numpy(grad))
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-12, atol=1e-14)


MAX_CASES = {
    "2": ((2, 3, 6, 6), dict(kernel_size=2)),
    "3-stride2-pad1": ((2, 3, 7, 6), dict(kernel_size=3, stride=2, padding=1)),
    "ceil": ((2, 3, 7, 6), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    "ceil-past-the-edge": ((1, 2, 6, 6), dict(kernel_size=3, stride=2, ceil_mode=True)),
    "dilation": ((2, 3, 8, 7), dict(kernel_size=(3, 2), stride=1, padding=1, dilation=2)),
    "pairs": ((1, 2, 7, 7), dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1))),
    "unbatched": ((3, 6, 5), dict(kernel_size=2, stride=1)),
    "empty-batch": ((0, 3, 6, 5), dict(kernel_size=2)),
}


@pytest.mark.parametrize("values", ["distinct", "ties", "nan"])
@pytest.mark.parametrize("case", MAX_CASES)
def test_max_pool2d_matches_pytorch(case, values, rng):
    torch = pytest.importorskip("torch")
    shape, options = MAX_CASES[case]
    x = rng.standard_normal(shape)
    if values == "ties":
        x = np.round(x)
    elif values == "nan" and x.size:
        x.reshape(-1)[::7] = np.nan
    _compare(torch, lambda t: F.max_pool2d(t, **options, return_indices=True),
             lambda t: torch.nn.functional.max_pool2d(t, **options, return_indices=True), x)


AVG_CASES = {
    "2": ((2, 3, 6, 6), dict(kernel_size=2)),
    "3-stride2-pad1": ((2, 3, 7, 6), dict(kernel_size=3, stride=2, padding=1)),
    "exclude-pad": ((2, 3, 7, 6), dict(kernel_size=3, stride=2, padding=1,
                                       count_include_pad=False)),
    "ceil": ((2, 3, 7, 6), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    "ceil-exclude-pad": ((2, 3, 7, 6), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                                            count_include_pad=False)),
    "ceil-past-the-edge": ((1, 2, 6, 6), dict(kernel_size=3, stride=2, ceil_mode=True)),
    "divisor_override": ((2, 3, 7, 6), dict(kernel_size=3, padding=1, divisor_override=5)),
    "pairs": ((1, 2, 7, 7), dict(kernel_size=(3, 2), stride=(1, 2), padding=(1, 0))),
    "unbatched": ((3, 6, 5), dict(kernel_size=2, stride=1)),
}


@pytest.mark.parametrize("case", AVG_CASES)
def test_avg_pool2d_matches_pytorch(case, rng):
    torch = pytest.importorskip("torch")
    shape, options = AVG_CASES[case]
    _compare(torch, lambda t: F.avg_pool2d(t, **options),
             lambda t: torch.nn.functional.avg_pool2d(t, **options), rng.standard_normal(shape))


ADAPTIVE_CASES = {
    "global": ((2, 3, 7, 5), 1),
    "tiled": ((2, 3, 8, 6), (4, 3)),   # equal windows: through the avg_pool2d kernels
    "uneven": ((2, 3, 7, 5), (3, 2)),
    "none": ((2, 3, 7, 5), (None, 2)),
    "larger-than-input": ((1, 2, 3, 4), (5, 6)),
    "unbatched": ((3, 6, 6), 3),
}


@pytest.mark.parametrize("case", ADAPTIVE_CASES)
def test_adaptive_avg_pool2d_matches_pytorch(case, rng):
    torch = pytest.importorskip("torch")
    shape, size = ADAPTIVE_CASES[case]
    _compare(torch, lambda t: F.adaptive_avg_pool2d(t, size),
             lambda t: torch.nn.functional.adaptive_avg_pool2d(t, size),
             rng.standard_normal(shape))


@pytest.mark.parametrize("values", ["distinct", "ties", "nan"])
@pytest.mark.parametrize("case", ADAPTIVE_CASES)
def test_adaptive_max_pool2d_matches_pytorch(case, values, rng):
    torch = pytest.importorskip("torch")
    shape, size = ADAPTIVE_CASES[case]
    x = rng.standard_normal(shape)
    if values == "ties":
        x = np.round(x)
    elif values == "nan":
        x.reshape(-1)[::5] = np.nan
    _compare(torch, lambda t: F.adaptive_max_pool2d(t, size, return_indices=True),
             lambda t: torch.nn.functional.adaptive_max_pool2d(t, size, return_indices=True), x)


def test_pooling_float32(rng):
    x = _t(rng.standard_normal((2, 3, 7, 6)).astype(np.float32), requires_grad=True)
    for out in (F.max_pool2d(x, 3, 2, 1), F.avg_pool2d(x, 3, 2, 1),
                F.adaptive_avg_pool2d(x, 2), F.adaptive_max_pool2d(x, 2)):
        assert out.dtype == np.float32
        out.sum().backward()
        assert x.grad.dtype == np.float32


def test_adaptive_avg_pool2d_windows_by_hand():
    """7 rows into 3: rows [0, 3), [2, 5), [4, 7) (PyTorch's floor and ceil bounds)."""
    x = np.arange(7.0).reshape(1, 1, 7, 1)
    out = F.adaptive_avg_pool2d(_t(x), (3, 1)).numpy().reshape(-1)
    np.testing.assert_allclose(out, [1.0, 3.0, 5.0])
    values, indices = F.adaptive_max_pool2d(_t(x), (3, 1), return_indices=True)
    np.testing.assert_array_equal(values.numpy().reshape(-1), [2.0, 4.0, 6.0])
    np.testing.assert_array_equal(indices.numpy().reshape(-1), [2, 4, 6])


def test_adaptive_pooling_to_nothing():
    x = _t(np.ones((1, 2, 4, 4)), requires_grad=True)
    for pool in (F.adaptive_avg_pool2d, F.adaptive_max_pool2d):
        out = pool(x, 0)
        assert out.shape == (1, 2, 0, 0)
        out.sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), 0)


# ----------------------------------------------------------------------------- gradchecks
@pytest.mark.parametrize("pool", [
    lambda x: F.max_pool2d(x, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2),
                           ceil_mode=True),
    lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    lambda x: F.avg_pool2d(x, 2, stride=1, divisor_override=3),
    lambda x: F.adaptive_avg_pool2d(x, (3, 2)),
    lambda x: F.adaptive_avg_pool2d(x, (1, 2)),
    lambda x: F.adaptive_max_pool2d(x, (3, 2)),
], ids=["max", "avg-exclude-pad", "avg-divisor", "adaptive-avg", "adaptive-avg-tiled",
        "adaptive-max"])
def test_gradcheck_pooling(pool, rng):
    x = _t(rng.standard_normal((2, 2, 5, 4)), requires_grad=True)
    assert gradcheck(pool, x)


# --------------------------------------------------------------------------------- errors
def _call(function, shape, *args, **options):
    def make(torch=None):
        array = np.zeros(shape, np.float32)
        library = torch.nn.functional if torch else F
        return getattr(library, function)(torch.from_numpy(array) if torch else _t(array),
                                          *args, **options)
    return make


POOL_ERRORS = {
    "max 2-d input": (_call("max_pool2d", (3, 5), 3), RuntimeError,
                      r"expected a 3D or 4D \(batch mode\) input"),
    "max no channels": (_call("max_pool2d", (1, 0, 5, 5), 2), RuntimeError,
                        r"non-zero channels, height and width"),
    "max pad": (_call("max_pool2d", (1, 3, 5, 5), 3, padding=2), RuntimeError,
                "pad should be smaller than or equal to half of kernel size"),
    "max dilated pad": (_call("max_pool2d", (1, 3, 9, 9), 3, padding=2, dilation=2),
                        RuntimeError, "pad should be smaller than or equal to half of kernel"),
    "max output too small": (_call("max_pool2d", (1, 3, 2, 2), 3), RuntimeError,
                             r"Given input size: \(3x2x2\). Calculated output size: \(3x0x0\). "
                             r"Output size is too small"),
    "max kernel 0": (_call("max_pool2d", (1, 3, 5, 5), 0), RuntimeError,
                     "kernel size should be greater than zero"),
    "max stride 0": (_call("max_pool2d", (1, 3, 5, 5), 2, stride=0), RuntimeError,
                     "stride should be greater than zero"),
    "max dilation 0": (_call("max_pool2d", (1, 3, 5, 5), 2, dilation=0), RuntimeError,
                       "dilation should be greater than zero"),
    "max negative pad": (_call("max_pool2d", (1, 3, 5, 5), 2, padding=-1), RuntimeError,
                         "pad must be non-negative, but got pad: -1"),
    "max three kernel sizes": (_call("max_pool2d", (1, 3, 5, 5), (2, 2, 2)), RuntimeError,
                               "kernel_size must be a single int or a tuple of 2 ints"),
    "max float kernel": (_call("max_pool2d", (1, 3, 5, 5), 2.0), TypeError,
                         "kernel_size must be an int"),
    "avg divisor 0": (_call("avg_pool2d", (1, 3, 5, 5), 2, divisor_override=0), RuntimeError,
                      "divisor must be not zero"),
    "avg pad": (_call("avg_pool2d", (1, 3, 5, 5), 3, padding=2), RuntimeError,
                "pad should be smaller than or equal to half of kernel size"),
    "avg output too small": (_call("avg_pool2d", (1, 3, 2, 2), 3), RuntimeError,
                             "Output size is too small"),
    "adaptive avg 2-d input": (_call("adaptive_avg_pool2d", (3, 5), 2), RuntimeError,
                               r"adaptive_avg_pool2d\(\): Expected 3D or 4D tensor, but got "
                               r"\[3, 5\]"),
    "adaptive avg empty": (_call("adaptive_avg_pool2d", (1, 3, 0, 5), 2), RuntimeError,
                           "Expected input to have non-zero size for non-batch dimensions, "
                           r"but input has sizes \[1, 3, 0, 5\] with dimension 2 being empty"),
    "adaptive avg three sizes": (_call("adaptive_avg_pool2d", (1, 3, 5, 5), (2, 2, 2)),
                                 RuntimeError, "output_size must be 2"),
    "adaptive avg negative": (_call("adaptive_avg_pool2d", (1, 3, 5, 5), -1), RuntimeError,
                              "elements of output_size must be greater than or equal to 0"),
    "adaptive max 2-d input": (_call("adaptive_max_pool2d", (3, 5), 2), RuntimeError,
                               r"adaptive_max_pool2d\(\): Expected 3D or 4D tensor"),
    "adaptive max no channels": (_call("adaptive_max_pool2d", (1, 0, 5, 5), 2), RuntimeError,
                                 "with dimension 1 being empty"),
}


@pytest.mark.parametrize("case", POOL_ERRORS)
def test_pooling_errors(case):
    make, error, message = POOL_ERRORS[case]
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize("case", POOL_ERRORS)
def test_pooling_errors_are_pytorchs_types(case):
    torch = pytest.importorskip("torch")
    make, error, _ = POOL_ERRORS[case]
    with pytest.raises(error):
        make(torch)


def test_pooling_takes_floating_inputs_only():
    """The pooling kernels are float kernels: an integer tensor is refused by name (PyTorch
    pools integers too)."""
    x = _t(np.zeros((1, 2, 4, 4), np.int64))
    for pool in (lambda: F.max_pool2d(x, 2), lambda: F.avg_pool2d(x, 2),
                 lambda: F.adaptive_avg_pool2d(x, 2), lambda: F.adaptive_max_pool2d(x, 2)):
        with pytest.raises(TypeError, match="input must be a floating tensor"):
            pool()
    with pytest.raises(TypeError, match="return_indices must be a bool"):
        F.max_pool2d(_t(np.zeros((1, 2, 4, 4))), 2, return_indices="yes")


# --------------------------------------------------------------------------------- layers
LAYER_REPRS = {
    "nn.MaxPool2d(3)": "MaxPool2d(kernel_size=3, stride=3, padding=0, dilation=1, "
                       "ceil_mode=False)",
    "nn.MaxPool2d(3, 2, 1, 2, True, True)": "MaxPool2d(kernel_size=3, stride=2, padding=1, "
                                            "dilation=2, ceil_mode=True)",
    "nn.MaxPool2d(3, stride=(2, 1))": "MaxPool2d(kernel_size=3, stride=(2, 1), padding=0, "
                                      "dilation=1, ceil_mode=False)",
    "nn.AvgPool2d((3, 2))": "AvgPool2d(kernel_size=(3, 2), stride=(3, 2), padding=0)",
    "nn.AvgPool2d(3, 2, 1, True, False, 4)": "AvgPool2d(kernel_size=3, stride=2, padding=1)",
    "nn.AdaptiveAvgPool2d((1, None))": "AdaptiveAvgPool2d(output_size=(1, None))",
    "nn.AdaptiveMaxPool2d(2, True)": "AdaptiveMaxPool2d(output_size=2)",
}


@pytest.mark.parametrize("code", LAYER_REPRS)
def test_layer_reprs(code):
    assert repr(eval(code)) == LAYER_REPRS[code]
    torch = pytest.importorskip("torch")
    assert repr(eval(code, {"nn": torch.nn})) == LAYER_REPRS[code]


def test_pooling_layers(rng):
    x = _t(rng.standard_normal((2, 3, 8, 7)))
    out, indices = nn.MaxPool2d(3, 2, 1, return_indices=True)(x)
    assert out.shape == indices.shape == (2, 3, 4, 4)
    np.testing.assert_array_equal(out.numpy(), F.max_pool2d(x, 3, 2, 1).numpy())
    np.testing.assert_allclose(
        nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)(x).numpy(),
        F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False).numpy())
    assert nn.AdaptiveAvgPool2d(1)(x).shape == (2, 3, 1, 1)
    out, indices = nn.AdaptiveMaxPool2d((2, None), return_indices=True)(x)
    assert out.shape == indices.shape == (2, 3, 2, 7)
    assert nn.MaxPool2d(2).state_dict() == {} and list(nn.AvgPool2d(2).parameters()) == []


def test_pooling_layers_match_pytorch(rng):
    torch = pytest.importorskip("torch")
    for code in ("MaxPool2d(3, 2, 1, dilation=2, ceil_mode=True)",
                 "AvgPool2d((3, 2), 2, (1, 0), True, False)", "AdaptiveAvgPool2d((2, 3))",
                 "AdaptiveMaxPool2d(3)"):
        ours, theirs = eval("nn." + code), eval("torch.nn." + code)
        _compare(torch, ours, theirs, rng.standard_normal((2, 3, 9, 8)))
