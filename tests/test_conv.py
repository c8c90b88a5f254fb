"""Convolutions: the conv2d kernels against a direct loop and by adjointness, F.conv2d,
F.conv1d and F.conv_transpose2d (values and every gradient) and the Conv layers against
PyTorch on the same weights, float64 gradchecks, errors, and a small CNN trained three SGD
steps beside PyTorch's.

The reference-kernel, gradcheck, error and layer tests run everywhere; the PyTorch
comparisons skip when it is not installed.
"""
import math

import numpy as np
import pytest

import fastgrad as fg
import fastgrad.nn.functional as F
from fastgrad import nn, optim
from fastgrad.autograd import gradcheck
from fastgrad.backends import KERNELS
from fastgrad.backends.numpy_ref import conv_output_size

GEOMETRY = ("stride_h", "stride_w", "pad_h", "pad_w", "dil_h", "dil_w", "groups")


def _t(array, requires_grad=False):
    return fg.tensor(np.asarray(array), requires_grad=requires_grad)


def _tol(dtype):
    return dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------ the reference kernels
def _direct_conv(x, weight, bias, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups,
                 out_shape):
    """The convolution's definition, one output position and tap at a time, in float64."""
    x, weight = x.astype(np.float64), weight.astype(np.float64)
    h, w = x.shape[2:]
    out_per_group, in_per_group, kernel_h, kernel_w = weight.shape
    out_per_group //= groups
    out = np.zeros(out_shape)
    for i in range(out_shape[2]):
        for j in range(out_shape[3]):
            for p in range(kernel_h):
                for q in range(kernel_w):
                    row, col = i * stride_h - pad_h + p * dil_h, j * stride_w - pad_w + q * dil_w
                    if not (0 <= row < h and 0 <= col < w):
                        continue
                    for g in range(groups):
                        outs = slice(g * out_per_group, (g + 1) * out_per_group)
                        ins = slice(g * in_per_group, (g + 1) * in_per_group)
                        out[:, outs, i, j] += x[:, ins, row, col] @ weight[outs, :, p, q].T
    return out if bias is None else out + bias[:, None, None]


@pytest.mark.parametrize("variant", KERNELS["conv2d_fwd"].variants)
def test_conv2d_fwd_kernel_is_the_definition(variant):
    spec = KERNELS["conv2d_fwd"]
    args = spec.arguments(np.random.default_rng(1), np.float64, 3, variant)
    args["out"][...] = np.nan
    spec.reference(**args)
    expected = _direct_conv(args["x"], args["weight"], args["bias"],
                            *(args[k] for k in GEOMETRY), args["out"].shape)
    np.testing.assert_allclose(args["out"], expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("variant", KERNELS["conv2d_bwd_input"].variants)
def test_conv2d_backward_kernels_are_the_adjoints_of_the_forward(variant):
    """<conv(x, w), g> = <x, bwd_input(g, w)> = <w, bwd_weight(g, x)>: the convolution is
    linear in x and in w, and its gradients are the adjoint maps."""
    rng = np.random.default_rng(2)
    forward = KERNELS["conv2d_fwd"].arguments(rng, np.float64, 3, f"{variant},no-bias")
    KERNELS["conv2d_fwd"].reference(**forward)
    x, weight, out = forward["x"], forward["weight"], forward["out"]
    geometry = [forward[k] for k in GEOMETRY]
    grad_out = rng.standard_normal(out.shape)
    grad_x, grad_weight = np.full_like(x, np.nan), np.full_like(weight, np.nan)
    grad_bias = np.full(out.shape[1], np.nan)
    KERNELS["conv2d_bwd_input"].reference(grad_out, weight, *geometry, grad_x)
    KERNELS["conv2d_bwd_weight"].reference(grad_out, x, *geometry, grad_weight, grad_bias)
    total = np.vdot(out, grad_out)
    np.testing.assert_allclose(np.vdot(x, grad_x), total, rtol=1e-12)
    np.testing.assert_allclose(np.vdot(weight, grad_weight), total, rtol=1e-12)
    np.testing.assert_allclose(grad_bias, grad_out.sum(axis=(0, 2, 3)), rtol=1e-12)


def test_conv2d_bwd_input_leaves_zeros_where_no_window_reads():
    """A 1x1 kernel of stride 2 reads every other row and column: the others get 0."""
    rng = np.random.default_rng(3)
    grad_x = np.full((1, 2, 5, 5), np.nan)
    KERNELS["conv2d_bwd_input"].reference(rng.standard_normal((1, 3, 3, 3)),
                                          rng.standard_normal((3, 2, 1, 1)), 2, 2, 0, 0, 1, 1, 1,
                                          grad_x)
    assert np.isfinite(grad_x).all()
    np.testing.assert_array_equal(grad_x[:, :, 1::2, :], 0)
    np.testing.assert_array_equal(grad_x[:, :, :, 1::2], 0)
    assert (grad_x[:, :, ::2, ::2] != 0).all()


@pytest.mark.parametrize("size, kernel, stride, padding, dilation, expected", [
    (7, 3, 1, 1, 1, 7), (7, 3, 2, 1, 1, 4), (8, 3, 2, 0, 1, 3), (7, 3, 1, 2, 2, 7),
    (5, 5, 1, 0, 1, 1), (2, 3, 1, 0, 1, 0)])
def test_conv_output_size(size, kernel, stride, padding, dilation, expected):
    assert conv_output_size(size, kernel, stride, padding, dilation) == expected


# ---------------------------------------------------------------------- against PyTorch
def _compare(torch, ours_fn, theirs_fn, arrays, dtype=np.float64, seed=5):
    """Run both on tensors built from the same ``arrays`` (None passes through); compare the
    outputs, then every gradient for one random output gradient."""
    arrays = [None if a is None else np.asarray(a, dtype) for a in arrays]
    ours = [None if a is None else _t(a, requires_grad=True) for a in arrays]
    theirs = [None if a is None else torch.tensor(a, requires_grad=True) for a in arrays]
    out_o, out_t = ours_fn(*ours), theirs_fn(*theirs)
    assert out_o.shape == tuple(out_t.shape) and out_o.dtype == dtype
    np.testing.assert_allclose(out_o.numpy(), out_t.detach().numpy(), **_tol(dtype))
    grad = np.random.default_rng(seed).standard_normal(out_o.shape).astype(dtype)
    out_o.backward(_t(grad))
    out_t.backward(torch.from_numpy(grad))
    for i, (o, t) in enumerate(zip(ours, theirs)):
        if o is not None:
            np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy(), **_tol(dtype),
                                       err_msg=f"gradient of argument {i}")


#: name: (input shape, weight shape, keyword arguments); bias (O,) unless "bias": False.
CONV2D_CASES = {
    "3x3": ((2, 3, 7, 6), (4, 3, 3, 3), {}),
    "stride2-pad1": ((2, 3, 7, 6), (4, 3, 3, 3), dict(stride=2, padding=1)),
    "2x3-asymmetric": ((2, 3, 7, 6), (4, 3, 2, 3), dict(stride=(2, 1), padding=(0, 2),
                                                        dilation=(1, 2))),
    "dilation2": ((1, 3, 8, 8), (4, 3, 3, 3), dict(dilation=2, padding=2)),
    "groups2": ((2, 4, 6, 5), (6, 2, 3, 3), dict(groups=2, padding=1)),
    "depthwise-stride2": ((2, 4, 7, 7), (8, 1, 3, 3), dict(groups=4, stride=2, padding=1)),
    "1x1-stride2": ((2, 3, 6, 5), (4, 3, 1, 1), dict(stride=2)),
    "same-odd": ((2, 3, 6, 5), (4, 3, 3, 3), dict(padding="same", dilation=2)),
    "same-even": ((2, 3, 6, 5), (4, 3, 2, 4), dict(padding="same")),
    "valid": ((2, 3, 6, 5), (4, 3, 3, 3), dict(padding="valid")),
    "no-bias": ((2, 3, 6, 5), (4, 3, 3, 3), dict(bias=False, padding=1)),
    "unbatched": ((3, 6, 5), (4, 3, 3, 3), dict(padding=(1, 0))),
    "empty-batch": ((0, 3, 6, 5), (4, 3, 3, 3), {}),
}


def _with_bias(rng, input_shape, weight_shape, options, out_channels):
    options = dict(options)
    bias = rng.standard_normal(out_channels) if options.pop("bias", True) else None
    return [rng.standard_normal(input_shape), rng.standard_normal(weight_shape), bias], options


_SAME_EVEN_WARNING = "ignore:Using padding='same' with even kernel lengths"


@pytest.mark.filterwarnings(_SAME_EVEN_WARNING)
@pytest.mark.parametrize("case", CONV2D_CASES)
def test_conv2d_matches_pytorch(case, rng):
    torch = pytest.importorskip("torch")
    input_shape, weight_shape, options = CONV2D_CASES[case]
    arrays, options = _with_bias(rng, input_shape, weight_shape, options, weight_shape[0])
    _compare(torch, lambda x, w, b: F.conv2d(x, w, b, **options),
             lambda x, w, b: torch.nn.functional.conv2d(x, w, b, **options), arrays)


def test_conv2d_float32_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    arrays = [rng.standard_normal((4, 8, 9, 9)), rng.standard_normal((16, 8, 3, 3)) / 8,
              rng.standard_normal(16)]
    _compare(torch, lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
             lambda x, w, b: torch.nn.functional.conv2d(x, w, b, stride=2, padding=1), arrays,
             dtype=np.float32)


CONV1D_CASES = {
    "3": ((2, 3, 9), (4, 3, 3), {}),
    "stride2-dilation2-groups": ((2, 4, 11), (6, 2, 3), dict(stride=2, dilation=2, padding=1,
                                                             groups=2)),
    "same-even": ((2, 3, 8), (4, 3, 4), dict(padding="same")),
    "unbatched-no-bias": ((3, 8), (4, 3, 2), dict(bias=False, padding=(1,))),
}


@pytest.mark.filterwarnings(_SAME_EVEN_WARNING)
@pytest.mark.parametrize("case", CONV1D_CASES)
def test_conv1d_matches_pytorch(case, rng):
    torch = pytest.importorskip("torch")
    input_shape, weight_shape, options = CONV1D_CASES[case]
    arrays, options = _with_bias(rng, input_shape, weight_shape, options, weight_shape[0])
    _compare(torch, lambda x, w, b: F.conv1d(x, w, b, **options),
             lambda x, w, b: torch.nn.functional.conv1d(x, w, b, **options), arrays)


#: name: (input shape, weight shape (C_in, C_out / groups, kH, kW), keyword arguments).
TRANSPOSE_CASES = {
    "3x3": ((2, 4, 5, 4), (4, 3, 3, 3), {}),
    "stride2-output_padding1": ((2, 4, 5, 4), (4, 3, 3, 3), dict(stride=2, padding=1,
                                                                 output_padding=1)),
    "asymmetric": ((1, 4, 4, 5), (4, 2, 2, 3), dict(stride=(2, 3), padding=(1, 0),
                                                    output_padding=(0, 2))),
    "dilation2-output_padding1": ((2, 4, 5, 4), (4, 3, 3, 3), dict(dilation=2,
                                                                   output_padding=1)),
    "groups2": ((2, 4, 5, 4), (4, 3, 3, 3), dict(groups=2, stride=2)),
    "unbatched-no-bias": ((4, 5, 4), (4, 3, 1, 1), dict(bias=False, stride=2)),
}


@pytest.mark.parametrize("case", TRANSPOSE_CASES)
def test_conv_transpose2d_matches_pytorch(case, rng):
    torch = pytest.importorskip("torch")
    input_shape, weight_shape, options = TRANSPOSE_CASES[case]
    groups = options.get("groups", 1)
    arrays, options = _with_bias(rng, input_shape, weight_shape, options,
                                 weight_shape[1] * groups)
    _compare(torch, lambda x, w, b: F.conv_transpose2d(x, w, b, **options),
             lambda x, w, b: torch.nn.functional.conv_transpose2d(x, w, b, **options), arrays)


def test_conv_transpose2d_is_the_input_gradient_of_conv2d(rng):
    """Without PyTorch: conv_transpose2d(g, w) is d<conv2d(x, w), g>/dx."""
    x = _t(rng.standard_normal((2, 3, 7, 6)), requires_grad=True)
    weight = _t(rng.standard_normal((4, 3, 3, 3)))
    out = F.conv2d(x, weight, stride=2, padding=1)
    grad = _t(rng.standard_normal(out.shape))
    out.backward(grad)
    transposed = F.conv_transpose2d(grad, weight, stride=2, padding=1, output_padding=(0, 1))
    np.testing.assert_allclose(transposed.numpy(), x.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_only_the_bias_gradient(rng):
    """A frozen weight: the bias still gets grad_out summed over N, H and W."""
    x, weight = _t(rng.standard_normal((2, 3, 5, 5))), _t(rng.standard_normal((4, 3, 3, 3)))
    bias = _t(rng.standard_normal(4), requires_grad=True)
    out = F.conv2d(x, weight, bias)
    grad = rng.standard_normal(out.shape)
    out.backward(_t(grad))
    np.testing.assert_allclose(bias.grad.numpy(), grad.sum(axis=(0, 2, 3)), rtol=1e-12)
    assert x.grad is None and weight.grad is None


# ----------------------------------------------------------------------------- gradchecks
def test_gradcheck_conv2d(rng):
    x = _t(rng.standard_normal((2, 4, 5, 4)), requires_grad=True)
    weight = _t(rng.standard_normal((4, 2, 2, 3)), requires_grad=True)
    bias = _t(rng.standard_normal(4), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=(1, 2),
                                              dilation=(1, 2), groups=2), (x, weight, bias))


def test_gradcheck_conv1d_same(rng):
    x = _t(rng.standard_normal((2, 2, 6)), requires_grad=True)
    weight = _t(rng.standard_normal((3, 2, 4)), requires_grad=True)
    bias = _t(rng.standard_normal(3), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.conv1d(x, w, b, padding="same"), (x, weight, bias))


def test_gradcheck_conv_transpose2d(rng):
    x = _t(rng.standard_normal((1, 2, 3, 3)), requires_grad=True)
    weight = _t(rng.standard_normal((2, 2, 3, 2)), requires_grad=True)
    bias = _t(rng.standard_normal(2), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1,
                                                        output_padding=1), (x, weight, bias))


# --------------------------------------------------------------------------------- errors
def _call(function, input_shape, weight_shape, bias_shape=None, dtype=np.float32,
          bias_dtype=None, **options):
    def make(torch=None):
        def tensor(shape, kind=dtype):
            if shape is None:
                return None
            array = np.zeros(shape, kind)
            return torch.from_numpy(array) if torch else _t(array)
        library = torch.nn.functional if torch else F
        return getattr(library, function)(tensor(input_shape), tensor(weight_shape),
                                          tensor(bias_shape, bias_dtype or dtype), **options)
    return make


CONV_ERRORS = {
    "2-d input": (_call("conv2d", (2, 3), (4, 3, 3, 3)), RuntimeError,
                  r"Expected 3D \(unbatched\) or 4D \(batched\) input to conv2d, but got input "
                  r"of size: \[2, 3\]"),
    "channels": (_call("conv2d", (1, 4, 5, 5), (4, 3, 3, 3)), RuntimeError,
                 r"Given groups=1, weight of size \[4, 3, 3, 3\], expected input\[1, 4, 5, 5\] "
                 r"to have 3 channels, but got 4 channels instead"),
    "unbatched channels": (_call("conv2d", (4, 5, 5), (4, 3, 3, 3)), RuntimeError,
                           r"expected input\[1, 4, 5, 5\] to have 3 channels"),
    "kernel too large": (_call("conv2d", (1, 3, 2, 2), (4, 3, 3, 3)), RuntimeError,
                         r"Calculated padded input size per channel: \(2 x 2\). Kernel size: "
                         r"\(3 x 3\). Kernel size can't be greater than actual input size"),
    "dilated kernel too large": (_call("conv2d", (1, 3, 4, 4), (4, 3, 3, 3), dilation=2),
                                 RuntimeError, r"Kernel size: \(5 x 5\)"),
    "groups divide weight": (_call("conv2d", (1, 4, 5, 5), (3, 2, 3, 3), groups=2),
                             RuntimeError, r"Given groups=2, expected weight to be divisible "
                                           r"by 2 at dimension 0"),
    "stride 0": (_call("conv2d", (1, 3, 5, 5), (4, 3, 3, 3), stride=0), RuntimeError,
                 "non-positive stride is not supported"),
    "negative padding": (_call("conv2d", (1, 3, 5, 5), (4, 3, 3, 3), padding=-1),
                         RuntimeError, "negative padding is not supported"),
    "dilation 0": (_call("conv2d", (1, 3, 5, 5), (4, 3, 3, 3), dilation=0), RuntimeError,
                   "dilation should be greater than zero"),
    "groups 0": (_call("conv2d", (1, 3, 5, 5), (4, 3, 3, 3), groups=0), RuntimeError,
                 "non-positive groups is not supported"),
    "same strided": (_call("conv2d", (1, 3, 5, 5), (4, 3, 3, 3), padding="same", stride=2),
                     RuntimeError, "padding='same' is not supported for strided convolutions"),
    "padding string": (_call("conv2d", (1, 3, 5, 5), (4, 3, 3, 3), padding="full"),
                       RuntimeError, "Invalid padding string: 'full'"),
    "three strides": (_call("conv2d", (1, 3, 5, 5), (4, 3, 3, 3), stride=(1, 2, 3)),
                      RuntimeError, r"stride must be a single int or a tuple of 2 ints"),
    "float stride": (_call("conv2d", (1, 3, 5, 5), (4, 3, 3, 3), stride=1.5), TypeError,
                     "stride must be an int"),
    "bias size": (_call("conv2d", (1, 3, 5, 5), (4, 3, 3, 3), bias_shape=(5,)), RuntimeError,
                  r"Given weight of size \[4, 3, 3, 3\], expected bias to be 1-dimensional with "
                  r"4 elements, but got bias of size \[5\] instead"),
    "bias dtype": (_call("conv2d", (1, 3, 5, 5), (4, 3, 3, 3), bias_shape=(4,),
                         bias_dtype=np.float64), RuntimeError,
                   r"Input type \(float32\) and bias type \(float64\) should be the same"),
    "conv1d 4-d input": (_call("conv1d", (1, 3, 5, 5), (4, 3, 3)), RuntimeError,
                         r"Expected 2D \(unbatched\) or 3D \(batched\) input to conv1d"),
    "conv1d channels": (_call("conv1d", (1, 3, 5), (4, 2, 3)), RuntimeError,
                        r"expected input\[1, 3, 5\] to have 2 channels"),
    "transpose channels": (_call("conv_transpose2d", (1, 3, 5, 5), (4, 3, 3, 3)), RuntimeError,
                           r"Given transposed=1, weight of size \[4, 3, 3, 3\], expected "
                           r"input\[1, 3, 5, 5\] to have 4 channels, but got 3 channels"),
    "transpose output_padding": (_call("conv_transpose2d", (1, 4, 5, 5), (4, 3, 3, 3),
                                       stride=2, output_padding=2), RuntimeError,
                                 "output padding must be smaller than either stride or "
                                 "dilation"),
    "transpose bias": (_call("conv_transpose2d", (1, 4, 5, 5), (4, 3, 3, 3), bias_shape=(4,)),
                       RuntimeError, r"Given transposed=1, weight of size \[4, 3, 3, 3\], "
                                     r"expected bias to be 1-dimensional with 3 elements"),
    "transpose output size": (_call("conv_transpose2d", (1, 4, 1, 1), (4, 3, 1, 1),
                                    padding=1), RuntimeError,
                              r"Calculated output size per channel: \(-1 x -1\). Output size "
                              r"is too small"),
    "transpose padding string": (_call("conv_transpose2d", (1, 4, 5, 5), (4, 3, 3, 3),
                                       padding="same"), TypeError,
                                 "argument 'padding' must be tuple of ints, not str"),
}


@pytest.mark.parametrize("case", CONV_ERRORS)
def test_conv_errors(case):
    make, error, message = CONV_ERRORS[case]
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize("case", CONV_ERRORS)
def test_conv_errors_are_pytorchs_types(case):
    torch = pytest.importorskip("torch")
    make, error, _ = CONV_ERRORS[case]
    with pytest.raises(error):
        make(torch)


def test_conv_dtype_mismatch_and_integer_input():
    weight = _t(np.zeros((4, 3, 3, 3), np.float32))
    with pytest.raises(RuntimeError, match="input and weight must have the same dtype"):
        F.conv2d(_t(np.zeros((1, 3, 5, 5))), weight)
    with pytest.raises(TypeError, match="input must be a floating tensor"):
        F.conv2d(_t(np.zeros((1, 3, 5, 5), np.int64)), weight)
    with pytest.raises(TypeError, match="weight must be a Tensor"):
        F.conv2d(_t(np.zeros((1, 3, 5, 5), np.float32)), np.zeros((4, 3, 3, 3)))


# --------------------------------------------------------------------------------- layers
def test_conv2d_layer_shapes_init_and_state_dict():
    fg.manual_seed(0)
    layer = nn.Conv2d(4, 6, (3, 2), groups=2)
    assert layer.weight.shape == (6, 2, 3, 2) and layer.bias.shape == (6,)
    assert list(layer.state_dict()) == ["weight", "bias"]
    assert layer.kernel_size == (3, 2) and layer.stride == (1, 1) and layer.padding == (0, 0)
    assert layer.dilation == (1, 1) and layer.groups == 2 and not layer.transposed
    bound = 1 / math.sqrt(2 * 3 * 2)
    for values in (layer.weight.numpy(), layer.bias.numpy()):
        assert values.dtype == np.float32 and np.abs(values).max() <= bound
        assert np.abs(values).max() > bound / 2  # spread over the range, not all near 0
    fg.manual_seed(0)
    np.testing.assert_array_equal(nn.Conv2d(4, 6, (3, 2), groups=2).weight.numpy(),
                                  layer.weight.numpy())
    assert nn.Conv2d(3, 4, 3, bias=False, dtype=np.float64).bias is None
    assert list(nn.Conv2d(3, 4, 3, bias=False).state_dict()) == ["weight"]
    assert nn.ConvTranspose2d(4, 6, 3, groups=2).weight.shape == (4, 3, 3, 3)
    assert nn.Conv1d(4, 6, 3).weight.shape == (6, 4, 3)


LAYER_REPRS = {
    "nn.Conv2d(3, 4, 3)": "Conv2d(3, 4, kernel_size=(3, 3), stride=(1, 1))",
    "nn.Conv2d(3, 4, (3, 2), stride=2, padding=1, dilation=2, bias=False)":
        "Conv2d(3, 4, kernel_size=(3, 2), stride=(2, 2), padding=(1, 1), dilation=(2, 2), "
        "bias=False)",
    "nn.Conv2d(4, 4, 3, padding='same', groups=4)":
        "Conv2d(4, 4, kernel_size=(3, 3), stride=(1, 1), padding=same, groups=4)",
    "nn.Conv1d(3, 4, 3, stride=2)": "Conv1d(3, 4, kernel_size=(3,), stride=(2,))",
    "nn.ConvTranspose2d(3, 4, 3, stride=2, output_padding=1)":
        "ConvTranspose2d(3, 4, kernel_size=(3, 3), stride=(2, 2), output_padding=(1, 1))",
}


@pytest.mark.parametrize("code", LAYER_REPRS)
def test_layer_reprs(code):
    assert repr(eval(code)) == LAYER_REPRS[code]
    torch = pytest.importorskip("torch")
    assert repr(eval(code, {"nn": torch.nn})) == LAYER_REPRS[code]


LAYER_ERRORS = {
    "nn.Conv2d(3, 4, 3, groups=2)": (ValueError, "in_channels must be divisible by groups"),
    "nn.Conv2d(4, 3, 3, groups=2)": (ValueError, "out_channels must be divisible by groups"),
    "nn.Conv2d(4, 4, 3, groups=0)": (ValueError, "groups must be a positive integer"),
    "nn.Conv2d(4, 4, 3, padding='full')": (ValueError, "Invalid padding string 'full'"),
    "nn.Conv2d(4, 4, 3, padding='same', stride=2)":
        (ValueError, "padding='same' is not supported for strided convolutions"),
    "nn.Conv2d(4, 4, 3, padding_mode='mirror')":
        (ValueError, "padding_mode must be one of .* but got padding_mode='mirror'"),
    "nn.ConvTranspose2d(4, 4, 3, padding_mode='reflect')":
        (ValueError, 'Only "zeros" padding mode is supported for ConvTranspose2d'),
}


@pytest.mark.parametrize("code", LAYER_ERRORS)
def test_layer_errors(code):
    error, message = LAYER_ERRORS[code]
    with pytest.raises(error, match=message):
        eval(code)


def test_padding_modes_other_than_zeros_are_refused_by_name():
    with pytest.raises(NotImplementedError, match="padding_mode='reflect' is not supported"):
        nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect")


@pytest.mark.parametrize("name, sizes, options, input_shape, call", [
    ("Conv2d", (3, 6, 3), dict(stride=2, padding=1, groups=3), (2, 3, 7, 6), {}),
    ("Conv1d", (2, 4, 3), dict(padding="same", bias=False), (2, 2, 9), {}),
    ("ConvTranspose2d", (4, 2, 3), dict(stride=2, padding=1), (2, 4, 5, 4),
     dict(output_size=(10, 8))),
], ids=["Conv2d", "Conv1d", "ConvTranspose2d"])
def test_conv_layers_match_pytorch_with_its_weights(name, sizes, options, input_shape, call,
                                                    rng):
    torch = pytest.importorskip("torch")
    theirs = getattr(torch.nn, name)(*sizes, **options).double()
    ours = getattr(nn, name)(*sizes, **options, dtype=np.float64)
    ours.load_state_dict(theirs.state_dict())
    _compare(torch, lambda x: ours(x, **call), lambda x: theirs(x, **call),
             [rng.standard_normal(input_shape)])
    for key, parameter in ours.named_parameters():
        np.testing.assert_allclose(parameter.grad.numpy(), theirs.get_parameter(key).grad.numpy(),
                                   **_tol(np.float64))


def test_conv_transpose2d_output_size(rng):
    layer = nn.ConvTranspose2d(4, 4, 3, stride=2)
    x = _t(rng.standard_normal((1, 4, 5, 5)).astype(np.float32))
    assert layer(x).shape == (1, 4, 11, 11)
    assert layer(x, output_size=(12, 11)).shape == (1, 4, 12, 11)
    assert layer(x, output_size=(1, 4, 12, 12)).shape == (1, 4, 12, 12)
    with pytest.raises(ValueError, match=r"valid sizes range from \[11, 11\] to \[12, 12\]"):
        layer(x, output_size=(13, 12))
    with pytest.raises(ValueError, match="output_size must have 2 or 4 elements"):
        layer(x, output_size=(4, 12, 12))


# ----------------------------------------------------------------------- a small CNN trains
def _cnn(library, dtype=None):
    extra = {} if dtype is None else dict(dtype=dtype)
    return library.Sequential(
        library.Conv2d(1, 4, 3, padding=1, **extra), library.BatchNorm2d(4, **extra),
        library.ReLU(), library.MaxPool2d(2), library.Conv2d(4, 8, 3, padding=1, **extra),
        library.ReLU(), library.AdaptiveAvgPool2d(1), library.Flatten(),
        library.Linear(8, 3, **extra))


def test_small_cnn_learns(rng):
    """Without PyTorch: on images whose brightness is their class, the loss falls to a
    fraction of its start in 20 SGD steps."""
    fg.manual_seed(0)
    model = _cnn(nn)
    labels = rng.integers(0, 3, 32)
    x = _t((rng.standard_normal((32, 1, 8, 8)) + labels[:, None, None, None] - 1).astype(
        np.float32))
    y = _t(labels)
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_small_cnn_matches_pytorch_over_three_sgd_steps(rng):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = _cnn(torch.nn)
    ours = _cnn(nn)
    ours.load_state_dict(theirs.state_dict())
    x = rng.standard_normal((8, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    opt_o = optim.SGD(ours.parameters(), lr=0.1, momentum=0.9)
    opt_t = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9)
    for step in range(3):
        opt_o.zero_grad()
        opt_t.zero_grad()
        loss_o = F.cross_entropy(ours(_t(x)), _t(y))
        loss_t = torch.nn.functional.cross_entropy(theirs(torch.from_numpy(x)),
                                                   torch.from_numpy(y))
        np.testing.assert_allclose(loss_o.item(), loss_t.item(), rtol=1e-5,
                                   err_msg=f"loss at step {step}")
        loss_o.backward()
        loss_t.backward()
        opt_o.step()
        opt_t.step()
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key].numpy(), value.numpy(), rtol=1e-4,
                                   atol=1e-5, err_msg=key)
