"""Tensor semantics: construction and dtypes, promotion, memory sharing, attributes, repr,
in-place ops, comparisons, factories, and the errors ops raise for bad arguments."""
import numpy as np
import pytest

import fastgrad as fg
from fastgrad.nn import functional as F


# ---------------------------------------------------------------------------- construction
@pytest.mark.parametrize("data, dtype, expected_dtype, expected_shape", [
    (1.5, None, fg.float32, ()),
    (3, None, fg.int64, ()),
    (True, None, fg.bool_, ()),
    ([1.0, 2.0], None, fg.float32, (2,)),
    ([[1, 2], [3, 4]], None, fg.int64, (2, 2)),
    ([[1, 2.5]], None, fg.float32, (1, 2)),
    ([True, False], None, fg.bool_, (2,)),
    ([], None, fg.float32, (0,)),
    (np.array([1, 2], np.int32), None, fg.int32, (2,)),
    (np.array([1.0], np.float64), None, fg.float64, (1,)),
    (np.array([1.0], np.float16), None, fg.float16, (1,)),
    (np.ones((2, 3), np.float32), None, fg.float32, (2, 3)),
    (np.float64(2.0), None, fg.float64, ()),
    (np.float32(2.0), None, fg.float32, ()),
    (np.int32(2), None, fg.int32, ()),
    ([1, 2], fg.float64, fg.float64, (2,)),
    (1.5, fg.float64, fg.float64, ()),
    ([1.0, 2.0], fg.int32, fg.int32, (2,)),
    (np.array([1.0], np.float64), fg.float32, fg.float32, (1,)),
    ([0, 1], fg.bool_, fg.bool_, (2,)),
])
def test_tensor_dtype_rules(data, dtype, expected_dtype, expected_shape):
    t = fg.tensor(data, dtype=dtype)
    assert t.dtype == expected_dtype
    assert t.shape == expected_shape
    np.testing.assert_array_equal(t.numpy(), np.asarray(data).astype(expected_dtype))


def test_tensor_of_a_tensor_copies_it():
    a = fg.tensor([1.0, 2.0])
    b = fg.tensor(a)
    b.add_(1)
    np.testing.assert_array_equal(a.numpy(), [1, 2])


@pytest.mark.parametrize("data, error", [
    ("abc", TypeError),
    ([1.0, None], TypeError),
    ([[1, 2], [3]], TypeError),
    (1 + 2j, TypeError),
])
def test_tensor_rejects_non_numeric_data(data, error):
    with pytest.raises(error, match="data"):
        fg.tensor(data)


def test_tensor_rejects_a_bad_dtype_argument():
    with pytest.raises(TypeError, match="dtype.*'banana'"):
        fg.tensor([1.0], dtype="banana")


def test_tensor_copies_its_source():
    source = np.array([1.0, 2.0])
    t = fg.tensor(source)
    source[0] = 99.0
    assert t.numpy()[0] == 1.0
    assert not np.shares_memory(t.numpy(), source)


def test_from_numpy_shares_memory_both_ways():
    source = np.array([1.0, 2.0, 3.0])
    t = fg.from_numpy(source)
    assert t.dtype == fg.float64
    source[0] = 10.0
    assert t[0].item() == 10.0
    t.add_(1)
    np.testing.assert_array_equal(source, [11, 3, 4])
    t.numpy()[2] = -1.0
    assert source[2] == -1.0
    assert np.shares_memory(t.numpy(), source)


@pytest.mark.parametrize("value", [[1.0, 2.0], np.array(["a"]), np.array([1 + 1j])])
def test_from_numpy_rejects_non_numeric_or_non_arrays(value):
    with pytest.raises(TypeError, match="from_numpy"):
        fg.from_numpy(value)


# ------------------------------------------------------------------------------- promotion
def _operand(spec):
    """('t', dtype) builds a tensor [1, 2] of that dtype; anything else is a scalar as is."""
    if isinstance(spec, tuple) and spec[0] == "t":
        return fg.tensor([1, 2], dtype=spec[1])
    return spec


# (left, operator, right, result dtype) -- each row is also checked against PyTorch below
PROMOTION = [
    (("t", fg.float32), "*", 2.0, fg.float32),
    (("t", fg.float32), "+", 1, fg.float32),
    (("t", fg.float32), "+", np.float64(2.0), fg.float32),
    (2.0, "-", ("t", fg.float32), fg.float32),
    (("t", fg.float64), "*", 2.0, fg.float64),
    (("t", fg.float16), "*", 2.0, fg.float16),
    (("t", fg.int64), "*", 2.5, fg.float32),
    (2.5, "*", ("t", fg.int64), fg.float32),
    (("t", fg.int64), "+", 2, fg.int64),
    (("t", fg.int32), "+", 2, fg.int32),
    (("t", fg.int64), "/", 2, fg.float32),
    (("t", fg.bool_), "+", 1, fg.int64),
    (("t", fg.bool_), "*", 1.5, fg.float32),
    (("t", fg.float32), "+", ("t", fg.float64), fg.float64),
    (("t", fg.float64), "*", ("t", fg.float32), fg.float64),
    (("t", fg.float16), "+", ("t", fg.float32), fg.float32),
    (("t", fg.int64), "+", ("t", fg.float32), fg.float32),
    (("t", fg.int32), "+", ("t", fg.int64), fg.int64),
    (("t", fg.float32), "**", 2, fg.float32),
    (2, "**", ("t", fg.float32), fg.float32),
    (2, "**", ("t", fg.int64), fg.int64),
]
OPERATORS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
             "/": lambda a, b: a / b, "**": lambda a, b: a ** b}
PROMOTION_IDS = [f"{a}{op}{b}" for a, op, b, _ in PROMOTION]


@pytest.mark.parametrize("left, op, right, expected", PROMOTION, ids=PROMOTION_IDS)
def test_promotion(left, op, right, expected):
    assert OPERATORS[op](_operand(left), _operand(right)).dtype == expected


@pytest.mark.parametrize("left, op, right, expected", PROMOTION, ids=PROMOTION_IDS)
def test_promotion_table_agrees_with_torch(left, op, right, expected):
    torch = pytest.importorskip("torch")

    def torch_operand(spec):
        if isinstance(spec, tuple) and spec[0] == "t":
            return torch.tensor(np.array([1, 2], dtype=spec[1]))
        return spec

    result = OPERATORS[op](torch_operand(left), torch_operand(right))
    assert str(result.dtype) == f"torch.{np.dtype(expected).name}"


def test_mixed_float_promotion_is_differentiable_to_both_dtypes():
    a = fg.tensor([1.0, 2.0], requires_grad=True)
    b = fg.tensor([3.0, 4.0], dtype=fg.float64, requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.dtype == fg.float32 and b.grad.dtype == fg.float64
    np.testing.assert_array_equal(a.grad.numpy(), [3, 4])


def test_matmul_of_mixed_float_dtypes_names_both():
    a, b = fg.ones(2, 3), fg.ones(3, 2, dtype=fg.float64)
    with pytest.raises(RuntimeError, match="float32.*float64"):
        a @ b
    with pytest.raises(RuntimeError, match="float64.*float32"):
        fg.matmul(b, a)


def test_linear_of_mixed_float_dtypes_names_both():
    x, w = fg.ones(4, 3), fg.ones(2, 3, dtype=fg.float64)
    with pytest.raises(RuntimeError, match="float32.*float64"):
        F.linear(x, w)
    with pytest.raises(RuntimeError, match="float32.*float64|float64.*float32"):
        F.linear(fg.ones(4, 3, dtype=fg.float64), w, fg.ones(2))


# ------------------------------------------------------------------------------ attributes
def test_attributes_and_conversions():
    t = fg.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert t.shape == (2, 3) and t.ndim == 2 and t.dim() == 2
    assert t.dtype == fg.float32
    assert t.size() == (2, 3) and t.size(1) == 3 and t.size(-2) == 2
    assert t.numel() == 6 and len(t) == 2
    assert t.grad is None and not t.requires_grad and t.is_leaf and t.grad_fn is None
    assert isinstance(t.numpy(), np.ndarray)
    assert t.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    array = np.asarray(t)
    assert np.shares_memory(array, t.numpy())
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    np.testing.assert_array_equal(np.array(t), [[1, 2, 3], [4, 5, 6]])


@pytest.mark.parametrize("data, expected", [(2.5, 2.5), (7, 7), (True, True), ([[3.0]], 3.0)])
def test_item_returns_a_python_number(data, expected):
    value = fg.tensor(data).item()
    assert value == expected and type(value) is type(expected)


def test_item_of_several_elements_raises():
    with pytest.raises(RuntimeError, match="3 elements"):
        fg.tensor([1.0, 2.0, 3.0]).item()


def test_detach_shares_memory_and_leaves_the_graph():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    d = y.detach()
    assert not d.requires_grad and d.grad_fn is None
    assert np.shares_memory(d.numpy(), y.numpy())
    assert y.requires_grad and not y.is_leaf


@pytest.mark.parametrize("dtype", [fg.int64, fg.int32, fg.bool_])
def test_requires_grad_on_a_non_float_tensor_raises(dtype):
    with pytest.raises(RuntimeError, match=f"floating point.*{np.dtype(dtype).name}"):
        fg.tensor([1, 0], dtype=dtype, requires_grad=True)
    t = fg.tensor([1, 0], dtype=dtype)
    with pytest.raises(RuntimeError, match="floating point"):
        t.requires_grad = True


def test_requires_grad_can_be_set_on_a_float_leaf():
    t = fg.tensor([1.0])
    t.requires_grad = True
    assert t.requires_grad
    (t * 3).sum().backward()
    assert t.grad.item() == 3.0


@pytest.mark.parametrize("make, expected", [
    (lambda: fg.tensor([1.0, 2.0]), "tensor([1., 2.])"),
    (lambda: fg.tensor([1, 2]), "tensor([1, 2])"),
    (lambda: fg.tensor([True, False]), "tensor([ True, False])"),
    (lambda: fg.tensor(3.0), "tensor(3.)"),
    (lambda: fg.tensor([1.0, 2.0], dtype=fg.float64), "tensor([1., 2.], dtype=float64)"),
    (lambda: fg.tensor([1.0, 2.0], requires_grad=True), "tensor([1., 2.], requires_grad=True)"),
    (lambda: fg.tensor([0.5, 1.0]), "tensor([0.5000, 1.0000])"),
], ids=["float32", "int64", "bool", "0-d", "float64", "requires_grad", "fractional"])
def test_repr_looks_like_pytorch(make, expected):
    assert repr(make()) == expected


def test_repr_shows_grad_fn():
    y = fg.tensor([1.0, 2.0], requires_grad=True) * 2
    assert repr(y).startswith("tensor([2., 4.], grad_fn=<")
    assert "Backward" in repr(y) and "requires_grad" not in repr(y)
    assert "Mul" in repr(y)


# -------------------------------------------------------------------------------- in place
INPLACE = [
    ("add_", lambda t: t.add_(fg.tensor([1.0, 1.0])), [2, 3]),
    ("add_-alpha", lambda t: t.add_(fg.tensor([1.0, 1.0]), alpha=2), [3, 4]),
    ("sub_", lambda t: t.sub_(1), [0, 1]),
    ("mul_", lambda t: t.mul_(3), [3, 6]),
    ("div_", lambda t: t.div_(2), [0.5, 1]),
    ("zero_", lambda t: t.zero_(), [0, 0]),
    ("fill_", lambda t: t.fill_(7), [7, 7]),
    ("copy_", lambda t: t.copy_(fg.tensor([5.0, 6.0])), [5, 6]),
    ("clamp_", lambda t: t.clamp_(max=1.5), [1, 1.5]),
]


def _iadd(t):
    t += 1
    return t


INPLACE.append(("+=", _iadd, [2, 3]))
INPLACE_IDS = [name for name, _, _ in INPLACE]


@pytest.mark.parametrize("name, op, expected", INPLACE, ids=INPLACE_IDS)
def test_inplace_under_no_grad_updates_a_leaf(name, op, expected):
    t = fg.tensor([1.0, 2.0], requires_grad=True)
    buffer = t.numpy()
    with fg.no_grad():
        result = op(t)
    assert result is t
    np.testing.assert_array_equal(t.numpy(), expected)
    assert t.numpy() is buffer and t.requires_grad and t.dtype == fg.float32


@pytest.mark.parametrize("name, op, expected", INPLACE, ids=INPLACE_IDS)
def test_inplace_on_a_plain_tensor_needs_no_no_grad(name, op, expected):
    t = fg.tensor([1.0, 2.0])
    op(t)
    np.testing.assert_array_equal(t.numpy(), expected)


@pytest.mark.parametrize("name, op, expected", INPLACE, ids=INPLACE_IDS)
def test_inplace_on_a_leaf_requiring_grad_raises(name, op, expected):
    t = fg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place.*leaf"):
        op(t)
    np.testing.assert_array_equal(t.numpy(), [1, 2])


def test_inplace_on_a_graph_tensor_raises():
    y = fg.tensor([1.0, 2.0], requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="in-place"):
        y.add_(1)


def test_inplace_keeps_the_dtype():
    t = fg.tensor([1, 2])
    t.mul_(2.7)
    assert t.dtype == fg.int64


def test_copy_of_a_wrong_shape_raises():
    with pytest.raises(RuntimeError, match=r"\(3,\).*\(2,\)"):
        fg.tensor([1.0, 2.0]).copy_(fg.tensor([1.0, 2.0, 3.0]))


# ----------------------------------------------------------------------------- comparisons
@pytest.mark.parametrize("compare, expected", [
    (lambda t: t < 2, [True, False, False]),
    (lambda t: t <= 2, [True, True, False]),
    (lambda t: t > 2, [False, False, True]),
    (lambda t: t >= 2, [False, True, True]),
    (lambda t: t == 2, [False, True, False]),
    (lambda t: t != 2, [True, False, True]),
    (lambda t: t == fg.tensor([1.0, 0.0, 3.0]), [True, False, True]),
    (lambda t: t > np.array([0.0, 5.0, 0.0]), [True, False, True]),
    (lambda t: 2 < t, [False, False, True]),
], ids=["lt", "le", "gt", "ge", "eq", "ne", "eq-tensor", "gt-array", "reflected-lt"])
def test_comparisons_return_bool_tensors(compare, expected):
    t = fg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    result = compare(t)
    assert isinstance(result, fg.Tensor)
    assert result.dtype == fg.bool_ and not result.requires_grad
    np.testing.assert_array_equal(result.numpy(), expected)


# ------------------------------------------------------------------------------- factories
@pytest.mark.parametrize("make, dtype, shape", [
    (lambda: fg.zeros(2, 3), fg.float32, (2, 3)),
    (lambda: fg.zeros((2, 3)), fg.float32, (2, 3)),
    (lambda: fg.ones(4, dtype=fg.float64), fg.float64, (4,)),
    (lambda: fg.ones(()), fg.float32, ()),
    (lambda: fg.full((2, 2), 7), fg.int64, (2, 2)),
    (lambda: fg.full((2,), 1.5), fg.float32, (2,)),
    (lambda: fg.full((2,), True), fg.bool_, (2,)),
    (lambda: fg.full((3,), 2, dtype=fg.float64), fg.float64, (3,)),
    (lambda: fg.arange(5), fg.int64, (5,)),
    (lambda: fg.arange(1, 7, 2), fg.int64, (3,)),
    (lambda: fg.arange(0, 1, 0.25), fg.float32, (4,)),
    (lambda: fg.arange(3, dtype=fg.float64), fg.float64, (3,)),
    (lambda: fg.rand(2, 3), fg.float32, (2, 3)),
    (lambda: fg.randn(4, 1, dtype=fg.float64), fg.float64, (4, 1)),
    (lambda: fg.zeros_like(fg.tensor([[1, 2]])), fg.int64, (1, 2)),
    (lambda: fg.ones_like(fg.tensor([1.0], dtype=fg.float64)), fg.float64, (1,)),
    (lambda: fg.ones_like(fg.tensor([1, 2]), dtype=fg.float32), fg.float32, (2,)),
], ids=["zeros", "zeros-tuple", "ones-float64", "ones-0d", "full-int", "full-float",
        "full-bool", "full-dtype", "arange", "arange-step", "arange-float", "arange-dtype",
        "rand", "randn-float64", "zeros_like", "ones_like", "ones_like-dtype"])
def test_factory_dtypes_and_shapes(make, dtype, shape):
    t = make()
    assert t.dtype == dtype and t.shape == shape
    assert not t.requires_grad


def test_factory_values():
    np.testing.assert_array_equal(fg.zeros(2).numpy(), [0, 0])
    np.testing.assert_array_equal(fg.ones(2).numpy(), [1, 1])
    np.testing.assert_array_equal(fg.full((2,), 7).numpy(), [7, 7])
    np.testing.assert_array_equal(fg.arange(1, 7, 2).numpy(), [1, 3, 5])
    np.testing.assert_array_equal(fg.arange(0, 1, 0.25).numpy(), [0, 0.25, 0.5, 0.75])
    u = fg.rand(1000).numpy()
    assert 0 <= u.min() and u.max() < 1 and 0.4 < u.mean() < 0.6
    assert fg.zeros(2, requires_grad=True).requires_grad


def test_manual_seed_makes_randn_repeatable():
    fg.manual_seed(1234)
    first = fg.randn(3, 4).numpy().copy()
    fg.manual_seed(1234)
    second = fg.randn(3, 4).numpy()
    third = fg.randn(3, 4).numpy()
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(second, third)
    fg.manual_seed(1235)
    assert not np.array_equal(first, fg.randn(3, 4).numpy())


def test_a_generator_argument_is_independent_of_the_global_seed():
    a = fg.randn(3, generator=fg.Generator(7)).numpy()
    fg.manual_seed(0)
    b = fg.randn(3, generator=fg.Generator(7)).numpy()
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------- errors
ERRORS = [
    ("matmul-shapes", lambda: fg.ones(2, 3) @ fg.ones(4, 5), RuntimeError, r"\(2, 3\).*\(4, 5\)"),
    ("matmul-1d", lambda: fg.ones(3) @ fg.ones(4), RuntimeError, r"\(3,\).*\(4,\)"),
    ("matmul-batch", lambda: fg.ones(2, 3, 4) @ fg.ones(3, 4, 5), RuntimeError,
     r"\(2, 3, 4\).*\(3, 4, 5\)"),
    ("matmul-0d", lambda: fg.ones(()) @ fg.ones(3), RuntimeError, r"\(\).*\(3,\)"),
    ("matmul-number", lambda: fg.ones(3) @ 3, TypeError, "int"),
    ("sum-dim", lambda: fg.ones(2, 3).sum(2), IndexError, r"\[-2, 1\].*2"),
    ("mean-dim", lambda: fg.ones(2, 3).mean(-3), IndexError, r"-3"),
    ("max-dim", lambda: fg.ones(2, 3).max(5), IndexError, r"5"),
    ("softmax-dim", lambda: fg.ones(2, 3).softmax(2), IndexError, r"2"),
    ("transpose-dim", lambda: fg.ones(2, 3).transpose(0, 3), IndexError, r"3"),
    ("unsqueeze-dim", lambda: fg.ones(2, 3).unsqueeze(4), IndexError, r"\[-3, 2\].*4"),
    ("cat-dim", lambda: fg.cat([fg.ones(2), fg.ones(2)], 1), IndexError, r"1"),
    ("size-dim", lambda: fg.ones(2, 3).size(2), IndexError, r"2"),
    ("reshape", lambda: fg.ones(2, 3).reshape(4, 2), RuntimeError, r"\[4, 2\].*size 6"),
    ("reshape-minus-one", lambda: fg.ones(2, 3).reshape(4, -1), RuntimeError,
     r"\[4, -1\].*size 6"),
    ("view-two-minus-ones", lambda: fg.ones(2, 3).view(-1, -1), RuntimeError, r"\[-1, -1\]"),
    ("cat-shapes", lambda: fg.cat([fg.ones(2, 3), fg.ones(2, 4)], 0), RuntimeError,
     r"\(2, 3\).*\(2, 4\)"),
    ("cat-ndim", lambda: fg.cat([fg.ones(2, 3), fg.ones(3)], 0), RuntimeError, r"\(3,\)"),
    ("stack-shapes", lambda: fg.stack([fg.ones(2), fg.ones(3)]), RuntimeError,
     r"\(2,\).*\(3,\)"),
    ("where-float", lambda: fg.where(fg.ones(2), fg.ones(2), fg.zeros(2)), TypeError,
     "bool.*float32"),
    ("where-int", lambda: fg.where(np.array([1, 0]), fg.ones(2), 0.0), TypeError, "bool.*int"),
    ("clamp-neither", lambda: fg.ones(2).clamp(), ValueError, "min or max"),
    ("clamp-str", lambda: fg.ones(2).clamp(min="0"), TypeError, "min.*str"),
    ("add-str", lambda: fg.ones(2) + "a", TypeError, "other.*str"),
    ("radd-str", lambda: "a" + fg.ones(2), TypeError, "input.*str"),
    ("mul-none", lambda: fg.ones(2) * None, TypeError, "other.*NoneType"),
    ("pow-list", lambda: fg.ones(2) ** [1, 2], TypeError, "list"),
    ("sub-complex", lambda: fg.ones(2) - 1j, TypeError, "complex"),
    ("index-float", lambda: fg.ones(3)[fg.tensor([0.0, 1.0])], IndexError, "float32"),
    ("permute-count", lambda: fg.ones(2, 3).permute(0), ValueError, r"\(0,\)"),
    ("permute-repeat", lambda: fg.ones(2, 3).permute(1, 1), ValueError, r"\(1, 1\)"),
    ("mean-int", lambda: fg.tensor([1, 2]).mean(), TypeError, "int64"),
    ("max-empty", lambda: fg.zeros(0).max(), RuntimeError, r"\(0,\)"),
    ("bool-ambiguous", lambda: bool(fg.ones(2)), RuntimeError, "2 elements"),
]


@pytest.mark.parametrize("call, error, message", [e[1:] for e in ERRORS],
                         ids=[e[0] for e in ERRORS])
def test_errors_name_the_offending_values(call, error, message):
    with pytest.raises(error, match=message):
        call()
