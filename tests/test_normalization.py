"""Batch normalisation: the batchnorm kernels against textbook formulas, gradchecks of training
and evaluation mode, running statistics, stability, errors, state_dict; against PyTorch when it
is installed (those tests skip without it)."""
import numpy as np
import pytest

import fastgrad as fg
import fastgrad.nn.functional as F
from fastgrad import nn
from fastgrad.autograd import gradcheck
from fastgrad.backends import KERNELS

FLOATS = (np.float32, np.float64)
SHAPES = {"N,C": (6, 3), "N,C,L": (4, 3, 5), "N,C,H,W": (3, 2, 3, 2)}
LAYERS = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d}


def _t(array, requires_grad=False):
    return fg.tensor(np.asarray(array), requires_grad=requires_grad)


def _tolerance(dtype):
    return dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------- kernels vs. formulas
def _reference_stats(x, eps):
    """Per-channel mean, biased variance and 1/sqrt(var + eps) of (N, C, S), channel by
    channel in float64."""
    x = x.astype(np.float64)
    columns = [x[:, c, :].reshape(-1) for c in range(x.shape[1])]
    mean = np.array([np.mean(col) for col in columns])
    var = np.array([np.mean((col - m) ** 2) for col, m in zip(columns, mean)])
    return mean, var, 1 / np.sqrt(var + eps)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("size", [1, 3, 17])
@pytest.mark.parametrize("dtype", FLOATS)
def test_batchnorm_fwd_kernel_matches_the_formula(affine, size, dtype):
    spec = KERNELS["batchnorm_fwd"]
    args = spec.example(np.random.default_rng(size), dtype, size)
    if not affine:
        args["weight"] = args["bias"] = None
    for key in ("mean", "var", "invstd", "out"):
        args[key][...] = np.nan
    spec.reference(**args)
    x, eps = args["x"], args["eps"]
    mean, var, invstd = _reference_stats(x, eps)
    for key, expected in (("mean", mean), ("var", var), ("invstd", invstd)):
        assert args[key].dtype == np.float64
        np.testing.assert_allclose(args[key], expected, rtol=1e-12, err_msg=key)
    gamma = np.ones(x.shape[1]) if not affine else args["weight"].astype(np.float64)
    beta = np.zeros(x.shape[1]) if not affine else args["bias"].astype(np.float64)
    expected = ((x.astype(np.float64) - mean[:, None]) * invstd[:, None] * gamma[:, None]
                + beta[:, None])
    assert args["out"].dtype == dtype
    np.testing.assert_allclose(args["out"], expected, **_tolerance(dtype))


def _textbook_backward(dy, x, gamma, eps):
    """The gradient as Ioffe and Szegedy write it: through x̂, the variance and the mean."""
    dy, x = dy.astype(np.float64), x.astype(np.float64)
    axes, count = (0, 2), x.shape[0] * x.shape[2]
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    x_hat = (x - mu) / np.sqrt(var + eps)
    d_x_hat = dy * gamma[None, :, None]
    d_var = (d_x_hat * (x - mu) * -0.5 * (var + eps) ** -1.5).sum(axis=axes, keepdims=True)
    d_mu = (-d_x_hat / np.sqrt(var + eps)).sum(axis=axes, keepdims=True) \
        + d_var * (-2 * (x - mu)).mean(axis=axes, keepdims=True)
    d_x = d_x_hat / np.sqrt(var + eps) + d_var * 2 * (x - mu) / count + d_mu / count
    return d_x, (dy * x_hat).sum(axis=axes), dy.sum(axis=axes)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("size", [1, 3, 17])
@pytest.mark.parametrize("dtype", FLOATS)
def test_batchnorm_bwd_kernel_matches_the_textbook_gradient(affine, size, dtype):
    spec = KERNELS["batchnorm_bwd"]
    args = spec.example(np.random.default_rng(size), dtype, size)
    if not affine:
        args["weight"] = None
    for key in ("grad_x", "grad_weight", "grad_bias"):
        args[key][...] = np.nan
    spec.reference(**args)
    gamma = np.ones(args["x"].shape[1]) if not affine else args["weight"].astype(np.float64)
    d_x, d_gamma, d_beta = _textbook_backward(args["grad_out"], args["x"], gamma, 1e-5)
    tolerance = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else \
        dict(rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(args["grad_x"], d_x, err_msg="grad_x", **tolerance)
    np.testing.assert_allclose(args["grad_weight"], d_gamma, err_msg="grad_weight", **tolerance)
    np.testing.assert_allclose(args["grad_bias"], d_beta, err_msg="grad_bias", **tolerance)


@pytest.mark.parametrize("skip", ["grad_x", "grad_weight", "grad_bias"])
def test_batchnorm_bwd_kernel_skips_a_gradient_passed_as_none(skip):
    spec = KERNELS["batchnorm_bwd"]
    full = spec.example(np.random.default_rng(0), np.float64, 3)
    spec.reference(**full)
    partial = spec.example(np.random.default_rng(0), np.float64, 3)
    partial[skip] = None
    spec.reference(**partial)
    for key in {"grad_x", "grad_weight", "grad_bias"} - {skip}:
        np.testing.assert_array_equal(partial[key], full[key])


# ------------------------------------------------------------------------------ gradcheck
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_gradcheck_batch_norm_training(shape, affine):
    rng = np.random.default_rng(1)
    x = _t(rng.standard_normal(shape) * 2 + 1, requires_grad=True)
    weight = _t(rng.uniform(0.5, 1.5, shape[1]), requires_grad=True) if affine else None
    bias = _t(rng.standard_normal(shape[1]), requires_grad=True) if affine else None
    inputs = (x, weight, bias) if affine else (x,)

    def fn(x, weight=None, bias=None):
        return F.batch_norm(x, None, None, weight, bias, training=True)

    assert gradcheck(fn, inputs)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_gradcheck_batch_norm_module_training_and_eval(shape, affine):
    rng = np.random.default_rng(2)
    layer = LAYERS[len(shape)](shape[1], affine=affine, dtype=np.float64)
    if affine:
        layer.weight.data = rng.uniform(0.5, 1.5, shape[1])
        layer.bias.data = rng.standard_normal(shape[1])
    x = _t(rng.standard_normal(shape), requires_grad=True)
    inputs = (x, layer.weight, layer.bias) if affine else (x,)
    assert gradcheck(lambda x, *params: layer(x), inputs)
    layer.eval()
    with fg.no_grad():
        layer.running_mean.copy_(rng.standard_normal(shape[1]))
        layer.running_var.copy_(rng.uniform(0.5, 2, shape[1]))
    assert gradcheck(lambda x, *params: layer(x), inputs)


# ------------------------------------------------------------------- semantics, by hand
def test_training_normalises_with_batch_statistics_and_updates_running_ones():
    rng = np.random.default_rng(3)
    layer = nn.BatchNorm1d(3, dtype=np.float64)
    x = rng.standard_normal((8, 3, 4)) * 3 + 2
    out = layer(_t(x)).numpy()
    np.testing.assert_allclose(out.mean(axis=(0, 2)), 0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=(0, 2)), x.var(axis=(0, 2)) /
                               (x.var(axis=(0, 2)) + 1e-5), rtol=1e-12)
    unbiased = x.var(axis=(0, 2), ddof=1)  # the running variance is the unbiased one
    np.testing.assert_allclose(layer.running_mean.numpy(), 0.1 * x.mean(axis=(0, 2)),
                               rtol=1e-12)
    np.testing.assert_allclose(layer.running_var.numpy(), 0.9 + 0.1 * unbiased, rtol=1e-12)
    assert layer.num_batches_tracked.item() == 1


def test_momentum_none_is_the_cumulative_average_of_batch_statistics():
    rng = np.random.default_rng(4)
    layer = nn.BatchNorm1d(2, momentum=None, dtype=np.float64)
    batches = [rng.standard_normal((5, 2)) * (k + 1) + k for k in range(4)]
    for batch in batches:
        layer(_t(batch))
    np.testing.assert_allclose(layer.running_mean.numpy(),
                               np.mean([b.mean(0) for b in batches], axis=0), rtol=1e-12)
    np.testing.assert_allclose(layer.running_var.numpy(),
                               np.mean([b.var(0, ddof=1) for b in batches], axis=0), rtol=1e-12)
    assert layer.num_batches_tracked.item() == 4


def test_eval_uses_running_statistics_and_leaves_them_alone():
    rng = np.random.default_rng(5)
    layer = nn.BatchNorm2d(3, dtype=np.float64)
    with fg.no_grad():
        layer.weight.copy_(np.array([1.0, 2.0, 0.5]))
        layer.bias.copy_(np.array([0.0, -1.0, 3.0]))
    for _ in range(3):
        layer(_t(rng.standard_normal((4, 3, 2, 2)) + 5))
    mean, var = layer.running_mean.numpy().copy(), layer.running_var.numpy().copy()
    layer.eval()
    x = rng.standard_normal((2, 3, 2, 2))
    expected = ((x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5)
                * np.array([1.0, 2.0, 0.5])[:, None, None] + np.array([0.0, -1.0, 3.0])[:, None,
                                                                                        None])
    np.testing.assert_allclose(layer(_t(x)).numpy(), expected, rtol=1e-12)
    np.testing.assert_array_equal(layer.running_mean.numpy(), mean)
    np.testing.assert_array_equal(layer.running_var.numpy(), var)
    assert layer.num_batches_tracked.item() == 3
    # a single sample is fine in evaluation mode
    assert layer(_t(x[:1, :, :1, :1])).shape == (1, 3, 1, 1)
    layer.train()
    layer(_t(x))
    assert layer.num_batches_tracked.item() == 4
    assert not np.array_equal(layer.running_mean.numpy(), mean)


def test_without_running_statistics_both_modes_use_the_batch():
    layer = nn.BatchNorm1d(2, track_running_stats=False, dtype=np.float64)
    assert layer.running_mean is None and layer.num_batches_tracked is None
    x = np.random.default_rng(6).standard_normal((5, 2)) + 4
    train_out = layer(_t(x)).numpy()
    layer.eval()
    np.testing.assert_allclose(layer(_t(x)).numpy(), train_out, rtol=1e-12)
    np.testing.assert_allclose(train_out.mean(0), 0, atol=1e-12)
    assert list(layer.state_dict()) == ["weight", "bias"]


def test_affine_false_has_no_parameters():
    layer = nn.BatchNorm1d(4, affine=False)
    assert layer.weight is None and layer.bias is None and list(layer.parameters()) == []
    assert list(layer.state_dict()) == ["running_mean", "running_var", "num_batches_tracked"]


def test_buffers_parameters_defaults_and_repr():
    layer = nn.BatchNorm1d(3)
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    assert list(layer.state_dict()) == ["weight", "bias", "running_mean", "running_var",
                                        "num_batches_tracked"]
    np.testing.assert_array_equal(layer.weight.numpy(), np.ones(3, np.float32))
    np.testing.assert_array_equal(layer.bias.numpy(), np.zeros(3, np.float32))
    np.testing.assert_array_equal(layer.running_var.numpy(), np.ones(3, np.float32))
    assert layer.running_mean.dtype == np.float32
    nbt = layer.num_batches_tracked
    assert nbt.dtype == np.int64 and nbt.shape == () and not nbt.requires_grad
    assert repr(layer) == ("BatchNorm1d(3, eps=1e-05, momentum=0.1, affine=True, "
                           "track_running_stats=True)")
    assert repr(nn.BatchNorm2d(8, momentum=None, affine=False)) == (
        "BatchNorm2d(8, eps=1e-05, momentum=None, affine=False, track_running_stats=True)")


def test_reset_running_stats():
    layer = nn.BatchNorm1d(2)
    layer(_t(np.random.default_rng(7).standard_normal((4, 2)).astype(np.float32) + 3))
    layer.reset_running_stats()
    np.testing.assert_array_equal(layer.running_mean.numpy(), 0)
    np.testing.assert_array_equal(layer.running_var.numpy(), 1)
    assert layer.num_batches_tracked.item() == 0


def test_works_inside_sequential_and_float64():
    model = nn.Sequential(nn.Linear(4, 6, dtype=np.float64), nn.BatchNorm1d(6, dtype=np.float64),
                          nn.ReLU(), nn.Linear(6, 2, dtype=np.float64))
    x = _t(np.random.default_rng(8).standard_normal((10, 4)))
    model(x).sum().backward()
    assert all(p.grad is not None and np.isfinite(p.grad.numpy()).all()
               for p in model.parameters())
    assert model[1].running_mean.dtype == np.float64


# ------------------------------------------------------------------------------ stability
@pytest.mark.parametrize("shape", [(256, 4), (32, 4, 16)])
def test_float32_inputs_with_a_large_mean_normalise_correctly(shape):
    rng = np.random.default_rng(9)
    x = (1e4 + rng.standard_normal(shape)).astype(np.float32)
    layer = nn.BatchNorm1d(4)
    out = layer(_t(x)).numpy()
    axes = (0,) if len(shape) == 2 else (0, 2)
    x64 = x.astype(np.float64)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.mean(axis=axes), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=axes), 1, atol=1e-4)
    # the running statistics hold the true ones: E[x²] - E[x]² would give garbage here
    np.testing.assert_allclose(layer.running_mean.numpy(), 0.1 * x64.mean(axis=axes),
                               rtol=1e-6)
    np.testing.assert_allclose(layer.running_var.numpy(),
                               0.9 + 0.1 * x64.var(axis=axes, ddof=1), rtol=1e-5)


def test_constant_features_give_zero_output_and_finite_gradients():
    x = _t(np.full((6, 3), 7.0, np.float32), requires_grad=True)
    layer = nn.BatchNorm1d(3)
    out = layer(x)
    np.testing.assert_array_equal(out.numpy(), 0)
    out.backward(_t(np.random.default_rng(10).standard_normal((6, 3)).astype(np.float32)))
    for grad in (x.grad, layer.weight.grad, layer.bias.grad):
        assert np.isfinite(grad.numpy()).all()
    np.testing.assert_array_equal(layer.weight.grad.numpy(), 0)  # x̂ is 0 everywhere
    np.testing.assert_array_equal(layer.running_var.numpy(), np.float32(0.9))  # batch var 0


# -------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("layer, shape, message", [
    (nn.BatchNorm1d, (2, 3, 4, 5), "expected 2D or 3D input (got 4D input)"),
    (nn.BatchNorm1d, (3,), "expected 2D or 3D input (got 1D input)"),
    (nn.BatchNorm2d, (2, 3, 4), "expected 4D input (got 3D input)"),
    (nn.BatchNorm2d, (1, 3, 1, 1), "Expected more than 1 value per channel when training, "
                                   "got input size (1, 3, 1, 1)"),
    (nn.BatchNorm1d, (1, 3), "Expected more than 1 value per channel when training"),
    (nn.BatchNorm1d, (1, 3, 1), "Expected more than 1 value per channel when training"),
    (nn.BatchNorm1d, (0, 3), "non-empty batch"),
])
def test_bad_input_rank_or_batch_is_a_value_error_and_counts_nothing(layer, shape, message):
    bn = layer(3)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        bn(fg.zeros(*shape))
    assert bn.num_batches_tracked.item() == 0
    np.testing.assert_array_equal(bn.running_mean.numpy(), 0)


def test_channel_or_dtype_mismatch_is_a_runtime_error():
    with pytest.raises(RuntimeError, match=r"running_mean should have shape \(4,\)"):
        nn.BatchNorm1d(3)(fg.zeros(2, 4))
    with pytest.raises(RuntimeError, match="same dtype"):
        nn.BatchNorm1d(3)(fg.zeros(2, 3, dtype=fg.float64))


@pytest.mark.parametrize("call, error", [
    (lambda: F.batch_norm(fg.zeros(4, 3), None, None, training=False), ValueError),
    (lambda: F.batch_norm(fg.zeros(4, 3), fg.zeros(3), None, training=True), ValueError),
    (lambda: F.batch_norm(fg.zeros(4), None, None, training=True), ValueError),
    (lambda: F.batch_norm(fg.zeros(4, 3, dtype=fg.int64), None, None, training=True),
     TypeError),
    (lambda: F.batch_norm(fg.zeros(4, 3), None, None, training=True, eps=-1.0), ValueError),
    (lambda: nn.BatchNorm1d(0), ValueError),
    (lambda: nn.BatchNorm1d(3, momentum=1.5), ValueError),
    (lambda: nn.BatchNorm1d(3, momentum="fast"), TypeError),
    (lambda: nn.BatchNorm1d(3, dtype=fg.int64), TypeError),
], ids=["eval-without-stats", "mean-without-var", "1d-input", "int-input", "negative-eps",
        "zero-features", "momentum-range", "momentum-type", "int-dtype"])
def test_invalid_arguments(call, error):
    with pytest.raises(error):
        call()


# ------------------------------------------------------------------------------- PyTorch
def _rel(actual, expected):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-30)


TORCH_SETTINGS = [dict(momentum=0.1, affine=True, track=True),
                  dict(momentum=0.3, affine=True, track=True),
                  dict(momentum=None, affine=True, track=True),
                  dict(momentum=None, affine=False, track=True),
                  dict(momentum=0.1, affine=True, track=False)]


@pytest.mark.parametrize("settings", TORCH_SETTINGS,
                         ids=["-".join(f"{k}={v}" for k, v in s.items()) for s in TORCH_SETTINGS])
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_matches_pytorch_over_several_steps(shape, settings):
    momentum, affine, track = settings["momentum"], settings["affine"], settings["track"]
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    ours = LAYERS[len(shape)](shape[1], momentum=momentum, affine=affine,
                              track_running_stats=track)
    theirs = getattr(torch.nn, type(ours).__name__)(shape[1], momentum=momentum,
                                                    affine=affine, track_running_stats=track)
    if affine:
        with torch.no_grad():
            theirs.weight.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, shape[1])))
            theirs.bias.copy_(torch.from_numpy(rng.standard_normal(shape[1])))
    ours.load_state_dict(theirs.state_dict())
    for step in range(4):
        x = (rng.standard_normal(shape) * 2 + step).astype(np.float32)
        grad = rng.standard_normal(shape).astype(np.float32)
        ours.zero_grad()
        theirs.zero_grad()
        xo, xt = _t(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        out_o, out_t = ours(xo), theirs(xt)
        out_o.backward(_t(grad))
        out_t.backward(torch.from_numpy(grad))
        assert _rel(out_o.numpy(), out_t.detach().numpy()) < 1e-5
        assert _rel(xo.grad.numpy(), xt.grad.numpy()) < 1e-5
        if affine:
            assert _rel(ours.weight.grad.numpy(), theirs.weight.grad.numpy()) < 1e-5
            assert _rel(ours.bias.grad.numpy(), theirs.bias.grad.numpy()) < 1e-5
        for key, value in theirs.state_dict().items():
            assert _rel(ours.state_dict()[key].numpy(), value.numpy()) < 1e-6, key
    ours.eval()
    theirs.eval()
    x = rng.standard_normal(shape).astype(np.float32)
    assert _rel(ours(_t(x)).numpy(), theirs(torch.from_numpy(x)).detach().numpy()) < 1e-5


def test_state_dict_keys_match_pytorch_and_a_pytorch_state_dict_loads():
    torch = pytest.importorskip("torch")
    theirs = torch.nn.BatchNorm2d(4)
    with torch.no_grad():
        theirs.weight.uniform_(0.5, 1.5)
        theirs.bias.normal_()
    for _ in range(3):
        theirs(torch.randn(5, 4, 3, 3) * 2 + 1)
    ours = nn.BatchNorm2d(4)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())
    for key, value in theirs.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[key].numpy(), value.numpy(), err_msg=key)
    assert ours.num_batches_tracked.item() == 3 and ours.num_batches_tracked.dtype == np.int64
    x = torch.randn(2, 4, 3, 3)
    ours.eval()
    theirs.eval()
    np.testing.assert_allclose(ours(_t(x.numpy())).numpy(), theirs(x).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    # and back: our state_dict loads into PyTorch
    fresh = torch.nn.BatchNorm2d(4)
    fresh.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                           for k, v in ours.state_dict().items()})
    assert fresh.num_batches_tracked.item() == 3


def test_functional_matches_pytorch_with_running_statistics():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(12)
    x = rng.standard_normal((6, 3, 4))
    mean, var = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    ours_mean, ours_var = _t(mean), _t(var)
    theirs_mean, theirs_var = torch.tensor(mean), torch.tensor(var)
    out_o = F.batch_norm(_t(x), ours_mean, ours_var, training=True, momentum=0.2, eps=1e-3)
    out_t = torch.nn.functional.batch_norm(torch.tensor(x), theirs_mean, theirs_var,
                                           training=True, momentum=0.2, eps=1e-3)
    np.testing.assert_allclose(out_o.numpy(), out_t.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours_mean.numpy(), theirs_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours_var.numpy(), theirs_var.numpy(), rtol=1e-12)
    out_o = F.batch_norm(_t(x), ours_mean, ours_var, training=False, eps=1e-3)
    out_t = torch.nn.functional.batch_norm(torch.tensor(x), theirs_mean, theirs_var,
                                           training=False, eps=1e-3)
    np.testing.assert_allclose(out_o.numpy(), out_t.numpy(), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------- a fused activation
ACTIVATION_LAYERS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


@pytest.mark.parametrize("activation", sorted(ACTIVATION_LAYERS))
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("dtype", FLOATS)
def test_sequential_fuses_batchnorm_and_activation_bit_for_bit(activation, shape, dtype):
    """Sequential runs BatchNorm + ReLU/Sigmoid/Tanh as one op (one node), with the same
    output, gradients and running statistics as the two layers one after another; in
    evaluation mode too."""
    rng = np.random.default_rng(14)
    x = (2 * rng.standard_normal(shape) + 1).astype(dtype)
    grad_out = rng.standard_normal(shape).astype(dtype)

    def run(fuse, training):
        fg.manual_seed(0)
        norm = LAYERS[len(shape)](shape[1], dtype=dtype)
        with fg.no_grad():
            norm.weight.copy_(_t(rng_weights.uniform(0.5, 1.5, shape[1]).astype(dtype)))
        act = ACTIVATION_LAYERS[activation]()
        if not fuse:  # a hook on either layer keeps the pair apart
            act.register_forward_hook(lambda *args: None)
        model = nn.Sequential(norm, act).train(training)
        xt = _t(x, requires_grad=True)
        out = model(xt)
        last = type(out.grad_fn).__name__ if out.grad_fn is not None else None
        out.backward(_t(grad_out))
        return last, [out.numpy(), xt.grad.numpy(), norm.weight.grad.numpy(),
                       norm.bias.grad.numpy(), norm.running_mean.numpy(),
                       norm.running_var.numpy()]

    for training in (True, False):
        rng_weights = np.random.default_rng(15)
        fused_last, fused = run(True, training)
        rng_weights = np.random.default_rng(15)
        separate_last, separate = run(False, training)
        names = ("output", "grad x", "grad weight", "grad bias", "running mean", "running var")
        for name, a, b in zip(names, fused, separate):
            np.testing.assert_array_equal(a, b, err_msg=f"{name}, training={training}")
        if training:  # fused: the output is the BatchNorm op's own
            assert fused_last == "_BatchNormTraining" != separate_last


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_gradcheck_batch_norm_with_activation(activation):
    rng = np.random.default_rng(16)
    x = _t(rng.standard_normal((5, 3, 2)), requires_grad=True)
    weight = _t(rng.uniform(0.5, 1.5, 3), requires_grad=True)
    bias = _t(rng.standard_normal(3), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True,
                                                  activation=activation), (x, weight, bias))


def test_batch_norm_rejects_an_unknown_activation():
    with pytest.raises(ValueError, match="activation.*'gelu'"):
        F.batch_norm(fg.ones(4, 3), None, None, training=True, activation="gelu")


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_fused_activation_matches_pytorch(activation):
    """F.batch_norm(..., activation=a) is PyTorch's activation of F.batch_norm, with the
    same running statistics and gradients."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(17)
    x = (3 * rng.standard_normal((8, 4, 5)) + 2).astype(np.float32)
    grad = rng.standard_normal(x.shape).astype(np.float32)
    weight, bias = rng.uniform(0.5, 1.5, 4).astype(np.float32), rng.standard_normal(4)
    bias = bias.astype(np.float32)
    ours = [_t(a, requires_grad=True) for a in (x, weight, bias)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, weight, bias)]
    mean_o, var_o = fg.zeros(4), fg.ones(4)
    mean_t, var_t = torch.zeros(4), torch.ones(4)
    out_o = F.batch_norm(ours[0], mean_o, var_o, ours[1], ours[2], training=True,
                         activation=activation)
    out_t = getattr(torch, activation)(torch.nn.functional.batch_norm(
        theirs[0], mean_t, var_t, theirs[1], theirs[2], training=True))
    out_o.backward(_t(grad))
    out_t.backward(torch.from_numpy(grad))
    np.testing.assert_allclose(out_o.numpy(), out_t.detach().numpy(), rtol=1e-5, atol=1e-6)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mean_o.numpy(), mean_t.numpy(), rtol=1e-6)
    np.testing.assert_allclose(var_o.numpy(), var_t.numpy(), rtol=1e-6)
