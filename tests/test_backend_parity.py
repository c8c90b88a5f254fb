"""Kernel parity, generated from the registry: every variant of every kernel on every fast
backend against the NumPy reference, each run by the backend's own code (no fallback to the
reference); and the reference itself against independent float64 formulas.

Adding a kernel, or a variant of one (an activation code, a norm type, a flag), to
:data:`fastgrad.backends.KERNELS` adds its cases here with no edit.
"""
import copy
import importlib
import inspect
import itertools

import numpy as np
import pytest

from fastgrad import backends
from fastgrad.backends import ACTIVATIONS, KERNELS, blas, numpy_ref
from fastgrad.backends.numpy_ref import ACTIVATION_FORMULAS

DTYPES = (np.float32, np.float64)
FAST_BACKENDS = [name for name in backends.available() if name != "numpy"]
assert KERNELS, "no kernel declared: the reference backend did not load"


def _seed(*parts):
    """A stable seed per case (``hash`` of a str changes between runs)."""
    return sum((i + 1) * ord(c) for i, c in enumerate("-".join(map(str, parts))))


def _cases(values):
    cases = [pytest.param(name, variant, backend, size, dtype, kind,
                          id=f"{name}-{variant}-{backend}-{size}-{np.dtype(dtype).name}-{kind}")
             for name, spec in KERNELS.items() for variant in spec.variants
             for backend in FAST_BACKENDS for size in spec.sizes for dtype in DTYPES
             for kind in values]
    if cases:
        return cases
    reason = (f"no kernel backend other than the numpy reference is available "
              f"({backends.describe()}): nothing to compare against the reference")
    return [pytest.param(None, None, None, None, None, None, id="no-fast-backend",
                         marks=pytest.mark.skip(reason=reason))]


def _with_non_finite(args, writes):
    """``args`` with NaN and inf placed in the first floating input the kernel only reads, or
    else in the first one it updates in place (gradients to clip, values to scale); None when
    it has no floating array at all."""
    floating = [key for key, value in args.items()
                if isinstance(value, np.ndarray) and value.dtype.kind == "f"]
    for key in sorted(floating, key=lambda k: k in writes):
        flat = args[key].reshape(-1)
        flat[0] = np.nan
        if flat.size > 1:
            flat[-1] = np.inf
        return args
    return None


def _module(backend):
    return importlib.import_module(backends.BACKEND_MODULES[backend])


def _implementation(backend, name):
    if not hasattr(_module(backend), name):
        pytest.skip(f"backend {backend!r} does not implement kernel {name!r} (the default "
                    f"order takes it from another backend)")
    with backends.use(backend):
        return getattr(backends.K, name)


def _refusing_reference(patch):
    """Replace every reference kernel of :mod:`~fastgrad.backends.numpy_ref` (which the
    backends call when they fall back) by one that fails the test when called."""
    def refuse(name):
        def call(*args, **kwargs):
            raise AssertionError(f"the backend called the reference kernel {name!r} instead of "
                                 f"its own code")
        return call
    for name in KERNELS:
        patch.setattr(numpy_ref, name, refuse(name))


def _run_own_code(backend, name, implementation, args):
    """Call the backend's kernel; assert it ran its own code: no call of a reference kernel
    and no fallback counted in the backend's ``FALLBACKS``. A product without a usable BLAS
    is NumPy's by design (the backends' documented fallback)."""
    fallbacks = getattr(_module(backend), "FALLBACKS", None)
    assert fallbacks is not None, f"backend {backend!r} has no FALLBACKS counter"
    if name == "gemm" and not blas.AVAILABLE:
        return implementation(**args)
    before = dict(fallbacks)
    with pytest.MonkeyPatch.context() as patch:
        _refusing_reference(patch)
        result = implementation(**args)
    assert dict(fallbacks) == before, (
        f"kernel {name!r} on backend {backend!r} fell back to the reference: "
        f"{ {k: v - before.get(k, 0) for k, v in fallbacks.items() if v != before.get(k)} }")
    return result


@pytest.mark.parametrize("name, variant, backend, size, dtype, values",
                         _cases(("finite", "nonfinite")))
def test_kernel_matches_reference(name, variant, backend, size, dtype, values):
    """Every variant on every backend: the same outputs as the reference, run by the
    backend's own code."""
    spec = KERNELS[name]
    implementation = _implementation(backend, name)
    args = spec.arguments(np.random.default_rng(_seed(name, size, dtype)), dtype, size, variant)
    if values == "nonfinite" and _with_non_finite(args, spec.writes) is None:
        pytest.skip(f"kernel {name!r} has no floating array to make non-finite")
    expected_args, actual_args = copy.deepcopy(args), copy.deepcopy(args)
    with np.errstate(all="ignore"):
        expected = spec.reference(**expected_args)
        actual = _run_own_code(backend, name, implementation, actual_args)
    rtol, atol = spec.tolerances[np.dtype(dtype)]
    where = f"kernel {name!r} ({variant}) on backend {backend!r} (size {size}, " \
            f"{np.dtype(dtype).name}, {values})"
    for key in spec.writes:
        if expected_args[key] is None:
            assert actual_args[key] is None, f"{where}: wrote {key!r}, which was None"
            continue
        np.testing.assert_allclose(actual_args[key], expected_args[key], rtol=rtol, atol=atol,
                                   err_msg=f"{where}: argument {key!r}")
    for key, value in args.items():
        if key not in spec.writes and isinstance(value, np.ndarray):
            np.testing.assert_array_equal(actual_args[key], value,
                                          err_msg=f"{where}: overwrote input {key!r}")
    if expected is None:
        assert actual is None, f"{where}: returned {actual!r}, the reference returns None"
    else:
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol,
                                   err_msg=f"{where}: return value")


_ACTIVATION_KERNELS = [name for name, spec in KERNELS.items()
                       if "activation" in inspect.signature(spec.reference).parameters]


@pytest.mark.parametrize("backend", FAST_BACKENDS or [
    pytest.param(None, marks=pytest.mark.skip(reason="no fast backend is available"))])
@pytest.mark.parametrize("name", _ACTIVATION_KERNELS)
def test_unknown_activation_code_is_rejected(name, backend):
    """A code a compiled backend does not implement is a ValueError before any output is
    written, never an identity or an unwritten output (a code declared in ACTIVATIONS but
    missing from a backend fails that backend's parity cases the same way)."""
    spec = KERNELS[name]
    implementation = _implementation(backend, name)
    code = max(ACTIVATIONS.values()) + 1
    args = spec.arguments(np.random.default_rng(0), np.float32, 3)
    args["activation"] = code
    written = {key: args[key].copy() for key in spec.writes if args[key] is not None}
    with pytest.raises(ValueError, match=rf"activation code {code} .*{backend}"):
        implementation(**args)
    for key, before in written.items():
        np.testing.assert_array_equal(args[key], before, err_msg=f"{name} wrote {key!r}")


# --------------------------------------------------------------- the reference, by itself
def _all_cases():
    return [pytest.param(name, size, dtype, id=f"{name}-{size}-{np.dtype(dtype).name}")
            for name, spec in KERNELS.items() for size in spec.sizes for dtype in DTYPES]


@pytest.mark.parametrize("name, size, dtype", _all_cases())
def test_reference_example_writes_finite_values(name, size, dtype):
    """The example runs on the reference and the kernel writes every ``writes`` array.

    Run twice: once as given and once with every ``writes`` array poisoned with NaN. An array
    the kernel only writes (an output) must come out identical both times, so every element was
    written; one it reads and updates (a parameter) must have changed from its initial values.
    """
    spec = KERNELS[name]
    args = spec.example(np.random.default_rng(_seed(name, size, dtype)), dtype, size)
    written = [k for k in spec.writes if args[k] is not None]
    assert written, f"the example of {name!r} passes None for every written argument"
    initial = {k: args[k].copy() for k in written}
    plain, poisoned = copy.deepcopy(args), copy.deepcopy(args)
    for key in written:  # NaN, or for an integer output (max pooling's indices) its minimum
        poisoned[key][...] = np.nan if poisoned[key].dtype.kind == "f" else \
            np.iinfo(poisoned[key].dtype).min
    with np.errstate(invalid="ignore"):
        spec.reference(**plain)
        spec.reference(**poisoned)
    for key in written:
        assert np.isfinite(plain[key]).all(), f"{name}: {key!r} holds non-finite values"
        if np.array_equal(poisoned[key], plain[key]):
            continue  # an output: every element written, whatever it held before
        assert not np.array_equal(plain[key], initial[key]), \
            f"{name}: {key!r} reads its initial values but the kernel did not change it"


def _tolerance(dtype):
    return dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-13)


def _sizes(name):
    """(size, dtype) cases for kernel ``name``; none (a visible skip) if it is not declared."""
    if name not in KERNELS:
        return [pytest.param(None, None, id="undeclared",
                             marks=pytest.mark.skip(reason=f"kernel {name!r} is not declared"))]
    return [pytest.param(size, dtype, id=f"{size}-{np.dtype(dtype).name}")
            for size in KERNELS[name].sizes for dtype in DTYPES]


def _activation64(z, name):
    return ACTIVATION_FORMULAS[name][0](z)


def _derivative64(z, name):
    return ACTIVATION_FORMULAS[name][1](z)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("size, dtype", _sizes("activation_fwd"))
def test_reference_activation_fwd_and_bwd(activation, size, dtype):
    rng = np.random.default_rng(size + 2)
    x = (3 * rng.standard_normal((size, size + 3))).astype(dtype)
    x[0, 0] = -60 if dtype == np.float32 else -800  # exp(-x) would overflow: must stay finite
    out = np.full_like(x, np.nan)
    with np.errstate(over="ignore"):
        expected = _activation64(x.astype(np.float64), activation)
    KERNELS["activation_fwd"].reference(x, ACTIVATIONS[activation], out)
    np.testing.assert_allclose(out, expected, **_tolerance(dtype))
    grad_out = rng.standard_normal(x.shape).astype(dtype)
    grad_in = np.full_like(x, np.nan)
    KERNELS["activation_bwd"].reference(grad_out, out, ACTIVATIONS[activation], grad_in)
    with np.errstate(over="ignore"):
        derivative = _derivative64(x.astype(np.float64), activation)
    np.testing.assert_allclose(grad_in, grad_out * derivative, **_tolerance(dtype))


def _linear_inputs(rng, size, dtype):
    n, i, o = size, size + 2, size + 1
    return (rng.standard_normal((n, i)).astype(dtype), rng.standard_normal((o, i)).astype(dtype),
            rng.standard_normal(o).astype(dtype))


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("size, dtype", _sizes("linear_fwd"))
def test_reference_linear_fwd(activation, bias, size, dtype):
    x, w, b = _linear_inputs(np.random.default_rng(size), size, dtype)
    out = np.full((x.shape[0], w.shape[0]), np.nan, dtype)
    KERNELS["linear_fwd"].reference(x, w, b if bias else None, ACTIVATIONS[activation], out)
    z = x.astype(np.float64) @ w.astype(np.float64).T + (b.astype(np.float64) if bias else 0)
    np.testing.assert_allclose(out, _activation64(z, activation), **_tolerance(dtype))


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("size, dtype", _sizes("linear_bwd"))
def test_reference_linear_bwd(activation, size, dtype):
    rng = np.random.default_rng(size + 1)
    x, w, b = _linear_inputs(rng, size, dtype)
    out = np.empty((x.shape[0], w.shape[0]), dtype)
    KERNELS["linear_fwd"].reference(x, w, b, ACTIVATIONS[activation], out)
    grad_out = rng.standard_normal(out.shape).astype(dtype)
    grads = [np.full(a.shape, np.nan, dtype) for a in (x, w, b)]
    KERNELS["linear_bwd"].reference(grad_out, x, w, out, ACTIVATIONS[activation], *grads)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    z = x64 @ w64.T + b.astype(np.float64)
    g = grad_out.astype(np.float64) * _derivative64(z, activation)
    for got, expected, what in zip(grads, (g @ w64, g.T @ x64, g.sum(0)), ("x", "w", "b")):
        np.testing.assert_allclose(got, expected, err_msg=f"grad_{what}", **_tolerance(dtype))
    # each gradient may be skipped with None
    only_bias = np.full(b.shape, np.nan, dtype)
    KERNELS["linear_bwd"].reference(grad_out, x, w, out, ACTIVATIONS[activation], None, None,
                                    only_bias)
    np.testing.assert_allclose(only_bias, g.sum(0), **_tolerance(dtype))


def _logsumexp64(logits):
    z = logits.astype(np.float64)
    top = z.max(1)
    return top + np.log(np.exp(z - top[:, None]).sum(1))


@pytest.mark.parametrize("size, dtype", _sizes("cross_entropy_fwd"))
def test_reference_cross_entropy_fwd(size, dtype):
    spec = KERNELS["cross_entropy_fwd"]
    args = spec.example(np.random.default_rng(size), dtype, size)
    logits, target, ignore = args["logits"], args["target"], args["ignore_index"]
    assert (target == ignore).any() and target.dtype == np.int64
    spec.reference(**args)
    lse = _logsumexp64(logits)
    kept = target != ignore
    picked = logits.astype(np.float64)[np.arange(len(target)), np.where(kept, target, 0)]
    np.testing.assert_allclose(args["lse"], lse, **_tolerance(dtype))
    np.testing.assert_allclose(args["loss"], np.where(kept, lse - picked, 0), **_tolerance(dtype))
    np.testing.assert_array_equal(args["loss"][~kept], 0)


@pytest.mark.parametrize("size, dtype", _sizes("cross_entropy_bwd"))
def test_reference_cross_entropy_bwd(size, dtype):
    spec = KERNELS["cross_entropy_bwd"]
    args = spec.example(np.random.default_rng(size), dtype, size)
    logits, target, ignore = args["logits"], args["target"], args["ignore_index"]
    assert (target == ignore).any()
    spec.reference(**args)
    z = logits.astype(np.float64)
    softmax = np.exp(z - _logsumexp64(logits)[:, None])
    kept = target != ignore
    onehot = np.zeros_like(z)
    onehot[np.flatnonzero(kept), target[kept]] = 1
    expected = args["grad_loss"].astype(np.float64)[:, None] * (softmax - onehot) * kept[:, None]
    np.testing.assert_allclose(args["grad_logits"], expected, **_tolerance(dtype))
    np.testing.assert_array_equal(args["grad_logits"][~kept], 0)


@pytest.mark.parametrize("variant", KERNELS["segment_norms"].variants)
@pytest.mark.parametrize("size, dtype", _sizes("segment_norms"))
def test_reference_segment_norms(variant, size, dtype):
    spec = KERNELS["segment_norms"]
    args = spec.arguments(np.random.default_rng(size), dtype, size, variant)
    norm_type = args["norm_type"]
    total = spec.reference(**args)
    values, offsets = args["values"].astype(np.float64), args["offsets"]
    per = np.array([np.linalg.norm(values[a:b], ord=norm_type)
                    for a, b in zip(offsets[:-1], offsets[1:])])
    np.testing.assert_allclose(args["out"], per, rtol=1e-12)
    assert isinstance(total, float)
    np.testing.assert_allclose(total, np.linalg.norm(values, ord=norm_type), rtol=1e-12)


@pytest.mark.parametrize("have_prev", [True, False])
@pytest.mark.parametrize("with_grads", [True, False])
@pytest.mark.parametrize("size, dtype", _sizes("monitor_norms"))
def test_reference_monitor_norms(with_grads, have_prev, size, dtype):
    spec = KERNELS["monitor_norms"]
    args = spec.example(np.random.default_rng(size), dtype, size)
    grads, values, prev = args["grads"], args["values"].copy(), args["prev"].copy()
    args.update(have_prev=have_prev, grads=grads if with_grads else None)
    args["out"][0] = -1.0
    spec.reference(**args)
    segments = list(zip(args["offsets"][:-1], args["offsets"][1:]))
    v64, p64 = values.astype(np.float64), prev.astype(np.float64)
    norms = [[np.linalg.norm(a[lo:hi]) for lo, hi in segments]
             for a in (grads.astype(np.float64), v64, v64 - p64)]
    if with_grads:
        np.testing.assert_allclose(args["out"][0], norms[0], rtol=1e-12)
    else:
        np.testing.assert_array_equal(args["out"][0], -1.0)  # left as it was
    layers = spec.example(np.random.default_rng(size), dtype, size)["layer_sq"]
    for p, layer in enumerate(args["layer_of"]):
        if layer >= 0:
            layers[layer] += args["out"][0, p] ** 2
    np.testing.assert_allclose(args["layer_sq"], layers, rtol=1e-12)
    np.testing.assert_allclose(args["out"][1], norms[1], rtol=1e-12)
    if have_prev:
        np.testing.assert_allclose(args["out"][2], norms[2], rtol=1e-12)
    else:
        assert np.isnan(args["out"][2]).all()
    np.testing.assert_array_equal(args["prev"], values)


def _sgd_flags():
    for momentum, dampening, weight_decay, nesterov, maximize, first_step in itertools.product(
            (0.0, 0.9), (0.0, 0.1), (0.0, 0.01), (False, True), (False, True), (False, True)):
        if nesterov and (momentum == 0 or dampening != 0):
            continue
        if momentum == 0 and (dampening != 0 or first_step):
            continue
        yield pytest.param(dict(momentum=momentum, dampening=dampening,
                                weight_decay=weight_decay, nesterov=nesterov,
                                maximize=maximize, first_step=first_step),
                           id=f"m{momentum}-d{dampening}-wd{weight_decay}-n{nesterov:d}-"
                              f"max{maximize:d}-first{first_step:d}")


@pytest.mark.parametrize("flags", list(_sgd_flags()))
@pytest.mark.parametrize("size, dtype", _sizes("sgd_step"))
def test_reference_sgd_step(flags, size, dtype):
    spec = KERNELS["sgd_step"]
    args = spec.example(np.random.default_rng(size), dtype, size)
    args.update(flags, lr=0.1)
    if flags["momentum"] == 0:
        args["momentum_buffer"] = None
    p, g = args["param"].astype(np.float64), args["grad"].astype(np.float64)
    d = (-g if flags["maximize"] else g) + flags["weight_decay"] * p
    if flags["momentum"]:
        old = args["momentum_buffer"].astype(np.float64)
        buf = d if flags["first_step"] else \
            flags["momentum"] * old + (1 - flags["dampening"]) * d
        d = d + flags["momentum"] * buf if flags["nesterov"] else buf
        expected_buffer = buf
    expected = p - 0.1 * d
    spec.reference(**args)
    np.testing.assert_allclose(args["param"], expected, **_tolerance(dtype))
    if flags["momentum"]:
        np.testing.assert_allclose(args["momentum_buffer"], expected_buffer, **_tolerance(dtype))


@pytest.mark.parametrize("value", [0.0, 2.5, -1.0])
@pytest.mark.parametrize("size, dtype", _sizes("fill"))
def test_reference_fill(value, size, dtype):
    spec = KERNELS["fill"]
    args = spec.example(np.random.default_rng(size), dtype, size)
    args["value"] = value
    spec.reference(**args)
    assert args["buffer"].dtype == dtype
    np.testing.assert_array_equal(args["buffer"], np.full(args["buffer"].shape, value, dtype))
