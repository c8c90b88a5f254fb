"""Numerical edge cases across the public API, on every available backend: extreme logits,
saturated sigmoids, constant BatchNorm features, Adam without gradient, clipping at zero and
infinite norms, a 1,000-step LSTM. Values against closed forms and, where installed, PyTorch."""
import math

import numpy as np
import pytest

import fastgrad as fg
import fastgrad.nn.functional as F
from fastgrad import nn

FLOATS = (np.float32, np.float64)


@pytest.fixture(params=["numpy"] + (["default"] if len(fg.backends.available()) > 1 else []))
def backend(request):
    """The reference kernels, and the default order (the fastest backend implementing each
    kernel) when a faster backend is installed."""
    with fg.backends.use(None if request.param == "default" else request.param):
        yield request.param


def _t(values, dtype=np.float32, requires_grad=False):
    return fg.tensor(np.asarray(values, dtype), requires_grad=requires_grad)


def _rel(actual, expected):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-30)


# --------------------------------------------------------------------------- extreme logits
LOGITS = [[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4], [-1e4, 1e4, 3.0]]


def _log_softmax64(z):
    z = np.asarray(z, np.float64)
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("dtype", FLOATS)
def test_softmax_and_log_softmax_of_huge_logits(backend, dtype):
    x = _t(LOGITS, dtype, requires_grad=True)
    soft = fg.softmax(x, 1)
    log_soft = fg.log_softmax(x, 1)
    expected = _log_softmax64(LOGITS)
    assert np.isfinite(soft.numpy()).all() and np.isfinite(log_soft.numpy()).all()
    np.testing.assert_allclose(soft.numpy(), np.exp(expected), atol=1e-7)
    np.testing.assert_allclose(log_soft.numpy(), expected, rtol=1e-6)
    assert log_soft.numpy()[0, 0] == 0 and log_soft.numpy()[0, 1] == -2e4
    np.testing.assert_allclose(soft.numpy().sum(1), 1, rtol=1e-6)
    upstream = np.random.default_rng(0).standard_normal((4, 3)).astype(dtype)
    (log_soft * _t(upstream, dtype)).sum().backward()
    assert np.isfinite(x.grad.numpy()).all()
    # d/dz of sum(u * log_softmax(z)) = u - softmax(z) * sum(u)
    np.testing.assert_allclose(
        x.grad.numpy(), upstream - np.exp(expected) * upstream.sum(1, keepdims=True),
        atol=1e-5)


def _cross_entropy_case(dtype, reduction="none"):
    """Loss and logit gradient of F.cross_entropy on LOGITS, and the float64 references."""
    target = np.array([1, 0, 2, 1])
    x = _t(LOGITS, dtype, requires_grad=True)
    loss = F.cross_entropy(x, fg.tensor(target), reduction=reduction)
    loss.sum().backward()
    log_probs = _log_softmax64(LOGITS)
    per_sample = -log_probs[np.arange(4), target]
    scale = 1 / 4 if reduction == "mean" else 1
    expected = {"none": per_sample, "mean": per_sample.mean(), "sum": per_sample.sum()}
    grad = (np.exp(log_probs) - np.eye(3)[target]) * scale
    return loss.numpy(), x.grad.numpy(), expected[reduction], grad


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_cross_entropy_of_huge_logits_is_finite_and_correct(backend, dtype, reduction):
    loss, grad, expected_loss, expected_grad = _cross_entropy_case(dtype, reduction)
    assert np.isfinite(loss).all() and np.isfinite(grad).all()
    # within rounding of the logits' magnitude (1e4 ulps): see the float32 test below
    atol = 1e4 * np.finfo(dtype).eps
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-6, atol=atol)
    np.testing.assert_allclose(grad, expected_grad, atol=atol)
    if reduction == "none":
        assert loss[-1] == 0  # the target holds the only maximum
    np.testing.assert_allclose(grad.sum(1), 0, atol=atol)


@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_cross_entropy_of_huge_equal_logits_keeps_float32_precision(backend, reduction):
    loss, grad, expected_loss, expected_grad = _cross_entropy_case(np.float32, reduction)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-6)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-6, atol=1e-7)


def test_cross_entropy_of_huge_logits_against_pytorch(backend):
    torch = pytest.importorskip("torch")
    logits = np.array(LOGITS, np.float32)
    target = np.array([1, 0, 2, 1])
    x = _t(logits, requires_grad=True)
    loss = F.cross_entropy(x, fg.tensor(target), reduction="none")
    loss.sum().backward()
    tx = torch.tensor(logits, requires_grad=True)
    expected = torch.nn.functional.cross_entropy(tx, torch.tensor(target), reduction="none")
    expected.sum().backward()
    np.testing.assert_allclose(loss.numpy(), expected.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-6, atol=1e-7)


# --------------------------------------------------------------------------- saturated sigmoid
SIGMOID_INPUTS = [1e3, -1e3, 1e4, -1e4, 0.0, 88.0, -88.0, 1e38, -1e38]


@pytest.mark.parametrize("dtype", FLOATS)
def test_sigmoid_of_huge_inputs_is_exact_and_finite(backend, dtype):
    z = _t(SIGMOID_INPUTS, dtype, requires_grad=True)
    out = fg.sigmoid(z)
    values = out.numpy()
    assert np.isfinite(values).all()
    assert values[0] == 1 and values[1] == 0 and values[4] == 0.5
    expected = [1 / (1 + math.exp(-v)) if v > -700 else 0.0 for v in SIGMOID_INPUTS]
    # below the smallest normal number a backend may flush to zero (fast-math exp)
    tiny = np.finfo(dtype).tiny
    np.testing.assert_allclose(values, expected, rtol=1e-6, atol=tiny)
    out.sum().backward()
    grad = z.grad.numpy()
    assert np.isfinite(grad).all() and grad[0] == 0 and grad[1] == 0 and grad[4] == 0.25
    # the module, the fused Linear + Sigmoid kernel and BCE-with-logits agree
    np.testing.assert_array_equal(nn.Sigmoid()(_t(SIGMOID_INPUTS, dtype)).numpy(), values)
    layer = nn.Linear(1, 1, dtype=dtype)
    layer.weight.data = np.ones((1, 1), dtype)
    layer.bias.data = np.zeros(1, dtype)
    fused = nn.Sequential(layer, nn.Sigmoid())(_t(np.reshape(SIGMOID_INPUTS, (-1, 1)), dtype))
    np.testing.assert_allclose(fused.numpy().ravel(), values, rtol=1e-6, atol=tiny)
    targets = _t([1, 0, 1, 0, 1, 1, 0, 0, 1], dtype)
    bce = F.binary_cross_entropy_with_logits(_t(SIGMOID_INPUTS, dtype), targets,
                                             reduction="none").numpy()
    assert np.isfinite(bce).all() and bce[0] == 0 and bce[2] == 0
    np.testing.assert_allclose(bce[:2], [0, 0], atol=0)


# --------------------------------------------------------------------- constant features
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5)])
def test_batchnorm_of_constant_features_is_finite_and_zero(backend, dtype, shape):
    layer = nn.BatchNorm1d(3, dtype=dtype)
    x = _t(np.full(shape, 3.25), dtype, requires_grad=True)
    out = layer(x)
    assert np.isfinite(out.numpy()).all()
    np.testing.assert_array_equal(out.numpy(), 0)
    upstream = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    (out * _t(upstream, dtype)).sum().backward()
    for grad in (x.grad, layer.weight.grad, layer.bias.grad):
        assert np.isfinite(grad.numpy()).all()
    np.testing.assert_allclose(layer.weight.grad.numpy(), 0, atol=1e-6)
    axes = (0,) if len(shape) == 2 else (0, 2)
    np.testing.assert_allclose(layer.bias.grad.numpy(), upstream.sum(axes), rtol=1e-5)
    # running statistics: the mean moves toward 3.25, the (unbiased) variance toward 0
    np.testing.assert_allclose(layer.running_mean.numpy(), 0.325, rtol=1e-6)
    np.testing.assert_allclose(layer.running_var.numpy(), 0.9, rtol=1e-6)
    layer.bias.data = np.array([1.0, -2.0, 0.5], dtype)
    np.testing.assert_allclose(layer(x).numpy(),
                               np.broadcast_to(np.array([1.0, -2.0, 0.5]).reshape(
                                   (3,) + (1,) * (len(shape) - 2)), shape))


def test_batchnorm_of_constant_features_against_pytorch(backend):
    torch = pytest.importorskip("torch")
    values = np.full((6, 4), -7.5, np.float32)
    values[:, 1] = 2.0
    upstream = np.random.default_rng(2).standard_normal((6, 4)).astype(np.float32)
    ours = nn.BatchNorm1d(4)
    x = _t(values, requires_grad=True)
    out = ours(x)
    (out * _t(upstream)).sum().backward()
    theirs = torch.nn.BatchNorm1d(4)
    tx = torch.tensor(values, requires_grad=True)
    tout = theirs(tx)
    (tout * torch.tensor(upstream)).sum().backward()
    # fastgrad's output is exactly 0; PyTorch's float32 mean is off by an ulp of 7.5, which
    # 1/sqrt(eps) = 316 magnifies to 1e-4
    np.testing.assert_array_equal(out.numpy(), 0)
    np.testing.assert_allclose(tout.detach().numpy(), 0, atol=7.5 * 2 ** -23 * 316 * 2)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(ours.running_var.numpy(), theirs.running_var.numpy(), rtol=1e-6)


# ------------------------------------------------------------------------ Adam, zero grads
ADAM_CASES = [
    dict(),
    dict(amsgrad=True),
    dict(maximize=True),
    dict(weight_decay=0.1),
    dict(weight_decay=0.1, decoupled_weight_decay=True),
]


@pytest.mark.parametrize("options", ADAM_CASES, ids=str)
def test_adam_with_zero_gradients(backend, options):
    values = np.random.default_rng(3).standard_normal((4, 5)).astype(np.float32)
    p = nn.Parameter(values.copy())
    optimizer = fg.optim.Adam([p], lr=0.1, **options)
    for _ in range(3):
        p.grad = fg.zeros(4, 5)
        optimizer.step()
    state = optimizer.state[p]
    assert state["step"] == 3.0
    decay = options.get("weight_decay", 0.0)
    for name in ("exp_avg", "exp_avg_sq"):
        assert np.isfinite(state[name].numpy()).all()
        if decay == 0 or options.get("decoupled_weight_decay"):
            np.testing.assert_array_equal(state[name].numpy(), 0)
    assert np.isfinite(p.numpy()).all()
    if decay == 0:
        np.testing.assert_array_equal(p.numpy(), values)  # 0 / (0 + eps) moves nothing
    elif options.get("decoupled_weight_decay"):
        np.testing.assert_allclose(p.numpy(), values * (1 - 0.1 * decay) ** 3, rtol=1e-6)
    else:
        assert not np.array_equal(p.numpy(), values)  # the L2 term is a non-zero gradient


@pytest.mark.parametrize("options", ADAM_CASES, ids=str)
def test_adam_with_zero_gradients_against_pytorch(backend, options):
    torch = pytest.importorskip("torch")
    values = np.random.default_rng(4).standard_normal(7).astype(np.float32)
    p = nn.Parameter(values.copy())
    tp = torch.nn.Parameter(torch.tensor(values))
    ours = fg.optim.Adam([p], lr=0.05, **options)
    theirs = torch.optim.Adam([tp], lr=0.05, **options)
    for _ in range(4):
        p.grad = fg.zeros(7)
        tp.grad = torch.zeros(7)
        ours.step()
        theirs.step()
    np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-6, atol=1e-7)
    assert np.isfinite(p.numpy()).all()


# -------------------------------------------------------------------- clipping extremes
def _params(grads, arena=False, dtype=np.float32):
    """Parameters with the given gradients; with ``arena``, packed by an optimiser first, so
    clipping takes the one-kernel path over the arena's gradient buffer."""
    params = [nn.Parameter(np.zeros(np.shape(g), dtype)) for g in grads]
    if arena:
        fg.optim.SGD(params, lr=0.1)
    for p, g in zip(params, grads):
        p.grad = _t(g, dtype)
        assert (p.grad._data.base is not None) == arena
    return params


ARENA = pytest.mark.parametrize("arena", [False, True], ids=["loose", "arena"])


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
@ARENA
def test_clip_grad_norm_of_zero_gradients(backend, norm_type, arena):
    params = _params([np.zeros((3, 2)), np.zeros(4)], arena)
    total = fg.nn.utils.clip_grad_norm_(params, 1.0, norm_type=norm_type,
                                        error_if_nonfinite=True)
    assert float(total) == 0.0
    for p in params:
        np.testing.assert_array_equal(p.grad.numpy(), 0)
        assert not np.signbit(p.grad.numpy()).any()
    total = fg.nn.utils.clip_grad_norm_(params, 0.0, norm_type=norm_type)
    assert float(total) == 0.0 and all(np.isfinite(p.grad.numpy()).all() for p in params)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
@ARENA
def test_clip_grad_norm_with_non_finite_gradients(backend, norm_type, bad, arena):
    grads = [np.array([[1.0, bad], [3.0, -4.0]]), np.array([0.5, -2.0, 0.0])]
    params = _params(grads, arena)
    with pytest.raises(RuntimeError, match=r"non-finite.*parameters\[0\]"):
        fg.nn.utils.clip_grad_norm_(params, 1.0, norm_type=norm_type, error_if_nonfinite=True)
    for p, g in zip(params, grads):  # nothing was modified before the error
        np.testing.assert_array_equal(p.grad.numpy(), g.astype(np.float32))
    total = float(fg.nn.utils.clip_grad_norm_(params, 1.0, norm_type=norm_type))
    if math.isnan(bad):
        assert math.isnan(total)
        assert all(np.isnan(p.grad.numpy()).all() for p in params)
    else:
        assert total == math.inf
        # the coefficient max_norm / (inf + 1e-6) is 0: finite entries become 0, inf ones NaN
        first = params[0].grad.numpy()
        assert np.isnan(first[0, 1]) and (first.ravel()[[0, 2, 3]] == 0).all()
        np.testing.assert_array_equal(params[1].grad.numpy(), 0)


@pytest.mark.parametrize("norm_type", [2.0, math.inf])
@pytest.mark.parametrize("bad", [0.0, math.inf, math.nan])
@ARENA
def test_clip_grad_norm_extremes_against_pytorch(backend, norm_type, bad, arena):
    torch = pytest.importorskip("torch")
    grads = [np.array([[0.0, bad], [0.0, 0.0]], np.float32), np.zeros(3, np.float32)]
    if bad != 0:
        grads[1] = np.array([0.5, -2.0, 0.0], np.float32)
    ours = _params(grads, arena)
    theirs = [torch.nn.Parameter(torch.zeros(g.shape)) for g in grads]
    for tp, g in zip(theirs, grads):
        tp.grad = torch.tensor(g)
    total = fg.nn.utils.clip_grad_norm_(ours, 1.0, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, 1.0, norm_type=norm_type)
    np.testing.assert_array_equal(total.numpy(), expected.numpy())
    for p, tp in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad.numpy(), tp.grad.numpy())


# ----------------------------------------------------------------------- long sequences
@pytest.mark.parametrize("batch_first", [False, True])
def test_lstm_over_a_1000_step_sequence(backend, batch_first):
    fg.manual_seed(5)
    lstm = nn.LSTM(3, 8, num_layers=2, batch_first=batch_first)
    rng = np.random.default_rng(6)
    data = (rng.standard_normal((2, 1000, 3) if batch_first else (1000, 2, 3)) * 3)
    x = _t(data, requires_grad=True)
    out, (h_n, c_n) = lstm(x)
    for value in (out, h_n, c_n):
        assert np.isfinite(value.numpy()).all()
    assert np.abs(out.numpy()).max() <= 1
    (out.sum() + c_n.sum()).backward()
    assert np.isfinite(x.grad.numpy()).all()
    for name, param in lstm.named_parameters():
        assert np.isfinite(param.grad.numpy()).all(), name
        assert np.abs(param.grad.numpy()).max() > 0, name
    early = np.abs(x.grad.numpy()[:, 0] if batch_first else x.grad.numpy()[0]).max()
    assert early > 0  # the first step still receives gradient through 1,000 steps


def test_lstm_over_a_1000_step_sequence_against_pytorch(backend):
    torch = pytest.importorskip("torch")
    fg.manual_seed(7)
    ours = nn.LSTM(3, 6)
    theirs = torch.nn.LSTM(3, 6)
    theirs.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                            for k, v in ours.state_dict().items()})
    data = np.random.default_rng(8).standard_normal((1000, 2, 3)).astype(np.float32)
    x = _t(data, requires_grad=True)
    out, (h_n, c_n) = ours(x)
    out.sum().backward()
    tx = torch.tensor(data, requires_grad=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 1,000 tiny steps: a thread pool only adds contention
    try:
        tout, (th, tc) = theirs(tx)
        tout.sum().backward()
    finally:
        torch.set_num_threads(threads)
    assert _rel(out.numpy(), tout.detach().numpy()) < 1e-4
    assert _rel(c_n.numpy(), tc.detach().numpy()) < 1e-4
    assert _rel(x.grad.numpy(), tx.grad.numpy()) < 1e-4
    assert _rel(ours.weight_hh_l0.grad.numpy(), theirs.weight_hh_l0.grad.numpy()) < 1e-4
