"""Hypothesis over the layers and losses: constructor arguments of every type and range, and
inputs of random shape, dtype, layout and values (NaN, inf, zero-size). Each call works (the
output is checked against a NumPy formula, shape and dtype included) or raises a clear error
from fastgrad's thin layer; see tests/_fuzz.py for the contract."""
import math
import warnings

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

import fastgrad as fg
from fastgrad import nn
from _fuzz import (FLOATS, INTS, JUNK, arrays, assert_matches, backend, call, fuzz,  # noqa: F401
                   mostly, numeric, report_counts, tensor_of, tolerance)

PARAM_DTYPES = st.sampled_from([None, None, fg.float32, fg.float64, fg.float16, fg.int64,
                                "nope"])
SIZES = mostly(st.integers(0, 3), st.one_of(st.integers(-2, -1), JUNK))


def _no_tiny(value):
    """0 for a magnitude below 1e-6: a tiny factor rounds to 0 in float16 or float32, where
    the float64 reference keeps it (PyTorch computes in the tensor's dtype too)."""
    return 0.0 if abs(value) < 1e-6 else value


REAL = st.one_of(st.floats(-3, 3).map(_no_tiny), st.integers(-3, 3),
                 st.sampled_from([math.nan, math.inf]), JUNK)
FACTOR = mostly(st.floats(-3, 3).map(_no_tiny), REAL)
FRACTION = mostly(st.floats(0, 1).map(_no_tiny), REAL)


pytestmark = pytest.mark.usefixtures("backend")  # each test on every backend


@pytest.fixture(autouse=True, scope="module")
def _counts():
    yield
    report_counts()


def _is_size(value, minimum):
    return not isinstance(value, bool) and isinstance(value, (int, np.integer)) \
        and value >= minimum


def _is_real(value):
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer,
                                                              np.floating))


def _param_dtype(dtype):
    """The parameter dtype a layer gets for ``dtype``, or None when it must be refused."""
    if dtype is None:
        return np.dtype(np.float32)
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        return None
    return dtype if dtype.kind == "f" else None


def _input(array, requires_grad=True):
    return tensor_of(array, requires_grad and array.dtype.kind == "f")


def _grads_flow(out, tensors):
    """Backward from ``out`` (or its first element) reaches every tensor in its shape."""
    out = out[0] if isinstance(out, tuple) else out
    if not out.requires_grad:
        return
    out.backward(fg.Tensor(np.ones(out.shape, out.dtype)))
    for t in tensors:
        if t is not None and t.requires_grad:
            assert t.grad is not None and t.grad.shape == t.shape


# ------------------------------------------------------------------------------------ Linear
@fuzz(250)
@given(in_features=SIZES, out_features=SIZES, bias=st.booleans(), dtype=PARAM_DTYPES,
       data=st.data())
def test_linear(in_features, out_features, bias, dtype, data):
    ok, layer = call("nn.Linear", nn.Linear, in_features, out_features, bias, dtype,
                     names=("in_features", "out_features", "dtype"))
    param = _param_dtype(dtype)
    if not (_is_size(in_features, 0) and _is_size(out_features, 0)) or param is None:
        assert not ok and isinstance(layer, (TypeError, ValueError)), layer
        return
    assert ok, layer
    assert layer.weight.shape == (out_features, in_features) and layer.weight.dtype == param
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, max_side=3))
    if data.draw(st.booleans()) and shape:
        shape = shape[:-1] + (int(in_features),)
    array = data.draw(arrays(dtypes=INTS + FLOATS, shape=shape))
    x = _input(array)
    ok, out = call("nn.Linear.forward", layer, x, names=("input", "weight"))
    if array.ndim == 0 or array.shape[-1] != in_features or array.dtype != param:
        assert not ok and isinstance(out, RuntimeError), out
        return
    assert ok, out
    w = layer.weight.numpy().astype(np.float64)
    with np.errstate(all="ignore"):
        expected = array.astype(np.float64) @ w.T
        if bias:
            expected = expected + layer.bias.numpy()
    assert_matches(out, expected.astype(param), param)
    _grads_flow(out, [x, layer.weight, layer.bias])


# ------------------------------------------------------------------------------- activations
def _gelu(x, approximate):
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    return x * 0.5 * np.vectorize(math.erfc, otypes=[float])(-x / math.sqrt(2))


ACTIVATIONS = ["ReLU", "Sigmoid", "Tanh", "LeakyReLU", "ELU", "GELU", "Softplus", "Identity",
               "Flatten"]


@fuzz(250)
@given(name=st.sampled_from(ACTIVATIONS), array=arrays(), first=FACTOR, second=FACTOR,
       approximate=st.sampled_from(["none", "tanh", "exact", None]))
def test_activation_layers(name, array, first, second, approximate):
    if name in ("LeakyReLU", "ELU"):
        args, names = (first,), ("negative_slope", "alpha")
    elif name == "GELU":
        args, names = (approximate,), ("approximate",)
    elif name == "Softplus":
        args, names = (first, second), ("beta", "threshold")
    elif name == "Flatten":
        args, names = (first, second), ("start_dim", "end_dim")
    else:
        args, names = (), ("input",)
    ok, layer = call(f"nn.{name}", getattr(nn, name), *args, names=names)
    if name in ("LeakyReLU", "ELU", "Softplus") and not all(map(_is_real, args)) \
            or name == "GELU" and approximate not in ("none", "tanh") \
            or name == "Softplus" and args[0] == 0:
        assert not ok and isinstance(layer, (TypeError, ValueError)), layer
        return
    assert ok, layer
    if not numeric(array):
        return  # no Tensor holds it: tests/test_fuzz_ops.py checks that refusal
    x = _input(array)
    ok, out = call(f"nn.{name}.forward", layer, x, names=("input",) + names)
    kind = array.dtype.kind
    if name == "Flatten":
        valid = all(isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                    and (-max(array.ndim, 1) <= d < max(array.ndim, 1)) for d in args)
        if valid and array.ndim:
            valid = args[0] % array.ndim <= args[1] % array.ndim
        if not valid:
            assert not ok and isinstance(out, (TypeError, IndexError, RuntimeError)), out
            return
        assert ok, out
        assert out.numpy().size == array.size
        return
    if name == "ReLU" and kind == "b" or name in ("LeakyReLU", "ELU", "GELU", "Softplus") \
            and kind != "f":
        assert not ok and isinstance(out, (TypeError, RuntimeError)), out
        return
    assert ok, out
    dtype = array.dtype if kind == "f" or name in ("ReLU", "Identity") else np.float32
    z = array.astype(np.float64)
    # softplus's branch compares beta * x with the threshold in the compute dtype (float32
    # for float16, as PyTorch's opmath): a tiny product rounds to 0 there
    w = array.astype(np.float32 if array.dtype == np.float16 else array.dtype)
    with np.errstate(all="ignore"):
        expected = {
            "ReLU": lambda: np.maximum(z, 0), "Sigmoid": lambda: 1 / (1 + np.exp(-z)),
            "Tanh": lambda: np.tanh(z), "Identity": lambda: z,
            "LeakyReLU": lambda: np.where(z > 0, z, z * float(first)),
            "ELU": lambda: np.where(z > 0, z, float(first) * np.expm1(z)),
            "GELU": lambda: _gelu(z, approximate),
            "Softplus": lambda: np.where(w * first > second, z,
                                         np.logaddexp(0, w * first) / first),
        }[name]()
        expected = np.asarray(expected).astype(dtype)
    assert_matches(out, expected, dtype)
    _grads_flow(out, [x])


@fuzz(150)
@given(p=FRACTION, array=arrays(dtypes=INTS + FLOATS), training=st.booleans())
def test_dropout(p, array, training):
    ok, layer = call("nn.Dropout", nn.Dropout, p, names=("p", "probability"))
    if not _is_real(p) or not 0 <= p <= 1:
        assert not ok and isinstance(layer, (TypeError, ValueError)), layer
        return
    assert ok, layer
    layer.train(training)
    x = _input(array)
    ok, out = call("nn.Dropout.forward", layer, x)
    if array.dtype.kind != "f":
        assert not ok and isinstance(out, TypeError), out
        return
    assert ok, out
    if not training or p == 0:
        assert_matches(out, array, array.dtype)
        return
    kept = out.numpy() != 0
    scale = np.asarray(1 / (1 - p) if p < 1 else 0, array.dtype)
    with np.errstate(all="ignore"):
        expected = np.where(kept | np.isnan(out.numpy()), array * scale, 0)
    assert_matches(out, expected.astype(array.dtype), array.dtype)
    _grads_flow(out, [x])


# --------------------------------------------------------------------------------- BatchNorm
@fuzz(250)
@given(two_d=st.booleans(), num_features=SIZES, eps=FRACTION,
       momentum=st.one_of(st.none(), FRACTION), affine=st.booleans(),
       track=st.booleans(), dtype=PARAM_DTYPES, training=st.booleans(), data=st.data())
def test_batch_norm(two_d, num_features, eps, momentum, affine, track, dtype,
                    training, data):
    name = "BatchNorm2d" if two_d else "BatchNorm1d"
    ok, layer = call(f"nn.{name}", getattr(nn, name), num_features, eps, momentum, affine,
                     track, dtype, names=("num_features", "eps", "momentum", "dtype"))
    param = _param_dtype(dtype)
    if not _is_size(num_features, 1) or not _is_real(eps) or not eps >= 0 \
            or momentum is not None and (not _is_real(momentum) or not 0 <= momentum <= 1) \
            or param is None:
        assert not ok and isinstance(layer, (TypeError, ValueError)), layer
        return
    assert ok, layer
    layer.train(training)
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=5, min_side=0, max_side=3))
    if data.draw(st.booleans()) and len(shape) > 1:
        shape = shape[:1] + (int(num_features),) + shape[2:]
    array = data.draw(arrays(dtypes=[param.type] * 3 + INTS + FLOATS, shape=shape))
    x = _input(array)
    ok, out = call(f"nn.{name}.forward", layer, x,
                   names=("input", "weight", "running_mean", "batch"))
    ranks = (4,) if two_d else (2, 3)
    count = array.size // num_features
    batch_stats = training or not track
    problems = set()
    if array.dtype.kind != "f":
        problems.add(TypeError)
    if array.ndim not in ranks:
        problems.add(ValueError)
    elif array.shape[1] != num_features or array.dtype != param and (affine or track):
        problems.add(RuntimeError)  # without weight or running statistics any dtype will do
    elif batch_stats and count <= 1:
        problems.add(ValueError)
    if problems:
        assert not ok and isinstance(out, tuple(problems)), out
        return
    assert ok, out
    axes = (0,) + tuple(range(2, array.ndim))
    view = (1, num_features) + (1,) * (array.ndim - 2)
    z = array.astype(np.float64)
    with np.errstate(all="ignore"):
        if batch_stats:
            mean, var = z.mean(axis=axes), z.var(axis=axes)
        else:
            mean, var = np.zeros(num_features), np.ones(num_features)
        expected = (z - mean.reshape(view)) / np.sqrt(var.reshape(view) + eps)
    assert_matches(out, expected.astype(array.dtype), array.dtype)
    if training and track:
        m = 1.0 if momentum is None else momentum
        with np.errstate(all="ignore"):
            running_var = (1 - m) + m * var * count / (count - 1)
        assert_matches(layer.running_mean, (m * mean).astype(param), param)
        assert_matches(layer.running_var, running_var.astype(param), param)
    _grads_flow(out, [x, layer.weight, layer.bias])


# ---------------------------------------------------------------------------- recurrent
def _cell_step(kind, x, h, c, w_ih, w_hh, b, nonlinearity="tanh"):
    """One step of an RNN or LSTM cell in float64 (PyTorch's formulas, gates i, f, g, o)."""
    z = x @ w_ih.T + h @ w_hh.T + b
    if kind == "RNN":
        return (np.tanh(z) if nonlinearity == "tanh" else np.maximum(z, 0)), None
    i, f, g, o = np.split(z, 4, axis=-1)
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    c = sig(f) * c + sig(i) * np.tanh(g)
    return sig(o) * np.tanh(c), c


def _reference_rnn(kind, layer, x, h0, c0):
    """The stacked layer over a time-major (T, N, I) float64 sequence."""
    out, hs, cs = x, [], []
    for k in range(layer.num_layers):
        w_ih = getattr(layer, f"weight_ih_l{k}").numpy().astype(np.float64)
        w_hh = getattr(layer, f"weight_hh_l{k}").numpy().astype(np.float64)
        b = 0 if not layer.bias else (getattr(layer, f"bias_ih_l{k}").numpy()
                                      + getattr(layer, f"bias_hh_l{k}").numpy()
                                      ).astype(np.float64)
        h, c, steps = h0[k], None if c0 is None else c0[k], []
        for t in range(out.shape[0]):
            h, c = _cell_step(kind, out[t], h, c, w_ih, w_hh, b,
                              getattr(layer, "nonlinearity", "tanh"))
            steps.append(h)
        out = np.stack(steps)
        hs.append(h)
        cs.append(c)
    return out, np.stack(hs), None if c0 is None else np.stack(cs)


@fuzz(250)
@given(kind=st.sampled_from(["RNN", "LSTM"]), input_size=SIZES, hidden_size=SIZES,
       num_layers=mostly(st.integers(1, 2), st.one_of(st.just(0), JUNK)),
       batch_first=st.booleans(), bias=st.booleans(),
       nonlinearity=mostly(st.sampled_from(["tanh", "relu"]), st.just("sigmoid")),
       dtype=mostly(st.sampled_from([None, fg.float64]), st.just(fg.int64)), data=st.data())
def test_recurrent_layers(kind, input_size, hidden_size, num_layers, batch_first,
                          bias, nonlinearity, dtype, data):
    options = dict(num_layers=num_layers, bias=bias, batch_first=batch_first, dtype=dtype)
    if kind == "RNN":
        options["nonlinearity"] = nonlinearity
    ok, layer = call(f"nn.{kind}", getattr(nn, kind), input_size, hidden_size, **options,
                     names=("input_size", "hidden_size", "num_layers", "nonlinearity",
                            "dtype"))
    param = _param_dtype(dtype)
    if not (_is_size(input_size, 0) and _is_size(hidden_size, 1)
            and _is_size(num_layers, 1)) or param is None \
            or kind == "RNN" and nonlinearity == "sigmoid":
        assert not ok and isinstance(layer, (TypeError, ValueError)), layer
        return
    assert ok, layer
    layer.eval()
    batched = data.draw(st.booleans())
    steps, batch = data.draw(st.integers(0, 3)), data.draw(st.integers(0, 2))
    features = int(input_size) if data.draw(st.integers(0, 4)) else data.draw(st.integers(0, 3))
    shape = ((batch, steps) if batch_first else (steps, batch)) if batched else (steps,)
    shape = shape + (features,)
    if not data.draw(st.integers(0, 6)):
        shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=4, max_side=2))
    array = data.draw(arrays(dtypes=[param.type] * 4 + [np.float32, np.int64], shape=shape,
                             nice=True))
    x = _input(array)
    states = None
    layers, hidden = int(num_layers), int(hidden_size)
    if data.draw(st.booleans()):
        state_shape = (layers, batch, hidden) if batched else (layers, hidden)
        if not data.draw(st.integers(0, 5)):
            state_shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=3))
        count = 2 if kind == "LSTM" else 1
        states = tuple(_input(data.draw(arrays(dtypes=[param.type] * 4 + [np.float32],
                                               shape=state_shape, nice=True)))
                       for _ in range(count))
    hx = states if kind == "LSTM" or states is None else states[0]
    ok, out = call(f"nn.{kind}.forward", layer, x, hx,
                   names=("input", "hx", "hidden", "sequence", "dtype"))
    problems = set()
    if array.ndim not in (2, 3):
        problems.add(ValueError)
    elif array.dtype != param:
        problems.add(ValueError)
    elif array.shape[-1] != input_size or (array.shape[1] if batch_first and array.ndim == 3
                                           else array.shape[0]) == 0:
        problems.add(RuntimeError)
    if states is not None:
        expected_shape = (layers, array.shape[0 if batch_first else 1], hidden) \
            if array.ndim == 3 else (layers, hidden)
        if any(s.shape != expected_shape or s.dtype != param for s in states):
            problems.add(RuntimeError)
    if problems:
        assert not ok and isinstance(out, tuple(problems)), out
        return
    assert ok, out
    output, finals = out
    finals = finals if kind == "LSTM" else (finals,)
    z = array.astype(np.float64)
    if array.ndim == 2:
        z = z[:, None]
    elif batch_first:
        z = z.transpose(1, 0, 2)
    n = z.shape[1]
    h0 = np.zeros((layers, n, hidden)) if states is None else \
        states[0].numpy().astype(np.float64).reshape(layers, n, hidden)
    c0 = None if kind == "RNN" else np.zeros((layers, n, hidden)) if states is None else \
        states[1].numpy().astype(np.float64).reshape(layers, n, hidden)
    with np.errstate(all="ignore"):
        ref_out, ref_h, ref_c = _reference_rnn(kind, layer, z, h0, c0)
    if array.ndim == 2:
        ref_out, ref_h = ref_out[:, 0], ref_h[:, 0]
        ref_c = None if ref_c is None else ref_c[:, 0]
    elif batch_first:
        ref_out = ref_out.transpose(1, 0, 2)
    assert_matches(output, ref_out.astype(param), param)
    assert_matches(finals[0], ref_h.astype(param), param)
    if kind == "LSTM":
        assert_matches(finals[1], ref_c.astype(param), param)
    _grads_flow(output, [x] + list(layer.parameters()))


@fuzz(150)
@given(input_size=SIZES, hidden_size=SIZES, bias=st.booleans(), data=st.data())
def test_lstm_cell(input_size, hidden_size, bias, data):
    ok, cell = call("nn.LSTMCell", nn.LSTMCell, input_size, hidden_size, bias,
                    names=("input_size", "hidden_size"))
    if not (_is_size(input_size, 0) and _is_size(hidden_size, 1)):
        assert not ok and isinstance(cell, (TypeError, ValueError)), cell
        return
    assert ok, cell
    batched = data.draw(st.booleans())
    batch = data.draw(st.integers(0, 3))
    features = int(input_size) if data.draw(st.integers(0, 4)) else data.draw(st.integers(0, 3))
    shape = (batch, features) if batched else (features,)
    if not data.draw(st.integers(0, 6)):
        shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, max_side=2))
    array = data.draw(arrays(dtypes=[np.float32] * 4 + [np.float64], shape=shape, nice=True))
    x = _input(array)
    hx = None
    state_shape = shape[:-1] + (int(hidden_size),)
    if data.draw(st.booleans()):
        if not data.draw(st.integers(0, 5)):
            state_shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, max_side=3))
        hx = tuple(_input(data.draw(arrays(dtypes=[np.float32], shape=state_shape,
                                           nice=True))) for _ in range(2))
        if not data.draw(st.integers(0, 8)):
            hx = hx[:1]
    ok, out = call("nn.LSTMCell.forward", cell, x, hx, names=("input", "hx", "hidden"))
    problems = set()
    if array.ndim not in (1, 2):
        problems.add(ValueError)
    elif array.shape[-1] != input_size or array.dtype != np.float32:
        problems.add(RuntimeError)
    if hx is not None:
        if len(hx) != 2:
            problems.add(ValueError)
        elif any(h.ndim not in (1, 2) for h in hx):
            problems.add(ValueError)
        elif any(h.shape != state_shape or h.ndim != array.ndim for h in hx) \
                or state_shape != shape[:-1] + (hidden_size,):
            problems.add(RuntimeError)
    if problems:
        assert not ok and isinstance(out, tuple(problems)), out
        return
    assert ok, out
    h0 = np.zeros(state_shape) if hx is None else hx[0].numpy().astype(np.float64)
    c0 = np.zeros(state_shape) if hx is None else hx[1].numpy().astype(np.float64)
    b = 0 if not bias else (cell.bias_ih.numpy() + cell.bias_hh.numpy()).astype(np.float64)
    with np.errstate(all="ignore"):
        h, c = _cell_step("LSTM", array.astype(np.float64), h0, c0,
                          cell.weight_ih.numpy().astype(np.float64),
                          cell.weight_hh.numpy().astype(np.float64), b)
    assert_matches(out[0], h.astype(np.float32), np.float32)
    assert_matches(out[1], c.astype(np.float32), np.float32)
    _grads_flow(out[0], [x] + list(cell.parameters()))


# ------------------------------------------------------------------------------------ losses
REDUCTION = mostly(st.sampled_from(["mean", "sum", "none"]), st.sampled_from(["avg", None]))


def _reduce(loss, reduction, count=None):
    if reduction == "none":
        return loss
    with np.errstate(all="ignore"):
        total = loss.sum()
        if reduction == "sum":
            return total
        return total / (loss.size if count is None else count)


def _log_softmax(z, axis):
    if not z.size:
        return z
    with np.errstate(all="ignore"):
        shifted = z - z.max(axis=axis, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


@fuzz(200)
@given(name=st.sampled_from(["MSELoss", "L1Loss", "HuberLoss", "BCELoss",
                             "BCEWithLogitsLoss"]),
       reduction=REDUCTION, delta=mostly(st.floats(0.1, 3), REAL), data=st.data())
def test_elementwise_losses(name, reduction, delta, data):
    kwargs = {"reduction": reduction}
    if name == "HuberLoss":
        kwargs["delta"] = delta
    ok, loss_fn = call(f"nn.{name}", getattr(nn, name), **kwargs,
                       names=("reduction", "delta"))
    if reduction not in ("mean", "sum", "none") \
            or name == "HuberLoss" and not (_is_real(delta) and delta > 0):
        assert not ok and isinstance(loss_fn, (TypeError, ValueError)), loss_fn
        return
    assert ok, loss_fn
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, max_side=3))
    unit = name == "BCELoss" and data.draw(st.integers(0, 4))
    a = data.draw(arrays(dtypes=FLOATS * 3 + INTS, shape=shape, nice=unit))
    if unit and a.dtype.kind == "f":
        a = np.asarray(np.abs(a) / 6)
    same = data.draw(st.integers(0, 4))
    b = data.draw(arrays(dtypes=[a.dtype] * 3 + INTS + FLOATS,
                         shape=shape if same else None, nice=unit))
    x, y = _input(a), _input(b)
    if data.draw(st.integers(0, 15)) == 0:
        y = data.draw(JUNK)
    ok, out = call(f"nn.{name}.forward", loss_fn, x, y, names=("input", "target"))
    if not isinstance(y, fg.Tensor):
        assert not ok and isinstance(out, TypeError), out
        return
    problems = set()
    if a.dtype.kind != "f":
        problems.add(TypeError)
    if a.shape != b.shape:
        problems.add(ValueError)
    if name.startswith("BCE") and b.dtype != a.dtype:
        problems.add(RuntimeError)
    if name == "BCELoss" and a.dtype.kind == "f" and not ((a >= 0) & (a <= 1)).all():
        problems.add(RuntimeError)
    if problems:
        assert not ok and isinstance(out, tuple(problems)), out
        return
    assert ok, out
    dtype = a.dtype if b.dtype.kind != "f" else np.promote_types(a.dtype, b.dtype)
    u, v = a.astype(np.float64), b.astype(np.float64)
    with np.errstate(all="ignore"):
        if name == "MSELoss":
            per = (u - v) ** 2
        elif name == "L1Loss":
            per = np.abs(u - v)
        elif name == "HuberLoss":
            d = np.abs(u - v)
            per = np.where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta))
        elif name == "BCELoss":
            per = -(v * np.maximum(np.log(u), -100) + (1 - v) * np.maximum(np.log1p(-u), -100))
        else:
            per = np.maximum(u, 0) - u * v + np.log1p(np.exp(-np.abs(u)))
    assert_matches(out, np.asarray(_reduce(per, reduction)).astype(dtype), dtype)
    _grads_flow(out, [x])


@fuzz(200)
@given(name=st.sampled_from(["CrossEntropyLoss", "NLLLoss"]), reduction=REDUCTION,
       ignore_index=mostly(st.one_of(st.just(-100), st.integers(-2, 3)), JUNK),
       smoothing=mostly(st.one_of(st.just(0.0), st.floats(0, 1).map(_no_tiny)), REAL),
       data=st.data())
def test_class_losses(name, reduction, ignore_index, smoothing, data):
    kwargs = {"reduction": reduction, "ignore_index": ignore_index}
    if name == "CrossEntropyLoss":
        kwargs["label_smoothing"] = smoothing
    ok, loss_fn = call(f"nn.{name}", getattr(nn, name), **kwargs,
                       names=("reduction", "ignore_index", "label_smoothing"))
    if reduction not in ("mean", "sum", "none") or not _is_size(ignore_index, -10 ** 9) \
            or name == "CrossEntropyLoss" and not (_is_real(smoothing) and 0 <= smoothing <= 1):
        assert not ok and isinstance(loss_fn, (TypeError, ValueError)), loss_fn
        return
    assert ok, loss_fn
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, max_side=3))
    a = data.draw(arrays(dtypes=FLOATS * 3 + INTS, shape=shape))
    class_dim = 0 if a.ndim == 1 else 1
    classes = a.shape[class_dim] if a.ndim else 0
    target_shape = a.shape[:class_dim] + a.shape[class_dim + 1:] if a.ndim else ()
    probabilities = name == "CrossEntropyLoss" and not data.draw(st.integers(0, 3))
    if not data.draw(st.integers(0, 6)):
        target_shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=3))
    if probabilities:
        b = data.draw(arrays(dtypes=[a.dtype.type] if a.dtype.kind == "f" else FLOATS,
                             shape=a.shape if data.draw(st.integers(0, 5)) else target_shape,
                             nice=True))
    else:
        kind = data.draw(st.sampled_from([np.int64, np.int64, np.int32, np.uint8, np.bool_,
                                          np.float32]))
        low = -1 if kind in (np.int64, np.int32) and data.draw(st.integers(0, 5)) == 0 else 0
        high = max(classes, 1) if data.draw(st.integers(0, 5)) == 0 else max(classes - 1, 0)
        label = st.booleans() if kind is np.bool_ else st.integers(low, high)
        b = data.draw(hnp.arrays(kind, target_shape, elements=label)) if kind is not np.float32 \
            else data.draw(arrays(dtypes=[kind], shape=target_shape))
    x, y = _input(a), _input(b)
    ok, out = call(f"nn.{name}.forward", loss_fn, x, y,
                   names=("input", "target", "class"))
    problems = set()
    if a.dtype.kind != "f":
        problems.add(TypeError)
    if a.ndim == 0:
        problems.add(ValueError)
    if a.ndim and b.dtype.kind == "f" and name == "CrossEntropyLoss":
        if b.shape != a.shape:
            problems.add(RuntimeError)
    elif a.ndim:
        if b.dtype.kind not in "iu":
            problems.add(RuntimeError)
        elif b.shape != target_shape or b.shape != a.shape[:class_dim] + a.shape[class_dim
                                                                                  + 1:]:
            problems.add(ValueError)
        elif ((b != ignore_index) & ((b < 0) | (b >= classes))).any():
            problems.add(IndexError)
    if problems:
        assert not ok and isinstance(out, tuple(problems)), out
        return
    assert ok, out
    z = a.astype(np.float64)
    logp = _log_softmax(z, class_dim) if name == "CrossEntropyLoss" else z
    with np.errstate(all="ignore"):
        if b.dtype.kind == "f":
            t = b.astype(np.float64) * (1 - smoothing) + smoothing / classes
            per, count = -(t * logp).sum(axis=class_dim), None
        else:
            labels = b.astype(np.int64)
            kept = labels != ignore_index
            picked = np.take_along_axis(np.moveaxis(logp, class_dim, -1),
                                        np.where(kept, labels, 0)[..., None], axis=-1)[..., 0]
            per = np.where(kept, -picked, 0.0)
            if name == "CrossEntropyLoss" and smoothing:
                uniform = -np.moveaxis(logp, class_dim, -1).sum(axis=-1) * smoothing / classes
                per = per * (1 - smoothing) + np.where(kept, uniform, 0.0)
            count = int(kept.sum())
    expected = _reduce(per, reduction, count)
    assert_matches(out, np.asarray(expected).astype(a.dtype), a.dtype)
    _grads_flow(out, [x])


@fuzz(100)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=3),
       weight=arrays(dtypes=[np.float32] * 3 + [np.float64, np.int64], max_dims=2,
                     max_side=3, nice=True))
def test_bce_with_logits_pos_weight(shape, weight):
    pos_weight = _input(weight)
    ok, loss_fn = call("nn.BCEWithLogitsLoss", nn.BCEWithLogitsLoss, pos_weight=pos_weight,
                       names=("pos_weight",))
    assert ok, loss_fn
    rng = np.random.default_rng(0)
    u = rng.standard_normal(shape).astype(np.float32)
    v = rng.random(shape).astype(np.float32)
    ok, out = call("nn.BCEWithLogitsLoss.forward", loss_fn, _input(u), _input(v),
                   names=("pos_weight", "input"))
    try:
        fits = np.broadcast_shapes(weight.shape, shape) == shape
    except ValueError:
        fits = False
    if weight.dtype != np.float32 or not fits:
        assert not ok and isinstance(out, (ValueError, RuntimeError)), out
        return
    assert ok, out
    p, z = weight.astype(np.float64), u.astype(np.float64)
    softplus = lambda s: np.maximum(s, 0) + np.log1p(np.exp(-np.abs(s)))  # noqa: E731
    per = p * v * softplus(-z) + (1 - v) * softplus(z)
    assert_matches(out, np.float32(per.mean()), np.float32)


@fuzz(60)
@given(layer=st.sampled_from(["RNN", "LSTM"]), dropout=FRACTION, num_layers=st.integers(1, 2))
def test_recurrent_dropout_argument(layer, dropout, num_layers):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # dropout with one layer: PyTorch warns
        ok, out = call(f"nn.{layer}", getattr(nn, layer), 2, 3, num_layers, dropout=dropout,
                       names=("dropout",))
    if not _is_real(dropout) or not 0 <= dropout <= 1:
        assert not ok and isinstance(out, (TypeError, ValueError)), out
        return
    assert ok, out
    out.train()
    result, _ = out(fg.ones(4, 2, 2))
    assert result.shape == (4, 2, 3)
