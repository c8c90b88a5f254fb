"""Every differentiable op: gradients by central differences, values against NumPy and PyTorch.

One table, ``CASES``, drives two tests: ``gradcheck`` in float64 and the forward value against
a NumPy reference in float32 and float64. A case's reference defaults to the op's own function
when the expression reads the same on an ndarray (``a + b``, ``a[::-1]``, ``a.reshape(...)``).
Inputs are drawn away from kinks (0 for abs/relu, the bounds of clamp, ties for max) and from
domain edges (log, sqrt, division, the base of pow), so finite differences are meaningful.
PyTorch comparisons skip themselves when torch is not importable.
"""
import operator
import warnings

import numpy as np
import pytest

import fastgrad as fg
from fastgrad.autograd import gradcheck


# ------------------------------------------------------------------------------------ inputs
def real(*shape):
    """A float input of ``shape`` with |x| in [0.2, 2] (either sign): away from kinks at 0."""
    return ("real", shape)


def pos(*shape):
    """A float input of ``shape`` in [0.5, 2]: inside the domain of log, sqrt, 1/x, x**y."""
    return ("pos", shape)


def draw(specs, rng, dtype):
    arrays = []
    for kind, shape in specs:
        if kind == "pos":
            values = rng.uniform(0.5, 2.0, shape)
        else:
            values = rng.choice([-1.0, 1.0], shape) * rng.uniform(0.2, 2.0, shape)
        arrays.append(np.asarray(values, dtype=dtype))
    return arrays


def case(name, fn, *specs, ref=None):
    return pytest.param(fn, fn if ref is None else ref, specs, id=name)


# -------------------------------------------------------------------------- NumPy references
def np_sigmoid(a):
    return 1 / (1 + np.exp(-a))


def np_softmax(a, axis):
    e = np.exp(a)  # naive on purpose: inputs are small, and it is independent of fastgrad's
    return e / e.sum(axis=axis, keepdims=True)


def np_log_softmax(a, axis):
    return np.log(np_softmax(a, axis))


# ------------------------------------------------------------------------------------- cases
BINARY_OPS = {
    "add": (operator.add, real, real),
    "sub": (operator.sub, real, real),
    "mul": (operator.mul, real, real),
    "div": (operator.truediv, real, pos),
    "pow": (operator.pow, pos, real),
}
BROADCASTS = [((2, 3), (2, 3)), ((3, 1), (1, 4)), ((2, 3), (3,)), ((2, 3), ()), ((), (2, 3)),
              ((4,), (2, 1, 4))]
BINARY_CASES = [case(f"{name}{sa}{sb}", fn, lhs(*sa), rhs(*sb))
                for name, (fn, lhs, rhs) in BINARY_OPS.items() for sa, sb in BROADCASTS]

SCALAR_CASES = [
    case("t+2.5", lambda x: x + 2.5, real(2, 3)),
    case("2.5+t", lambda x: 2.5 + x, real(2, 3)),
    case("t-2.5", lambda x: x - 2.5, real(2, 3)),
    case("2.5-t", lambda x: 2.5 - x, real(2, 3)),
    case("t*2.5", lambda x: x * 2.5, real(2, 3)),
    case("2.5*t", lambda x: 2.5 * x, real(2, 3)),
    case("t/2.5", lambda x: x / 2.5, real(2, 3)),
    case("2.5/t", lambda x: 2.5 / x, pos(2, 3)),
    case("t**3", lambda x: x ** 3, real(2, 3)),
    case("t**2.5", lambda x: x ** 2.5, pos(2, 3)),
    case("t**-1.5", lambda x: x ** -1.5, pos(2, 3)),
    case("2**t", lambda x: 2 ** x, real(2, 3)),
    case("0.5**t", lambda x: 0.5 ** x, real(2, 3)),
    case("t**t", lambda x: x ** x, pos(2, 3)),
    case("-t", lambda x: -x, real(2, 3)),
    case("neg", fg.neg, real(2, 3), ref=np.negative),
    case("add-fn", fg.add, real(2, 3), real(3), ref=np.add),
    case("mul-fn", fg.mul, real(2, 3), real(3), ref=np.multiply),
    case("sub-method", lambda a, b: a.sub(b), real(2, 3), real(2, 1), ref=np.subtract),
    case("div-fn", fg.div, real(2, 3), pos(3), ref=np.divide),
    case("pow-fn", fg.pow, pos(2, 3), real(2, 3), ref=np.power),
]

MATMUL_SHAPES = [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 2)), ((2, 3), (3, 4)),
                 ((2, 2, 3), (2, 3, 2)), ((2, 1, 3, 4), (5, 4, 2)), ((2, 3, 4), (4, 2)),
                 ((2, 3, 4), (4,)), ((3,), (2, 3, 2)), ((3, 4), (2, 4, 2))]
MATMUL_CASES = [case(f"matmul{sa}@{sb}", operator.matmul, real(*sa), real(*sb))
                for sa, sb in MATMUL_SHAPES]
MATMUL_CASES.append(case("matmul-fn", fg.matmul, real(2, 3), real(3, 2), ref=np.matmul))

UNARY_CASES = [
    case("exp", fg.exp, real(2, 3), ref=np.exp),
    case("log", fg.log, pos(2, 3), ref=np.log),
    case("sqrt", fg.sqrt, pos(2, 3), ref=np.sqrt),
    case("abs", abs, real(2, 3)),
    case("abs-fn", fg.abs, real(2, 3), ref=np.abs),
    case("tanh", fg.tanh, real(2, 3), ref=np.tanh),
    case("sigmoid", fg.sigmoid, real(2, 3), ref=np_sigmoid),
    case("relu", fg.relu, real(2, 3), ref=lambda a: np.maximum(a, 0)),
    case("exp-method", lambda x: x.exp().log().sqrt(), pos(4), ref=lambda a: np.sqrt(a)),
]

REDUCTION_CASES = [
    case(f"{name}-dim={dim}-keepdim={keepdim}",
         lambda x, name=name, dim=dim, keepdim=keepdim: getattr(x, name)(dim, keepdim=keepdim),
         real(2, 3, 4),
         ref=lambda a, name=name, dim=dim, keepdim=keepdim: getattr(a, name)(
             axis=dim, keepdims=keepdim))
    for name in ("sum", "mean") for dim in (None, 1, -1, (0, 2), (-1, 0))
    for keepdim in (False, True)
]
REDUCTION_CASES += [
    case("sum-fn", lambda x: fg.sum(x, dim=0), real(3, 2), ref=lambda a: a.sum(0)),
    case("mean-fn", lambda x: fg.mean(x, (0, 1)), real(3, 2), ref=lambda a: a.mean((0, 1))),
    case("max-all", lambda x: x.max(), real(3, 4), ref=np.max),
    case("max-fn", fg.max, real(3, 4), ref=np.max),
]
REDUCTION_CASES += [
    case(f"max-dim={dim}-keepdim={keepdim}",
         lambda x, dim=dim, keepdim=keepdim: x.max(dim, keepdim=keepdim).values, real(2, 3, 4),
         ref=lambda a, dim=dim, keepdim=keepdim: a.max(axis=dim, keepdims=keepdim))
    for dim in (0, 1, -1) for keepdim in (False, True)
]
REDUCTION_CASES.append(case("max-dim-tuple-result", lambda x: fg.max(x, 1)[0], real(3, 4),
                            ref=lambda a: a.max(1)))

SHAPE_CASES = [
    case("reshape(4,-1,2)", lambda x: x.reshape(4, -1, 2), real(2, 3, 4)),
    case("reshape-tuple", lambda x: x.reshape((6, 4)), real(2, 3, 4)),
    case("reshape-fn", lambda x: fg.reshape(x, (3, 8)), real(2, 3, 4),
         ref=lambda a: a.reshape(3, 8)),
    case("view(-1)", lambda x: x.view(-1), real(2, 3, 4), ref=lambda a: a.reshape(-1)),
    case("view(2,12)", lambda x: x.view(2, 12), real(2, 3, 4), ref=lambda a: a.reshape(2, 12)),
    case("transpose(0,2)", lambda x: x.transpose(0, 2), real(2, 3, 4),
         ref=lambda a: a.swapaxes(0, 2)),
    case("transpose(-1,-2)", lambda x: fg.transpose(x, -1, -2), real(2, 3, 4),
         ref=lambda a: a.swapaxes(-1, -2)),
    case("permute(2,0,1)", lambda x: x.permute(2, 0, 1), real(2, 3, 4),
         ref=lambda a: a.transpose(2, 0, 1)),
    case("permute-fn", lambda x: fg.permute(x, (1, -1, 0)), real(2, 3, 4),
         ref=lambda a: a.transpose(1, 2, 0)),
    case(".T-2d", lambda x: x.T, real(2, 3)),
    case(".T-3d", lambda x: x.T, real(2, 3, 4)),
    case("t()", lambda x: x.t(), real(2, 3), ref=lambda a: a.T),
    case("flatten()", lambda x: x.flatten(), real(2, 3, 4), ref=lambda a: a.reshape(-1)),
    case("flatten(1)", lambda x: x.flatten(1), real(2, 3, 4), ref=lambda a: a.reshape(2, 12)),
    case("flatten(0,1)", lambda x: fg.flatten(x, 0, 1), real(2, 3, 4),
         ref=lambda a: a.reshape(6, 4)),
    case("squeeze()", lambda x: x.squeeze(), real(2, 1, 3, 1)),
    case("squeeze(1)", lambda x: x.squeeze(1), real(2, 1, 3, 1)),
    case("squeeze(-1)", lambda x: fg.squeeze(x, -1), real(2, 1, 3, 1),
         ref=lambda a: a.squeeze(-1)),
    case("unsqueeze(0)", lambda x: x.unsqueeze(0), real(2, 3), ref=lambda a: a[None]),
    case("unsqueeze(-1)", lambda x: x.unsqueeze(-1), real(2, 3), ref=lambda a: a[..., None]),
    case("unsqueeze(1)", lambda x: fg.unsqueeze(x, 1), real(2, 3), ref=lambda a: a[:, None]),
    case("clone", lambda x: x.clone(), real(2, 3), ref=np.copy),
]

MASK = np.array([[True, False, True, False, False],
                 [False, False, False, False, True],
                 [True, True, False, False, False],
                 [False, False, False, False, False]])
ROWS = np.array([True, False, True, True])
INDEX_CASES = [
    case("[1:3]", lambda x: x[1:3], real(4, 5)),
    case("[:,1:4:2]", lambda x: x[:, 1:4:2], real(4, 5)),
    case("[1]", lambda x: x[1], real(4, 5)),
    case("[-1,2]", lambda x: x[-1, 2], real(4, 5)),
    case("[::-1]", lambda x: x[::-1], real(4, 5)),
    case("[:,::-2]", lambda x: x[:, ::-2], real(4, 5)),
    case("[1,::-1]", lambda x: x[1, ::-1], real(4, 5)),
    case("[None,...,1]", lambda x: x[None, ..., 1], real(4, 5)),
    case("[...,None]", lambda x: x[..., None], real(4, 5)),
    case("[[0,0,2]]", lambda x: x[[0, 0, 2]], real(4, 5)),
    case("[[0,2,0],[1,1,1]]", lambda x: x[[0, 2, 0], [1, 1, 1]], real(4, 5)),
    case("[:,[1,1,4]]", lambda x: x[:, [1, 1, 4]], real(4, 5)),
    case("[1:,[0,0]]", lambda x: x[1:, [0, 0]], real(4, 5)),
    case("[array]", lambda x: x[np.array([3, 3, -1])], real(4, 5)),
    case("[mask]", lambda x: x[MASK], real(4, 5)),
    case("[row-mask]", lambda x: x[ROWS], real(4, 5)),
    case("[tensor]", lambda x: x[fg.tensor([2, 0, 2])], real(4, 5), ref=lambda a: a[[2, 0, 2]]),
    case("[tensor-mask]", lambda x: x[fg.tensor(MASK)], real(4, 5), ref=lambda a: a[MASK]),
    case("[x>0]", lambda x: x[x > 0], real(4, 5), ref=lambda a: a[a > 0]),
]

COND = np.array([[True, False, True], [False, False, True]])
JOIN_CASES = [
    case("cat-dim0", lambda a, b: fg.cat([a, b], 0), real(2, 3), real(4, 3),
         ref=lambda a, b: np.concatenate([a, b], 0)),
    case("cat-dim1-three", lambda a, b, c: fg.cat([a, b, c], dim=1),
         real(2, 3), real(2, 1), real(2, 2), ref=lambda a, b, c: np.concatenate([a, b, c], 1)),
    case("cat-dim-1", lambda a, b: fg.cat((a, b), -1), real(2, 3), real(2, 2),
         ref=lambda a, b: np.concatenate([a, b], -1)),
    case("cat-3d-dim1", lambda a, b: fg.cat([a, b], 1), real(2, 1, 3), real(2, 2, 3),
         ref=lambda a, b: np.concatenate([a, b], 1)),
    case("cat-same-twice", lambda a: fg.cat([a, a * 2], 0), real(2, 3),
         ref=lambda a: np.concatenate([a, a * 2], 0)),
] + [
    case(f"stack-dim{dim}", lambda a, b, c, dim=dim: fg.stack([a, b, c], dim),
         real(2, 3), real(2, 3), real(2, 3),
         ref=lambda a, b, c, dim=dim: np.stack([a, b, c], dim))
    for dim in (0, 1, 2, -1, -3)
] + [
    case("where", lambda a, b: fg.where(fg.tensor(COND), a, b), real(2, 3), real(2, 3),
         ref=lambda a, b: np.where(COND, a, b)),
    case("where-broadcast", lambda a, b: fg.where(fg.tensor(COND), a, b), real(2, 3), real(3),
         ref=lambda a, b: np.where(COND, a, b)),
    case("where-scalar", lambda a: fg.where(COND, a, 0.0), real(2, 3),
         ref=lambda a: np.where(COND, a, 0.0)),
    case("where-leaky", lambda a: fg.where(a > 0, a, a * 0.1), real(2, 3),
         ref=lambda a: np.where(a > 0, a, a * 0.1)),
    case("clamp-min", lambda x: x.clamp(min=-0.5), real(3, 4),
         ref=lambda a: np.clip(a, -0.5, None)),
    case("clamp-max", lambda x: x.clamp(max=0.5), real(3, 4),
         ref=lambda a: np.clip(a, None, 0.5)),
    case("clamp-both", lambda x: fg.clamp(x, -0.5, 0.5), real(3, 4),
         ref=lambda a: np.clip(a, -0.5, 0.5)),
    case("clip-alias", lambda x: x.clip(0.3, 1.0), real(3, 4),
         ref=lambda a: np.clip(a, 0.3, 1.0)),
]

SOFTMAX_CASES = [
    case(f"{name}-{shape}-dim{dim}",
         lambda x, name=name, dim=dim: getattr(fg, name)(x, dim), real(*shape),
         ref=lambda a, fn=ref, dim=dim: fn(a, dim))
    for name, ref in (("softmax", np_softmax), ("log_softmax", np_log_softmax))
    for shape, dim in (((3, 4), 0), ((3, 4), 1), ((3, 4), -1), ((2, 3, 4), 1))
] + [
    case("softmax-method", lambda x: x.softmax(-1), real(2, 3), ref=lambda a: np_softmax(a, -1)),
    case("log_softmax-method", lambda x: x.log_softmax(0), real(2, 3),
         ref=lambda a: np_log_softmax(a, 0)),
]


def _diamond(x, lib=np):
    a = lib.exp(x)
    return lib.tanh(a) * (a * 2)


GRAPH_CASES = [
    case("x*x", lambda x: x * x, real(2, 3)),
    case("x+exp(x)*x", lambda x: x + x.exp() * x, real(2, 3), ref=lambda a: a + np.exp(a) * a),
    case("diamond", lambda x: _diamond(x, fg), real(2, 3), ref=_diamond),
    case("two-inputs-each-twice", lambda x, y: (x * y + x / y) - y, real(2, 3), pos(2, 3)),
    case("views-chain", lambda x: x.reshape(6, 4).T[1:3].sum(0), real(2, 3, 4)),
    case("reused-after-reduction", lambda x: x * x.sum(1, keepdim=True), real(2, 3),
         ref=lambda a: a * a.sum(1, keepdims=True)),
]

CASES = (BINARY_CASES + SCALAR_CASES + MATMUL_CASES + UNARY_CASES + REDUCTION_CASES
         + SHAPE_CASES + INDEX_CASES + JOIN_CASES + SOFTMAX_CASES + GRAPH_CASES)


@pytest.mark.parametrize("fn, ref, specs", CASES)
def test_gradcheck(fn, ref, specs, rng):
    inputs = tuple(fg.tensor(a, requires_grad=True) for a in draw(specs, rng, np.float64))
    assert gradcheck(fn, inputs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("fn, ref, specs", CASES)
def test_forward_matches_numpy(fn, ref, specs, dtype, rng):
    arrays = draw(specs, rng, dtype)
    out = fn(*(fg.tensor(a) for a in arrays))
    expected = np.asarray(ref(*arrays))
    assert isinstance(out, fg.Tensor)
    assert out.dtype == dtype
    assert out.shape == expected.shape
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out.numpy(), expected, rtol=tolerance, atol=tolerance)


# ------------------------------------------------------------- gradients checked by value
def test_repeated_integer_indices_sum_their_gradients():
    x = fg.zeros(5, dtype=fg.float64, requires_grad=True)
    x[[1, 1, 3, 1]].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 3, 0, 1, 0])

    m = fg.zeros(2, 3, requires_grad=True)
    (m[[0, 0, 1], [2, 2, 2]] * fg.tensor([1.0, 10.0, 100.0])).sum().backward()
    np.testing.assert_array_equal(m.grad.numpy(), [[0, 0, 11], [0, 0, 100]])


def test_max_dim_indices_are_int64_without_gradient():
    x = fg.tensor([[1.0, 7.0, 3.0], [9.0, 2.0, 4.0]], requires_grad=True)
    values, indices = x.max(1)
    assert indices.dtype == fg.int64
    assert not indices.requires_grad and indices.grad_fn is None
    assert values.requires_grad and values.grad_fn is not None
    np.testing.assert_array_equal(indices.numpy(), [1, 0])
    np.testing.assert_array_equal(values.numpy(), [7.0, 9.0])
    kept = x.max(-1, keepdim=True)
    assert kept.values.shape == (2, 1) and kept.indices.shape == (2, 1)
    (values * fg.tensor([2.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 2, 0], [3, 0, 0]])


def test_full_max_splits_the_gradient_between_ties():
    x = fg.tensor([[1.0, 5.0], [5.0, 2.0]], requires_grad=True)
    out = x.max()
    assert out.shape == () and out.item() == 5.0
    out.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 0.5], [0.5, 0]])


@pytest.mark.parametrize("low, high, expected_grad", [
    (-0.5, 0.5, [0, 1, 1, 1, 0]),
    (-0.5, None, [0, 1, 1, 1, 1]),
    (None, 0.5, [1, 1, 1, 1, 0]),
])
def test_clamp_passes_the_gradient_at_its_bounds(low, high, expected_grad):
    x = fg.tensor([-1.0, -0.5, 0.0, 0.5, 1.0], requires_grad=True)
    out = x.clamp(low, high)
    np.testing.assert_array_equal(out.numpy(), np.clip(x.numpy(), low, high))
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), expected_grad)


@pytest.mark.parametrize("fn, expected_grad", [
    (fg.relu, [0, 0, 1]),
    (fg.abs, [-1, 0, 1]),
])
def test_kinks_take_pytorch_subgradient_at_zero(fn, expected_grad):
    x = fg.tensor([-2.0, 0.0, 3.0], requires_grad=True)
    fn(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), expected_grad)


# ------------------------------------------------------------------------------ stability
HUGE_LOGITS = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]], np.float32)
LOG2, LOG3 = np.log(2.0), np.log(3.0)


@pytest.mark.parametrize("name, expected", [
    ("softmax", [[1, 0, 0], [1 / 3] * 3, [0.5, 0.5, 0]]),
    ("log_softmax", [[0, -2e4, -1e4], [-LOG3] * 3, [-LOG2, -LOG2, -2e4 - LOG2]]),
])
def test_softmax_of_huge_float32_logits_is_finite_and_correct(name, expected):
    x = fg.tensor(HUGE_LOGITS, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = getattr(fg, name)(x, 1)
        (out * fg.tensor(np.arange(9, dtype=np.float32).reshape(3, 3))).sum().backward()
    assert out.dtype == fg.float32
    assert np.isfinite(out.numpy()).all()
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6, atol=1e-6)
    assert x.grad.dtype == fg.float32 and np.isfinite(x.grad.numpy()).all()
    # softmax sums to one along dim; log_softmax's gradient sums to zero along dim
    if name == "softmax":
        np.testing.assert_allclose(out.numpy().sum(1), 1, rtol=1e-6)
    else:
        np.testing.assert_allclose(x.grad.numpy().sum(1), 0, atol=1e-3)


@pytest.mark.parametrize("dtype", [fg.float32, fg.float64], ids=["float32", "float64"])
def test_sigmoid_saturates_without_overflow(dtype):
    x = fg.tensor([-1e3, 1e3, -30.0, 30.0, 0.0], dtype=dtype, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = x.sigmoid()
        out.sum().backward()
    values = out.numpy()
    assert out.dtype == dtype
    assert 0 <= values[0] < 1e-30 and values[1] == 1.0
    expected = 1 / (1 + np.exp(-np.array([-30.0, 30.0, 0.0])))
    np.testing.assert_allclose(values[2:], expected, rtol=1e-6)
    grad = x.grad.numpy()
    assert grad.dtype == dtype and np.isfinite(grad).all()
    assert 0 <= grad[0] < 1e-30 and 0 <= grad[1] < 1e-30 and grad[4] == 0.25


# ------------------------------------------------------------------------------- PyTorch
def _leaves(arrays, torch):
    ours = [fg.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    return ours, theirs


def _assert_same(ours, theirs, rtol=1e-10, atol=1e-12):
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=rtol, atol=atol)


def _expression(lib, x, w, b):
    h = (x @ w + b).tanh()
    g = h.sigmoid() * 2 - h.relu() / 3 + (h ** 2 + 1).sqrt().log()
    s = g.softmax(1) * g.log_softmax(-1)
    m = g.max(1).values.unsqueeze(1)
    c = lib.cat([s, m.exp()], 1).clamp(min=-1.0, max=0.8)
    leaky = lib.where(c > 0, c, c * 0.1).abs().mean(0, keepdim=True)
    return (leaky.sum() + x[[0, 0, 2]].sum() - (2 ** x.T).flatten().mean()
            + (x.reshape(2, -1).transpose(0, 1)[::2] - 1.5).sum() / w.permute(1, 0).sum())


def test_many_op_expression_matches_torch(rng):
    torch = pytest.importorskip("torch")
    arrays = [rng.normal(size=(4, 3)), rng.normal(size=(3, 5)), rng.normal(size=5)]
    ours, theirs = _leaves(arrays, torch)
    out, expected = _expression(fg, *ours), _expression(torch, *theirs)
    _assert_same(out, expected)
    out.backward()
    expected.backward()
    for a, b in zip(ours, theirs):
        _assert_same(a.grad, b.grad)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_matches_torch(name, dim, rng):
    torch = pytest.importorskip("torch")
    arrays = [rng.normal(size=(2, 3, 4)) * 3]
    (x,), (tx,) = _leaves(arrays, torch)
    weights = rng.normal(size=(2, 3, 4))
    out, expected = getattr(x, name)(dim), getattr(tx, name)(dim)
    _assert_same(out, expected)
    (out * fg.tensor(weights)).sum().backward()
    (expected * torch.tensor(weights)).sum().backward()
    _assert_same(x.grad, tx.grad)


@pytest.mark.parametrize("sa, sb", MATMUL_SHAPES, ids=[f"{a}@{b}" for a, b in MATMUL_SHAPES])
def test_matmul_broadcasting_matches_torch(sa, sb, rng):
    torch = pytest.importorskip("torch")
    (a, b), (ta, tb) = _leaves([rng.normal(size=sa), rng.normal(size=sb)], torch)
    out, expected = a @ b, ta @ tb
    assert out.shape == tuple(expected.shape)
    _assert_same(out, expected)
    upstream = rng.normal(size=tuple(expected.shape))
    out.backward(fg.tensor(upstream))
    expected.backward(torch.tensor(upstream))
    _assert_same(a.grad, ta.grad)
    _assert_same(b.grad, tb.grad)


def test_full_max_ties_match_torch():
    torch = pytest.importorskip("torch")
    data = np.array([[1.0, 5.0, 5.0], [0.0, 5.0, 2.0]])
    (x,), (tx,) = _leaves([data], torch)
    x.max().backward()
    tx.max().backward()
    _assert_same(x.grad, tx.grad)


@pytest.mark.parametrize("low, high", [(-0.5, 0.5), (-0.5, None), (None, 0.5)])
def test_clamp_boundary_gradient_matches_torch(low, high):
    torch = pytest.importorskip("torch")
    (x,), (tx,) = _leaves([np.array([-1.0, -0.5, 0.0, 0.5, 1.0])], torch)
    out, expected = x.clamp(min=low, max=high), tx.clamp(min=low, max=high)
    _assert_same(out, expected)
    out.sum().backward()
    expected.sum().backward()
    _assert_same(x.grad, tx.grad)


@pytest.mark.parametrize("name", ["relu", "abs", "sigmoid", "tanh"])
def test_activation_gradients_at_special_points_match_torch(name):
    torch = pytest.importorskip("torch")
    (x,), (tx,) = _leaves([np.array([-1e3, -1.0, 0.0, 1.0, 1e3])], torch)
    out, expected = getattr(x, name)(), getattr(tx, name)()
    _assert_same(out, expected)
    out.sum().backward()
    expected.sum().backward()
    _assert_same(x.grad, tx.grad)


INDEX_KEYS = [([1, 1, 3],), ([0, 0, 1], [2, 2, 2]), (slice(None), [1, 1, 0]),
              (MASK,), (ROWS, slice(1, None)), (slice(None, None, 2), 1)]


@pytest.mark.parametrize("key", INDEX_KEYS, ids=[str(i) for i in range(len(INDEX_KEYS))])
def test_getitem_gradient_matches_torch(key, rng):
    torch = pytest.importorskip("torch")
    (x,), (tx,) = _leaves([rng.normal(size=(4, 5))], torch)
    torch_key = tuple(torch.tensor(k) if isinstance(k, (list, np.ndarray)) else k for k in key)
    out, expected = x[key], tx[torch_key]
    _assert_same(out, expected)
    upstream = rng.normal(size=tuple(expected.shape))
    out.backward(fg.tensor(upstream))
    expected.backward(torch.tensor(upstream))
    _assert_same(x.grad, tx.grad)


def test_max_dim_matches_torch(rng):
    torch = pytest.importorskip("torch")
    (x,), (tx,) = _leaves([rng.normal(size=(3, 4))], torch)
    for dim in (0, 1, -1):
        out, expected = x.max(dim), tx.max(dim)
        _assert_same(out.values, expected.values)
        np.testing.assert_array_equal(out.indices.numpy(), expected.indices.numpy())
        out.values.sum().backward()
        expected.values.sum().backward()
    _assert_same(x.grad, tx.grad)
