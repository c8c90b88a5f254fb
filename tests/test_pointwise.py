"""Elementwise math, comparisons, logical and bitwise ops (fastgrad.pointwise).

One table, ``CASES``, of differentiable expressions written once for both libraries
(``fn(lib, *tensors)`` with ``lib`` fastgrad or torch) drives three tests: gradcheck in float64,
the forward value against a NumPy reference in float32 and float64, and values and gradients
against PyTorch. Dtype rules are checked against explicit tables (and PyTorch where it is
installed); error cases, in-place forms and operators have tables of their own.
"""
import math
import operator

import numpy as np
import pytest

import fastgrad as fg
from fastgrad.autograd import gradcheck

INTEGER_DTYPES = [np.bool_, np.int32, np.int64]
DTYPES = INTEGER_DTYPES + [np.float32, np.float64]


# ------------------------------------------------------------------------------------ inputs
def draw(specs, rng, dtype):
    """Arrays for ``specs`` of (domain, shape): ``real`` |x| in [0.2, 2] either sign (away from
    the kinks at 0), ``pos`` [0.5, 2], ``unit`` [-0.9, 0.9] (asin, atanh), ``above1`` [1.2, 3]
    (acosh), ``wide`` [-4, 4] (rounding)."""
    ranges = {"pos": (0.5, 2.0), "unit": (-0.9, 0.9), "above1": (1.2, 3.0), "wide": (-4, 4)}
    arrays = []
    for kind, shape in specs:
        if kind == "real":
            values = rng.choice([-1.0, 1.0], shape) * rng.uniform(0.2, 2.0, shape)
        else:
            values = rng.uniform(*ranges[kind], shape)
        arrays.append(np.asarray(values, dtype=dtype))
    return arrays


def real(*shape):
    return ("real", shape)


def pos(*shape):
    return ("pos", shape)


def unit(*shape):
    return ("unit", shape)


def above1(*shape):
    return ("above1", shape)


def wide(*shape):
    return ("wide", shape)


def case(name, fn, ref, *specs):
    """``fn(lib, *tensors)`` for fastgrad and torch; ``ref(*arrays)`` the NumPy reference."""
    return pytest.param(fn, ref, specs, id=name)


def np_erf(a):
    return np.vectorize(math.erf)(a)


def np_round(a, decimals=0):
    return np.round(a, decimals)


UNARY = {  # name: (NumPy reference, domain)
    "sin": (np.sin, real), "cos": (np.cos, real), "tan": (np.tan, unit),
    "asin": (np.arcsin, unit), "acos": (np.arccos, unit), "atan": (np.arctan, real),
    "sinh": (np.sinh, real), "cosh": (np.cosh, real), "asinh": (np.arcsinh, real),
    "acosh": (np.arccosh, above1), "atanh": (np.arctanh, unit), "log1p": (np.log1p, pos),
    "expm1": (np.expm1, real), "log2": (np.log2, pos), "log10": (np.log10, pos),
    "exp2": (np.exp2, real), "rsqrt": (lambda a: 1 / np.sqrt(a), pos),
    "reciprocal": (np.reciprocal, real), "erf": (np_erf, real), "square": (np.square, real),
    "floor": (np.floor, wide), "ceil": (np.ceil, wide), "trunc": (np.trunc, wide),
    "fix": (np.trunc, wide), "round": (np.round, wide), "sign": (np.sign, real),
    "frac": (lambda a: a - np.trunc(a), wide), "nan_to_num": (np.nan_to_num, real),
}
UNARY_CASES = [case(f"{name}-fn", lambda L, x, name=name: getattr(L, name)(x), ref, dom(2, 3))
               for name, (ref, dom) in UNARY.items()]
UNARY_CASES += [case(f"{name}-method", lambda L, x, name=name: getattr(x, name)(), ref, dom(3))
                for name, (ref, dom) in UNARY.items()]

# the in-place methods of ops the core already had, applied to a non-leaf copy
INPLACE_CORE = {"exp_": np.exp, "log_": np.log, "sqrt_": np.sqrt, "abs_": np.abs,
                "neg_": np.negative, "relu_": lambda a: np.maximum(a, 0),
                "sigmoid_": lambda a: 1 / (1 + np.exp(-a)), "tanh_": np.tanh}

BINARY_CASES = [
    case("maximum", lambda L, a, b: L.maximum(a, b), np.maximum, real(2, 3), real(3)),
    case("minimum", lambda L, a, b: L.minimum(a, b), np.minimum, real(2, 3), real(2, 1)),
    case("fmax", lambda L, a, b: L.fmax(a, b), np.fmax, real(2, 3), real(2, 3)),
    case("fmin-method", lambda L, a, b: a.fmin(b), np.fmin, real(3), real(2, 3)),
    case("max(a,b)", lambda L, a, b: L.max(a, b), np.maximum, real(2, 3), real(3)),
    case("min(a,b)-method", lambda L, a, b: a.min(b), np.minimum, real(2, 3), real(3)),
    case("lerp-scalar", lambda L, a, b: L.lerp(a, b, 0.3), lambda a, b: a + 0.3 * (b - a),
         real(2, 3), real(3)),
    case("lerp-scalar-high", lambda L, a, b: a.lerp(b, 0.8), lambda a, b: a + 0.8 * (b - a),
         real(2, 3), real(2, 3)),
    case("lerp-tensor", lambda L, a, b, w: L.lerp(a, b, w), lambda a, b, w: a + w * (b - a),
         real(2, 3), real(2, 3), unit(3)),
    case("addcmul", lambda L, a, b, c: L.addcmul(a, b, c, value=0.5),
         lambda a, b, c: a + 0.5 * b * c, real(2, 3), real(3), real(2, 1)),
    case("addcdiv-method", lambda L, a, b, c: a.addcdiv(b, c, value=-2),
         lambda a, b, c: a - 2 * b / c, real(2, 3), real(2, 3), pos(3)),
    case("clamp_min-number", lambda L, a: L.clamp_min(a, 0.3), lambda a: np.maximum(a, 0.3),
         real(2, 3)),
    case("clamp_max-number", lambda L, a: a.clamp_max(-0.3), lambda a: np.minimum(a, -0.3),
         real(2, 3)),
    case("clamp_min-tensor", lambda L, a, b: L.clamp_min(a, b), np.maximum, real(2, 3),
         real(3)),
    case("clamp_max-tensor", lambda L, a, b: a.clamp_max(b), np.minimum, real(2, 3),
         real(2, 3)),
    case("remainder", lambda L, a, b: L.remainder(a, b), np.remainder, wide(2, 3), real(3)),
    case("%", lambda L, a, b: a % b, np.remainder, wide(2, 3), real(2, 3)),
    case("%-scalar", lambda L, a: a % 0.7, lambda a: np.remainder(a, 0.7), wide(2, 3)),
    case("fmod", lambda L, a, b: L.fmod(a, b), np.fmod, wide(2, 3), real(3)),
    case("fmod-method", lambda L, a: a.fmod(-0.7), lambda a: np.fmod(a, -0.7), wide(2, 3)),
    case("round-decimals", lambda L, a: L.round(a, decimals=1), lambda a: np.round(a, 1),
         wide(2, 3)),
    case("round-decimals-neg", lambda L, a: (a * 100).round(decimals=-1),
         lambda a: np.round(a * 100, -1), wide(2, 3)),
    case("square-in-graph", lambda L, a: (a.sin().square() + a.cos() ** 2).log1p(),
         lambda a: np.log1p(np.sin(a) ** 2 + np.cos(a) ** 2), real(2, 3)),
]

CASES = UNARY_CASES + BINARY_CASES


@pytest.mark.parametrize("fn, ref, specs", CASES)
def test_gradcheck(fn, ref, specs, rng):
    inputs = tuple(fg.tensor(a, requires_grad=True) for a in draw(specs, rng, np.float64))
    assert gradcheck(lambda *xs: fn(fg, *xs), inputs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("fn, ref, specs", CASES)
def test_forward_matches_numpy(fn, ref, specs, dtype, rng):
    arrays = draw(specs, rng, dtype)
    out = fn(fg, *(fg.tensor(a) for a in arrays))
    expected = np.asarray(ref(*arrays))
    assert out.dtype == dtype and out.shape == expected.shape
    tolerance = 2e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out.numpy(), expected, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("fn, ref, specs", CASES)
def test_values_and_gradients_match_torch(fn, ref, specs, rng):
    torch = pytest.importorskip("torch")
    arrays = draw(specs, rng, np.float64)
    ours = [fg.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, expected = fn(fg, *ours), fn(torch, *theirs)
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-12, atol=1e-12)
    upstream = rng.normal(size=out.shape)
    out.backward(fg.tensor(upstream))
    expected.backward(torch.tensor(upstream))
    for a, b in zip(ours, theirs):
        want = np.zeros(a.shape) if b.grad is None else b.grad.numpy()
        np.testing.assert_allclose(a.grad.numpy(), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_float32_values_match_torch(dtype, rng):
    torch = pytest.importorskip("torch")
    for name, (_, dom) in UNARY.items():
        (a,) = draw([dom(50)], rng, dtype)
        out, expected = getattr(fg, name)(fg.tensor(a)), getattr(torch, name)(torch.tensor(a))
        assert out.dtype == dtype, name
        np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=2e-6, atol=1e-7,
                                   err_msg=name)


@pytest.mark.parametrize("name", sorted(INPLACE_CORE))
def test_in_place_forms_of_core_ops(name, rng):
    a = rng.uniform(0.5, 2.0, (2, 3)) * rng.choice([-1, 1], (2, 3))
    a = (np.abs(a) if name in ("log_", "sqrt_") else a).astype(np.float32)
    x = fg.tensor(a)
    assert getattr(x, name)() is x
    np.testing.assert_allclose(x.numpy(), INPLACE_CORE[name](a), rtol=1e-6)
    assert x.dtype == np.float32


def test_pow_in_place():
    x = fg.tensor([1, 2, 3])
    assert x.pow_(2) is x and x.tolist() == [1, 4, 9] and x.dtype == fg.int64
    with pytest.raises(RuntimeError, match="can't be cast"):
        x.pow_(0.5)


# ---------------------------------------------------------------- gradients at kinks
def _grads(fn, *values):
    xs = [fg.tensor(v, dtype=fg.float64, requires_grad=True) for v in values]
    fn(*xs).sum().backward()
    return [x.grad.numpy() for x in xs]


def test_maximum_and_minimum_split_ties_in_half():
    a, b = [1.0, 3.0, 3.0], [1.0, 3.0, 0.0]
    ga, gb = _grads(fg.maximum, a, b)
    np.testing.assert_array_equal(ga, [0.5, 0.5, 1.0])
    np.testing.assert_array_equal(gb, [0.5, 0.5, 0.0])
    ga, gb = _grads(fg.minimum, a, b)
    np.testing.assert_array_equal(ga, [0.5, 0.5, 0.0])
    np.testing.assert_array_equal(gb, [0.5, 0.5, 1.0])


def test_fmax_gives_ties_and_nans_to_input():
    ga, gb = _grads(fg.fmax, [1.0, 2.0, 3.0], [1.0, 3.0, math.nan])
    np.testing.assert_array_equal(ga, [1, 0, 1])
    np.testing.assert_array_equal(gb, [0, 1, 0])
    out = fg.fmin(fg.tensor([1.0, math.nan]), fg.tensor([math.nan, 2.0]))
    np.testing.assert_array_equal(out.numpy(), [1.0, 2.0])


def test_clamp_min_tensor_ties_keep_the_input_gradient():
    ga, gb = _grads(fg.clamp_min, [1.0, 2.0, 3.0], [1.0, 3.0, 0.0])
    np.testing.assert_array_equal(ga, [1, 0, 1])
    np.testing.assert_array_equal(gb, [0, 1, 0])


@pytest.mark.parametrize("name", ["floor", "ceil", "round", "trunc", "sign"])
def test_step_functions_have_zero_gradient_at_their_jumps(name):
    (grad,) = _grads(getattr(fg, name), [-1.0, -0.5, 0.0, 0.5, 2.0])
    np.testing.assert_array_equal(grad, 0)


def test_nan_to_num_passes_the_gradient_through_finite_elements_only():
    values = [math.nan, math.inf, -math.inf, 2.0]
    x = fg.tensor(values, requires_grad=True)
    out = fg.nan_to_num(x, nan=1.0, neginf=-5.0)
    assert out.tolist() == [1.0, np.finfo(np.float32).max, -5.0, 2.0]
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 0, 0, 1])


def test_floor_divide_is_not_differentiable():
    x = fg.tensor([1.5, -2.5], requires_grad=True)
    out = x // 2
    np.testing.assert_array_equal(out.numpy(), [0.0, -2.0])
    with pytest.raises(RuntimeError, match="floor_divide"):
        out.sum().backward()


def test_kink_gradients_match_torch():
    torch = pytest.importorskip("torch")
    a, b = np.array([1.0, 3.0, 3.0, -1.0]), np.array([1.0, 3.0, 0.0, math.nan])
    for name in ("maximum", "minimum", "fmax", "fmin", "clamp_min", "clamp_max"):
        ours = [fg.tensor(v, requires_grad=True) for v in (a, b)]
        theirs = [torch.tensor(v, requires_grad=True) for v in (a, b)]
        out, expected = getattr(fg, name)(*ours), getattr(torch, name)(*theirs)
        np.testing.assert_array_equal(out.numpy(), expected.detach().numpy(), err_msg=name)
        out.sum().backward()
        expected.sum().backward()
        for x, tx in zip(ours, theirs):
            np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy(), err_msg=name)


# ----------------------------------------------------------------------- special values
def test_sign_of_nan_is_zero_and_bools_keep_their_dtype():
    assert fg.sign(fg.tensor([math.nan, -0.0, -3.0, 2.0])).tolist() == [0.0, 0.0, -1.0, 1.0]
    out = fg.sign(fg.tensor([True, False]))
    assert out.dtype == fg.bool_ and out.tolist() == [True, False]
    assert fg.sign(fg.tensor([-4, 0, 9])).tolist() == [-1, 0, 1]


def test_round_halves_to_even_and_scales_by_decimals():
    x = fg.tensor([0.5, 1.5, 2.5, -0.5, -2.5])
    assert fg.round(x).tolist() == [0.0, 2.0, 2.0, -0.0, -2.0]
    assert round(fg.tensor([1.5, 2.25]), 1).tolist() == pytest.approx([1.5, 2.2])
    assert round(fg.tensor(2.5)).item() == 2.0
    np.testing.assert_array_equal(fg.round(fg.tensor([1250.0, 1350.0]), decimals=-2).numpy(),
                                  [1200.0, 1400.0])


@pytest.mark.parametrize("a, b", [(7, 3), (-7, 3), (7, -3), (-7, -3), (0, 5), (6, 3)])
def test_integer_division_follows_python_signs(a, b):
    x, y = fg.tensor([a]), fg.tensor([b])
    assert (x // y).item() == a // b
    assert (x % y).item() == a % b
    assert fg.fmod(x, y).item() == int(math.fmod(a, b))
    assert fg.remainder(a, y).item() == a % b  # a number as input, as PyTorch allows


@pytest.mark.parametrize("a, b", [(7.5, 2.0), (-7.5, 2.0), (7.5, -2.0), (-7.5, -2.0)])
def test_float_division_follows_python_signs(a, b):
    x = fg.tensor([a], dtype=fg.float64)
    assert (x // b).item() == a // b
    assert (x % b).item() == a % b
    assert fg.fmod(x, b).item() == math.fmod(a, b)
    assert (b // x).item() == b // a and (b % x).item() == b % a  # reflected


def test_number_remainder_tensor_is_differentiable(rng):
    # PyTorch has no derivative for remainder(Scalar, Tensor); fastgrad's is d/db of
    # a - b * floor(a / b)
    (b,) = draw([real(2, 3)], rng, np.float64)
    np.testing.assert_allclose((2.5 % fg.tensor(b)).numpy(), np.remainder(2.5, b))
    assert gradcheck(lambda t: 2.5 % t, (fg.tensor(b, requires_grad=True),))


def test_float_division_by_zero_follows_ieee():
    x = fg.tensor([-1.5, 0.5, 0.0])
    np.testing.assert_array_equal((x // 0).numpy(), [-np.inf, np.inf, np.nan])
    assert np.isnan((x % 0).numpy()).all()


def test_erf_matches_math_erf():
    values = np.linspace(-3, 3, 13)
    np.testing.assert_allclose(fg.erf(fg.tensor(values)).numpy(),
                               [math.erf(v) for v in values], rtol=1e-12)


def test_positive_is_the_identity_and_refuses_bool():
    x = fg.tensor([1.0, -2.0])
    assert (+x).tolist() == [1.0, -2.0]
    with pytest.raises(RuntimeError, match="bool"):
        +fg.tensor([True])


# ------------------------------------------------------------------------------- dtypes
FLOAT_UNARY = ["sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh",
               "atanh", "log1p", "expm1", "log2", "log10", "exp2", "rsqrt", "reciprocal",
               "erf"]


def expected_unary_dtype(name, dtype):
    """PyTorch's result dtype of a unary op on ``dtype``, or the error class it raises."""
    kind = np.dtype(dtype).kind
    if name in FLOAT_UNARY:
        return np.dtype(dtype) if kind == "f" else np.dtype(np.float32)
    if name in ("floor", "ceil", "trunc", "fix", "round"):
        return RuntimeError if kind == "b" else np.dtype(dtype)
    if name == "frac":
        return np.dtype(dtype) if kind == "f" else RuntimeError
    if name == "square":
        return np.dtype(np.int64) if kind == "b" else np.dtype(dtype)
    return np.dtype(dtype)  # sign, nan_to_num


UNARY_DATA = np.array([-3, 0, 1, 2])


def _typed(values, dtype):
    return np.asarray(values).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", list(UNARY))
def test_unary_dtypes(name, dtype):
    x = fg.tensor(_typed(UNARY_DATA, dtype))
    expected = expected_unary_dtype(name, dtype)
    if expected is RuntimeError:
        with pytest.raises(RuntimeError):
            getattr(fg, name)(x)
        return
    out = getattr(fg, name)(x)
    assert out.dtype == expected
    with np.errstate(all="ignore"):
        reference = UNARY[name][0](_typed(UNARY_DATA, dtype).astype(np.float64))
    np.testing.assert_allclose(out.numpy().astype(np.float64), reference, rtol=1e-6,
                               equal_nan=True)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", list(UNARY))
def test_unary_dtypes_match_torch(name, dtype):
    torch = pytest.importorskip("torch")
    array = _typed(UNARY_DATA, dtype)
    try:
        expected = getattr(torch, name)(torch.tensor(array))
    except (RuntimeError, TypeError) as error:
        with pytest.raises(RuntimeError if isinstance(error, RuntimeError) else TypeError):
            getattr(fg, name)(fg.tensor(array))
        return
    out = getattr(fg, name)(fg.tensor(array))
    assert str(out.dtype) == str(expected.dtype).replace("torch.", "")
    np.testing.assert_allclose(out.numpy().astype(np.float64),
                               expected.numpy().astype(np.float64), rtol=1e-6, equal_nan=True)


LEFT, RIGHT = np.array([[-3], [0], [2], [5]]), np.array([2, -3, 1])  # no zero divisor
BINARY_NONDIFF = {  # name: NumPy reference on the promoted operands
    "eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
    "gt": np.greater, "ge": np.greater_equal, "greater": np.greater, "less": np.less,
    "greater_equal": np.greater_equal, "less_equal": np.less_equal,
    "not_equal": np.not_equal, "maximum": np.maximum, "minimum": np.minimum,
    "fmax": np.fmax, "fmin": np.fmin, "floor_divide": np.floor_divide,
    "remainder": np.remainder, "fmod": np.fmod, "logical_and": np.logical_and,
    "logical_or": np.logical_or, "logical_xor": np.logical_xor,
    "bitwise_and": np.bitwise_and, "bitwise_or": np.bitwise_or,
    "bitwise_xor": np.bitwise_xor,
}
BOOL_RESULT = {"eq", "ne", "lt", "le", "gt", "ge", "greater", "less", "greater_equal",
               "less_equal", "not_equal", "logical_and", "logical_or", "logical_xor"}


def expected_binary(name, left, right):
    """(dtype, values) PyTorch gives, or the error class it raises."""
    dtype = fg.dtypes.promote(left.dtype, right.dtype)
    if name in ("floor_divide", "remainder", "fmod") and dtype.kind == "b":
        return RuntimeError, None
    if name.startswith("bitwise") and dtype.kind == "f":
        return RuntimeError, None
    if name in BOOL_RESULT:
        values = BINARY_NONDIFF[name](left, right)
        return np.dtype(np.bool_), values
    return dtype, BINARY_NONDIFF[name](left.astype(dtype), right.astype(dtype))


@pytest.mark.parametrize("name", list(BINARY_NONDIFF))
def test_binary_dtypes_and_values(name):
    for left_dtype in DTYPES:
        for right_dtype in DTYPES:
            left, right = _typed(LEFT, left_dtype), _typed(RIGHT, right_dtype)
            dtype, values = expected_binary(name, left, right)
            label = f"{name}({np.dtype(left_dtype)}, {np.dtype(right_dtype)})"
            if dtype is RuntimeError:
                with pytest.raises(RuntimeError):
                    getattr(fg, name)(fg.tensor(left), fg.tensor(right))
                continue
            out = getattr(fg, name)(fg.tensor(left), fg.tensor(right))
            assert out.dtype == dtype, label
            assert out.shape == (4, 3), label
            np.testing.assert_array_equal(out.numpy(), values, err_msg=label)


@pytest.mark.parametrize("name", list(BINARY_NONDIFF))
def test_binary_dtypes_and_values_match_torch(name):
    torch = pytest.importorskip("torch")
    others = [_typed(RIGHT, d) for d in DTYPES] + [2, -3, 2.5, True]
    for left_dtype in DTYPES:
        left = _typed(LEFT, left_dtype)
        for right in others:
            label = f"{name}({np.dtype(left_dtype)}, {right!r})"
            torch_right = torch.tensor(right) if isinstance(right, np.ndarray) else right
            try:
                expected = getattr(torch, name)(torch.tensor(left), torch_right)
            except (RuntimeError, TypeError) as error:
                kind = RuntimeError if isinstance(error, RuntimeError) else TypeError
                with pytest.raises(kind):
                    getattr(fg, name)(fg.tensor(left), right)
                continue
            out = getattr(fg, name)(fg.tensor(left), right)
            assert str(out.dtype) == str(expected.dtype).replace("torch.", ""), label
            np.testing.assert_array_equal(out.numpy(), expected.numpy(), err_msg=label)


OPERATORS = {"&": operator.and_, "|": operator.or_, "^": operator.xor,
             "//": operator.floordiv, "%": operator.mod, "==": operator.eq,
             "<": operator.lt}


@pytest.mark.parametrize("symbol", list(OPERATORS))
def test_operators_and_reflected_operators_match_torch(symbol):
    torch = pytest.importorskip("torch")
    op = OPERATORS[symbol]
    for dtype in DTYPES:
        left = _typed(LEFT, dtype)
        for right in [_typed(RIGHT, np.int64), _typed(RIGHT, np.bool_), 3, True, 2.5]:
            for swapped in (False, True):
                label = f"{np.dtype(dtype)} {symbol} {right!r} swapped={swapped}"
                a, ta = fg.tensor(left), torch.tensor(left)
                b = fg.tensor(right) if isinstance(right, np.ndarray) else right
                tb = torch.tensor(right) if isinstance(right, np.ndarray) else right
                args, targs = ((b, a), (tb, ta)) if swapped else ((a, b), (ta, tb))
                try:
                    expected = op(*targs)
                except (RuntimeError, TypeError) as error:
                    kind = RuntimeError if isinstance(error, RuntimeError) else TypeError
                    with pytest.raises(kind):
                        op(*args)
                    continue
                out = op(*args)
                assert str(out.dtype) == str(expected.dtype).replace("torch.", ""), label
                np.testing.assert_array_equal(out.numpy(), expected.numpy(), err_msg=label)


def test_bitwise_operators_on_integers_and_bools():
    i = fg.tensor([-3, 2, 7])
    b = fg.tensor([True, False, True])
    assert (i & 3).tolist() == [1, 2, 3] and (3 & i).tolist() == [1, 2, 3]
    assert (i | b).tolist() == [-3, 2, 7] and (i ^ b).tolist() == [-4, 2, 6]
    assert (~i).tolist() == [2, -3, -8] and (~b).tolist() == [False, True, False]
    assert (b & True).dtype == fg.bool_ and (b | 1).dtype == fg.int64
    assert (np.array([1, 1, 1]) & i).tolist() == [1, 0, 1]  # ndarray defers to Tensor
    assert fg.bitwise_not(b).tolist() == [False, True, False]
    assert fg.logical_not(i).tolist() == [False, False, False]
    assert fg.logical_xor(i, b).tolist() == [False, True, False]


@pytest.mark.parametrize("statement, other, start, expected", [
    (operator.iand, 6, [3, 5], [2, 4]),  # x &= 6
    (operator.ior, 8, [3, 5], [11, 13]),
    (operator.ixor, 1, [3, 5], [2, 4]),
    (operator.ifloordiv, 2, [3, -5], [1, -3]),
    (operator.imod, 3, [4, -5], [1, 1]),
])
def test_augmented_operators_write_in_place(statement, other, start, expected):
    x = fg.tensor(start)
    assert statement(x, other) is x
    assert x.tolist() == expected and x.dtype == fg.int64


# ----------------------------------------------------------------------- isclose & co
def test_isclose_formula_infinities_and_nans():
    a = fg.tensor([1.0, 1.0 + 1e-6, 1.0 + 1e-4, math.inf, -math.inf, math.nan])
    b = fg.tensor([1.0, 1.0, 1.0, math.inf, math.inf, math.nan])
    assert fg.isclose(a, b).tolist() == [True, True, False, True, False, False]
    assert fg.isclose(a, b, equal_nan=True).tolist()[-1] is True
    assert a.isclose(b, rtol=1e-3).tolist()[:3] == [True, True, True]
    assert fg.isclose(a, b, rtol=0, atol=0).tolist()[:2] == [True, False]
    ints = fg.tensor([10, 11, 20])
    assert fg.isclose(ints, fg.tensor([10, 10, 10]), rtol=0.1).tolist() == [True, True, False]


def test_allclose_and_equal_return_python_bools():
    a = fg.tensor([1.0, 2.0, 3.0])
    assert fg.allclose(a, a + 1e-7) is True and a.allclose(a + 1e-3) is False
    assert fg.allclose(fg.tensor([math.nan]), fg.tensor([math.nan]), equal_nan=True) is True
    assert fg.allclose(a, fg.tensor([1.0, 2.0, 3.0 + 1e-5]), rtol=0, atol=1e-4) is True
    assert fg.equal(a, fg.tensor([1.0, 2.0, 3.0])) is True
    assert fg.equal(a, a.double()) is True and fg.equal(a, fg.tensor([1, 2, 3])) is True
    assert a.equal(fg.tensor([1.0, 2.0])) is False
    assert fg.equal(fg.tensor([math.nan]), fg.tensor([math.nan])) is False


def test_isclose_and_allclose_match_torch(rng):
    torch = pytest.importorskip("torch")
    a = rng.normal(size=(4, 5))
    b = a + rng.choice([0.0, 1e-9, 1e-6, 1e-3], size=(4, 5)) * rng.normal(size=(4, 5))
    b[0, :3] = [np.inf, np.nan, -np.inf]
    a[0, :3] = [np.inf, np.nan, np.inf]
    for dtype in (np.float32, np.float64):
        x, y = a.astype(dtype), b.astype(dtype)
        for kwargs in ({}, {"rtol": 1e-3}, {"atol": 1e-5, "equal_nan": True}):
            out = fg.isclose(fg.tensor(x), fg.tensor(y), **kwargs)
            expected = torch.isclose(torch.tensor(x), torch.tensor(y), **kwargs)
            np.testing.assert_array_equal(out.numpy(), expected.numpy())
            assert fg.allclose(fg.tensor(x[1:]), fg.tensor(y[1:]), **kwargs) == \
                torch.allclose(torch.tensor(x[1:]), torch.tensor(y[1:]), **kwargs)


def test_isfinite_isnan_isinf():
    x = fg.tensor([1.0, math.inf, -math.inf, math.nan])
    assert fg.isfinite(x).tolist() == [True, False, False, False]
    assert x.isnan().tolist() == [False, False, False, True]
    assert fg.isinf(x).tolist() == [False, True, True, False]
    assert fg.isposinf(x).tolist() == [False, True, False, False]
    assert x.isneginf().tolist() == [False, False, True, False]
    assert fg.isfinite(fg.tensor([1, 2])).tolist() == [True, True]
    assert fg.isinf(fg.tensor([True])).tolist() == [False]


# ---------------------------------------------------------------------------- in place
IN_PLACE = [  # (method, args, start)
    ("sin_", (), [0.5, -1.0]), ("floor_", (), [1.5, -1.5]), ("round_", (), [0.5, 1.5]),
    ("sign_", (), [-2.0, 3.0]), ("reciprocal_", (), [2.0, 4.0]), ("square_", (), [3, -2]),
    ("floor_", (), [3, -2]), ("clamp_min_", (0.0,), [-1.0, 2.0]),
    ("clamp_max_", (0.0,), [-1.0, 2.0]), ("nan_to_num_", (), [math.nan, 1.0]),
    ("lerp_", (fg.tensor([2.0, 2.0]), 0.5), [0.0, 1.0]),
    ("addcmul_", (fg.tensor([2.0, 3.0]), fg.tensor([1.0, 2.0])), [1.0, 1.0]),
    ("addcdiv_", (fg.tensor([2.0, 3.0]), fg.tensor([1.0, 2.0])), [1.0, 1.0]),
    ("remainder_", (3,), [4, -5]), ("fmod_", (3,), [4, -5]), ("floor_divide_", (2,), [5, -5]),
    ("eq_", (1.0,), [1.0, 2.0]), ("greater_", (1.0,), [1.0, 2.0]),
    ("logical_not_", (), [0, 3]), ("logical_and_", (fg.tensor([1, 0]),), [2, 3]),
    ("bitwise_and_", (6,), [3, 5]), ("bitwise_not_", (), [0, 5]), ("fix_", (), [-1.5, 1.5]),
    ("abs_", (), [-3, 2]), ("neg_", (), [-3, 2]), ("relu_", (), [-3, 2]),
]


@pytest.mark.parametrize("method, args, start", IN_PLACE, ids=[c[0] for c in IN_PLACE])
def test_in_place_equals_out_of_place(method, args, start):
    x = fg.tensor(start)
    expected = getattr(x, method[:-1])(*args)
    assert getattr(x, method)(*args) is x
    assert x.dtype == fg.tensor(start).dtype
    np.testing.assert_array_equal(x.numpy(), expected.numpy().astype(x.dtype))


@pytest.mark.parametrize("method, args, start", IN_PLACE, ids=[c[0] for c in IN_PLACE])
def test_in_place_matches_torch(method, args, start):
    torch = pytest.importorskip("torch")
    targs = [torch.tensor(a.numpy()) if isinstance(a, fg.Tensor) else a for a in args]
    x, tx = fg.tensor(start), torch.tensor(start)
    getattr(x, method)(*args)
    getattr(tx, method)(*targs)
    np.testing.assert_allclose(x.numpy(), tx.numpy(), rtol=1e-6)  # sin_: ulps of float32
    assert str(x.dtype) == str(tx.dtype).replace("torch.", "")


def test_in_place_refuses_what_torch_refuses():
    with pytest.raises(RuntimeError, match="can't be cast"):
        fg.tensor([1, 2]).sin_()
    with pytest.raises(RuntimeError, match="can't be cast"):
        fg.tensor([True]).__iand__(fg.tensor([2]))
    with pytest.raises(RuntimeError, match="can't be cast"):
        fg.tensor([4]).remainder_(2.5)
    with pytest.raises(RuntimeError, match="in-place"):
        fg.tensor([1.0], requires_grad=True).sin_()
    with pytest.raises(RuntimeError, match="requires grad"):
        fg.tensor([1.0]).lerp_(fg.tensor([2.0], requires_grad=True), 0.5)
    with pytest.raises(RuntimeError, match="cannot be written"):
        fg.tensor([1.0]).addcmul_(fg.tensor([1.0, 2.0]), fg.tensor([1.0, 2.0]))
    x = fg.tensor([1.0], requires_grad=True)
    with fg.no_grad():
        x.sin_()
    assert x.item() == pytest.approx(math.sin(1.0))


# ------------------------------------------------------------------------------- errors
ERRORS = [
    (lambda: fg.maximum(fg.tensor([1.0]), 2), TypeError, "must be a Tensor"),
    (lambda: fg.maximum(fg.ones(2), fg.ones(3)), RuntimeError, "broadcast"),
    (lambda: fg.lerp(fg.tensor([1.0]), fg.tensor([1.0], dtype=fg.float64), 0.5),
     RuntimeError, "end"),
    (lambda: fg.lerp(fg.tensor([1]), fg.tensor([1]), 0.5), RuntimeError, "floating"),
    (lambda: fg.lerp(fg.tensor([1.0]), fg.tensor([1.0]), fg.tensor([1])),
     RuntimeError, "weight"),
    (lambda: fg.lerp(fg.tensor([1.0]), 2.0, 0.5), TypeError, "Tensor"),
    (lambda: fg.lerp(fg.tensor([1.0]), fg.tensor([1.0]), "half"), TypeError, "weight"),
    (lambda: fg.addcdiv(fg.tensor([1]), fg.tensor([1]), fg.tensor([1])),
     RuntimeError, "integer division"),
    (lambda: fg.addcmul(fg.ones(2), fg.ones(2), 2.0), TypeError, "Tensor"),
    (lambda: fg.addcmul(fg.ones(2), fg.ones(2), fg.ones(2), value="x"), TypeError, "value"),
    (lambda: fg.tensor([1, 2]) // fg.tensor([1, 0]), RuntimeError, "ZeroDivisionError"),
    (lambda: fg.tensor([1, 2]) % 0, RuntimeError, "ZeroDivisionError"),
    (lambda: fg.fmod(fg.tensor([1]), 0), RuntimeError, "ZeroDivisionError"),
    (lambda: fg.tensor([True]) // fg.tensor([True]), RuntimeError, "bool"),
    (lambda: fg.tensor([1.0]) & 1, RuntimeError, "integer and bool"),
    (lambda: fg.bitwise_not(fg.tensor([1.0])), RuntimeError, "integer and bool"),
    (lambda: ~fg.tensor([1.0]), TypeError, "invert"),
    (lambda: fg.logical_and(fg.tensor([1.0]), 1), TypeError, "Tensor"),
    (lambda: fg.eq(1, fg.tensor([1.0])), TypeError, "Tensor"),
    (lambda: fg.isclose(fg.tensor([1.0]), fg.tensor([1.0], dtype=fg.float64)),
     RuntimeError, "did not match"),
    (lambda: fg.isclose(fg.tensor([1.0]), 1.0), TypeError, "Tensor"),
    (lambda: fg.isclose(fg.tensor([1.0]), fg.tensor([1.0]), rtol=-1), RuntimeError, "rtol"),
    (lambda: fg.allclose(fg.ones(2), fg.ones(3)), RuntimeError, "broadcast"),
    (lambda: fg.round(fg.tensor([1]), decimals=1), RuntimeError, "decimals"),
    (lambda: fg.round(fg.tensor([1.0]), decimals=0.5), TypeError, "decimals"),
    (lambda: fg.frac(fg.tensor([1])), RuntimeError, "floating"),
    (lambda: fg.floor(fg.tensor([True])), RuntimeError, "bool"),
    (lambda: fg.sin("x"), TypeError, "Tensor"),
    (lambda: fg.nan_to_num(fg.tensor([1.0]), nan="zero"), TypeError, "nan"),
    (lambda: fg.max(fg.ones(2), fg.ones(2), True), TypeError, "keepdim"),
]


@pytest.mark.parametrize("call, error, match", ERRORS, ids=[str(i) for i in range(len(ERRORS))])
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_exports_and_methods():
    for name in fg.pointwise.__all__:
        assert getattr(fg, name) is getattr(fg.pointwise, name)
    for name in ("sin", "maximum", "eq", "greater_equal", "logical_and", "bitwise_xor",
                 "isfinite", "allclose", "sin_", "exp_", "tanh_", "addcmul_", "__and__",
                 "__rand__", "__iand__", "__invert__", "__floordiv__", "__rmod__"):
        assert callable(getattr(fg.Tensor, name)), name
