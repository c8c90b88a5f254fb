"""What the hypothesis suites (tests/test_fuzz_*.py) share: the contract every public call is
held to, array strategies over every dtype and layout, and the per-function example counter.

The contract: a call either works (each test then checks the result against NumPy or a shape
rule) or raises ValueError, TypeError, RuntimeError or IndexError, raised by fastgrad itself
(not from inside NumPy, Numba or a kernel) with a message that names the offending argument.
Anything else (another exception type, a Numba error, a RuntimeWarning from NumPy) fails the
test.

Environment knobs, for longer hunts than the suite's defaults:
``FASTGRAD_FUZZ_SCALE`` multiplies every test's example count (default 1);
``FASTGRAD_FUZZ_RANDOM=1`` draws fresh examples instead of the fixed, derandomised ones CI
runs; ``FASTGRAD_FUZZ_COUNTS=path.json`` accumulates the number of examples run per public
function into that file.
"""
import collections
import json
import math
import os
import traceback

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import fastgrad as fg

PACKAGE = os.path.dirname(os.path.abspath(fg.__file__))
KERNELS = os.path.join(PACKAGE, "backends")
ALLOWED = (ValueError, TypeError, RuntimeError, IndexError)
BACKENDS = ["numpy"] + (["default"] if len(fg.backends.available()) > 1 else [])

SCALE = float(os.environ.get("FASTGRAD_FUZZ_SCALE", "1"))
RANDOM = os.environ.get("FASTGRAD_FUZZ_RANDOM") == "1"
COUNTS = collections.Counter()

FLOATS = [np.float16, np.float32, np.float64]
INTS = [np.bool_, np.int8, np.uint8, np.int32, np.int64]
ODD = [np.complex64, np.complex128, object]
DTYPES = INTS + FLOATS + ODD
LAYOUTS = ["C", "F", "strided", "reversed"]

#: Things that are not Tensors, for "wrong argument type" draws.
JUNK = st.sampled_from([None, "abc", b"x", [1, 2], (3,), {"a": 1}, 1.5, 2, True, 1j,
                        object(), np.float64(0.5), np.int64(3), float("nan"), float("inf")])


def mostly(valid, other, odds=4):
    """``valid`` ``odds`` times out of ``odds + 1``, else ``other``: arguments that are mostly
    valid, so that a call with several of them gets past the checks often enough (one_of
    would pick each branch about as often)."""
    return st.integers(0, odds).flatmap(lambda pick: valid if pick else other)


def fuzz(examples):
    """hypothesis settings for a test of ``examples`` examples (scaled by the environment)."""
    return settings(max_examples=max(1, int(examples * SCALE)), deadline=None,
                    derandomize=not RANDOM, database=None, print_blob=True,
                    suppress_health_check=list(HealthCheck))


@pytest.fixture(params=BACKENDS)
def backend(request):
    """The reference kernels, and the default order (the fastest backend implementing each
    kernel) when a faster backend is installed."""
    with fg.backends.use(None if request.param == "default" else request.param):
        yield request.param


def report_counts():
    """Add :data:`COUNTS` to the JSON file named by ``FASTGRAD_FUZZ_COUNTS``, then clear it."""
    path = os.environ.get("FASTGRAD_FUZZ_COUNTS")
    if path and COUNTS:
        total = collections.Counter()
        if os.path.exists(path):
            with open(path) as handle:
                total.update(json.load(handle))
        total.update(COUNTS)
        with open(path, "w") as handle:
            json.dump(dict(sorted(total.items())), handle, indent=1)
    COUNTS.clear()


# ------------------------------------------------------------------------------- contract
def _raiser(error):
    """The file of the innermost Python frame that raised ``error``."""
    frames = traceback.extract_tb(error.__traceback__)
    return os.path.abspath(frames[-1].filename) if frames else ""


def check_error(error, names):
    """Fail unless ``error`` is an allowed type raised by fastgrad's thin layer, naming one
    of ``names``."""
    kind = type(error)
    assert kind.__module__.split(".")[0] not in ("numba", "llvmlite"), \
        f"an error from inside Numba: {kind.__module__}.{kind.__name__}: {error}"
    where = _raiser(error)
    assert where.startswith(PACKAGE) and not where.startswith(KERNELS), \
        f"{kind.__name__} raised in {where}, not by fastgrad's checks: {error}"
    message = str(error)
    assert any(name in message for name in names), \
        f"{kind.__name__} message names none of {names}: {message!r}"


def call(name, fn, *args, names=("input",), also=(), **kwargs):
    """Run ``fn(*args, **kwargs)``, counted as an example of ``name``.

    Args:
        names: the argument names one of which an error message must contain.
        also: further exception types allowed, where PyTorch raises them too (``int()`` of
            an infinite tensor is Python's OverflowError in both).

    Returns:
        ``(True, result)``, or ``(False, error)`` for an error that meets the contract.
    """
    COUNTS[name] += 1
    try:
        return True, fn(*args, **kwargs)
    except ALLOWED + tuple(also) as error:
        check_error(error, names)
        return False, error


# ------------------------------------------------------------------------------- strategies
def elements(dtype, nice=False):
    """Values of ``dtype``: small ones, and for floats also 0, -0, NaN and ±inf (unless
    ``nice``)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return st.booleans()
    if dtype.kind in "iu":
        low = 0 if dtype.kind == "u" else -8
        return st.integers(low, 8)
    if dtype.kind == "f":
        small = st.floats(-6, 6, width=8 * dtype.itemsize)
        if nice:
            return small
        return st.one_of(small, st.sampled_from([0.0, -0.0, math.nan, math.inf, -math.inf]))
    if dtype.kind == "c":
        return st.complex_numbers(max_magnitude=4, allow_nan=False, allow_infinity=False,
                                  width=8 * dtype.itemsize)
    return st.one_of(st.integers(-3, 3), st.floats(-3, 3), st.none(), st.text(max_size=2))


@st.composite
def arrays(draw, dtypes=DTYPES, shape=None, min_dims=0, max_dims=4, min_side=0, max_side=4,
           nice=False, layouts=LAYOUTS):
    """An array of any dtype of ``dtypes`` and any shape, C-ordered, Fortran-ordered,
    strided (every other element of a larger array) or reversed (negative strides)."""
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    if shape is None:
        shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                                      max_side=max_side))
    layout = draw(st.sampled_from(layouts))
    base = shape[:-1] + (2 * shape[-1],) if layout == "strided" and shape else shape
    if dtype.kind == "O":
        values = draw(st.lists(elements(dtype), min_size=math.prod(base),
                               max_size=math.prod(base)))
        array = np.empty(base, object)
        array.reshape(-1)[:] = values
    else:
        array = draw(hnp.arrays(dtype, base, elements=elements(dtype, nice)))
    if layout == "strided" and shape:
        array = array[..., ::2]
    elif layout == "F" and shape:
        array = np.asfortranarray(array)
    elif layout == "reversed" and shape:
        array = array[::-1]
    assert array.shape == tuple(shape)
    return array


def tensor_of(array, requires_grad=False):
    """``array`` wrapped as is (no copy, its dtype and strides kept)."""
    return fg.Tensor(array, requires_grad=requires_grad)


def numeric(array):
    """Whether fastgrad can hold ``array``'s dtype (bool, integers, floats)."""
    return array.dtype.kind in "biuf"


def tolerance(dtype):
    """``(rtol, atol)`` for comparing a result of ``dtype`` with a float64 reference."""
    return {np.dtype(np.float16): (1e-2, 1e-2), np.dtype(np.float32): (2e-5, 1e-5)}.get(
        np.dtype(dtype), (1e-10, 1e-12))


def assert_matches(actual, expected, dtype=None):
    """``actual`` (a Tensor) equals ``expected`` (a NumPy array) in shape and, within the
    tolerance of its dtype, in value: NaN where NaN, inf where inf, of the same sign."""
    actual = actual.numpy() if isinstance(actual, fg.Tensor) else np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"shape {actual.shape}, expected {expected.shape}"
    if dtype is not None:
        assert actual.dtype == np.dtype(dtype), f"dtype {actual.dtype}, expected {dtype}"
    if actual.dtype.kind in "biu" and expected.dtype.kind in "biu":
        np.testing.assert_array_equal(actual, expected)
        return
    rtol, atol = tolerance(actual.dtype)
    np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64),
                               rtol=rtol, atol=atol, equal_nan=True)
