"""Tensor factories and random sampling, with PyTorch's names, signatures and dtypes.

Factories (``zeros``, ``full``, ``arange``, ``linspace``, ``eye``, the ``*_like`` forms...)
take ``dtype=``, ``device=`` and ``requires_grad=`` as PyTorch's do; ``device`` goes through
:func:`fastgrad.device.resolve`, which refuses devices this build cannot hold tensors on. Random
functions (``rand``, ``randint``, ``randperm``, ``normal``, ``multinomial``, ``bernoulli`` and
the in-place fills ``uniform_``, ``normal_``, ``bernoulli_``) draw from a
:class:`~fastgrad.Generator`, the default one unless ``generator=``, so ``fastgrad.manual_seed``
makes them repeatable. The streams are NumPy's, so the numbers differ from PyTorch's for the
same seed; the distributions do not.

``TENSOR_METHODS`` lists the Tensor methods defined here (``new_zeros``, ``multinomial``,
``uniform_``...); :mod:`fastgrad.tensor` binds them.
"""
import math
import numbers

import numpy as np

from . import dtypes
from . import random as _random
from ._checks import check_broadcast, check_dtype, check_tensor, integer, shape_argument
from .device import CPU
from .device import resolve as _resolve_device
from .device import to_device as _to_device
from .device import to_device_of as _to_device_of
from .device import to_host as _to_host
from .tensor import Tensor, tensor

__all__ = ["arange", "as_tensor", "bernoulli", "empty", "empty_like", "eye", "full",
           "full_like", "linspace", "logspace", "multinomial", "normal", "ones", "ones_like",
           "rand", "rand_like", "randint", "randint_like", "randn", "randn_like", "randperm",
           "zeros", "zeros_like"]


# ------------------------------------------------------------------------------------ helpers
def _make(array, requires_grad, where=CPU):
    """A tensor of the NumPy ``array``'s values on the device ``where`` (resolved): the values
    are made on the host, then copied there."""
    if where.type != "cpu":
        array = _to_device(array, where)
    return Tensor(array, requires_grad=requires_grad)


def _size(size):
    """``size`` (ints, or one tuple or list of them) as a shape; PyTorch's RuntimeError for a
    negative size."""
    shape = shape_argument(size, "size")
    if any(s < 0 for s in shape):
        raise RuntimeError(f"size must not be negative, got {list(shape)}")
    return shape


def _size_tuple(size, name):
    """``size`` given as one sequence (``new_full((2, 3), ...)``, ``randint(10, (3,))``): a
    bare int is a TypeError, as in PyTorch."""
    if not isinstance(size, (tuple, list)):
        raise TypeError(f"{name}(): size must be a tuple of ints, got {type(size).__name__} "
                        f"{size!r}")
    return _size((size,))


def _number(value, name):
    """``value`` (a real number or a one-element Tensor) as a Python number."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise RuntimeError(f"{name} must be a number or a one-element tensor, got a tensor "
                               f"of shape {value.shape}")
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    return value


def _generator(generator):
    return _random.numpy_generator(generator)


# ---------------------------------------------------------------------------------- factories
def zeros(*size, dtype=None, device=None, requires_grad=False):
    """A tensor of zeros of shape ``size`` (float32 unless ``dtype``)."""
    where = _resolve_device(device)
    return _make(np.zeros(_size(size), check_dtype(dtype)), requires_grad, where)


def ones(*size, dtype=None, device=None, requires_grad=False):
    """A tensor of ones of shape ``size`` (float32 unless ``dtype``)."""
    where = _resolve_device(device)
    return _make(np.ones(_size(size), check_dtype(dtype)), requires_grad, where)


def empty(*size, dtype=None, device=None, requires_grad=False):
    """A tensor of shape ``size`` whose values are whatever the memory held (fill it before
    reading, as with PyTorch's)."""
    where = _resolve_device(device)
    return _make(np.empty(_size(size), check_dtype(dtype)), requires_grad, where)


def full(size, fill_value, *, dtype=None, device=None, requires_grad=False):
    """A tensor of shape ``size`` filled with ``fill_value`` (its dtype follows the value, as
    in PyTorch: bool, int64 or float32, unless ``dtype``)."""
    where = _resolve_device(device)
    if not isinstance(fill_value, (numbers.Real, np.bool_)):
        raise TypeError(f"fill_value must be a number, got {type(fill_value).__name__} "
                        f"{fill_value!r}")
    if dtype is None:
        dtype = dtypes.bool_ if isinstance(fill_value, (bool, np.bool_)) else \
            dtypes.int64 if isinstance(fill_value, numbers.Integral) else dtypes.default_float
    dtype = check_dtype(dtype)
    shape = _size((size,))
    if dtype.kind in "iu" and not isinstance(fill_value, (bool, np.bool_)):
        info = np.iinfo(dtype)
        if not (math.isfinite(fill_value) and info.min <= fill_value <= info.max):
            raise RuntimeError(f"fill_value {fill_value!r} cannot be converted to dtype {dtype} "
                               "without overflow")
    with np.errstate(over="ignore"):  # beyond a float dtype's range: inf, as in PyTorch
        values = np.full(shape, np.asarray(fill_value).astype(dtype), dtype)
    return _make(values, requires_grad, where)


def eye(n, m=None, *, dtype=None, device=None, requires_grad=False):
    """The ``n`` x ``m`` identity (``m`` defaults to ``n``): ones on the diagonal."""
    where = _resolve_device(device)
    n = integer(n, "n")
    m = n if m is None else integer(m, "m")
    for name, value in (("n", n), ("m", m)):
        if value < 0:
            raise RuntimeError(f"{name} must be greater or equal to 0, got {value}")
    return _make(np.eye(n, m, dtype=check_dtype(dtype)), requires_grad, where)


def zeros_like(input, *, dtype=None, device=None, requires_grad=False):
    """Zeros of ``input``'s shape, and dtype unless ``dtype``."""
    input = check_tensor(input, "input")
    where = input.device if device is None else _resolve_device(device)
    return _make(np.zeros(input.shape, check_dtype(dtype, input.dtype)), requires_grad, where)


def ones_like(input, *, dtype=None, device=None, requires_grad=False):
    """Ones of ``input``'s shape, and dtype unless ``dtype``."""
    input = check_tensor(input, "input")
    where = input.device if device is None else _resolve_device(device)
    return _make(np.ones(input.shape, check_dtype(dtype, input.dtype)), requires_grad, where)


def empty_like(input, *, dtype=None, device=None, requires_grad=False):
    """An uninitialised tensor of ``input``'s shape, and dtype unless ``dtype``."""
    input = check_tensor(input, "input")
    where = input.device if device is None else _resolve_device(device)
    return _make(np.empty(input.shape, check_dtype(dtype, input.dtype)), requires_grad, where)


def full_like(input, fill_value, *, dtype=None, device=None, requires_grad=False):
    """``input``'s shape filled with ``fill_value``, in ``input``'s dtype unless ``dtype``
    (2.5 into an integer tensor is 2, as in PyTorch)."""
    input = check_tensor(input, "input")
    return full(input.shape, fill_value, dtype=input.dtype if dtype is None else dtype,
                device=input.device if device is None else device,
                requires_grad=requires_grad)


def as_tensor(data, *, dtype=None, device=None):
    """``data`` as a tensor, sharing memory where it can, as ``torch.as_tensor``: a Tensor of
    the right dtype is returned as is (a cast otherwise), a NumPy array of the right dtype is
    wrapped without a copy; anything else is copied as :func:`fastgrad.tensor` does."""
    where = None if device is None else _resolve_device(device)
    if isinstance(data, Tensor):
        result = data if dtype is None else data.to(dtype)
    elif isinstance(data, np.ndarray) and data.dtype.kind in "biuf" and (
            dtype is None or dtypes.resolve(dtype) == data.dtype):
        result = Tensor(data)
    else:
        result = tensor(data, dtype=dtype)
    return result if where is None else result.to(where)


def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad=False):
    """Values from ``start`` to ``end`` (exclusive) by ``step``; int64 for integer arguments.

    Raises:
        TypeError: a bound or step that is not a real number.
        RuntimeError: a step of 0, a non-finite bound or step, or a step whose sign points
            away from ``end`` (PyTorch's checks).
    """
    where = _resolve_device(device)
    if end is None:
        start, end = 0, start
    arguments = (("start", start), ("end", end), ("step", step))
    for name, value in arguments:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    for name, value in arguments:
        if not math.isfinite(value):
            raise RuntimeError(f"{name} must be finite, got {value}")
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if (end - start) * step < 0:
        raise RuntimeError(f"upper bound and larger bound inconsistent with step sign: start "
                           f"{start}, end {end}, step {step}")
    if dtype is None:
        integral = all(isinstance(v, numbers.Integral) for v in (start, end, step))
        dtype = dtypes.int64 if integral else dtypes.default_float
    dtype = check_dtype(dtype)
    try:
        values = np.arange(start, end, step, dtype=dtype)
    except (ValueError, MemoryError):
        raise RuntimeError(f"arange from start {start} to end {end} by step {step} has too "
                           "many elements to allocate") from None
    return _make(values, requires_grad, where)


def _linspace(start, end, steps):
    """``steps`` evenly spaced float64 values from ``start`` to ``end`` inclusive, the first
    half stepped from ``start`` and the second from ``end``, as PyTorch does (both ends are
    then exact)."""
    if steps == 1:
        return np.array([start], np.float64)
    step = (end - start) / (steps - 1)
    index = np.arange(steps, dtype=np.float64)
    half = steps // 2
    return np.where(index < half, start + step * index, end - step * (steps - 1 - index))


def _steps(steps):
    steps = integer(steps, "steps")
    if steps < 0:
        raise RuntimeError(f"number of steps must be non-negative, got {steps}")
    return steps


def linspace(start, end, steps, *, dtype=None, device=None, requires_grad=False):
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive (float32 unless
    ``dtype``; an integer dtype truncates them, as in PyTorch).

    ``start`` and ``end`` are numbers or one-element tensors.
    """
    where = _resolve_device(device)
    start, end, steps = _number(start, "start"), _number(end, "end"), _steps(steps)
    values = _linspace(start, end, steps)
    with np.errstate(invalid="ignore"):
        return _make(values.astype(check_dtype(dtype)), requires_grad, where)


def logspace(start, end, steps, base=10.0, *, dtype=None, device=None, requires_grad=False):
    """``steps`` values ``base ** x`` for ``x`` evenly spaced from ``start`` to ``end``
    inclusive (float32 unless ``dtype``)."""
    where = _resolve_device(device)
    start, end, steps = _number(start, "start"), _number(end, "end"), _steps(steps)
    base = _number(base, "base")
    with np.errstate(over="ignore", invalid="ignore"):
        values = np.power(np.float64(base), _linspace(start, end, steps))
        return _make(values.astype(check_dtype(dtype)), requires_grad, where)


# ------------------------------------------------------------------------------------- random
def rand(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Uniform samples in [0, 1) from the seeded generator."""
    where = _resolve_device(device)
    shape, dtype = _size(size), check_dtype(dtype, floating=True)
    return _make(_generator(generator).random(shape).astype(dtype), requires_grad, where)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Standard normal samples from the seeded generator."""
    where = _resolve_device(device)
    shape, dtype = _size(size), check_dtype(dtype, floating=True)
    return _make(_generator(generator).standard_normal(shape).astype(dtype), requires_grad, where)


def rand_like(input, *, generator=None, dtype=None, device=None, requires_grad=False):
    """:func:`rand` of ``input``'s shape, and dtype unless ``dtype`` (a floating one)."""
    input = check_tensor(input, "input")
    return rand(input.shape, generator=generator, dtype=check_dtype(dtype, input.dtype, True),
                device=input.device if device is None else device,
                requires_grad=requires_grad)


def randn_like(input, *, generator=None, dtype=None, device=None, requires_grad=False):
    """:func:`randn` of ``input``'s shape, and dtype unless ``dtype`` (a floating one)."""
    input = check_tensor(input, "input")
    return randn(input.shape, generator=generator, dtype=check_dtype(dtype, input.dtype, True),
                 device=input.device if device is None else device,
                 requires_grad=requires_grad)


def _random_integers(low, high, shape, dtype, generator):
    """Integers drawn uniformly from [low, high), as ``dtype`` (checked to hold them)."""
    low, high = integer(low, "low"), integer(high, "high")
    if low >= high:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got "
                           f"from={low} >= to={high}")
    if dtype.kind == "b":
        raise TypeError("dtype must be an integer or floating dtype, got bool")
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if low < info.min or high - 1 > info.max:
            raise RuntimeError(f"[low, high) = [{low}, {high}) is out of the range of dtype "
                               f"{dtype}")
    return _generator(generator).integers(low, high, shape).astype(dtype)


def randint(low=0, high=None, size=None, *, generator=None, dtype=None, device=None,
            requires_grad=False):
    """Integers drawn uniformly from [low, high), int64 unless ``dtype``.

    PyTorch's forms: ``randint(high, size)`` and ``randint(low, high, size)``, ``size`` a
    tuple of ints (keywords ``low``, ``high``, ``size`` too).

    Raises:
        RuntimeError: ``low >= high``, or bounds a integer ``dtype`` cannot hold.
        TypeError: a ``size`` that is not a tuple or list, or bounds that are not ints.
    """
    where = _resolve_device(device)
    if size is None and isinstance(high, (tuple, list)):  # randint(high, size)
        low, high, size = 0, low, high
    elif high is None:  # randint(high, size=...)
        low, high = 0, low
    if size is None:
        raise TypeError("randint() missing the required argument 'size' (a tuple of ints)")
    shape = _size_tuple(size, "randint")
    values = _random_integers(low, high, shape, check_dtype(dtype, dtypes.int64), generator)
    return _make(values, requires_grad, where)


def randint_like(input, low=0, high=None, *, generator=None, dtype=None, device=None,
                 requires_grad=False):
    """:func:`randint` of ``input``'s shape, and dtype unless ``dtype``:
    ``randint_like(input, high)`` or ``randint_like(input, low, high)``."""
    input = check_tensor(input, "input")
    where = input.device if device is None else _resolve_device(device)
    if high is None:
        low, high = 0, low
    values = _random_integers(low, high, input.shape, check_dtype(dtype, input.dtype), generator)
    return _make(values, requires_grad, where)


def randperm(n, *, generator=None, dtype=None, device=None, requires_grad=False):
    """A random permutation of ``0 .. n-1`` (int64 unless ``dtype``)."""
    where = _resolve_device(device)
    n = integer(n, "n")
    if n < 0:
        raise RuntimeError(f"n must be non-negative, got {n}")
    dtype = check_dtype(dtype, dtypes.int64)
    if dtype.kind == "b" or (dtype.kind in "iu" and n - 1 > np.iinfo(dtype).max):
        raise RuntimeError(f"n is too large for result tensor type: n {n}, dtype {dtype}")
    return _make(_generator(generator).permutation(n).astype(dtype), requires_grad, where)


def _on_device_of(draws, tensor_):
    """Host ``draws`` (fastgrad's generator draws on the host, the same values for every
    device) on the device of ``tensor_``."""
    return _to_device_of(draws, tensor_._data)


def _sample_dtype(tensor_, name):
    if tensor_.dtype.kind != "f":
        raise TypeError(f"{name}: expected a floating tensor, got dtype {tensor_.dtype}")
    return tensor_.dtype


def normal(mean, std=1.0, size=None, *, generator=None, dtype=None, device=None,
           requires_grad=False):
    """Samples from normal distributions, in PyTorch's forms.

    - ``normal(mean, std)`` with a Tensor for either or both: one sample per element of their
      broadcast shape, in the dtype of ``mean`` (of ``std`` when ``mean`` is a number);
    - ``normal(mean, std, size)`` with numbers: samples of shape ``size``, float32 unless
      ``dtype``.

    The result is not differentiable (PyTorch's gradient through sampling is zero).

    Raises:
        RuntimeError: a negative standard deviation, or shapes that do not broadcast.
        TypeError: numbers for both without ``size``, or ``size``/``dtype``/``device``/
            ``requires_grad`` with a Tensor argument.
    """
    if isinstance(mean, Tensor) or isinstance(std, Tensor):
        if size is not None or dtype is not None or device is not None or requires_grad:
            raise TypeError("normal(): size, dtype, device and requires_grad go with a number "
                            "mean and std only")
        means = mean._data if isinstance(mean, Tensor) else _number(mean, "mean")
        stds = std._data if isinstance(std, Tensor) else _number(std, "std")
        dtype = _sample_dtype(mean if isinstance(mean, Tensor) else std, "normal")
        shape = check_broadcast(np.shape(means), np.shape(stds), names=("mean", "std"))
        if bool(np.any(stds < 0)):  # on a device: read on the host, once
            raise RuntimeError("normal expects all elements of std >= 0.0")
        draws = _on_device_of(_generator(generator).standard_normal(shape),
                              mean if isinstance(mean, Tensor) else std)
        return Tensor((means + stds * draws).astype(dtype))
    if size is None:
        raise TypeError("normal() with a number mean and std needs size, a tuple of ints")
    where = _resolve_device(device)
    mean, std = _number(mean, "mean"), _number(std, "std")
    if std < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
    shape, dtype = _size_tuple(size, "normal"), check_dtype(dtype, floating=True)
    return _make(_generator(generator).normal(mean, std, shape).astype(dtype), requires_grad, where)


def multinomial(input, num_samples, replacement=False, *, generator=None):
    """Indices sampled from the categorical distributions whose weights are ``input``'s rows.

    ``input`` holds non-negative weights (not necessarily summing to 1): one distribution
    (1-d) or one per row (2-d). Without replacement the draws of a row are distinct; once
    every category of non-zero weight is drawn, the rest come from those of weight zero, as
    in PyTorch.

    Args:
        input: a floating tensor of shape ``(categories,)`` or ``(rows, categories)``.
        num_samples: how many indices to draw per distribution.
        replacement: draw with replacement.
        generator: the :class:`~fastgrad.Generator` to draw from.

    Returns:
        int64 indices of shape ``(num_samples,)`` or ``(rows, num_samples)``.

    Raises:
        RuntimeError: PyTorch's: ``input`` not 1-d or 2-d, not floating, with a negative or
            non-finite weight or a row of zero sum; ``num_samples`` not positive, or above
            the number of categories without replacement.
    """
    input = check_tensor(input, "input")
    num_samples = integer(num_samples, "num_samples")
    if input.ndim not in (1, 2):
        raise RuntimeError(f"prob_dist must be 1 or 2 dim, got {input.ndim} dims")
    if input.dtype.kind != "f":
        raise RuntimeError(f"multinomial only supports floating-point dtypes for input, got: "
                           f"{input.dtype}")
    if num_samples <= 0:
        raise RuntimeError(f"cannot sample n_sample <= 0 samples, got {num_samples}")
    categories = input.shape[-1]
    if not replacement and num_samples > categories:
        raise RuntimeError(f"cannot sample n_sample > prob_dist.size(-1) samples without "
                           f"replacement: {num_samples} > {categories}")
    # drawn on the host (a device's weights copied there, explicitly), as for every device
    weights = np.atleast_2d(_to_host(input._data)).astype(np.float64)
    if not np.all(np.isfinite(weights) & (weights >= 0)):
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
    totals = weights.sum(axis=1)
    if np.any(totals <= 0):
        raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
    rng = _generator(generator)
    if replacement:  # inverse CDF: a category of weight 0 spans an empty interval
        draws = rng.random((len(weights), num_samples)) * totals[:, None]
        indices = np.empty(draws.shape, np.int64)
        for row, (row_weights, row_draws) in enumerate(zip(weights, draws)):
            last = np.flatnonzero(row_weights)[-1]  # where a draw rounded up to the total goes
            found = np.searchsorted(np.cumsum(row_weights), row_draws, side="right")
            indices[row] = np.minimum(found, last)
    else:  # exponential race: the first num_samples to arrive, each at rate = its weight
        with np.errstate(divide="ignore"):
            arrival = rng.standard_exponential(weights.shape) / weights
        indices = np.argsort(arrival, axis=1, kind="stable")[:, :num_samples]
    indices = indices.astype(np.int64)
    return Tensor(_on_device_of(indices if input.ndim == 2 else indices[0], input))


def bernoulli(input, p=None, *, generator=None):
    """Draws of 0 or 1 in ``input``'s dtype: 1 with probability ``input`` elementwise, or with
    probability ``p`` everywhere when ``p`` is given (then ``input`` gives only the shape and
    dtype). Not differentiable (PyTorch's gradient through sampling is zero).

    Raises:
        RuntimeError: probabilities outside [0, 1].
        TypeError: ``input`` is not a floating tensor (when it holds the probabilities).
    """
    input = check_tensor(input, "input")
    if p is None:
        _sample_dtype(input, "bernoulli")
        probabilities = input._data
        if not bool(np.all((probabilities >= 0) & (probabilities <= 1))):
            raise RuntimeError("bernoulli: every probability in input must be in [0, 1]")
    else:
        probabilities = _probability(p, "bernoulli")
    draws = _on_device_of(_generator(generator).random(input.shape), input) < probabilities
    return Tensor(draws.astype(input.dtype))


def _probability(p, function):
    p = _number(p, "p")
    if not 0 <= p <= 1:
        raise RuntimeError(f"{function} expects p to be in [0, 1], but got p={p}")
    return p


# --------------------------------------------------------------------- Tensor methods, in place
def uniform_(self, from_=0, to=1, *, generator=None):
    """Fill in place with samples drawn uniformly from [from_, to) (PyTorch's ``from``, a
    Python keyword, is ``from_`` here; positionally the same)."""
    _sample_dtype(self, "uniform_")
    from_, to = _number(from_, "from"), _number(to, "to")
    if from_ > to:
        raise RuntimeError(f"uniform_ expects to return a [from, to) range, but found "
                           f"from={from_} > to={to}")
    return self._write(_on_device_of(_generator(generator).uniform(from_, to, self.shape),
                                     self), "from")


def normal_(self, mean=0, std=1, *, generator=None):
    """Fill in place with samples from N(mean, std²)."""
    _sample_dtype(self, "normal_")
    mean, std = _number(mean, "mean"), _number(std, "std")
    if std < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
    return self._write(_on_device_of(_generator(generator).normal(mean, std, self.shape),
                                     self), "mean")


def bernoulli_(self, p=0.5, *, generator=None):
    """Fill in place with 0 or 1, 1 with probability ``p`` (a number, or a tensor of
    probabilities broadcastable to this one)."""
    if isinstance(p, Tensor) and p.numel() != 1:
        probabilities = p._data
        if not bool(np.all((probabilities >= 0) & (probabilities <= 1))):
            raise RuntimeError("bernoulli_: every probability in p must be in [0, 1]")
        check_broadcast(self.shape, p.shape, names=("self", "p"))
    else:
        probabilities = _probability(p, "bernoulli_")
    draws = _on_device_of(_generator(generator).random(self.shape), self) < probabilities
    return self._write(draws, "p")


# ------------------------------------------------------------------ Tensor methods, new tensors
def _new_size(size, name):
    if not size:
        raise TypeError(f"{name}() missing 1 required positional argument: 'size'")
    return size


def new_tensor(self, data, *, dtype=None, device=None, requires_grad=False):
    """A copy of ``data`` as a new tensor, of this tensor's dtype unless ``dtype``."""
    return tensor(data, dtype=self.dtype if dtype is None else dtype,
                  device=self.device if device is None else device,
                  requires_grad=requires_grad)


def new_zeros(self, *size, dtype=None, device=None, requires_grad=False):
    """Zeros of shape ``size``, of this tensor's dtype unless ``dtype``."""
    return zeros(*_new_size(size, "new_zeros"), dtype=self.dtype if dtype is None else dtype,
                 device=self.device if device is None else device,
                 requires_grad=requires_grad)


def new_ones(self, *size, dtype=None, device=None, requires_grad=False):
    """Ones of shape ``size``, of this tensor's dtype unless ``dtype``."""
    return ones(*_new_size(size, "new_ones"), dtype=self.dtype if dtype is None else dtype,
                device=self.device if device is None else device, requires_grad=requires_grad)


def new_empty(self, *size, dtype=None, device=None, requires_grad=False):
    """An uninitialised tensor of shape ``size``, of this tensor's dtype unless ``dtype``."""
    return empty(*_new_size(size, "new_empty"), dtype=self.dtype if dtype is None else dtype,
                 device=self.device if device is None else device,
                 requires_grad=requires_grad)


def new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad=False):
    """A tensor of shape ``size`` (a tuple) filled with ``fill_value``, of this tensor's dtype
    unless ``dtype``."""
    return full(_size_tuple(size, "new_full"), fill_value,
                dtype=self.dtype if dtype is None else dtype,
                device=self.device if device is None else device,
                requires_grad=requires_grad)


#: Tensor method name -> function taking the tensor first.
TENSOR_METHODS = {
    "new_tensor": new_tensor, "new_zeros": new_zeros, "new_ones": new_ones,
    "new_empty": new_empty, "new_full": new_full,
    "uniform_": uniform_, "normal_": normal_, "bernoulli_": bernoulli_,
    "multinomial": multinomial, "bernoulli": bernoulli,
}
