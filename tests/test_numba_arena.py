"""The Numba arena kernels (fastgrad/backends/numba_cpu/_arena.py): determinism across thread
counts, runs and the serial/parallel paths; the parallel path and several fused optimiser steps
with every flag against the reference; norms and clipping on non-finite, empty and float16
inputs; ``clip_grad_norm_`` on the numba backend against the numpy one; and the jitted bodies
run as plain Python (``NUMBA_DISABLE_JIT=1``).

The generated parity tests (tests/test_backend_parity.py) cover the kernels' serial path on
the registry's examples; these cover what they cannot.
"""
import copy
import itertools
import math

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from fastgrad import backends, nn, optim  # noqa: E402
from fastgrad.arena import arena_of  # noqa: E402
from fastgrad.backends import KERNELS  # noqa: E402
from fastgrad.backends.numba_cpu import _arena  # noqa: E402
from fastgrad.tensor import Tensor  # noqa: E402

DTYPES = (np.float32, np.float64)
NORM_TYPES = (2.0, 1.0, math.inf, 3.0, 0.5)
ARENA_KERNELS = list(_arena.__all__)
TWO_THREADS = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2,
                                 reason="Numba's thread pool has fewer than 2 threads")


@pytest.fixture
def parallel(monkeypatch):
    """Every arena kernel takes its parallel path, whatever the size."""
    monkeypatch.setattr(_arena, "PARALLEL_MIN", dict.fromkeys(_arena.PARALLEL_MIN, 0))


@pytest.fixture
def serial(monkeypatch):
    """Every arena kernel takes its serial path, whatever the size."""
    monkeypatch.setattr(_arena, "PARALLEL_MIN", dict.fromkeys(_arena.PARALLEL_MIN, 1 << 62))


@pytest.fixture
def threads(monkeypatch):
    """``threads(n)`` sets Numba's thread count; the count is restored afterwards. The
    parallel thresholds are capped at 2**17 (without a usable BLAS the library's sit at
    2**24-2**27 elements), so that sizes above them stay small here."""
    monkeypatch.setattr(_arena, "PARALLEL_MIN",
                        {name: min(value, 1 << 17) for name, value in _arena.PARALLEL_MIN.items()})
    before = numba.get_num_threads()
    yield numba.set_num_threads
    numba.set_num_threads(before)


def _above_threshold():
    """A size (elements) above every arena kernel's parallel threshold, not a multiple of the
    chunk size."""
    return 2 * max(_arena.PARALLEL_MIN.values()) + 3 * _arena.CHUNK // 2 + 7


def _arena_values(rng, n, dtype, segments=37):
    """``n`` values in ``segments`` segments of random lengths, two of them empty."""
    cuts = np.sort(rng.integers(0, n, segments - 1))
    cuts[3] = cuts[4]  # an empty segment inside
    offsets = np.concatenate([[0], cuts, [n]]).astype(np.int64)
    offsets[-2] = n  # an empty last segment
    return rng.standard_normal(n).astype(dtype), offsets


def _five_segments(rng, dtype):
    """Values over several chunks in five segments of unequal lengths."""
    n = 2 * _arena.CHUNK + 5
    offsets = np.array([0, 3000, n // 2, n // 2 + 1, n - 17, n], np.int64)
    return rng.standard_normal(n).astype(dtype), offsets


def _close(actual, expected, dtype, err_msg=""):
    tol = dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(actual, expected, err_msg=err_msg, **tol)


# ----------------------------------------------------------------------------- determinism
@TWO_THREADS
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm_type", NORM_TYPES)
def test_norms_are_bit_identical_for_1_and_2_threads_runs_and_paths(threads, monkeypatch,
                                                                     norm_type, dtype):
    values, offsets = _arena_values(np.random.default_rng(1), _above_threshold(), dtype)
    results = []
    for count in (1, 2, 2, 1):
        threads(count)
        out = np.full(len(offsets) - 1, np.nan)
        results.append((_arena.segment_norms(values, offsets, norm_type, out), out))
    monkeypatch.setitem(_arena.PARALLEL_MIN, "segment_norms", 1 << 62)
    out = np.full(len(offsets) - 1, np.nan)
    results.append((_arena.segment_norms(values, offsets, norm_type, out), out))
    total, per_param = results[0]
    assert np.isfinite(per_param).all() and total > 0
    for other_total, other in results[1:]:
        assert other_total == total
        np.testing.assert_array_equal(other, per_param)


@TWO_THREADS
@pytest.mark.parametrize("dtype", DTYPES)
def test_monitor_norms_are_bit_identical_for_1_and_2_threads_and_paths(threads, monkeypatch,
                                                                       dtype):
    rng = np.random.default_rng(4)
    values, offsets = _arena_values(rng, _above_threshold(), dtype)
    grads = rng.standard_normal(values.size).astype(dtype)
    start = (values + rng.standard_normal(values.size)).astype(dtype)
    results = []
    for count in (1, 2, 2, 1, None):
        if count is None:  # the serial path
            monkeypatch.setitem(_arena.PARALLEL_MIN, "segment_norms", 1 << 62)
        else:
            threads(count)
        prev, out = start.copy(), np.full((3, len(offsets) - 1), np.nan)
        layer_sq = np.zeros(2)
        layer_of = np.arange(len(offsets) - 1) % 2
        _arena.monitor_norms(grads, values, prev, offsets, True, out, layer_of, layer_sq)
        np.testing.assert_array_equal(prev, values)
        results.append((out, layer_sq))
    assert np.isfinite(results[0][0]).all()
    for other in results[1:]:
        np.testing.assert_array_equal(other[0], results[0][0])
        np.testing.assert_array_equal(other[1], results[0][1])


@TWO_THREADS
@pytest.mark.parametrize("dtype", DTYPES)
def test_clip_grad_norm_is_bit_identical_for_1_and_2_threads(threads, dtype):
    grads, offsets = _arena_values(np.random.default_rng(2), _above_threshold(), dtype)
    results = []
    for count in (1, 2, 2):
        threads(count)
        clipped, per_param = grads.copy(), np.empty(len(offsets) - 1)
        total = _arena.clip_grad_norm(clipped, offsets, 1.0, 2.0, False, per_param)
        results.append((total, clipped, per_param))
    assert not np.array_equal(results[0][1], grads), "the example must clip"
    for total, clipped, per_param in results[1:]:
        assert total == results[0][0]
        np.testing.assert_array_equal(clipped, results[0][1])
        np.testing.assert_array_equal(per_param, results[0][2])


def _step_args(name, rng, n, dtype):
    args = KERNELS[name].example(rng, dtype, 1)
    size = args["param"].size
    for key, value in args.items():
        if isinstance(value, np.ndarray):
            args[key] = np.resize(value, n) if value.size == size else value
    return args


def _run_steps(name, args, steps):
    """``steps`` steps of kernel ``name`` (``step`` counting up where it has one)."""
    kernel = getattr(_arena, name)
    args = copy.deepcopy(args)
    for t in range(steps):
        if "step" in args:
            args["step"] = t + 1
        if "first_step" in args:
            args["first_step"] = t == 0
        args["grad"] = args["grad"] * np.asarray(0.9, args["grad"].dtype)
        kernel(**args)
    return args


@TWO_THREADS
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sgd_step", "adam_step", "rmsprop_step", "adagrad_step",
                                  "adadelta_step", "adamax_step", "nadam_step"])
def test_optimiser_steps_are_bit_identical_for_1_and_2_threads(threads, name, dtype):
    args = _step_args(name, np.random.default_rng(3), _above_threshold(), dtype)
    results = []
    for count in (1, 2, 2):
        threads(count)
        results.append(_run_steps(name, args, 3))
    for other in results[1:]:
        for key in KERNELS[name].writes:
            if args[key] is not None:
                np.testing.assert_array_equal(other[key], results[0][key], err_msg=key)


# ------------------------------------------------------- fused steps against the reference
def _flags(**choices):
    names = list(choices)
    return [dict(zip(names, values)) for values in itertools.product(*choices.values())]


def _sgd_cases():
    return [f for f in _flags(momentum=[0.0, 0.9], dampening=[0.0, 0.1],
                              weight_decay=[0.0, 0.01], nesterov=[False, True],
                              maximize=[False, True])
            if not (f["nesterov"] and (f["momentum"] == 0 or f["dampening"] != 0))]


STEP_CASES = (
    [("sgd_step", f) for f in _sgd_cases()]
    + [("adam_step", f) for f in _flags(amsgrad=[False, True], weight_decay=[0.0, 0.05],
                                        decoupled_weight_decay=[False, True],
                                        maximize=[False, True])]
    + [("rmsprop_step", f) for f in _flags(centered=[False, True], momentum=[0.0, 0.9],
                                           weight_decay=[0.0, 0.01], maximize=[False, True])]
    + [("adagrad_step", f) for f in _flags(lr_decay=[0.0, 0.1], weight_decay=[0.0, 0.01],
                                           maximize=[False, True])]
    + [("adadelta_step", f) for f in _flags(weight_decay=[0.0, 0.01], maximize=[False, True])]
    + [("adamax_step", f) for f in _flags(weight_decay=[0.0, 0.01], maximize=[False, True])]
    + [("nadam_step", f) for f in _flags(weight_decay=[0.0, 0.01],
                                         decoupled_weight_decay=[False, True],
                                         maximize=[False, True])])


def _apply_flags(name, args, flags):
    flags = dict(flags)
    if name == "sgd_step" and flags["momentum"] == 0:
        args["momentum_buffer"] = None
    if name == "adam_step" and not flags.pop("amsgrad"):
        args["max_exp_avg_sq"] = None
    if name == "rmsprop_step":
        if not flags.pop("centered"):
            args["grad_avg"] = None
        if flags["momentum"] == 0:
            args["momentum_buffer"] = None
    args.update(flags)
    return args


def _step_cases():
    """Every flag combination on the serial path; on the parallel path (the same loop body
    over chunks) each kernel with no flag and with every flag set."""
    ends = {}
    for name, flags in STEP_CASES:
        ends.setdefault(name, []).append(flags)
    cases = [("serial", name, flags) for name, flags in STEP_CASES]
    cases += [("parallel", name, flags) for name, every in ends.items()
              for flags in (every[0], every[-1])]
    return [pytest.param(path, name, flags, id=f"{path}-{name}-" + "-".join(
        f"{k}={v}" for k, v in flags.items())) for path, name, flags in cases]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("path, name, flags", _step_cases())
def test_fused_steps_match_the_reference(request, path, name, flags, dtype):
    request.getfixturevalue(path)
    n = 3 * _arena.CHUNK + 11  # several chunks and a ragged end on the parallel path
    args = _apply_flags(name, _step_args(name, np.random.default_rng(4), n, dtype), flags)
    expected = copy.deepcopy(args)
    actual = copy.deepcopy(args)
    reference = KERNELS[name].reference
    for t in range(4):
        for state in (expected, actual):
            if "step" in state:
                state["step"] = t + 1
            if "first_step" in state:
                state["first_step"] = t == 0
            state["grad"] = np.roll(args["grad"], t)
        reference(**expected)
        getattr(_arena, name)(**actual)
    for key in KERNELS[name].writes:
        if args[key] is None:
            assert actual[key] is None
            continue
        assert np.isfinite(expected[key]).all()
        _close(actual[key], expected[key], dtype, err_msg=f"{name} {key}")


# -------------------------------------------------------- every kernel on the parallel path
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, variant", [(name, variant) for name in ARENA_KERNELS
                                           for variant in KERNELS[name].variants])
def test_parallel_path_matches_the_reference(parallel, name, variant, dtype):
    """Every variant the registry declares (the generated parity runs them on the serial
    path) on the parallel path, over several chunks."""
    spec = KERNELS[name]
    args = spec.arguments(np.random.default_rng(5), dtype, 40, variant)  # ~40,000 elements
    expected, actual = copy.deepcopy(args), copy.deepcopy(args)
    result = getattr(_arena, name)(**actual)
    reference = spec.reference(**expected)
    rtol, atol = spec.tolerances[np.dtype(dtype)]
    for key in spec.writes:
        if expected[key] is not None:
            np.testing.assert_allclose(actual[key], expected[key], rtol=rtol, atol=atol,
                                       err_msg=key)
    if reference is None:
        assert result is None
    else:
        assert isinstance(result, float)
        np.testing.assert_allclose(result, reference, rtol=rtol, atol=atol)


# -------------------------------------------------------------------- norms and clipping
NONFINITE = {"nan": [(5, np.nan)], "inf": [(5, np.inf)], "-inf": [(7, -np.inf)],
             "nan-and-inf": [(5, np.inf), (9, np.nan)]}


@pytest.mark.parametrize("path", ["serial", "parallel"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm_type", NORM_TYPES)
@pytest.mark.parametrize("case", list(NONFINITE))
def test_norms_of_nonfinite_values_match_the_reference(request, case, norm_type, dtype, path):
    request.getfixturevalue(path)
    values, offsets = _five_segments(np.random.default_rng(6), dtype)
    for shift, value in NONFINITE[case]:
        values[offsets[1] + shift] = value  # both in segment 1
    expected, actual = np.empty(5), np.empty(5)
    with np.errstate(all="ignore"):
        total = KERNELS["segment_norms"].reference(values, offsets, norm_type, expected)
    assert _arena.segment_norms(values, offsets, norm_type, actual) == pytest.approx(
        total, nan_ok=True)
    finite = np.isfinite(expected)
    assert list(finite) == [True, False, True, True, True]
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_array_equal(actual[~finite], expected[~finite])
    _close(actual[finite], expected[finite], dtype)


@pytest.mark.parametrize("path", ["serial", "parallel"])
@pytest.mark.parametrize("norm_type", NORM_TYPES)
def test_norms_of_empty_and_extreme_arenas(request, norm_type, path):
    request.getfixturevalue(path)
    empty = np.empty(0)
    assert _arena.segment_norms(np.empty(0, np.float32), np.zeros(1, np.int64), norm_type,
                                empty) == 0.0
    out = np.full(3, np.nan)
    assert _arena.segment_norms(np.empty(0), np.zeros(4, np.int64), norm_type, out) == 0.0
    np.testing.assert_array_equal(out, 0.0)
    # float64 values whose power sums overflow, and subnormals: as the reference
    values = np.array([1e300, -3e-320, 5e-324, 0.0, -1e-310])
    offsets = np.array([0, 1, 3, 5], np.int64)
    expected, actual = np.empty(3), np.empty(3)
    with np.errstate(all="ignore"):
        total = KERNELS["segment_norms"].reference(values, offsets, norm_type, expected)
    assert _arena.segment_norms(values, offsets, norm_type, actual) == pytest.approx(
        total, rel=1e-12)
    np.testing.assert_allclose(actual, expected, rtol=1e-12)


@pytest.mark.parametrize("path", ["serial", "parallel"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("error_if_nonfinite", [False, True])
@pytest.mark.parametrize("case", ["nan", "inf", "nan-and-inf"])
def test_clip_grad_norm_of_nonfinite_gradients_matches_the_reference(
        request, case, error_if_nonfinite, dtype, path):
    request.getfixturevalue(path)
    grads, offsets = _five_segments(np.random.default_rng(7), dtype)
    for shift, value in NONFINITE[case]:
        grads[offsets[1] + shift] = value
    expected, actual = grads.copy(), grads.copy()
    expected_norms, actual_norms = np.empty(5), np.empty(5)
    with np.errstate(all="ignore"):
        total = KERNELS["clip_grad_norm"].reference(expected, offsets, 1.0, 2.0,
                                                    error_if_nonfinite, expected_norms)
    result = _arena.clip_grad_norm(actual, offsets, 1.0, 2.0, error_if_nonfinite,
                                   actual_norms)
    assert result == total or (math.isnan(result) and math.isnan(total))
    np.testing.assert_array_equal(actual, expected)  # kept, zeroed or NaN: exactly
    if error_if_nonfinite:
        np.testing.assert_array_equal(actual, grads)
    np.testing.assert_array_equal(np.isfinite(actual_norms), np.isfinite(expected_norms))


@pytest.mark.parametrize("path", ["serial", "parallel"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_clip_grad_norm_writes_nothing_when_no_clip_is_needed(request, dtype, path):
    request.getfixturevalue(path)
    grads, offsets = _arena_values(np.random.default_rng(8), 2 * _arena.CHUNK + 5, dtype)
    before = grads.copy()
    per_param = np.empty(len(offsets) - 1)
    total = _arena.clip_grad_norm(grads, offsets, 1e6, 2.0, False, per_param)
    np.testing.assert_array_equal(grads, before)
    _close(total, np.linalg.norm(before.astype(np.float64)), np.float64)
    # clipped to max_norm exactly as the reference's coefficient says, rounded to the dtype
    clipped = before.copy()
    total = _arena.clip_grad_norm(clipped, offsets, 2.0, 2.0, False, per_param)
    np.testing.assert_array_equal(clipped, before * dtype(2.0 / (total + 1e-6)))


@pytest.mark.parametrize("path", ["serial", "parallel"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_elementwise_kernels_keep_nan_and_infinite_bounds_as_the_reference(request, dtype,
                                                                           path):
    request.getfixturevalue(path)
    n = 2 * _arena.CHUNK + 5
    values = np.random.default_rng(9).standard_normal(n).astype(dtype)
    values[[3, n - 2]] = [np.nan, np.inf]
    cases = [("clip_grad_range", dict(grads=values, min_value=-np.inf, max_value=0.5)),
             ("clip_grad_range", dict(grads=values, min_value=-0.1, max_value=np.inf)),
             ("clip_grad_range", dict(grads=values, min_value=0.1, max_value=0.1)),
             ("scale", dict(values=values, factor=np.nan)),
             ("scale", dict(values=values, factor=0.0)),
             ("axpy", dict(y=values[::-1].copy(), x=values, alpha=0.0)),
             ("grad_window_mean", dict(total=values[::-1].copy(), grad=values, weight=0.0,
                                       factor=0.5)),
             ("fill", dict(buffer=values, value=np.inf))]
    for name, args in cases:
        expected, actual = copy.deepcopy(args), copy.deepcopy(args)
        with np.errstate(all="ignore"):
            KERNELS[name].reference(**expected)
        getattr(_arena, name)(**actual)
        for key in KERNELS[name].writes:
            np.testing.assert_array_equal(actual[key], expected[key], err_msg=f"{name} {args}")


@pytest.mark.parametrize("name", ARENA_KERNELS)
def test_float16_arenas_go_to_the_reference(name):
    spec = KERNELS[name]
    args = spec.example(np.random.default_rng(10), np.float16, 1)
    expected, actual = copy.deepcopy(args), copy.deepcopy(args)
    with np.errstate(all="ignore"):
        reference = spec.reference(**expected)
        result = getattr(_arena, name)(**actual)
    assert result == reference
    for key in spec.writes:
        if expected[key] is not None:
            assert actual[key].dtype == expected[key].dtype
            np.testing.assert_array_equal(actual[key], expected[key])


# ------------------------------------------------------------- through fastgrad.nn.utils
def _model_grads(dtype, scale):
    """A packed model (an optimiser's arena) with seeded gradients of about ``scale``."""
    fastgrad_model = nn.Sequential(nn.Linear(300, 200), nn.ReLU(), nn.Linear(200, 10))
    fastgrad_model.to(dtype)
    optim.SGD(fastgrad_model.parameters(), lr=0.1)
    rng = np.random.default_rng(11)
    grads = [(scale * rng.standard_normal(p.shape)).astype(dtype)
             for p in fastgrad_model.parameters()]
    return fastgrad_model, grads


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0])
@pytest.mark.parametrize("max_norm", [1.0, 1e9])
def test_clip_grad_norm_on_numba_equals_numpy(max_norm, norm_type, dtype):
    model, grads = _model_grads(dtype, 0.5)
    results = {}
    for backend in ("numpy", "numba"):
        params = list(model.parameters())
        for p, g in zip(params, grads):
            p.grad = Tensor(g.copy())
        with backends.use(backend):
            total = nn.utils.clip_grad_norm_(params, max_norm, norm_type)
        norms = arena_of(params[0]).clip_norms(norm_type)
        assert norms is not None
        results[backend] = (total.item(), [p.grad.numpy().copy() for p in params], norms.copy())
    (total, clipped, norms), (numba_total, numba_clipped, numba_norms) = results.values()
    tol = dict(rtol=1e-6) if dtype == np.float32 else dict(rtol=1e-12)
    np.testing.assert_allclose(numba_total, total, **tol)
    np.testing.assert_allclose(numba_norms, norms, **tol)
    for got, expected in zip(numba_clipped, clipped):
        np.testing.assert_allclose(got, expected, **tol)
    if max_norm == 1e9:
        for got, g in zip(numba_clipped, grads):
            np.testing.assert_array_equal(got, g)


def test_clip_grad_norm_on_numba_raises_on_nonfinite_and_keeps_gradients():
    model, grads = _model_grads(np.float32, 1.0)
    grads[2][1, 4] = np.nan
    params = list(model.parameters())
    for p, g in zip(params, grads):
        p.grad = Tensor(g.copy())
    with backends.use("numba"):
        with pytest.raises(RuntimeError, match=r"parameters\[2\] of shape \(10, 200\)"):
            nn.utils.clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    for p, g in zip(params, grads):
        np.testing.assert_array_equal(p.grad.numpy(), g)


# ------------------------------------------------------------------ the bodies as Python
_PLAIN_PYTHON = """
import copy, numpy as np
from fastgrad.backends import KERNELS
from fastgrad.backends.numba_cpu import _arena
assert not hasattr(_arena._norms, "signatures"), "the JIT is not disabled"
_arena.CHUNK = 64  # several pieces and chunks on tiny inputs
cases = [("segment_norms", dict(norm_type=p)) for p in (2.0, 1.0, np.inf, 3.0)]
cases += [("clip_grad_norm", dict(norm_type=p)) for p in (2.0, np.inf)]
cases += [("sgd_step", dict(nesterov=True, dampening=0.0)), ("adam_step", {}),
          ("adam_step", dict(max_exp_avg_sq=None, decoupled_weight_decay=True, maximize=True)),
          ("rmsprop_step", {}), ("rmsprop_step", dict(grad_avg=None, momentum_buffer=None)),
          ("adagrad_step", {}), ("adadelta_step", dict(maximize=True)), ("adamax_step", {}),
          ("nadam_step", dict(decoupled_weight_decay=True)), ("clip_grad_range", {}),
          ("axpy", {}), ("grad_window_mean", {}), ("scale", {}), ("fill", {})]
for minimum in (0, 1 << 62):
    _arena.PARALLEL_MIN = dict.fromkeys(_arena.PARALLEL_MIN, minimum)
    for dtype in (np.float32, np.float64):
        for name, change in cases:
            spec = KERNELS[name]
            args = spec.example(np.random.default_rng(0), dtype, 1)
            args = {k: v[:300] if k != "offsets" and isinstance(v, np.ndarray)
                    and v.size > 300 else v for k, v in args.items()}
            if "offsets" in args:
                args["offsets"] = np.array([0, 0, 100, 250, 300], np.int64)
                args[spec.writes[-1]] = np.empty(4)
            args.update(change)
            expected, actual = copy.deepcopy(args), copy.deepcopy(args)
            result = getattr(_arena, name)(**actual)
            reference = spec.reference(**expected)
            rtol = 1e-5 if dtype == np.float32 else 1e-12
            if reference is not None:
                np.testing.assert_allclose(result, reference, rtol=rtol)
            for key in spec.writes:
                if expected[key] is not None:
                    np.testing.assert_allclose(actual[key], expected[key], rtol=rtol,
                                               atol=rtol / 10, err_msg=name)
print("plain python ok")
"""


def test_kernels_run_as_plain_python_with_the_jit_disabled(run_without_jit):
    assert "plain python ok" in run_without_jit(_PLAIN_PYTHON)
