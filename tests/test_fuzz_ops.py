"""Hypothesis over the ops, the Tensor methods and the factories: random shapes (zero-size
included), every dtype (bool, ints, float16/32/64, complex, object), C, Fortran, strided and
reversed layouts, NaN and inf, wrong argument types. Each call works (the result is checked
against NumPy, shape and dtype included, and gradients flow back in the input's shape) or
raises a clear error from fastgrad's thin layer; see tests/_fuzz.py for the contract."""
import math

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given
from test_indexing import reference_index

import fastgrad as fg
from _fuzz import (FLOATS, INTS, JUNK, arrays, assert_matches, backend, call, fuzz,  # noqa: F401
                   numeric, report_counts, tensor_of)


pytestmark = pytest.mark.usefixtures("backend")  # each test on every backend


@pytest.fixture(autouse=True, scope="module")
def _counts():
    yield
    report_counts()


def _tensor(name, array, requires_grad=False):
    """``array`` as a Tensor, or None when fastgrad refuses its dtype (as it must)."""
    ok, result = call(name, tensor_of, array, requires_grad, names=("data", "dtype"))
    assert ok == numeric(array), f"Tensor() of dtype {array.dtype}: {result!r}"
    return result if ok else None


def _promote(a, b):
    """PyTorch's result dtype of two tensors (stated here independently of fastgrad)."""
    a, b = np.dtype(a), np.dtype(b)
    if (a.kind == "f") != (b.kind == "f"):
        return a if a.kind == "f" else b
    return np.promote_types(a, b)


def _with_scalar(dtype, value):
    """PyTorch's result dtype of a tensor of ``dtype`` and a Python scalar."""
    dtype = np.dtype(dtype)
    if isinstance(value, bool):
        return dtype
    if isinstance(value, float) and dtype.kind in "biu":
        return np.dtype(np.float32)
    if isinstance(value, int) and dtype.kind == "b":
        return np.dtype(np.int64)
    return dtype


def _is_number(value):
    """A real Python or NumPy number (bools included), what ops take besides Tensors."""
    return isinstance(value, (int, float, np.integer, np.floating, np.bool_))


def _backward_shapes(out, inputs):
    """Backward from ``out`` gives every floating input a gradient of its shape and dtype."""
    if not (isinstance(out, fg.Tensor) and out.requires_grad):
        return
    out.backward(fg.Tensor(np.ones(out.shape, out.dtype)))
    for t in inputs:
        if isinstance(t, fg.Tensor) and t.requires_grad:
            assert t.grad is not None and t.grad.shape == t.shape and t.grad.dtype == t.dtype


# ------------------------------------------------------------------------------ elementwise
def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


UNARY = {  # name: (fastgrad, NumPy reference, result dtype for integer/bool input)
    "exp": (fg.exp, np.exp, "float"), "log": (fg.log, np.log, "float"),
    "sqrt": (fg.sqrt, np.sqrt, "float"), "tanh": (fg.tanh, np.tanh, "float"),
    "sigmoid": (fg.sigmoid, _sigmoid, "float"), "abs": (fg.abs, np.abs, "keep"),
    "neg": (fg.neg, np.negative, "keep"), "relu": (fg.relu, lambda x: np.maximum(x, 0), "keep"),
}


@fuzz(200)
@given(name=st.sampled_from(sorted(UNARY)), array=arrays(), grad=st.booleans(),
       method=st.booleans())
def test_unary_ops(name, array, grad, method):
    ours, reference, integral = UNARY[name]
    x = _tensor("Tensor", array, grad and array.dtype.kind == "f")
    if x is None:
        return
    fn = getattr(fg.Tensor, name) if method and name != "neg" else ours
    ok, out = call(f"fastgrad.{name}", fn, x)
    if array.dtype.kind == "b" and integral == "keep":
        assert not ok and isinstance(out, RuntimeError)  # PyTorch: no -, abs, relu of bool
        return
    assert ok, out
    dtype = array.dtype if array.dtype.kind == "f" or integral == "keep" else np.float32
    with np.errstate(all="ignore"):
        expected = reference(array.astype(np.float64)).astype(dtype)
    assert_matches(out, expected, dtype)
    _backward_shapes(out, [x])


def _operand(draw, dtypes):
    kind = draw(st.sampled_from(["tensor", "tensor", "tensor", "int", "float", "bool",
                                 "junk"]))
    if kind == "tensor":
        return draw(arrays(dtypes=dtypes, max_dims=3, max_side=3))
    if kind == "int":
        return draw(st.integers(-4, 4))
    if kind == "float":
        return draw(st.one_of(st.floats(-4, 4), st.sampled_from([math.nan, math.inf])))
    if kind == "bool":
        return draw(st.booleans())
    return draw(JUNK)


BINARY = {"add": (fg.add, np.add), "sub": (fg.sub, np.subtract), "mul": (fg.mul, np.multiply),
          "div": (fg.div, np.true_divide), "pow": (fg.pow, np.power),
          "lt": (fg.Tensor.__lt__, np.less), "eq": (fg.Tensor.__eq__, np.equal),
          "ge": (fg.Tensor.__ge__, np.greater_equal)}


@fuzz(300)
@given(data=st.data(), name=st.sampled_from(sorted(BINARY)), grad=st.booleans())
def test_binary_ops(data, name, grad):
    ours, reference = BINARY[name]
    dtypes = INTS + FLOATS + [np.complex64, object]
    a, b = _operand(data.draw, dtypes), _operand(data.draw, dtypes)
    operands = []
    for value in (a, b):
        if isinstance(value, np.ndarray):
            t = _tensor("Tensor", value, grad and value.dtype.kind == "f")
            if t is None:
                return
            operands.append(t)
        else:
            operands.append(value)
    if name in ("lt", "eq", "ge") and not isinstance(operands[0], fg.Tensor):
        return  # a comparison operator needs a Tensor on its left
    ok, out = call(f"fastgrad.{name}", ours, *operands, names=("input", "other", "exponent",
                                                                 "operand"))
    tensors = [t for t in operands if isinstance(t, fg.Tensor)]
    numbers = [v for v in operands if not isinstance(v, fg.Tensor)]
    if not tensors or any(isinstance(v, (complex, str, bytes, list, tuple, dict, type(None)))
                          or type(v) is object for v in numbers):
        assert not ok and isinstance(out, TypeError), out
        return
    shapes = [t.shape for t in tensors]
    try:
        shape = np.broadcast_shapes(*shapes)
    except ValueError:
        assert not ok and isinstance(out, RuntimeError), out
        return
    if len(tensors) == 2:
        dtype = _promote(*[t.dtype for t in tensors])
    else:
        number = numbers[0]
        dtype = _with_scalar(tensors[0].dtype,
                             number.item() if isinstance(number, np.generic) else number)
    raw = [np.asarray(v.numpy() if isinstance(v, fg.Tensor) else v).astype(dtype)
           for v in operands]
    if name == "sub" and dtype.kind == "b":
        assert not ok and isinstance(out, RuntimeError), out  # PyTorch: no bool subtraction
        return
    if name == "pow" and dtype.kind in "iu" and (np.asarray(raw[1]) < 0).any():
        assert not ok and isinstance(out, RuntimeError), out  # integers to negative powers
        return
    if name == "div" and dtype.kind != "f":
        raw, dtype = [r.astype(np.float32) for r in raw], np.dtype(np.float32)
    assert ok, out
    with np.errstate(all="ignore"):
        expected = reference(*raw)
    if name in ("lt", "eq", "ge"):
        dtype = np.dtype(bool)
    assert_matches(out, expected.astype(dtype), dtype)
    assert out.shape == shape
    _backward_shapes(out, operands)


@fuzz(200)
@given(array=arrays(max_dims=3), low=st.one_of(st.none(), st.integers(-3, 3),
                                               st.floats(-3, 3), JUNK),
       high=st.one_of(st.none(), st.integers(-3, 3), st.floats(-3, 3), JUNK))
def test_clamp(array, low, high):
    x = _tensor("Tensor", array, array.dtype.kind == "f")
    if x is None:
        return
    ok, out = call("fastgrad.clamp", fg.clamp, x, low, high, names=("min", "max"))
    bounds = [v for v in (low, high) if v is not None]
    if not bounds:
        assert not ok and isinstance(out, ValueError)
        return
    if any(isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating))
           for v in bounds):
        assert not ok and isinstance(out, TypeError), out
        return
    assert ok, out
    dtype = array.dtype
    for v in bounds:
        dtype = _with_scalar(dtype, v.item() if isinstance(v, np.generic) else v)
    with np.errstate(all="ignore"):
        expected = array.astype(np.float64)
        if low is not None:
            expected = np.where(expected < low, low, expected)
        if high is not None:
            expected = np.where(expected > high, high, expected)
        if any(isinstance(v, float) and math.isnan(v) for v in bounds):
            expected = np.full(array.shape, math.nan)
    if dtype.kind in "iu" and any(not np.can_cast(np.min_scalar_type(v), dtype) for v in bounds):
        assert out.shape == array.shape and out.dtype == dtype  # a bound beyond the dtype
        return
    assert_matches(out, expected.astype(dtype), dtype)
    _backward_shapes(out, [x])


@fuzz(150)
@given(condition=arrays(dtypes=[np.bool_, np.bool_, np.int64, np.float32], max_dims=3,
                        max_side=3),
       x=arrays(dtypes=FLOATS + [np.int64], max_dims=3, max_side=3),
       other=st.one_of(arrays(dtypes=FLOATS + [np.int64], max_dims=3, max_side=3),
                       st.floats(-2, 2), JUNK))
def test_where(condition, x, other):
    cond, tx = _tensor("Tensor", condition), _tensor("Tensor", x)
    ty = _tensor("Tensor", other) if isinstance(other, np.ndarray) else other
    ok, out = call("fastgrad.where", fg.where, cond, tx, ty,
                   names=("condition", "input", "other"))
    if condition.dtype != np.bool_:
        assert not ok and isinstance(out, TypeError), out
        return
    if not (isinstance(ty, fg.Tensor) or _is_number(ty)):
        assert not ok and isinstance(out, TypeError), out
        return
    shapes = [condition.shape, x.shape] + ([other.shape] if isinstance(other, np.ndarray)
                                          else [])
    try:
        shape = np.broadcast_shapes(*shapes)
    except ValueError:
        assert not ok and isinstance(out, RuntimeError), out
        return
    assert ok, out
    dtype = _promote(x.dtype, other.dtype) if isinstance(other, np.ndarray) \
        else _with_scalar(x.dtype, other.item() if isinstance(other, np.generic) else other)
    expected = np.where(condition, x.astype(dtype), np.asarray(other).astype(dtype))
    assert_matches(out, expected, dtype)
    assert out.shape == shape


# ----------------------------------------------------------------------------------- matmul
@fuzz(200)
@given(data=st.data(), grad=st.booleans())
def test_matmul(data, grad):
    same = data.draw(st.booleans())
    dtype_a = data.draw(st.sampled_from(INTS + FLOATS + [np.complex128]))
    dtype_b = dtype_a if same else data.draw(st.sampled_from(INTS + FLOATS))
    a = data.draw(arrays(dtypes=[dtype_a], max_dims=4, max_side=3, nice=True))
    if data.draw(st.booleans()) and a.ndim:  # often make the inner sizes agree
        shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=3))
        shape = (a.shape[-1],) + shape[1:] if len(shape) == 1 else \
            shape[:-2] + (a.shape[-1], shape[-1])
        b = data.draw(arrays(dtypes=[dtype_b], shape=shape, nice=True))
    else:
        b = data.draw(arrays(dtypes=[dtype_b], max_dims=4, max_side=3, nice=True))
    ta = _tensor("Tensor", a, grad and a.dtype.kind == "f")
    tb = _tensor("Tensor", b, grad and b.dtype.kind == "f")
    if ta is None or tb is None:
        return
    ok, out = call("fastgrad.matmul", fg.matmul, ta, tb, names=("input", "other"))
    try:
        with np.errstate(all="ignore"):
            expected = np.matmul(a, b)
    except ValueError:
        expected = None
    if a.ndim == 0 or b.ndim == 0 or expected is None or a.dtype != b.dtype:
        assert not ok and isinstance(out, RuntimeError), out
        return
    assert ok, out
    assert_matches(out, expected, a.dtype)
    _backward_shapes(out, [ta, tb])


# ------------------------------------------------------------------------------- reductions
DIMS = st.one_of(st.none(), st.integers(-5, 4), st.lists(st.integers(-4, 3), max_size=3)
                 .map(tuple), JUNK)
KEEPDIM = st.one_of(st.booleans(), st.booleans(), JUNK)


def _axes(dim, ndim, many):
    """The axes ``dim`` names, or the exception type fastgrad must raise."""
    if dim is None:
        return None
    dims = tuple(dim) if isinstance(dim, (tuple, list)) else (dim,)
    if isinstance(dim, (tuple, list)) and not many:
        return TypeError
    if not dims:
        return None  # PyTorch: sum(x, ()) reduces every dimension
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)):
            return TypeError
        low, high = (-ndim, ndim - 1) if ndim else (-1, 0)
        if not low <= d <= high:
            return IndexError
    axes = tuple(sorted(d % ndim if ndim else 0 for d in dims))
    if len(set(axes)) != len(axes):
        return RuntimeError
    return axes if ndim else None


REDUCTIONS = ["sum", "mean", "max", "argmax"]


@fuzz(300)
@given(name=st.sampled_from(REDUCTIONS), array=arrays(), dim=DIMS, keepdim=KEEPDIM,
       grad=st.booleans())
def test_reductions(name, array, dim, keepdim, grad):
    x = _tensor("Tensor", array, grad and array.dtype.kind == "f")
    if x is None:
        return
    ok, out = call(f"fastgrad.{name}", getattr(fg, name), x, dim, keepdim,
                   names=("dim", "keepdim", "input"))
    axes = _axes(dim, array.ndim, many=name in ("sum", "mean"))
    problems = set()  # every problem of the call: fastgrad may report any of them
    if not isinstance(keepdim, (bool, np.bool_)):
        problems.add(TypeError)
    if isinstance(axes, type):
        problems.add(axes)
    if name == "mean" and array.dtype.kind != "f":
        problems.add(TypeError)
    if problems:
        assert not ok and isinstance(out, tuple(problems)), out
        return
    reduced = array.shape if axes is None else [array.shape[a] for a in axes]
    if name in ("max", "argmax") and 0 in reduced:
        assert not ok and isinstance(out, RuntimeError), out  # no identity for max
        return
    assert ok, out
    values = out.values if name == "max" and dim is not None else out
    keep = bool(keepdim) and (dim is not None or name in ("sum", "mean"))
    with np.errstate(all="ignore"):
        if name == "sum":
            dtype = np.int64 if array.dtype.kind in "biu" else array.dtype
            expected = array.astype(np.float64).sum(axis=axes, keepdims=keep)
        elif name == "mean":
            dtype = array.dtype
            expected = array.astype(np.float64).mean(axis=axes, keepdims=keep) \
                if array.size else np.full(np.sum(array, axis=axes, keepdims=keep).shape,
                                           math.nan)
        elif name == "max":
            dtype = array.dtype
            expected = np.max(array, axis=axes, keepdims=keep)
        else:
            dtype = np.int64
            expected = np.argmax(array, axis=None if axes is None else axes[0], keepdims=keep)
    if name == "mean" and array.size and axes is not None and 0 in reduced:
        expected = np.full(expected.shape, math.nan)
    assert_matches(values, np.asarray(expected).astype(dtype), dtype)
    if name == "max" and dim is not None:
        assert_matches(out.indices, np.argmax(array, axis=axes[0] if axes else None,
                                              keepdims=keep), np.int64)
    _backward_shapes(values, [x])


@fuzz(200)
@given(name=st.sampled_from(["softmax", "log_softmax"]), array=arrays(),
       dim=st.one_of(st.integers(-5, 4), JUNK), grad=st.booleans())
def test_softmax(name, array, dim, grad):
    x = _tensor("Tensor", array, grad and array.dtype.kind == "f")
    if x is None:
        return
    ok, out = call(f"fastgrad.{name}", getattr(fg, name), x, dim, names=("dim", "input"))
    axes = TypeError if dim is None else _axes(dim, array.ndim, many=False)
    if isinstance(axes, type):
        assert not ok and isinstance(out, axes), out
        return
    assert ok, out
    dtype = array.dtype if array.dtype.kind == "f" else np.float32
    z = array.astype(np.float64)
    axis = axes[0] if axes else None
    with np.errstate(all="ignore"):
        if z.size:
            shifted = z - z.max(axis=axis, keepdims=True)
            log = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        else:
            log = z
    assert_matches(out, (log if name == "log_softmax" else np.exp(log)).astype(dtype), dtype)
    _backward_shapes(out, [x])


# ---------------------------------------------------------------------------------- shapes
SIZES = st.lists(st.one_of(st.integers(-2, 6), st.integers(-1, 4), JUNK), max_size=4)


@fuzz(200)
@given(array=arrays(dtypes=INTS + FLOATS), shape=SIZES, grad=st.booleans(),
       packed=st.booleans())
def test_reshape(array, shape, grad, packed):
    x = _tensor("Tensor", array, grad and array.dtype.kind == "f")
    args = (tuple(shape),) if packed else tuple(shape)
    ok, out = call("fastgrad.reshape", fg.reshape, x, *args, names=("shape",))
    if not packed and len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = list(shape[0])  # one sequence of sizes, as in reshape([2, 3])
    if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in shape):
        assert not ok and isinstance(out, TypeError), out
        return
    try:
        expected = array.reshape(shape)
        valid = all(s >= -1 for s in shape) and not (-1 in shape and 0 in shape)
    except ValueError:
        valid = False
    if not valid:
        assert not ok and isinstance(out, RuntimeError), out
        return
    assert ok, out
    assert_matches(out, expected, array.dtype)
    _backward_shapes(out, [x])


SHAPE_ERRORS = (ValueError, RuntimeError)  # permute's count and repeats: ValueError (tested)
SHAPE_OPS = ["flatten", "squeeze", "unsqueeze", "transpose", "permute", "t", "T"]


@fuzz(250)
@given(name=st.sampled_from(SHAPE_OPS), array=arrays(dtypes=INTS + FLOATS),
       dims=st.lists(st.one_of(st.integers(-5, 4), JUNK), max_size=4), grad=st.booleans())
def test_shape_ops(name, array, dims, grad):
    x = _tensor("Tensor", array, grad and array.dtype.kind == "f")
    ndim = array.ndim

    def valid(d, rank=ndim):
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)):
            return TypeError
        low, high = (-rank, rank - 1) if rank else (-1, 0)
        return None if low <= d <= high else IndexError

    first, second = (dims + [0, -1])[:2]
    if name == "flatten":
        ok, out = call("fastgrad.flatten", fg.flatten, x, first, second,
                       names=("start_dim", "end_dim", "dim"))
        problem = valid(first) or valid(second)
        if problem is None and ndim and first % ndim > second % ndim:
            problem = RuntimeError
        if problem is None:
            start, end = (first % ndim, second % ndim) if ndim else (0, 0)
            expected = array.reshape(array.shape[:start] + (-1,) + array.shape[end + 1:]) \
                if ndim and array.size else \
                array.reshape(array.shape[:start] + (math.prod(array.shape[start:end + 1]),)
                              + array.shape[end + 1:]) if ndim else array.reshape(1)
    elif name == "squeeze":
        ok, out = call("fastgrad.squeeze", fg.squeeze, x, first, names=("dim",))
        several = isinstance(first, (list, tuple))  # PyTorch also takes a tuple of dims
        named = tuple(first) if several else (first,)
        problem = None if first is None else next(filter(None, map(valid, named)), None)
        if problem is None and several and len({d % max(ndim, 1) for d in named}) < len(named):
            problem = RuntimeError
        if first is None:
            expected = np.squeeze(array)
        elif problem is None:
            axes = tuple(a for a in {d % ndim for d in named} if array.shape[a] == 1) \
                if ndim else ()
            expected = np.squeeze(array, axes)
    elif name == "unsqueeze":
        ok, out = call("fastgrad.unsqueeze", fg.unsqueeze, x, first, names=("dim",))
        problem = valid(first, ndim + 1)
        if problem is None:
            expected = np.expand_dims(array, first % (ndim + 1))
    elif name == "transpose":
        ok, out = call("fastgrad.transpose", fg.transpose, x, first, second,
                       names=("dim0", "dim1", "dim"))
        problem = valid(first) or valid(second)
        if problem is None:
            expected = np.swapaxes(array, first, second) if ndim else array
    elif name == "permute":
        ok, out = call("fastgrad.permute", fg.permute, x, *dims, names=("dims",))
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = list(dims[0])  # one sequence of dims, as in permute((1, 0))
        problem = next((p for p in map(valid, dims) if p is TypeError), None) \
            or (SHAPE_ERRORS if len(dims) != ndim else None) \
            or next((p for p in map(valid, dims) if p), None)
        if problem is None and len({d % ndim for d in dims}) != ndim:
            problem = SHAPE_ERRORS
        if problem is None:
            expected = np.transpose(array, [d % ndim for d in dims]) if ndim else array
    elif name == "t":
        ok, out = call("Tensor.t", fg.Tensor.t, x, names=("dimensions", "dims"))
        problem = RuntimeError if ndim > 2 else None
        expected = array.T
    else:
        ok, out = call("Tensor.T", lambda t: t.T, x)
        problem, expected = None, array.transpose(tuple(reversed(range(ndim))))
    if problem is not None:
        assert not ok and isinstance(out, problem), out
        return
    assert ok, out
    assert_matches(out, expected, array.dtype)
    _backward_shapes(out, [x])


@fuzz(200)
@given(name=st.sampled_from(["cat", "stack"]), data=st.data(),
       dim=st.one_of(st.integers(-4, 3), JUNK), grad=st.booleans())
def test_cat_and_stack(name, data, dim, grad):
    count = data.draw(st.integers(0, 3))
    base = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3))
    arrays_ = []
    for _ in range(count):
        shape = base if data.draw(st.booleans()) else data.draw(
            hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3))
        if data.draw(st.booleans()) and base:  # differ along one axis only
            axis = data.draw(st.integers(0, len(base) - 1))
            shape = base[:axis] + (data.draw(st.integers(0, 3)),) + base[axis + 1:]
        arrays_.append(data.draw(arrays(dtypes=INTS + FLOATS, shape=shape)))
    tensors = [_tensor("Tensor", a, grad and a.dtype.kind == "f") for a in arrays_]
    if data.draw(st.booleans()) and tensors:
        tensors[data.draw(st.integers(0, len(tensors) - 1))] = data.draw(JUNK)
    ok, out = call(f"fastgrad.{name}", getattr(fg, name), tensors, dim,
                   names=("tensors", "dim"))
    if not tensors:
        assert not ok and isinstance(out, (ValueError, RuntimeError)), out
        return
    problems = set()
    if any(not isinstance(t, fg.Tensor) for t in tensors):
        problems.add(TypeError)
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        problems.add(TypeError)
    shapes = [t.shape for t in tensors if isinstance(t, fg.Tensor)]
    if name == "stack" and len(set(shapes)) > 1 or name == "cat" and (
            any(len(sh) == 0 for sh in shapes) or len({len(sh) for sh in shapes}) > 1):
        problems.add(RuntimeError)  # a shape problem too: either may be reported
    if problems and shapes and isinstance(dim, (int, np.integer)) and not isinstance(dim, bool):
        rank = len(shapes[0]) + (name == "stack")
        if not -max(rank, 1) <= dim < max(rank, 1):
            problems.add(IndexError)
    if problems:
        assert not ok and isinstance(out, tuple(problems)), out
        return
    dtype = arrays_[0].dtype
    for a in arrays_[1:]:
        dtype = _promote(dtype, a.dtype)
    rank = arrays_[0].ndim + (name == "stack")
    try:
        if not -rank <= dim < rank or any(a.ndim == 0 for a in arrays_) and name == "cat":
            raise ValueError
        join = np.concatenate if name == "cat" else np.stack
        expected = join([a.astype(dtype) for a in arrays_], axis=dim)
    except ValueError:
        assert not ok and isinstance(out, (IndexError, RuntimeError)), out
        return
    assert ok, out
    assert_matches(out, expected, dtype)
    _backward_shapes(out, tensors)


INDEX_PARTS = st.one_of(st.integers(-4, 4), st.slices(4), st.none(), st.just(Ellipsis),
                        hnp.arrays(np.int64, st.integers(0, 3), elements=st.integers(-4, 4)),
                        hnp.arrays(np.bool_, st.integers(0, 4)), st.floats(-2, 2),
                        st.sampled_from(["a", 1j]))


@fuzz(250)
@given(array=arrays(dtypes=INTS + FLOATS, max_dims=3),
       key=st.one_of(INDEX_PARTS, st.lists(INDEX_PARTS, max_size=3).map(tuple)),
       as_tensor=st.booleans(), grad=st.booleans())
def test_indexing(array, key, as_tensor, grad):
    x = _tensor("Tensor", array, grad and array.dtype.kind == "f")
    parts = key if isinstance(key, tuple) else (key,)
    if as_tensor:
        parts = tuple(fg.Tensor(p) if isinstance(p, np.ndarray) else p for p in parts)
    fg_key = parts if isinstance(key, tuple) else parts[0]
    ok, out = call("Tensor.__getitem__", fg.Tensor.__getitem__, x, fg_key,
                   names=("index",))
    try:
        with np.errstate(all="ignore"):
            expected = reference_index(array, key)  # PyTorch's rules, not NumPy's
    except (IndexError, TypeError, ValueError):
        assert not ok and isinstance(out, IndexError), out
        return
    assert ok, out
    assert_matches(out, expected, array.dtype)
    _backward_shapes(out, [x])


# ---------------------------------------------------------------------------- factories
DTYPE_ARGS = st.sampled_from([None, None, fg.float32, fg.float64, fg.float16, fg.int64,
                              fg.int32, fg.bool_, "float32", np.complex64, "nope", 3, object])


def _dtype_ok(dtype, floating=False):
    try:
        kind = np.dtype(dtype).kind if dtype is not None else "f"
    except TypeError:
        return TypeError
    return None if kind in ("f" if floating else "biuf") and dtype is not object else TypeError


@fuzz(300)
@given(data=st.one_of(arrays(), st.lists(st.floats(-3, 3), max_size=3),
                      st.lists(st.lists(st.integers(-3, 3), max_size=2), max_size=3),
                      st.integers(-300, 300), st.floats(), st.booleans(), JUNK),
       dtype=DTYPE_ARGS)
def test_tensor_factory(data, dtype):
    ok, out = call("fastgrad.tensor", fg.tensor, data, dtype=dtype, names=("data", "dtype"))
    problem = _dtype_ok(dtype)
    if problem:
        assert not ok and isinstance(out, problem), out
        return
    try:
        array = np.array(data)
    except (ValueError, TypeError, OverflowError) as error:
        assert not ok and isinstance(out, TypeError), f"numpy refuses {data!r}: {error}"
        return
    if array.dtype.kind not in "biuf":
        assert not ok and isinstance(out, TypeError), out
        return
    if not ok:  # only a value out of the dtype's range may be refused
        assert isinstance(out, RuntimeError) and "range" in str(out), out
        return
    if dtype is not None:
        with np.errstate(all="ignore"):
            array = array.astype(dtype)
    if dtype is None and not isinstance(data, (np.ndarray, np.generic)) \
            and array.dtype == np.float64:
        with np.errstate(over="ignore"):
            array = array.astype(np.float32)
    assert_matches(out, array, array.dtype)
    if isinstance(data, np.ndarray) and data.size:
        assert not np.shares_memory(out.numpy(), data)


SIZE_ARGS = st.lists(st.one_of(st.integers(-2, 4), st.integers(0, 3), JUNK), max_size=3)


@fuzz(300)
@given(name=st.sampled_from(["zeros", "ones", "rand", "randn", "full"]), size=SIZE_ARGS,
       packed=st.booleans(), dtype=DTYPE_ARGS,
       fill=st.one_of(st.integers(-3, 3), st.floats(), st.booleans(), JUNK))
def test_size_factories(name, size, packed, dtype, fill):
    fn = getattr(fg, name)
    if name == "full":
        ok, out = call("fastgrad.full", fn, tuple(size), fill, dtype=dtype,
                       names=("size", "dtype", "fill_value"))
    else:
        args = (tuple(size),) if packed else tuple(size)
        ok, out = call(f"fastgrad.{name}", fn, *args, dtype=dtype, names=("size", "dtype"))
        if not packed and len(size) == 1 and isinstance(size[0], (tuple, list)):
            size = list(size[0])  # one sequence of sizes, as in zeros([2, 3])
    problems = set()
    if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in size):
        problems.add(TypeError)
    elif any(s < 0 for s in size):
        problems.add(RuntimeError)
    if _dtype_ok(dtype, floating=name in ("rand", "randn")):
        problems.add(TypeError)
    if name == "full" and (isinstance(fill, (str, bytes, list, tuple, dict, complex))
                           or fill is None or type(fill) is object):
        problems.add(TypeError)
    elif name == "full" and dtype is not None and not _dtype_ok(dtype) \
            and np.dtype(dtype).kind in "iu" and not isinstance(fill, bool) and not (
                math.isfinite(fill) and np.iinfo(dtype).min <= fill <= np.iinfo(dtype).max):
        problems.add(RuntimeError)  # beyond the integer dtype's range
    if problems:
        assert not ok and isinstance(out, tuple(problems)), out
        return
    assert ok, out
    assert out.shape == tuple(size)
    if dtype is not None:
        assert out.dtype == np.dtype(dtype)
    elif name != "full":
        assert out.dtype == np.float32
    if name in ("zeros", "ones"):
        assert (out.numpy() == (name == "ones")).all()
    if name == "rand":
        assert ((out.numpy() >= 0) & (out.numpy() <= 1)).all()


@fuzz(200)
@given(start=st.one_of(st.integers(-5, 5), st.floats(-5, 5),
                       st.sampled_from([math.nan, math.inf, -math.inf]), JUNK),
       end=st.one_of(st.none(), st.integers(-5, 5), st.floats(-5, 5), JUNK),
       step=st.one_of(st.integers(-3, 3), st.floats(-2, 2), JUNK))
def test_arange(start, end, step):
    first, last = (0, start) if end is None else (start, end)
    values = [first, last, step]
    numbers = all(not isinstance(v, bool) and isinstance(v, (int, float, np.integer,
                                                             np.floating)) for v in values)
    with np.errstate(all="ignore"):  # a subnormal step overflows the length
        length = abs((last - first) / step) if numbers and step else 0.0
    if numbers and all(map(math.isfinite, values)) and 1e6 < length < 1e30:
        return  # a valid request too large to allocate here
    ok, out = call("fastgrad.arange", fg.arange, start, end, step,
                   names=("start", "end", "step"))
    problems = set()
    if not numbers:
        problems.add(TypeError)
    elif step == 0 or not all(map(math.isfinite, values)) or (last - first) * step < 0 \
            or length >= 1e30:
        problems.add(RuntimeError)  # PyTorch's checks: nonzero, finite, the step's sign
    if problems:
        assert not ok and isinstance(out, tuple(problems)), out
        return
    assert ok, out
    integral = all(isinstance(v, (int, np.integer)) for v in values)
    assert out.dtype == (np.int64 if integral else np.float32)
    assert out.shape == np.arange(first, last, step).shape


@fuzz(200)
@given(array=arrays(), name=st.sampled_from(["zeros_like", "ones_like", "from_numpy"]),
       dtype=DTYPE_ARGS, junk=st.booleans())
def test_like_factories_and_from_numpy(array, name, dtype, junk):
    fn = getattr(fg, name)
    if name == "from_numpy":
        value = array.tolist() if junk else array
        ok, out = call("fastgrad.from_numpy", fn, value, names=("array", "data"))
        if junk or not numeric(array):
            assert not ok and isinstance(out, TypeError), out
            return
        assert ok, out
        assert out.numpy() is array or np.shares_memory(out.numpy(), array) or not array.size
        return
    x = _tensor("Tensor", array) if not junk else array
    if x is None:
        return
    ok, out = call(f"fastgrad.{name}", fn, x, dtype=dtype, names=("input", "dtype"))
    if junk:
        assert not ok and isinstance(out, TypeError), out
        return
    problem = _dtype_ok(dtype)
    if problem:
        assert not ok and isinstance(out, problem), out
        return
    assert ok, out
    assert out.shape == array.shape
    assert out.dtype == (array.dtype if dtype is None else np.dtype(dtype))


# -------------------------------------------------------------------------- Tensor methods
@fuzz(200)
@given(array=arrays(dtypes=INTS + FLOATS, max_dims=3),
       name=st.sampled_from(["item", "tolist", "size", "to", "float", "double", "long",
                             "len", "bool", "int"]),
       arg=st.one_of(st.integers(-4, 4), DTYPE_ARGS, JUNK))
def test_tensor_conversions(array, name, arg):
    x = _tensor("Tensor", array)
    if name == "size":
        ok, out = call("Tensor.size", x.size, arg, names=("dim",))
        problem = None if arg is None else _axes(arg, array.ndim, many=False)
        if arg is not None and array.ndim == 0 and problem is None:
            problem = IndexError  # PyTorch: a 0-d tensor has no dimension to size
        if isinstance(problem, type):
            assert not ok and isinstance(out, problem), out
        else:
            assert ok and out == (array.shape if arg is None else array.shape[arg]), out
        return
    if name == "to":
        ok, out = call("Tensor.to", x.to, arg, names=("dtype", "device"))
        if arg is None or arg == "cpu":
            assert ok and out is x  # PyTorch: to(None) or to its own device changes nothing
            return
        problem = _dtype_ok(arg)
        if isinstance(arg, (str, int)) and not isinstance(arg, bool):
            # a device, as in PyTorch ("float32" is a bad device string, 1 is cuda:1)
            problem = (RuntimeError, TypeError)
        if problem:
            assert not ok and isinstance(out, problem), out
            return
        assert ok, out
        with np.errstate(all="ignore"):
            assert_matches(out, array.astype(np.dtype(arg)), np.dtype(arg))
        return
    if name in ("float", "double", "long"):
        ok, out = call(f"Tensor.{name}", getattr(x, name))
        assert ok, out
        dtype = {"float": np.float32, "double": np.float64, "long": np.int64}[name]
        with np.errstate(all="ignore"):
            assert_matches(out, array.astype(dtype), dtype)
        return
    method = {"item": x.item, "tolist": x.tolist, "len": x.__len__, "bool": x.__bool__,
              "int": x.__int__}[name]
    ok, out = call(f"Tensor.{name}", method,
                   names=("element", "tensor", "Tensor", "input", "integer"),
                   also=(OverflowError,) if name == "int" else ())
    if name == "tolist":
        assert ok and repr(out) == repr(array.tolist()), out  # repr: nan equals nan
    elif name == "len":
        assert (ok and out == len(array)) if array.ndim else (not ok and isinstance(
            out, TypeError)), out
    elif name == "int" and array.size == 1 and array.dtype.kind == "f" \
            and not np.isfinite(array).all():
        assert not ok and isinstance(out, (ValueError, OverflowError)), out  # as int(nan)
    elif array.size != 1:
        assert not ok and isinstance(out, RuntimeError), out
    else:
        assert ok, out


INPLACE = ["add_", "sub_", "mul_", "div_", "fill_", "zero_", "copy_", "clamp_"]


@fuzz(250)
@given(array=arrays(dtypes=INTS + FLOATS, max_dims=3, max_side=3),
       name=st.sampled_from(INPLACE),
       other=st.one_of(arrays(dtypes=INTS + FLOATS + [np.complex64], max_dims=3, max_side=3),
                       st.integers(-3, 3), st.floats(-3, 3), st.floats(), JUNK))
def test_in_place_methods(array, name, other):
    array = array.copy()
    x = _tensor("Tensor", array)
    operand = _tensor("Tensor", other) if isinstance(other, np.ndarray) \
        and numeric(other) else other
    method = getattr(x, name)
    before = array.copy()
    if name == "zero_":
        ok, out = call("Tensor.zero_", method)
    elif name == "clamp_":
        ok, out = call("Tensor.clamp_", method, operand, names=("min", "max"))
    else:
        ok, out = call(f"Tensor.{name}", method, operand,
                       names=("other", "value", "src", "min"))
    if name == "zero_":
        assert ok and out is x and not x.numpy().any()
        return
    raw = operand.numpy() if isinstance(operand, fg.Tensor) else operand
    if isinstance(raw, np.ndarray) and not numeric(raw):
        assert not ok and isinstance(out, TypeError), out
        return
    is_number = isinstance(raw, (int, float, np.integer, np.floating)) \
        and not isinstance(raw, bool)
    if name == "fill_" and not (is_number or isinstance(raw, bool)
                                or (isinstance(raw, np.ndarray) and raw.ndim == 0)):
        assert not ok and isinstance(out, (TypeError, RuntimeError)), out
        return
    if name == "clamp_" and raw is None:
        assert not ok and isinstance(out, ValueError), out  # neither min nor max
        return
    if name in ("add_", "sub_", "mul_", "div_") and not (
            is_number or isinstance(raw, (bool, np.ndarray))) \
            or name == "clamp_" and not is_number:
        assert not ok and isinstance(out, TypeError), out
        return
    if name == "copy_" and not isinstance(raw, np.ndarray):
        assert not ok and isinstance(out, TypeError), out
        return
    if isinstance(raw, np.ndarray):
        try:
            if np.broadcast_shapes(raw.shape, array.shape) != array.shape:
                raise ValueError
        except ValueError:
            assert not ok and isinstance(out, RuntimeError), out
            return
    if name in ("add_", "sub_", "mul_", "div_"):
        result = _promote(array.dtype, raw.dtype) if isinstance(raw, np.ndarray) \
            else _with_scalar(array.dtype, raw.item() if isinstance(raw, np.generic) else raw)
        if name == "div_" and result.kind != "f":
            result = np.dtype(np.float32)
        if name == "sub_" and result.kind == "b":
            assert not ok and isinstance(out, RuntimeError), out
            return
    assert ok, out  # the result is cast to the tensor's dtype (PyTorch would refuse 2.7 * int)
    assert out is x and x.numpy() is array  # in place, the same memory
    if name == "clamp_" and array.dtype.kind in "iu" and not (
            np.iinfo(array.dtype).min <= raw <= np.iinfo(array.dtype).max):
        return  # a bound beyond the dtype's range
    with np.errstate(all="ignore"):
        if name in ("add_", "sub_", "mul_", "div_"):  # computed in the promoted dtype
            before, raw = before.astype(result), np.asarray(raw).astype(result)
        if name == "clamp_":
            before = before.astype(_with_scalar(array.dtype, raw.item() if isinstance(
                raw, np.generic) else raw))
        expected = {"add_": lambda: before + raw, "sub_": lambda: before - raw,
                    "mul_": lambda: before * raw, "div_": lambda: before / raw,
                    "fill_": lambda: np.broadcast_to(raw, before.shape),
                    "copy_": lambda: np.broadcast_to(raw, before.shape),
                    "clamp_": lambda: np.clip(before, raw, None)}[name]()
        expected = np.asarray(expected)
        actual = x.numpy()
        if array.dtype.kind in "biu" and expected.dtype.kind == "f":
            # a float result cast to integers: defined only within the integer range
            info = np.iinfo(array.dtype) if array.dtype.kind != "b" else None
            inside = np.isfinite(expected) if info is None else \
                (expected >= info.min) & (expected <= info.max)
            expected, actual = expected[inside], actual[inside]
        expected = expected.astype(array.dtype)
    assert_matches(actual, expected, array.dtype)


@fuzz(150)
@given(array=arrays(dtypes=FLOATS, max_dims=2, max_side=3),
       gradient=st.one_of(st.none(), arrays(dtypes=INTS + FLOATS, max_dims=2, max_side=3),
                          JUNK))
def test_backward_gradient_argument(array, gradient):
    x = _tensor("Tensor", array, requires_grad=True)
    y = x * 2
    grad = _tensor("Tensor", gradient) if isinstance(gradient, np.ndarray) else gradient
    ok, out = call("Tensor.backward", y.backward, grad, names=("gradient", "grad"))
    if grad is None:
        if array.size != 1:
            assert not ok and isinstance(out, RuntimeError), out
            return
    elif not isinstance(grad, fg.Tensor) and (isinstance(grad, bool) or not isinstance(
            grad, (int, float, np.integer, np.floating))):
        assert not ok and isinstance(out, TypeError), out
        return
    elif np.shape(grad) != array.shape:
        assert not ok and isinstance(out, RuntimeError), out
        return
    assert ok, out  # a gradient of another dtype is cast to the output's
    expected = 2 * (np.ones(array.shape) if grad is None
                    else np.asarray(grad).astype(array.dtype).astype(np.float64))
    assert_matches(x.grad, expected.astype(array.dtype), array.dtype)
