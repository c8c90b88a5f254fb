"""Hypothesis over the optimisers (constructor arguments and one step), gradient clipping, and
the data loader: hyperparameters of every type and range, parameter lists of every shape
(zero-size included), gradients with NaN and inf, of other dtypes and layouts. Each call works
(the result is checked against a NumPy formula) or raises a clear error from fastgrad's thin
layer; see tests/_fuzz.py for the contract."""
import math

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

import fastgrad as fg
from fastgrad import data, nn, optim
from _fuzz import (DTYPES, FLOATS, INTS, JUNK, arrays, assert_matches, backend,  # noqa: F401
                   call, fuzz, mostly, numeric, report_counts, tensor_of)


def _no_tiny(value):
    """0 for a magnitude below 1e-6: a tiny hyperparameter rounds to 0 in float32 and turns
    the step into 0 * inf or 0 / 0, as in PyTorch, where the float64 reference does not."""
    return 0.0 if abs(value) < 1e-6 else value


SMALL = st.one_of(st.floats(0, 0.5).map(_no_tiny), st.sampled_from([0.0, 0.0, 0.1]))
ANY = st.one_of(SMALL, st.floats(-1, 2).map(_no_tiny), st.integers(-1, 2),
                st.sampled_from([math.nan, math.inf, -0.0]), JUNK)
EPS = st.one_of(st.sampled_from([1e-8, 1e-10]), st.floats(1e-6, 1e-2))


pytestmark = pytest.mark.usefixtures("backend")  # each test on every backend


@pytest.fixture(autouse=True, scope="module")
def _counts():
    yield
    report_counts()


def _is_real(value):
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer,
                                                              np.floating))


def _nonnegative(value):
    return _is_real(value) and value >= 0


# ------------------------------------------------------------------------------ optimisers
def _hyper(draw):
    """A hyperparameter: mostly a valid small value, sometimes anything."""
    return draw(mostly(SMALL, ANY, odds=6))


OPTIMIZERS = ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"]


def _options(name, draw):
    """Random keyword arguments for optimiser ``name`` and whether they are valid."""
    lr = draw(mostly(st.floats(0, 0.5).map(_no_tiny), ANY, odds=6))
    options, valid = {"lr": lr}, _nonnegative(lr)
    if name == "SGD":
        momentum, dampening, decay = _hyper(draw), _hyper(draw), _hyper(draw)
        nesterov = draw(st.booleans())
        options.update(momentum=momentum, dampening=dampening, weight_decay=decay,
                       nesterov=nesterov, maximize=draw(st.booleans()))
        valid = valid and _nonnegative(momentum) and _is_real(dampening) \
            and math.isfinite(dampening) and _nonnegative(decay) \
            and not (nesterov and (momentum <= 0 or dampening != 0) if
                     _is_real(momentum) and _is_real(dampening) else False)
    elif name in ("Adam", "AdamW"):
        betas = draw(mostly(st.tuples(st.floats(0, 0.999), st.floats(0, 0.999)),
                            st.one_of(st.tuples(ANY, ANY), JUNK), odds=6))
        eps, decay = draw(mostly(EPS, ANY, odds=6)), _hyper(draw)
        options.update(betas=betas, eps=eps, weight_decay=decay,
                       amsgrad=draw(st.booleans()), maximize=draw(st.booleans()))
        if name == "Adam":
            options["decoupled_weight_decay"] = draw(st.booleans())
        valid = valid and isinstance(betas, (tuple, list)) and len(betas) == 2 \
            and all(_is_real(b) and 0 <= b < 1 for b in betas) and _nonnegative(eps) \
            and _nonnegative(decay)
    elif name == "RMSprop":
        alpha = draw(mostly(st.floats(0, 0.999), ANY, odds=6))
        eps, decay, momentum = draw(mostly(EPS, ANY, odds=6)), _hyper(draw), _hyper(draw)
        options.update(alpha=alpha, eps=eps, weight_decay=decay, momentum=momentum,
                       centered=draw(st.booleans()), maximize=draw(st.booleans()))
        valid = valid and all(map(_nonnegative, (alpha, eps, decay, momentum)))
    else:
        lr_decay, decay, initial = _hyper(draw), _hyper(draw), _hyper(draw)
        eps = draw(mostly(EPS, ANY, odds=6))
        options.update(lr_decay=lr_decay, weight_decay=decay, initial_accumulator_value=initial,
                       eps=eps, maximize=draw(st.booleans()))
        valid = valid and all(map(_nonnegative, (lr_decay, decay, initial, eps)))
    return options, valid


def _reference_step(name, options, p, g):
    """One step from a fresh state, in float64 (PyTorch's update rules)."""
    o = dict(options)
    g = -g if o.get("maximize") else g
    lr, wd = o["lr"], o.get("weight_decay", 1e-2 if name == "AdamW" else 0.0)
    if name == "SGD":
        d = g + wd * p
        if o["momentum"]:
            d = d + o["momentum"] * d if o["nesterov"] else d
        return p - lr * d
    if name in ("Adam", "AdamW"):
        b1, b2 = o["betas"]
        if name == "AdamW" or o.get("decoupled_weight_decay"):
            p = p * (1 - lr * wd)
        else:
            g = g + wd * p
        m, v = (1 - b1) * g, (1 - b2) * g * g
        return p - lr / (1 - b1) * (m / (np.sqrt(v) / math.sqrt(1 - b2) + o["eps"]))
    if name == "RMSprop":
        g = g + wd * p
        a = o["alpha"]
        square = (1 - a) * g * g
        avg = np.sqrt(np.maximum(square - ((1 - a) * g) ** 2, 0)) if o["centered"] \
            else np.sqrt(square)
        return p - lr * (g / (avg + o["eps"]))
    g = g + wd * p
    total = o["initial_accumulator_value"] + g * g
    return p - lr * (g / (np.sqrt(total) + o["eps"]))


@fuzz(250)
@given(name=st.sampled_from(OPTIMIZERS), data=st.data())
def test_optimizer_construction_and_step(name, data):
    options, valid = _options(name, data.draw)
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    shapes = data.draw(st.lists(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0,
                                                 max_side=3), min_size=1, max_size=3))
    params = [fg.Tensor(data.draw(arrays(dtypes=[dtype], shape=s, nice=True)).copy(),
                        requires_grad=True) for s in shapes]
    ok, opt = call(f"optim.{name}", getattr(optim, name), params, **options,
                   names=tuple(options) + ("learning rate", "beta", "epsilon", "Nesterov"))
    if not valid:
        assert not ok and isinstance(opt, (TypeError, ValueError)), opt
        return
    assert ok, opt
    before = [p.numpy().astype(np.float64) for p in params]
    grads = []
    for p in params:
        if data.draw(st.integers(0, 4)):
            g = data.draw(arrays(dtypes=[np.float32, np.float64, np.int64], shape=p.shape))
            p.grad = fg.Tensor(g)
            grads.append(g.astype(p.dtype).astype(np.float64))
        else:
            grads.append(None)
    ok, out = call(f"optim.{name}.step", opt.step)
    assert ok, out
    numbers_ = [v for v in options.values() if _is_real(v)] + list(options.get("betas", ()))
    # inf * 0 makes the first step NaN; an eps of 0 (or one that rounds to 0 in the
    # parameters' dtype) divides by a zero the float64 reference may not see (as in PyTorch)
    eps = options.get("eps", 1.0)
    finite = all(math.isfinite(v) for v in numbers_) and np.asarray(eps).astype(dtype) != 0
    for p, start, g in zip(params, before, grads):
        assert p.shape == start.shape and p.dtype == dtype
        if not finite:
            continue
        if g is None:
            if name != "Adagrad":  # Adagrad's step counts every parameter, as PyTorch's
                assert_matches(p, start.astype(dtype), dtype)
            continue
        with np.errstate(all="ignore"):
            expected = _reference_step(name, options, start, g)
        rtol = 1e-4 if dtype == np.float32 else 1e-9
        np.testing.assert_allclose(p.numpy().astype(np.float64), expected, rtol=rtol,
                                   atol=rtol, equal_nan=True)


@fuzz(150)
@given(kind=st.sampled_from(["empty", "junk", "int", "nonleaf", "duplicate", "tensor",
                             "groups", "bad-group", "unknown-key", "generator"]),
       name=st.sampled_from(OPTIMIZERS), junk=JUNK)
def test_optimizer_params_argument(kind, name, junk):
    w = fg.Tensor(np.ones((2, 2), np.float32), requires_grad=True)
    b = fg.Tensor(np.zeros(2, np.float32), requires_grad=True)
    params = {"empty": [], "junk": [w, junk], "int": [fg.Tensor(np.ones(2, np.int64))],
              "nonleaf": [w * 2], "duplicate": [w, b, w], "tensor": w,
              "groups": [{"params": [w]}, {"params": [b], "lr": 0.5}],
              "bad-group": [{"params": [w]}, junk],
              "unknown-key": [{"params": [w], "nope": 1}],
              "generator": (p for p in [w, b])}[kind]
    ok, opt = call(f"optim.{name}", getattr(optim, name), params, lr=0.1,
                   names=("params", "parameter", "optimize", "group", "hyperparameter"))
    if kind in ("groups", "generator"):
        assert ok, opt
        assert [len(g["params"]) for g in opt.param_groups] == ([1, 1] if kind == "groups"
                                                                else [2])
        return
    assert not ok and isinstance(opt, (TypeError, ValueError)), opt


# -------------------------------------------------------------------------------- clipping
def _grads(data, covered):
    """Parameters with random gradients (some None), optionally packed by an optimiser (the
    fused arena path) and with gradients of other dtypes and layouts (the loose path)."""
    shapes = data.draw(st.lists(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0,
                                                 max_side=4), min_size=0, max_size=3))
    dtype = data.draw(st.sampled_from(FLOATS))
    params = [fg.Tensor(np.zeros(s, dtype), requires_grad=True) for s in shapes]
    if covered and params:
        optim.SGD(params, lr=0.1)
    grads = []
    for p in params:
        if data.draw(st.integers(0, 4)):
            g = data.draw(arrays(dtypes=[dtype] * 3 + FLOATS, shape=p.shape))
            p.grad = fg.Tensor(g)
            grads.append(p.grad.numpy().copy())
        else:
            grads.append(None)
    return params, grads


@fuzz(150)
@given(data=st.data(), covered=st.booleans(),
       max_norm=st.one_of(st.floats(0, 5), st.integers(0, 3), ANY),
       norm_type=st.one_of(st.sampled_from([2.0, 1.0, math.inf, 3]), st.floats(0.5, 4), ANY),
       error=st.booleans())
def test_clip_grad_norm(data, covered, max_norm, norm_type, error):
    params, grads = _grads(data, covered)
    argument = params[0] if len(params) == 1 and data.draw(st.booleans()) else params
    junk = data.draw(st.integers(0, 12)) == 0
    if junk:
        argument = data.draw(JUNK)
    ok, total = call("nn.utils.clip_grad_norm_", nn.utils.clip_grad_norm_, argument, max_norm,
                     norm_type, error, names=("parameters", "max_norm", "norm_type"))
    if junk:  # neither a Tensor nor an iterable of Tensors
        assert not ok and isinstance(total, TypeError), total
        return
    problems = set()
    for name, value, valid in (("max_norm", max_norm, lambda v: v >= 0),
                               ("norm_type", norm_type, lambda v: v > 0)):
        if isinstance(value, str) and name == "norm_type":
            problems.add(ValueError)  # norm_type takes numbers and strings such as "inf"
        elif not _is_real(value):
            problems.add(TypeError)
        elif not valid(value):
            problems.add(ValueError)
    if problems:
        assert not ok and isinstance(total, tuple(problems)), total
        return
    present = [g.astype(np.float64).ravel() for g in grads if g is not None]
    flat = np.concatenate(present) if present else np.zeros(0)
    with np.errstate(all="ignore"):
        norm = np.max(np.abs(flat), initial=0.0) if norm_type == math.inf else \
            np.sum(np.abs(flat) ** norm_type) ** (1 / norm_type)
    if error and not np.isfinite(norm):
        assert not ok and isinstance(total, RuntimeError), total
        for p, g in zip(params, grads):  # nothing was modified
            assert g is None or np.array_equal(p.grad.numpy(), g, equal_nan=True)
        return
    assert ok, total
    assert total.shape == ()
    dtype = np.result_type(*[g.dtype for g in grads if g is not None]) if present \
        else np.dtype(np.float32)
    rtol = {np.dtype(np.float16): 2e-2, np.dtype(np.float32): 1e-5}.get(dtype, 1e-9)
    with np.errstate(over="ignore"):  # the norm in the gradients' dtype may overflow to inf
        rounded = float(np.asarray(norm).astype(dtype))
    np.testing.assert_allclose(float(total.item()), rounded, rtol=rtol, equal_nan=True)
    with np.errstate(all="ignore"):
        coef = max_norm / (norm + 1e-6)
    for p, g in zip(params, grads):
        if g is None:
            assert p.grad is None
            continue
        with np.errstate(all="ignore"):
            expected = g.astype(np.float64) * coef if not coef >= 1 else g.astype(np.float64)
        assert_matches(p.grad, expected.astype(g.dtype), g.dtype)


@fuzz(200)
@given(data=st.data(), covered=st.booleans(),
       clip_value=st.one_of(st.floats(0, 3), st.integers(0, 3), ANY))
def test_clip_grad_value(data, covered, clip_value):
    params, grads = _grads(data, covered)
    ok, out = call("nn.utils.clip_grad_value_", nn.utils.clip_grad_value_, params, clip_value,
                   names=("clip_value",))
    if not _is_real(clip_value):
        assert not ok and isinstance(out, TypeError), out
        return
    if not clip_value >= 0:
        assert not ok and isinstance(out, ValueError), out
        return
    assert ok, out
    for p, g in zip(params, grads):
        if g is None:
            assert p.grad is None
            continue
        with np.errstate(all="ignore"):
            expected = np.clip(g.astype(np.float64), -clip_value, clip_value)
        assert_matches(p.grad, expected.astype(g.dtype), g.dtype)


# -------------------------------------------------------------------------------- the data
@fuzz(150)
@given(data=st.data(), batch_size=st.one_of(st.integers(-1, 5), JUNK),
       shuffle=st.one_of(st.booleans(), JUNK), drop_last=st.one_of(st.booleans(), JUNK),
       seeded=st.booleans())
def test_tensor_dataset_and_loader(data, batch_size, shuffle, drop_last, seeded):
    length = data.draw(st.integers(0, 7))
    count = data.draw(st.integers(0, 3))
    columns = []
    for _ in range(count):
        size = length if data.draw(st.integers(0, 6)) else data.draw(st.integers(0, 7))
        tail = data.draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=3))
        if data.draw(st.integers(0, 8)) == 0:
            columns.append(data.draw(JUNK))
        else:
            columns.append(data.draw(arrays(dtypes=DTYPES, shape=(size,) + tail)))
    ok, dataset = call("data.TensorDataset", data_module.TensorDataset, *columns,
                       names=("tensors", "TensorDataset"))
    problems = set()
    if not columns:
        problems.add(ValueError)
    for c in columns:
        if not hasattr(c, "__array__") or not numeric(np.asarray(c)):
            problems.add(TypeError)
        elif np.ndim(c) == 0:
            problems.add(ValueError)  # a NumPy scalar: no rows
    if not problems and len({len(c) for c in columns}) > 1:
        problems.add(ValueError)
    if problems:
        assert not ok and isinstance(dataset, tuple(problems)), dataset
        return
    assert ok, dataset
    generator = fg.Generator(data.draw(st.integers(0, 5))) if seeded else None
    ok, loader = call("data.DataLoader", data_module.DataLoader, dataset, batch_size=batch_size,
                      shuffle=shuffle, drop_last=drop_last, generator=generator,
                      names=("batch_size", "shuffle", "drop_last", "generator"))
    problems = set()
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size <= 0:
        problems.add(ValueError)  # PyTorch's type for a bad batch_size or drop_last
    if not isinstance(drop_last, bool):
        problems.add(ValueError)
    if shuffle is not None and not isinstance(shuffle, bool):
        problems.add(TypeError)
    if problems:
        assert not ok and isinstance(loader, tuple(problems)), loader
        return
    assert ok, loader
    ok, batches = call("data.DataLoader.__iter__", lambda: list(loader))
    assert ok, batches
    length = len(columns[0])
    full, rest = divmod(length, batch_size)
    assert len(batches) == len(loader) == full + (1 if rest and not drop_last else 0)
    seen = []
    for batch in batches:
        assert isinstance(batch, list) and len(batch) == len(columns)  # lists, as PyTorch
        for part, column in zip(batch, columns):
            assert isinstance(part, fg.Tensor) and part.dtype == column.dtype
            assert part.shape[1:] == column.shape[1:] and part.shape[0] <= batch_size
            assert part.numpy().flags.c_contiguous
        seen.append(batch[0].numpy())
    if not batches:
        return
    taken = np.concatenate(seen)
    rows = columns[0] if not drop_last else None
    if rows is not None:
        if shuffle:  # a permutation of the rows: compare as sorted byte strings
            key = lambda a: sorted(r.tobytes() for r in np.ascontiguousarray(a))  # noqa: E731
            assert key(taken) == key(columns[0])
        else:
            assert np.array_equal(taken, columns[0], equal_nan=columns[0].dtype.kind == "f")


data_module = data


@fuzz(100)
@given(items=st.lists(st.one_of(
    st.tuples(arrays(dtypes=[np.float32], max_dims=2, max_side=2), st.integers(0, 3)),
    st.tuples(st.floats(-1, 1)), arrays(dtypes=[np.float32, np.int64], max_dims=1,
                                         max_side=2)), min_size=0, max_size=4),
       batch_size=st.integers(1, 3))
def test_loader_over_a_map_style_dataset(items, batch_size):
    loader = data.DataLoader(items, batch_size=batch_size)
    ok, batches = call("data.DataLoader.__iter__", lambda: list(loader),
                       names=("batch", "shape"))
    if not ok:
        assert isinstance(batches, (RuntimeError, TypeError))  # PyTorch's types
        return
    assert len(batches) == len(loader)
    for batch in batches:
        parts = batch if isinstance(batch, list) else (batch,)
        assert all(isinstance(t, fg.Tensor) for t in parts)
