"""Losses: L1, NLL, BCE, BCE with logits, Huber and cross-entropy with label smoothing.
Hand-computed values, gradchecks, stability at extreme logits, shape and argument errors;
against PyTorch when it is installed (those tests skip without it)."""
import math

import numpy as np
import pytest

import fastgrad as fg
import fastgrad.nn.functional as F
from fastgrad import nn
from fastgrad.autograd import gradcheck

REDUCTIONS = ("mean", "sum", "none")
FLOATS = (np.float32, np.float64)


def _t(array, requires_grad=False):
    return fg.tensor(np.asarray(array), requires_grad=requires_grad)


def _rel(actual, expected):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-30)


def _log_softmax(z, axis=1):
    z = z - z.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def _probabilities(rng, shape):
    return rng.uniform(0.02, 0.98, shape)


# -------------------------------------------------------------------------- by hand
def test_values_by_hand():
    x, y = _t([0.5, -2.0, 3.0]), _t([0.0, 0.0, 1.0])
    assert F.l1_loss(x, y, reduction="sum").item() == pytest.approx(4.5)
    np.testing.assert_allclose(F.huber_loss(x, y, "none").numpy(), [0.125, 1.5, 1.5])
    np.testing.assert_allclose(F.huber_loss(x, y, "none", delta=2.0).numpy(), [0.125, 2, 2])
    logp = np.log(np.array([[0.2, 0.8], [0.6, 0.4]]))
    assert F.nll_loss(_t(logp), _t([1, 0])).item() == pytest.approx(
        -(math.log(0.8) + math.log(0.6)) / 2)
    p = _t([0.9, 0.2])
    np.testing.assert_allclose(F.binary_cross_entropy(p, _t([1.0, 0.0]), reduction="none")
                               .numpy(), [-math.log(0.9), -math.log(0.8)], rtol=1e-6)
    logits = _t([2.0, -1.0])
    np.testing.assert_allclose(
        F.binary_cross_entropy_with_logits(logits, _t([1.0, 0.0]), reduction="none").numpy(),
        [math.log1p(math.exp(-2)), math.log1p(math.exp(-1))], rtol=1e-6)
    np.testing.assert_allclose(
        F.binary_cross_entropy_with_logits(logits, _t([1.0, 0.0]), reduction="none",
                                           pos_weight=_t([3.0, 3.0])).numpy(),
        [3 * math.log1p(math.exp(-2)), math.log1p(math.exp(-1))], rtol=1e-6)


def test_label_smoothing_by_hand():
    logits = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0], [0.3, 0.2, 0.1]])
    target = np.array([1, 2, -100])
    logp = _log_softmax(logits)
    eps = 0.2
    per_row = [(1 - eps) * -logp[n, target[n]] - eps / 3 * logp[n].sum() for n in range(2)]
    loss = F.cross_entropy(_t(logits), _t(target), label_smoothing=eps)
    assert loss.item() == pytest.approx(np.mean(per_row), rel=1e-12)
    none = F.cross_entropy(_t(logits), _t(target), label_smoothing=eps, reduction="none")
    np.testing.assert_allclose(none.numpy(), per_row + [0.0], rtol=1e-12)
    soft = np.array([[0.1, 0.9, 0.0], [0.5, 0.0, 0.5], [0.0, 0.0, 1.0]])
    smoothed = soft * (1 - eps) + eps / 3
    assert F.cross_entropy(_t(logits), _t(soft), label_smoothing=eps).item() == pytest.approx(
        -(smoothed * logp).sum(1).mean(), rel=1e-12)


def test_nll_loss_ignores_targets_and_handles_every_input_rank():
    rng = np.random.default_rng(0)
    logp = _log_softmax(rng.standard_normal((4, 3, 5)))
    target = rng.integers(0, 3, (4, 5))
    target[0, :2] = -1
    loss = F.nll_loss(_t(logp), _t(target), ignore_index=-1, reduction="none")
    expected = -np.take_along_axis(logp, np.where(target < 0, 0, target)[:, None], 1)[:, 0]
    expected[target < 0] = 0
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-12)
    assert F.nll_loss(_t(logp), _t(target), ignore_index=-1).item() == pytest.approx(
        expected.sum() / 18, rel=1e-12)
    unbatched = F.nll_loss(_t(logp[0, :, 3]), _t(np.array(2)))
    assert unbatched.shape == () and unbatched.item() == pytest.approx(-logp[0, 2, 3])
    all_ignored = F.nll_loss(_t(logp[:, :, 0]), _t(np.full(4, -100)))
    assert math.isnan(all_ignored.item())  # 0 / 0, as PyTorch


# -------------------------------------------------------------------------- gradcheck
def _cases(rng):
    x, y = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    y[0, 0] = x[0, 0] + 0.3  # inside Huber's quadratic zone
    logits = rng.standard_normal((3, 4, 2)) * 2
    labels = rng.integers(0, 4, (3, 2))
    labels[1, 0] = -100
    soft = np.ascontiguousarray(rng.dirichlet(np.ones(4), (3, 2)).transpose(0, 2, 1))
    probs, targets = _probabilities(rng, (3, 4)), rng.uniform(0, 1, (3, 4))
    return {
        "l1": (lambda a, b, r: F.l1_loss(a, b, reduction=r), (x, y)),
        "huber": (lambda a, b, r: F.huber_loss(a, b, r, delta=0.8), (x, y)),
        "nll": (lambda a, r: F.nll_loss(a, _t(labels), reduction=r),
                (_log_softmax(logits),)),
        "bce": (lambda a, b, r: F.binary_cross_entropy(a, b, reduction=r), (probs, targets)),
        "bce-logits": (lambda a, b, r: F.binary_cross_entropy_with_logits(a, b, reduction=r),
                       (x, targets)),
        "bce-logits-pos-weight": (
            lambda a, b, w, r: F.binary_cross_entropy_with_logits(a, b, reduction=r,
                                                                  pos_weight=w),
            (x, targets, rng.uniform(0.5, 3, 4))),
        "cross-entropy-smoothing": (
            lambda a, r: F.cross_entropy(a, _t(labels), reduction=r, label_smoothing=0.15),
            (logits,)),
        "cross-entropy-soft-smoothing": (
            lambda a, b, r: F.cross_entropy(a, b, reduction=r, label_smoothing=0.15),
            (logits, soft)),
    }


CASE_NAMES = list(_cases(np.random.default_rng(0)))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", CASE_NAMES)
def test_gradcheck_losses(name, reduction):
    fn, arrays = _cases(np.random.default_rng(1))[name]
    inputs = tuple(_t(a, requires_grad=True) for a in arrays)
    assert gradcheck(lambda *args: fn(*args, reduction), inputs)


# -------------------------------------------------------------------------- stability
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("pos_weight", [None, 2.0])
def test_bce_with_logits_is_finite_at_extreme_logits(dtype, pos_weight):
    logits = np.array([100, -100, 100, -100, 1e4, -1e4, 0], dtype)
    target = np.array([0, 1, 1, 0, 0, 1, 1], dtype)
    weight = None if pos_weight is None else _t(np.full(7, pos_weight, dtype))
    p = 1.0 if pos_weight is None else pos_weight
    x = _t(logits, requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(x, _t(target), reduction="none",
                                              pos_weight=weight)
    np.testing.assert_allclose(loss.numpy(), [100, 100 * p, 0, 0, 1e4, 1e4 * p, p * math.log(2)],
                               rtol=1e-6, atol=1e-30)
    loss.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1, -p, 0, 0, 1, -p, -p / 2], rtol=1e-6,
                               atol=1e-30)
    assert loss.dtype == dtype and x.grad.dtype == dtype


@pytest.mark.parametrize("dtype", FLOATS)
def test_bce_clamps_the_log_at_minus_100(dtype):
    x = _t(np.array([0.0, 1.0, 0.0, 1.0], dtype), requires_grad=True)
    loss = F.binary_cross_entropy(x, _t(np.array([1.0, 0.0, 0.0, 1.0], dtype)),
                                  reduction="none")
    np.testing.assert_array_equal(loss.numpy(), np.array([100, 100, 0, 0], dtype))
    loss.sum().backward()
    assert np.isfinite(x.grad.numpy()).all()


def test_cross_entropy_with_smoothing_is_finite_for_huge_logits():
    x = _t(np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 3.0]], np.float32), requires_grad=True)
    loss = F.cross_entropy(x, _t([1, 1]), label_smoothing=0.1)
    loss.backward()
    assert np.isfinite(loss.item()) and np.isfinite(x.grad.numpy()).all()


# -------------------------------------------------------------------------- modules
def test_modules_equal_functions():
    rng = np.random.default_rng(2)
    x, y = _t(rng.standard_normal((4, 3))), _t(rng.uniform(0, 1, (4, 3)))
    probs = _t(_probabilities(rng, (4, 3)))
    labels = _t(np.array([0, 2, -100, 1]))
    w = _t(np.array([1.0, 2.0, 0.5]))
    pairs = [
        (nn.L1Loss(reduction="sum")(x, y), F.l1_loss(x, y, reduction="sum")),
        (nn.HuberLoss("none", 0.5)(x, y), F.huber_loss(x, y, "none", 0.5)),
        (nn.NLLLoss(ignore_index=-100)(x, labels), F.nll_loss(x, labels)),
        (nn.BCELoss()(probs, y), F.binary_cross_entropy(probs, y)),
        (nn.BCEWithLogitsLoss(pos_weight=w)(x, y),
         F.binary_cross_entropy_with_logits(x, y, pos_weight=w)),
        (nn.CrossEntropyLoss(label_smoothing=0.1)(x, labels),
         F.cross_entropy(x, labels, label_smoothing=0.1)),
    ]
    for module_value, function_value in pairs:
        np.testing.assert_array_equal(module_value.numpy(), function_value.numpy())


def test_bce_with_logits_pos_weight_is_a_buffer():
    loss = nn.BCEWithLogitsLoss(pos_weight=fg.ones(3))
    assert list(loss.state_dict()) == ["pos_weight"]
    assert list(nn.BCEWithLogitsLoss().state_dict()) == []


def test_loss_reprs():
    assert repr(nn.L1Loss()) == "L1Loss()"
    assert repr(nn.HuberLoss(reduction="sum")) == "HuberLoss(reduction='sum')"


# -------------------------------------------------------------------------- errors
@pytest.mark.parametrize("call", [
    lambda: F.l1_loss(fg.zeros(3, 1), fg.zeros(3)),
    lambda: F.huber_loss(fg.zeros(3), fg.zeros(1)),
    lambda: F.binary_cross_entropy(fg.zeros(3), fg.zeros(3, 1)),
    lambda: F.binary_cross_entropy_with_logits(fg.zeros(2, 3), fg.zeros(3)),
    lambda: nn.L1Loss()(fg.zeros(4, 2), fg.zeros(2, 4)),
], ids=["l1", "huber", "bce", "bce-logits", "L1Loss"])
def test_shape_mismatch_is_a_value_error_naming_both_shapes(call):
    with pytest.raises(ValueError, match=r"target shape \(.*\) differs from input shape \("):
        call()


def test_nll_target_errors():
    with pytest.raises(ValueError, match=r"target must have shape \(4,\)"):
        F.nll_loss(fg.zeros(4, 3), _t(np.zeros(3, np.int64)))
    with pytest.raises(IndexError, match="target 3 is out of bounds for 3 classes"):
        F.nll_loss(fg.zeros(2, 3), _t([0, 3]))
    with pytest.raises(RuntimeError, match="int64 class indices"):
        F.nll_loss(fg.zeros(2, 3), fg.zeros(2))


@pytest.mark.parametrize("call, error", [
    (lambda: F.binary_cross_entropy(_t([0.5, 1.5]), _t([0.0, 1.0])), RuntimeError),
    (lambda: F.binary_cross_entropy(_t([0.5, np.nan]), _t([0.0, 1.0])), RuntimeError),
    (lambda: F.binary_cross_entropy(_t(np.float32([0.5])), _t([1.0])), RuntimeError),
    (lambda: F.binary_cross_entropy_with_logits(fg.zeros(2, 3), fg.zeros(2, 3),
                                                pos_weight=fg.ones(2)), ValueError),
    (lambda: F.huber_loss(fg.zeros(2), fg.zeros(2), delta=0.0), ValueError),
    (lambda: nn.HuberLoss(delta=-1.0), ValueError),
    (lambda: F.cross_entropy(fg.zeros(2, 3), _t([0, 1]), label_smoothing=1.5), ValueError),
    (lambda: nn.CrossEntropyLoss(label_smoothing=-0.1), ValueError),
    (lambda: nn.L1Loss(reduction="avg"), ValueError),
    (lambda: F.nll_loss(fg.zeros(2, 3), _t([0, 1]), reduction="avg"), ValueError),
    (lambda: nn.CrossEntropyLoss(np.ones(3)), TypeError),
    (lambda: F.nll_loss(fg.zeros(2, 3), _t([0, 1]), ignore_index=1.5), TypeError),
    (lambda: F.l1_loss(np.zeros(2), fg.zeros(2)), TypeError),
], ids=["bce-range", "bce-nan", "bce-dtype", "pos-weight-shape", "huber-delta",
        "HuberLoss-delta", "smoothing-range", "CrossEntropyLoss-smoothing", "reduction",
        "nll-reduction", "weight-array", "ignore-index-type", "array-input"])
def test_argument_errors(call, error):
    with pytest.raises(error):
        call()


# ------------------------------------------------------------------------------- PyTorch
def _torch_cases(torch, rng, dtype):
    """name -> (ours, theirs, arrays, differentiable argument positions)."""
    tf = torch.nn.functional
    x, y = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    logits = rng.standard_normal((5, 4, 3)) * 3
    labels = rng.integers(0, 4, (5, 3))
    labels[0, 1] = labels[3, 2] = -100
    flat_labels = rng.integers(0, 4, 5)
    flat_labels[2] = 1
    soft = rng.dirichlet(np.ones(4), 5)
    probs = _probabilities(rng, (5, 4))
    probs[0, :2] = [0.0, 1.0]  # the clamp at -100
    binary = rng.integers(0, 2, (5, 4)).astype(np.float64)
    binary[1] = rng.uniform(0, 1, 4)  # soft binary targets too
    big = x * 40  # logits up to about ±100
    pos_weight = rng.uniform(0.5, 3, 4)
    index = dict(ignore_index=-100)
    return {
        "l1": (lambda a, b, r: F.l1_loss(a, b, reduction=r),
               lambda a, b, r: tf.l1_loss(a, b, reduction=r), (x, y), (0, 1)),
        "huber": (lambda a, b, r: F.huber_loss(a, b, r, 1.0),
                  lambda a, b, r: tf.huber_loss(a, b, reduction=r, delta=1.0), (x, y), (0, 1)),
        "huber-delta": (lambda a, b, r: F.huber_loss(a, b, r, 0.3),
                        lambda a, b, r: tf.huber_loss(a, b, reduction=r, delta=0.3), (x, y),
                        (0, 1)),
        "nll": (lambda a, r: F.nll_loss(a, _t(labels), reduction=r, **index),
                lambda a, r: tf.nll_loss(a, torch.from_numpy(labels), reduction=r, **index),
                (_log_softmax(logits),), (0,)),
        "nll-ignore-1": (lambda a, r: F.nll_loss(a, _t(flat_labels), reduction=r,
                                                 ignore_index=1),
                         lambda a, r: tf.nll_loss(a, torch.from_numpy(flat_labels), reduction=r,
                                                  ignore_index=1),
                         (_log_softmax(x),), (0,)),
        "bce": (lambda a, b, r: F.binary_cross_entropy(a, b, reduction=r),
                lambda a, b, r: tf.binary_cross_entropy(a, b, reduction=r), (probs, binary),
                (0, 1)),
        "bce-logits": (lambda a, b, r: F.binary_cross_entropy_with_logits(a, b, reduction=r),
                       lambda a, b, r: tf.binary_cross_entropy_with_logits(a, b, reduction=r),
                       (big, binary), (0, 1)),
        "bce-logits-pos-weight": (
            lambda a, b, w, r: F.binary_cross_entropy_with_logits(a, b, reduction=r,
                                                                  pos_weight=w),
            lambda a, b, w, r: tf.binary_cross_entropy_with_logits(a, b, reduction=r,
                                                                   pos_weight=w),
            (big, binary, pos_weight), (0, 1)),  # PyTorch refuses a pos_weight gradient
        "cross-entropy-smoothing": (
            lambda a, r: F.cross_entropy(a, _t(labels), reduction=r, label_smoothing=0.2),
            lambda a, r: tf.cross_entropy(a, torch.from_numpy(labels), reduction=r,
                                          label_smoothing=0.2),
            (logits,), (0,)),
        "cross-entropy-smoothing-2d": (
            lambda a, r: F.cross_entropy(a, _t(flat_labels), reduction=r, ignore_index=1,
                                         label_smoothing=0.05),
            lambda a, r: tf.cross_entropy(a, torch.from_numpy(flat_labels), reduction=r,
                                          ignore_index=1, label_smoothing=0.05),
            (x * 3,), (0,)),
        "cross-entropy-soft-smoothing": (
            lambda a, b, r: F.cross_entropy(a, b, reduction=r, label_smoothing=0.3),
            lambda a, b, r: tf.cross_entropy(a, b, reduction=r, label_smoothing=0.3),
            (x * 3, soft), (0, 1)),
    }


TORCH_CASES = ["l1", "huber", "huber-delta", "nll", "nll-ignore-1", "bce", "bce-logits",
               "bce-logits-pos-weight", "cross-entropy-smoothing", "cross-entropy-smoothing-2d",
               "cross-entropy-soft-smoothing"]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", TORCH_CASES)
def test_losses_match_pytorch(name, reduction, dtype):
    torch = pytest.importorskip("torch")
    ours_fn, theirs_fn, arrays, grads = _torch_cases(torch, np.random.default_rng(3),
                                                     dtype)[name]
    arrays = [a.astype(dtype) for a in arrays]
    ours = [_t(a, requires_grad=i in grads) for i, a in enumerate(arrays)]
    theirs = [torch.tensor(a, requires_grad=i in grads) for i, a in enumerate(arrays)]
    out_o, out_t = ours_fn(*ours, reduction), theirs_fn(*theirs, reduction)
    seed = np.random.default_rng(4).standard_normal(out_t.shape).astype(dtype)
    out_o.backward(_t(seed))
    out_t.backward(torch.from_numpy(seed))
    tolerance = 2e-6 if dtype == np.float32 else 1e-12
    assert out_o.shape == tuple(out_t.shape) and out_o.dtype == dtype
    assert _rel(out_o.numpy(), out_t.detach().numpy()) < tolerance
    for i in grads:
        mine, expected = ours[i].grad.numpy(), theirs[i].grad.numpy()
        assert np.isfinite(mine).all()
        # PyTorch's BCE target gradient is ±inf where the input is 0 or 1; ours is the
        # derivative of the clamped forward, finite there
        finite = np.isfinite(expected)
        assert finite.all() or (name == "bce" and i == 1)
        assert _rel(mine[finite], expected[finite]) < tolerance, f"input {i}"
