"""Reductions, scans and order statistics (fastgrad.reductions, the reductions of fastgrad.ops,
fastgrad.linalg).

As in test_pointwise: one table, ``CASES``, of expressions written once for both libraries
(``fn(lib, x)``, ``lib`` fastgrad or torch) drives gradcheck in float64, the forward value
against NumPy in float32 and float64, and values and gradients against PyTorch. Inputs are
distinct and away from 0 unless a case is about ties or zeros; those have tests by value.
"""
import math

import numpy as np
import pytest

import fastgrad as fg
import fastgrad.linalg
from fastgrad.autograd import gradcheck

INF = math.inf


def draw(shape, rng, dtype, kind="real"):
    """Distinct values, |x| in [0.2, 2] either sign (``real``) or in [0.5, 2] (``pos``)."""
    size = math.prod(shape)
    magnitudes = np.linspace(0.2, 2.0, size) if kind == "real" else np.linspace(0.5, 2.0, size)
    signs = rng.choice([-1.0, 1.0], size) if kind == "real" else np.ones(size)
    return (rng.permutation(magnitudes) * signs).reshape(shape).astype(dtype)


def case(name, fn, ref, shape=(2, 3, 4), kind="real"):
    return pytest.param(fn, ref, shape, kind, id=name)


def np_norm(a, p, axis=None, keepdims=False):
    a = np.abs(a)
    if p == INF:
        return a.max(axis=axis, keepdims=keepdims)
    if p == -INF:
        return a.min(axis=axis, keepdims=keepdims)
    if p == 0:
        return (a != 0).sum(axis=axis, keepdims=keepdims).astype(a.dtype)
    return (a ** p).sum(axis=axis, keepdims=keepdims) ** (1 / p)


def np_logsumexp(a, axis, keepdims=False):
    return np.log(np.exp(a).sum(axis=axis, keepdims=keepdims))


NORM_CASES = [
    case(f"norm-p={p}-dim={dim}-keepdim={keepdim}",
         lambda L, x, p=p, dim=dim, keepdim=keepdim: L.norm(x, p, dim, keepdim),
         lambda a, p=p, dim=dim, keepdim=keepdim: np_norm(a, 2 if p == "fro" else p, dim,
                                                          keepdim))
    for p in (2, "fro", 1, INF, -INF, 0, 3, 0.5, -1.5, 1.5)
    for dim, keepdim in ((None, False), (1, False), ((0, 2), True), (-1, True))
]
NORM_CASES += [
    case("norm-method", lambda L, x: x.norm(), lambda a: np.sqrt((a * a).sum())),
    case("norm-method-p1-dim", lambda L, x: x.norm(1, dim=0), lambda a: np.abs(a).sum(0)),
    case("norm-dtype", lambda L, x: L.norm(x, dim=1, dtype=L.float64),
         lambda a: np.sqrt((a.astype(np.float64) ** 2).sum(1))),
    case("linalg.vector_norm", lambda L, x: L.linalg.vector_norm(x, 3, (0, 1)),
         lambda a: np_norm(a, 3, (0, 1))),
    case("linalg.norm", lambda L, x: L.linalg.norm(x), lambda a: np.sqrt((a * a).sum())),
    case("linalg.norm-vector-dim", lambda L, x: L.linalg.norm(x, 1, -1),
         lambda a: np.abs(a).sum(-1)),
    case("linalg.norm-fro", lambda L, x: L.linalg.norm(x, "fro", (0, 2), True),
         lambda a: np.sqrt((a * a).sum((0, 2), keepdims=True))),
] + [
    case(f"linalg.norm-matrix-{ord}-{dims}", lambda L, x, o=ord, d=dims: L.linalg.norm(x, o, d),
         lambda a, o=ord, d=dims: np.linalg.norm(np.moveaxis(a, d, (-2, -1)), o, (-2, -1)))
    for ord in (1, -1, INF, -INF) for dims in ((1, 2), (2, 0))
] + [
    case(f"linalg.norm-2d-{ord}", lambda L, x, o=ord: L.linalg.norm(x, o),
         lambda a, o=ord: np.linalg.norm(a, o), shape=(3, 4))
    for ord in (1, -1, INF, -INF, "fro")
]

VAR_CASES = [
    case(f"{name}{label}", lambda L, x, name=name, args=args, kw=kw: getattr(L, name)(x, *args,
                                                                                       **kw),
         lambda a, name=name, dof=dof, axis=axis, keep=keep: getattr(np, name)(
             a, axis=axis, ddof=dof, keepdims=keep))
    for name in ("std", "var")
    for label, args, kw, dof, axis, keep in (
        ("()", (), {}, 1, None, False),
        ("(False)", (False,), {}, 0, None, False),
        ("(1)", (1,), {}, 1, 1, False),
        ("(1,False)", (1, False), {}, 0, 1, False),
        ("(1,True,True)", (1, True, True), {}, 1, 1, True),
        ("(dim=(0,2),correction=0)", (), {"dim": (0, 2), "correction": 0}, 0, (0, 2), False),
        ("(-1,correction=2,keepdim)", (-1,), {"correction": 2, "keepdim": True}, 2, -1, True),
        ("(correction=0.5)", (), {"correction": 0.5}, 0.5, None, False),
        ("(unbiased=False)", (), {"unbiased": False}, 0, None, False),
    )
]
VAR_CASES += [
    case("std-method", lambda L, x: x.std(0, keepdim=True),
         lambda a: a.std(0, ddof=1, keepdims=True)),
    case("var-method-unbiased", lambda L, x: x.var(1, False), lambda a: a.var(1)),
    case("std_mean", lambda L, x: sum(L.std_mean(x, 1)), lambda a: a.std(1, ddof=1) + a.mean(1)),
    case("var_mean", lambda L, x: L.var_mean(x, (0, 1), correction=0)[0] * 3
         + L.var_mean(x, (0, 1), correction=0)[1],
         lambda a: a.var((0, 1)) * 3 + a.mean((0, 1))),
]

EXTREME_CASES = [
    case("min-all", lambda L, x: L.min(x), np.min),
    case("min-method", lambda L, x: x.min(), np.min),
    case("min-dim", lambda L, x: L.min(x, 1).values, lambda a: a.min(1)),
    case("min-dim-keepdim", lambda L, x: x.min(-1, keepdim=True)[0],
         lambda a: a.min(-1, keepdims=True)),
    case("amax-dim", lambda L, x: L.amax(x, 1), lambda a: a.max(1)),
    case("amax-dims-keepdim", lambda L, x: x.amax((0, 2), True),
         lambda a: a.max((0, 2), keepdims=True)),
    case("amax-all", lambda L, x: L.amax(x), np.max),
    case("amin-dim", lambda L, x: L.amin(x, -1), lambda a: a.min(-1)),
    case("amin-method", lambda L, x: x.amin(dim=(0, 1)), lambda a: a.min((0, 1))),
    case("max-dim", lambda L, x: L.max(x, 2).values, lambda a: a.max(2)),
]

PRODUCT_CASES = [
    case("prod-all", lambda L, x: L.prod(x), np.prod, shape=(2, 3)),
    case("prod-dim", lambda L, x: x.prod(1), lambda a: a.prod(1)),
    case("prod-dim-keepdim", lambda L, x: L.prod(x, -1, True),
         lambda a: a.prod(-1, keepdims=True)),
    case("cumsum-0", lambda L, x: L.cumsum(x, 0), lambda a: np.cumsum(a, 0)),
    case("cumsum-method", lambda L, x: x.cumsum(-1), lambda a: np.cumsum(a, -1)),
    case("cumprod-1", lambda L, x: L.cumprod(x, 1), lambda a: np.cumprod(a, 1)),
    case("cumprod-method", lambda L, x: x.cumprod(dim=-1), lambda a: np.cumprod(a, -1)),
    case("logsumexp-1", lambda L, x: L.logsumexp(x, 1), lambda a: np_logsumexp(a, 1)),
    case("logsumexp-dims-keepdim", lambda L, x: x.logsumexp((0, 2), keepdim=True),
         lambda a: np_logsumexp(a, (0, 2), True)),
    case("sum-dtype", lambda L, x: L.sum(x, 1, dtype=L.float64),
         lambda a: a.astype(np.float64).sum(1)),
    case("mean-dtype", lambda L, x: x.mean((0, 1), dtype=L.float64),
         lambda a: a.astype(np.float64).mean((0, 1))),
    case("sum-empty-dims", lambda L, x: L.sum(x, ()), np.sum),
]

ORDER_CASES = [
    case("median-all", lambda L, x: L.median(x), lambda a: np.sort(a, None)[(a.size - 1) // 2]),
    case("median-dim", lambda L, x: x.median(1).values,
         lambda a: np.sort(a, 1)[:, (a.shape[1] - 1) // 2]),
    case("median-dim-keepdim", lambda L, x: L.median(x, -1, True)[0],
         lambda a: np.sort(a, -1)[..., 1:2]),
    case("sort", lambda L, x: L.sort(x).values, lambda a: np.sort(a, -1)),
    case("sort-desc", lambda L, x: x.sort(1, descending=True)[0],
         lambda a: -np.sort(-a, 1)),
    case("topk", lambda L, x: L.topk(x, 2).values, lambda a: -np.sort(-a, -1)[..., :2]),
    case("topk-smallest", lambda L, x: x.topk(2, dim=0, largest=False)[0],
         lambda a: np.sort(a, 0)[:2]),
    case("kthvalue", lambda L, x: L.kthvalue(x, 2, 1).values, lambda a: np.sort(a, 1)[:, 1]),
]

CASES = NORM_CASES + VAR_CASES + EXTREME_CASES + PRODUCT_CASES + ORDER_CASES


@pytest.mark.parametrize("fn, ref, shape, kind", CASES)
def test_gradcheck(fn, ref, shape, kind, rng):
    x = fg.tensor(draw(shape, rng, np.float64, kind), requires_grad=True)
    assert gradcheck(lambda t: fn(fg, t), (x,))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("fn, ref, shape, kind", CASES)
def test_forward_matches_numpy(fn, ref, shape, kind, dtype, rng):
    a = draw(shape, rng, dtype, kind)
    out = fn(fg, fg.tensor(a))
    expected = np.asarray(ref(a))
    assert out.shape == expected.shape and out.dtype == expected.dtype
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out.numpy(), expected, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("fn, ref, shape, kind", CASES)
def test_values_and_gradients_match_torch(fn, ref, shape, kind, rng):
    torch = pytest.importorskip("torch")
    a = draw(shape, rng, np.float64, kind)
    x, tx = fg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    out, expected = fn(fg, x), fn(torch, tx)
    assert out.shape == tuple(expected.shape)
    assert str(out.dtype) == str(expected.dtype).replace("torch.", "")
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-12, atol=1e-12)
    upstream = rng.normal(size=out.shape)
    out.backward(fg.tensor(upstream))
    expected.backward(torch.tensor(upstream))
    want = np.zeros(x.shape) if tx.grad is None else tx.grad.numpy()  # p=0: no graph
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------- gradients at zeros and ties
def _grad(fn, values):
    x = fg.tensor(values, dtype=fg.float64, requires_grad=True)
    fn(x).sum().backward()
    return x.grad.numpy()


TIES_AND_ZEROS = [  # (name, fn over fastgrad or torch, values, expected gradient)
    ("prod-one-zero", lambda x: x.prod(), [0.0, 2.0, 3.0], [6, 0, 0]),
    ("prod-two-zeros", lambda x: x.prod(), [0.0, 2.0, 0.0], [0, 0, 0]),
    ("prod-dim-zero", lambda x: x.prod(1), [[0.0, 2.0], [3.0, 4.0]], [[2, 0], [4, 3]]),
    ("cumprod-zeros", lambda x: x.cumprod(0), [2.0, 0.0, 3.0, 0.0, 5.0], [1, 8, 0, 0, 0]),
    ("norm2-zero", lambda x: x.norm(), [0.0, 0.0], [0, 0]),
    ("norm3-zero", lambda x: x.norm(3), [0.0, 0.0], [0, 0]),
    ("norm1-zero", lambda x: x.norm(1), [0.0, -2.0, 1.0], [0, -1, 1]),
    ("norm-inf-ties", lambda x: x.norm(INF), [3.0, -3.0, 1.0], [0.5, -0.5, 0]),
    ("norm-0.5-zero", lambda x: x.norm(0.5), [0.0, 4.0, 1.0], [0, 1.5, 3]),
    ("std-constant", lambda x: x.std(), [1.0, 1.0], [0, 0]),
    ("max-all-ties", lambda x: x.max(), [1.0, 3.0, 3.0], [0, 0.5, 0.5]),
    ("min-all-ties", lambda x: x.min(), [1.0, 1.0, 3.0], [0.5, 0.5, 0]),
    ("min-dim-ties", lambda x: x.min(0).values, [1.0, 1.0, 3.0], [1, 0, 0]),
    ("amax-ties", lambda x: x.amax(1), [[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]],
     [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]]),
    ("amin-ties", lambda x: x.amin(0), [[1.0, 2.0], [1.0, 0.0]], [[0.5, 0], [0.5, 1]]),
    ("median-all-ties", lambda x: x.median(), [1.0, 2.0, 2.0, 3.0], [0, 0.5, 0.5, 0]),
    ("median-dim-ties", lambda x: x.median(0).values, [1.0, 2.0, 2.0, 3.0], [0, 1, 0, 0]),
    ("logsumexp-huge", lambda x: x.logsumexp(0), [1e4, 1e4], [0.5, 0.5]),
]


@pytest.mark.parametrize("name, fn, values, expected", TIES_AND_ZEROS,
                         ids=[c[0] for c in TIES_AND_ZEROS])
def test_gradients_at_ties_and_zeros(name, fn, values, expected):
    np.testing.assert_allclose(_grad(fn, values), expected, rtol=1e-12)


@pytest.mark.parametrize("name, fn, values, expected", TIES_AND_ZEROS,
                         ids=[c[0] for c in TIES_AND_ZEROS])
def test_gradients_at_ties_and_zeros_match_torch(name, fn, values, expected):
    torch = pytest.importorskip("torch")
    x = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    fn(x).sum().backward()
    np.testing.assert_allclose(_grad(fn, values), x.grad.numpy(), rtol=1e-12)


def test_nan_gradients_follow_torch():
    # min()/max()/median() over all: a NaN result sends the gradient to the NaNs
    for name in ("max", "min", "median"):
        grad = _grad(lambda x, name=name: getattr(x, name)(), [1.0, math.nan, 3.0, math.nan])
        np.testing.assert_array_equal(grad, [0, 0.5, 0, 0.5])
    # amax: PyTorch's formula gives NaN to the whole slice
    assert np.isnan(_grad(lambda x: x.amax(), [1.0, math.nan])).all()


# ----------------------------------------------------------------- values by example
def test_std_var_call_forms():
    x = fg.tensor([[1.0, 2.0, 4.0], [3.0, 5.0, 10.0]])
    a = x.numpy()
    np.testing.assert_allclose(fg.var(x, True).numpy(), a.var(ddof=1), rtol=1e-6)
    np.testing.assert_allclose(fg.var(x, False).numpy(), a.var(), rtol=1e-6)
    np.testing.assert_allclose(x.std(1, True, True).numpy(), a.std(1, ddof=1, keepdims=True),
                               rtol=1e-6)
    np.testing.assert_allclose(x.var(axis=0, keepdims=True).numpy(),
                               a.var(0, ddof=1, keepdims=True), rtol=1e-6)
    assert np.isnan(fg.var(fg.tensor([1.0])).item())
    assert fg.var(fg.tensor([1.0, 2.0]), correction=3).item() == math.inf
    assert np.isnan(fg.std(fg.zeros(0)).item())
    std, mean = fg.std_mean(x, 1, keepdim=True)
    assert isinstance(fg.std_mean(x), tuple) and std.shape == mean.shape == (2, 1)


def test_min_max_overloads():
    x = fg.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 5.0]])
    assert fg.min(x).item() == 0.0 and x.max().item() == 5.0
    values, indices = fg.min(x, 1)
    assert values.tolist() == [1.0, 0.0] and indices.tolist() == [1, 0]
    assert indices.dtype == fg.int64 and type(fg.min(x, 1)).__name__ == "MinResult"
    values, indices = x.max(dim=1, keepdim=True)
    assert values.shape == (2, 1) and indices.tolist() == [[0], [1]]  # first of a tie
    other = fg.tensor([2.0, 2.0, 2.0])
    assert fg.min(x, other).tolist() == [[2.0, 1.0, 2.0], [0.0, 2.0, 2.0]]
    assert x.max(other).tolist() == [[3.0, 2.0, 2.0], [2.0, 5.0, 5.0]]
    assert fg.argmin(x).item() == 3 and x.argmin(1, keepdim=True).tolist() == [[1], [0]]
    assert fg.min(fg.tensor(4.0), 0).indices.item() == 0
    assert fg.min(fg.tensor([True, False])).item() is False


def test_axis_and_keepdims_aliases():
    x = fg.tensor(np.arange(6.0).reshape(2, 3))
    assert x.sum(axis=1).tolist() == [3.0, 12.0]
    assert fg.sum(x, axis=0, keepdims=True).shape == (1, 3)
    assert x.mean(axis=1, keepdims=True).tolist() == [[1.0], [4.0]]
    assert fg.max(x, axis=1).indices.tolist() == [2, 2]
    assert x.argmax(axis=0).tolist() == [1, 1, 1]
    assert fg.min(x, axis=1, keepdims=True).values.shape == (2, 1)
    assert x.prod(axis=1).tolist() == [0.0, 60.0]
    assert fg.cumsum(x, axis=1).tolist() == [[0.0, 1.0, 3.0], [3.0, 7.0, 12.0]]
    assert x.amax(axis=0).tolist() == [3.0, 4.0, 5.0]
    assert fg.all(x, axis=1).tolist() == [False, True]
    assert x.sort(axis=0, descending=True).indices.tolist() == [[1, 1, 1], [0, 0, 0]]
    assert fg.linalg.vector_norm(x, 1, axis=1).tolist() == [3.0, 12.0]
    with pytest.raises(TypeError, match="axis"):
        x.sum(dim=0, axis=1)
    with pytest.raises(TypeError, match="axis"):
        fg.norm(x, axis=1)  # a Python function in PyTorch: no NumPy aliases there either


@pytest.mark.parametrize("name, args", [("sum", ()), ("prod", ()), ("cumsum", (0,)),
                                        ("cumprod", (0,))])
def test_integer_accumulation_and_dtype_argument(name, args):
    for dtype in (np.bool_, np.int32, np.uint8):
        x = fg.tensor(np.array([1, 1, 1], dtype=dtype))
        assert getattr(fg, name)(x, *args).dtype == fg.int64
    x = fg.tensor([1.5, 2.5, 3.0])
    assert getattr(fg, name)(x, *args, dtype=fg.float64).dtype == fg.float64
    out = getattr(fg, name)(x, *args, dtype=fg.int32)  # cast first, as in PyTorch
    assert out.dtype == fg.int32
    np.testing.assert_array_equal(np.ravel(out.numpy())[-1],
                                  {"sum": 6, "prod": 6, "cumsum": 6, "cumprod": 6}[name])
    assert fg.mean(fg.tensor([1, 2]), dtype=fg.float64).item() == 1.5


def test_sum_and_mean_over_empty_dims_reduce_everything():
    x = fg.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert fg.sum(x, ()).item() == 10.0 and x.mean([]).item() == 2.5
    assert fg.amax(x, ()).item() == 4.0 and fg.amax(x, None).item() == 4.0


def test_logsumexp_is_stable_and_handles_infinities():
    x = fg.tensor([[1e4, 1e4], [-1e4, -math.inf], [-math.inf, -math.inf], [math.inf, 1.0]])
    out = fg.logsumexp(x, 1)
    np.testing.assert_allclose(out.numpy()[:2], [1e4 + math.log(2), -1e4])
    assert out.tolist()[2:] == [-math.inf, math.inf]
    assert fg.logsumexp(fg.tensor([1, 2]), 0).dtype == fg.float32
    assert fg.logsumexp(fg.zeros(0), 0).item() == -math.inf


def test_any_all_count_nonzero():
    x = fg.tensor([[0, 1, 2], [0, 0, 3]])
    assert fg.any(x).item() is True and x.all().item() is False
    assert x.any(0).tolist() == [False, True, True]
    assert fg.all(x, 1, keepdim=True).tolist() == [[False], [False]]
    assert fg.all(x, (0, 1)).dtype == fg.bool_
    assert fg.any(x, ()).tolist() == [[False, True, True], [False, False, True]]  # PyTorch's
    assert fg.any(fg.tensor(np.array([1, 0], np.uint8))).dtype == np.uint8
    assert fg.count_nonzero(x).item() == 3 and x.count_nonzero(0).tolist() == [0, 1, 2]
    assert fg.count_nonzero(x, (0, 1)).dtype == fg.int64


def test_median_is_the_lower_median_and_propagates_nan():
    assert fg.median(fg.tensor([3, 1, 2, 4])).item() == 2
    assert np.isnan(fg.median(fg.tensor([1.0, math.nan, 2.0])).item())
    values, indices = fg.median(fg.tensor([[1.0, math.nan, 2.0], [5.0, 4.0, 6.0]]), 1)
    assert np.isnan(values[0].item()) and values[1].item() == 5.0
    assert indices.tolist() == [1, 0]
    assert fg.median(fg.tensor([1.0, 2.0, 2.0, 2.0, 3.0]), 0).indices.item() == 2
    assert np.isnan(fg.median(fg.zeros(0)).item())


def test_sort_is_stable_and_puts_nan_last():
    x = fg.tensor([1.0, 3.0, 3.0, 2.0, 3.0])
    assert fg.sort(x).indices.tolist() == [0, 3, 1, 2, 4]
    assert fg.sort(x, descending=True).indices.tolist() == [1, 2, 4, 3, 0]
    assert fg.argsort(x, descending=True, stable=True).tolist() == [1, 2, 4, 3, 0]
    y = fg.tensor([math.nan, 3.0, -math.inf, math.nan])
    assert fg.sort(y).indices.tolist() == [2, 1, 0, 3]
    assert fg.sort(y, descending=True).indices.tolist() == [0, 3, 1, 2]
    assert fg.topk(y, 2).indices.tolist() == [0, 3]
    assert fg.topk(fg.tensor([math.nan, 3.0, 1.0]), 2, largest=False).indices.tolist() == [2, 1]
    assert fg.sort(fg.tensor(3.0)).indices.item() == 0
    assert fg.topk(fg.ones(2, 3), 0).values.shape == (2, 0)
    ints = fg.tensor([3, 1, 2])
    assert ints.sort().values.tolist() == [1, 2, 3] and ints.sort().values.dtype == fg.int64


def test_sort_values_and_ties_match_torch(rng):
    torch = pytest.importorskip("torch")
    a = rng.integers(0, 4, size=(3, 7)).astype(np.float64)
    a[0, 2] = np.nan
    for dim in (0, 1, -1):
        for descending in (False, True):
            out = fg.sort(fg.tensor(a), dim, descending)
            expected = torch.sort(torch.tensor(a), dim=dim, descending=descending,
                                  stable=True)
            np.testing.assert_array_equal(out.values.numpy(), expected.values.numpy())
            np.testing.assert_array_equal(out.indices.numpy(), expected.indices.numpy())
            np.testing.assert_array_equal(
                fg.argsort(fg.tensor(a), dim, descending).numpy(),
                torch.argsort(torch.tensor(a), dim=dim, descending=descending,
                              stable=True).numpy())


def test_order_statistics_indices_match_torch(rng):
    torch = pytest.importorskip("torch")
    a = rng.permutation(24).reshape(2, 3, 4).astype(np.float64)  # distinct: indices unique
    x, tx = fg.tensor(a), torch.tensor(a)
    for dim in (0, 1, -1):
        for ours, theirs in ((fg.min(x, dim), torch.min(tx, dim)),
                             (fg.median(x, dim, True), torch.median(tx, dim, True)),
                             (fg.kthvalue(x, 2, dim), torch.kthvalue(tx, 2, dim)),
                             (fg.topk(x, 2, dim), torch.topk(tx, 2, dim)),
                             (fg.topk(x, 2, dim, largest=False),
                              torch.topk(tx, 2, dim, largest=False))):
            np.testing.assert_array_equal(ours.values.numpy(), theirs.values.numpy())
            np.testing.assert_array_equal(ours.indices.numpy(), theirs.indices.numpy())
        np.testing.assert_array_equal(fg.argmin(x, dim).numpy(), torch.argmin(tx, dim).numpy())


@pytest.mark.parametrize("dtype", [np.bool_, np.int32, np.int64, np.uint8, np.float32])
def test_integer_and_bool_reductions_match_torch(dtype):
    torch = pytest.importorskip("torch")
    a = np.array([[0, 3, 1], [2, 0, 2]]).astype(dtype)
    x, tx = fg.tensor(a), torch.tensor(a)
    calls = [lambda L, t: L.prod(t), lambda L, t: L.prod(t, 1), lambda L, t: L.cumsum(t, 1),
             lambda L, t: L.cumprod(t, 0), lambda L, t: L.any(t, 1), lambda L, t: L.all(t),
             lambda L, t: L.count_nonzero(t, 0), lambda L, t: L.amax(t, 1),
             lambda L, t: L.min(t), lambda L, t: L.sum(t), lambda L, t: L.logsumexp(t, 1),
             lambda L, t: L.sort(t, 1).values, lambda L, t: L.argsort(t, dim=0, stable=True)]
    if dtype != np.bool_:
        calls.append(lambda L, t: L.median(t))
    for call in calls:
        out, expected = call(fg, x), call(torch, tx)
        assert str(out.dtype) == str(expected.dtype).replace("torch.", "")
        np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-6)


# ------------------------------------------------------------------------------- errors
ERRORS = [
    (lambda: fg.norm(fg.tensor([1, 2])), RuntimeError, "floating"),
    (lambda: fg.norm(fg.ones(2, 2), "nuc"), RuntimeError, "nuclear"),
    (lambda: fg.norm(fg.ones(2, 2), "abc"), RuntimeError, "not supported"),
    (lambda: fg.norm(fg.ones(2, 2, 2), "fro", (0, 1, 2)), RuntimeError, "at most 2"),
    (lambda: fg.norm(fg.ones(2), dtype=fg.float16), RuntimeError, "dtype"),
    (lambda: fg.norm(fg.ones(2), dtype=fg.int64), RuntimeError, "dtype"),
    (lambda: fg.norm(fg.ones(2), True), TypeError, "ord"),
    (lambda: fg.norm(fg.zeros(0), INF), RuntimeError, "empty"),
    (lambda: fg.linalg.norm(fg.ones(2, 2, 2), 1), RuntimeError, "1-D or 2-D"),
    (lambda: fg.linalg.norm(fg.ones(2, 2), 2), RuntimeError, "singular values"),
    (lambda: fg.linalg.norm(fg.ones(2, 2), 2.5), RuntimeError, "not supported"),
    (lambda: fg.linalg.norm(fg.ones(3), "fro"), RuntimeError, "2 dims"),
    (lambda: fg.var(fg.tensor([1, 2])), RuntimeError, "floating"),
    (lambda: fg.var(fg.ones(2), 0, True, correction=0), TypeError, "not both"),
    (lambda: fg.var(fg.ones(2), True, True), TypeError, "unbiased"),
    (lambda: fg.std(fg.ones(2), correction="1"), TypeError, "correction"),
    (lambda: fg.std(fg.ones(2), 0, 1), TypeError, "unbiased"),
    (lambda: fg.prod(fg.ones(2, 2), (0, 1)), TypeError, "dim"),
    (lambda: fg.prod(fg.ones(2, 2), keepdim=True), TypeError, "keepdim"),
    (lambda: fg.cumsum(fg.ones(2), 1), IndexError, "range"),
    (lambda: fg.amax(fg.zeros(0, 3), 0), RuntimeError, "empty"),
    (lambda: fg.min(fg.zeros(0)), RuntimeError, "identity"),
    (lambda: fg.min(fg.ones(2), 1.0), TypeError, "dim"),
    (lambda: fg.median(fg.zeros(0, 2), 0), RuntimeError, "identity"),
    (lambda: fg.topk(fg.ones(2, 3), 4), RuntimeError, "out of range"),
    (lambda: fg.topk(fg.ones(3), -1), RuntimeError, "out of range"),
    (lambda: fg.kthvalue(fg.ones(3), 4), RuntimeError, "out of range"),
    (lambda: fg.sort(fg.ones(2, 3), 5), IndexError, "range"),
    (lambda: fg.sort(fg.ones(2), descending="yes"), TypeError, "descending"),
    (lambda: fg.any(fg.ones(2), keepdim=1), TypeError, "keepdim"),
    (lambda: fg.sum(fg.ones(2), dtype="float7"), TypeError, "dtype"),
    (lambda: fg.mean(fg.tensor([1, 2])), TypeError, "floating"),
    (lambda: fg.logsumexp(fg.ones(2)), TypeError, "dim"),
]


@pytest.mark.parametrize("call, error, match", ERRORS, ids=[str(i) for i in range(len(ERRORS))])
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_reductions_are_deterministic(rng):
    x = fg.tensor(np.round(rng.normal(size=(64, 33)), 1).astype(np.float32))  # many ties
    for fn in (lambda t: t.norm(), lambda t: t.std(0), lambda t: t.sort(1).indices,
               lambda t: t.topk(5, 0).indices, lambda t: t.median(1).indices,
               lambda t: t.logsumexp(1), lambda t: t.prod(0)):
        np.testing.assert_array_equal(fn(x).numpy(), fn(fg.tensor(x.numpy().copy())).numpy())


def test_exports_and_methods():
    for name in fg.reductions.__all__:
        assert getattr(fg, name) is getattr(fg.reductions, name)
    for name in ("norm", "std", "var", "min", "argmin", "amax", "prod", "cumsum", "logsumexp",
                 "any", "all", "median", "sort", "argsort", "topk", "kthvalue"):
        assert callable(getattr(fg.Tensor, name)), name
