"""The one dispatch point between fastgrad and its kernel backends.

Ops, layers and optimisers call kernels as ``K.<name>(...)`` and never know which backend runs
them. This module alone imports backend modules, and only on first use, so ``import fastgrad``
costs NumPy alone.

Resolution is per kernel. By default each kernel comes from the first backend in
:data:`DEFAULT_ORDER` that is available and implements it; a backend that fails to load keeps
its error as the reason shown by :func:`describe`. Forcing a backend (:func:`use`, or the
``FASTGRAD_BACKEND`` environment variable) takes every kernel from it: a kernel it lacks is an
error when called, never a silent fallback. A compiled backend hands a call to the NumPy
reference only for arguments it is not compiled for (float16, strided arrays), and counts each
such call (its ``FALLBACKS``, a :class:`~fastgrad.backends.spec.Fallbacks`):
``describe(kernels=True)`` says, per kernel, which backend runs it and what fell back.

Threads: a backend with a thread setting has ``set_num_threads(n)`` and ``get_num_threads()``
(and ``THREAD_LIMIT``, ``(most, why)``, when it takes a bounded count); ``fastgrad.threads``
reaches them through :func:`set_num_threads`, :func:`get_num_threads` and :func:`thread_limit`.

JIT backends compile a kernel on its first call; :func:`warmup` pays that ahead of use.
"""
import importlib
import time

import numpy as np

from .. import config
from . import numpy_ref  # noqa: F401 (declares every kernel; NumPy only, so always loaded)
from .numpy_ref import ACTIVATIONS  # noqa: F401 (public contract)
from .spec import KERNELS, KernelSpec, kernel  # noqa: F401 (public contract)

#: Every backend fastgrad knows, by name: the module implementing it.
BACKEND_MODULES = {
    "numba": "fastgrad.backends.numba_cpu",
    "c": "fastgrad.backends.c",
    "numpy": "fastgrad.backends.numpy_ref",
}

#: The default order, fastest first; ``numpy`` (the reference) is always available.
DEFAULT_ORDER = ("numba", "c", "numpy")

#: The backends that compile their kernels on first use (what :func:`warmup` compiles).
JIT_BACKENDS = ("numba", "cuda")

_modules = {}      # name -> loaded module
_reasons = {}      # name -> why it could not be loaded
_forced = [None]   # the backend forced by use()/FASTGRAD_BACKEND, or None for the default order
_threads = [None]  # the count last given to set_num_threads, for backends loaded later
_generation = [0]  # bumped at every rebinding of the kernel table (see generation())


def _load(name):
    """The backend's module, or None (with the reason kept) when it cannot be imported."""
    if name not in _modules and name not in _reasons:
        try:
            module = importlib.import_module(BACKEND_MODULES[name])
        except Exception as error:  # any failure to load is a reason, not a crash
            _reasons[name] = f"{type(error).__name__}: {error}"
        else:
            if _threads[0] is not None and hasattr(module, "set_num_threads"):
                module.set_num_threads(_threads[0])
            _modules[name] = module
    return _modules.get(name)


def available():
    """The names of the backends usable here, in default order."""
    return [name for name in DEFAULT_ORDER if _load(name) is not None]


def describe(kernels=False):
    """Each known backend with its status: what it implements, or why it is unavailable.

    With ``kernels``, each kernel instead: the backend that runs it (and why, when that is not
    simply the first available backend) and the calls that backend handed to the NumPy
    reference, by reason: ``{"fill": "numba; float16 -> numpy reference (3 calls)", ...}``.
    """
    if kernels:
        return {name: _describe_kernel(name) for name in KERNELS}
    status = {}
    for name in DEFAULT_ORDER:
        module = _load(name)
        if module is None:
            status[name] = f"unavailable ({_reasons[name]})"
        else:
            implemented = sum(hasattr(module, k) for k in KERNELS)
            status[name] = f"available ({implemented} of {len(KERNELS)} kernels)"
    return status


def _describe_kernel(name):
    """:func:`describe`'s line for kernel ``name``, as bound now."""
    current()  # binds the kernel table
    function = K.__dict__[name]
    source = next((backend for backend, module in _modules.items()
                   if getattr(module, name, None) is function), None)
    if source is None:
        return f"not implemented by the forced backend {_forced[0]!r}: calls raise RuntimeError"
    if _forced[0] is not None:
        line = f"{source} (forced)"
    else:
        lacking = available()[:available().index(source)]
        line = source + (f" (not implemented by {', '.join(lacking)})" if lacking else "")
    fallbacks = getattr(_modules[source], "FALLBACKS", None)
    for reason, calls in (fallbacks.of(name) if fallbacks is not None else {}).items():
        line += f"; {reason} -> numpy reference ({calls} call{'s' if calls != 1 else ''})"
    return line


def warmup(dtypes=(np.float32, np.float64)):
    """Compile every kernel of every available JIT backend now, ahead of its first use.

    Each kernel a JIT backend implements is called once per dtype and variant on its spec's
    smallest example. The compiled code lands in Numba's on-disk cache, so later processes
    load it in milliseconds instead of compiling it in about a second per kernel; a second
    warmup in the same process costs only the calls. ``fastgrad warmup`` prints the result.

    Args:
        dtypes: the floating dtypes to compile for.

    Returns:
        ``{backend: seconds}``: for each available JIT backend, how long its calls took
        (compilation or loading from the cache included); empty when none is available.
    """
    timings = {}
    for name in available():
        if name not in JIT_BACKENDS:
            continue
        module = _modules[name]
        start = time.perf_counter()
        for kernel_name, spec in KERNELS.items():
            implementation = getattr(module, kernel_name, None)
            if implementation is None:
                continue
            for dtype in dtypes:
                for variant in spec.variants:
                    args = spec.arguments(np.random.default_rng(0), dtype, min(spec.sizes),
                                          variant)
                    with np.errstate(all="ignore"):
                        implementation(**args)
        timings[name] = time.perf_counter() - start
    return timings


# ----------------------------------------------------------------------------------- threads
def thread_limit():
    """The most threads every available backend takes, as ``(most, why)`` (the tightest
    ``THREAD_LIMIT``), or None when none bounds it."""
    limits = [getattr(_modules[name], "THREAD_LIMIT", None) for name in available()]
    limits = [limit for limit in limits if limit is not None]
    return min(limits) if limits else None


def set_num_threads(n):
    """Give ``n`` threads to every available backend that has a thread setting, and to those
    loaded later; ``n`` is checked by the caller (``fastgrad.set_num_threads``)."""
    _threads[0] = n
    for name in available():
        setter = getattr(_modules[name], "set_num_threads", None)
        if setter is not None:
            setter(n)


def get_num_threads():
    """The thread count of the first available backend in the default order that has a
    thread setting, or None when none has."""
    for name in available():
        getter = getattr(_modules[name], "get_num_threads", None)
        if getter is not None:
            return getter()
    return None


def current():
    """The name of the forced backend, or of the first available one in default order."""
    if not K.__dict__:
        _activate(config.BACKEND)
    return _forced[0] or available()[0]


def _check_name(name):
    if name not in BACKEND_MODULES:
        raise ValueError(f"unknown backend {name!r}; available backends: {available()}")
    if _load(name) is None:
        raise ValueError(f"backend {name!r} is unavailable ({_reasons[name]}); available "
                         f"backends: {available()}")


def _missing(name, backend):
    def missing(*args, **kwargs):
        raise RuntimeError(f"kernel {name!r} is not implemented by the forced backend "
                           f"{backend!r}; use another backend or the default order")
    return missing


def _activate(name):
    """Bind every kernel name on :data:`K` for the forced backend ``name`` (None: default)."""
    if name is not None:
        _check_name(name)
        module = _modules[name]
        table = {k: getattr(module, k, None) or _missing(k, name) for k in KERNELS}
    else:
        loaded = [_modules[n] for n in available()]
        table = {k: next(getattr(m, k) for m in loaded if hasattr(m, k)) for k in KERNELS}
    _forced[0] = name
    _generation[0] += 1
    K.__dict__.clear()
    K.__dict__.update(table)


def generation():
    """A number that changes whenever the kernel table is rebound (:class:`use`): what
    :func:`bind` returned before it may come from another backend than ``K`` now."""
    return _generation[0]


def bind(name, *args, **kwargs):
    """Kernel ``name`` for calls whose arguments have exactly the dtypes, shapes and layouts
    of these (given as to the kernel) and the same non-array values: a captured replay's,
    which repeat one call's (see :mod:`fastgrad.graphs`).

    A backend whose kernel has a ``bind`` attribute checks these arguments once, now, and
    returns a callable with the kernel's signature that skips the checks (on a small layer
    they are a third of the call); otherwise the kernel itself. Same results as the kernel,
    bit for bit.
    """
    implementation = getattr(K, name)
    binder = getattr(implementation, "bind", None)
    return implementation if binder is None else binder(*args, **kwargs)


class use:
    """Switch every kernel to backend ``name`` now; as a context manager, switch back on exit.

    ``use(None)`` returns to the default order. An unknown or unavailable name raises a
    ``ValueError`` listing the available backends.
    """

    def __init__(self, name):
        self._previous = _forced[0] if K.__dict__ else config.BACKEND
        _activate(name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        _activate(self._previous)


class _Kernels:
    """The active kernel table: ``K.linear_fwd`` is the implementation chosen for it."""

    def __getattr__(self, name):
        if not self.__dict__:
            _activate(config.BACKEND)
            if name in self.__dict__:
                return self.__dict__[name]
        raise AttributeError(f"no kernel named {name!r}; declared kernels: {sorted(KERNELS)}")


#: The kernels of the active backend(s).
K = _Kernels()
