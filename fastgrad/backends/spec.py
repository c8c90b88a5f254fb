"""The kernel contract: how a kernel is declared once, and the registry of declared kernels.

A kernel is declared by decorating its NumPy reference with :func:`kernel`. The declaration
records which arguments the kernel overwrites, an example-input generator, the variants the
kernel has (activation codes, norm types, optimiser flags: each a choice of arguments that
takes another path through the code) and sizes for parity tests and benchmarks. Every other
backend implements the same name and signature; the parity tests
(``tests/test_backend_parity.py``) and benchmarks (``bench/test_kernels.py``) are generated
from :data:`KERNELS`, every variant on every backend, so adding a kernel or a variant needs no
edit of either.

Calling convention (shared by NumPy, Numba, C and CUDA): plain arrays and scalars in,
caller-allocated outputs written in place, at most a scalar returned. No Tensors, no Python
objects, no validation: the Python layer checks everything before a kernel runs.

A compiled backend runs the reference instead of its own code only for arguments it is not
compiled for (float16, a strided view, shapes its code does not take); each such call is
counted in the backend's :class:`Fallbacks`, which ``fastgrad.backends.describe`` reports and
the parity tests assert stays empty for every registry example.
"""
import collections
import dataclasses
import inspect
import itertools
from typing import Any, Callable, Dict, Tuple

import numpy as np


def raise_bad_target(bad, target, ignore_index, classes):
    """For a compiled cross-entropy kernel that counted ``bad`` out-of-range targets: raise
    the reference's IndexError naming the first one (nothing when ``bad`` is 0)."""
    if bad:
        labels = target[target != ignore_index]
        wrong = labels[(labels < -classes) | (labels >= classes)][0]
        raise IndexError(f"target {wrong} is out of bounds for {classes} classes")


_DEFAULT_TOLERANCES = {np.dtype(np.float32): (1e-5, 1e-6), np.dtype(np.float64): (1e-12, 1e-14)}


@dataclasses.dataclass(frozen=True)
class KernelSpec:
    """What the registry knows about one kernel.

    Attributes:
        name: the kernel's name, the same on every backend.
        reference: the NumPy reference implementation (the oracle).
        writes: names of the arguments the kernel overwrites.
        example: ``example(rng, dtype, size, **choices) -> dict`` of keyword arguments for a
            call; without choices, the kernel's default variant.
        variants: every variant, by label: the choices that make it (see :func:`kernel`).
        sizes: ``size`` values for parity tests (small, odd, and size 1).
        bench_sizes: ``size`` values for benchmarks.
        tolerances: per dtype, ``(rtol, atol)`` for parity against the reference.
    """

    name: str
    reference: Callable
    writes: Tuple[str, ...]
    example: Callable
    variants: Dict[str, Dict[str, Any]]
    sizes: Tuple[int, ...]
    bench_sizes: Tuple[int, ...]
    tolerances: Dict[np.dtype, Tuple[float, float]]

    def arguments(self, rng, dtype, size, variant=None):
        """The keyword arguments of one call of ``variant`` (None: the example as it comes):
        the choices the example generator takes go to it, the others replace the arguments
        it returns."""
        choices = self.variants[variant] if variant is not None else {}
        own = inspect.signature(self.example).parameters
        args = self.example(rng, dtype, size, **{k: v for k, v in choices.items() if k in own})
        args.update({k: v for k, v in choices.items() if k not in own})
        return args


#: Every declared kernel, by name, in declaration order.
KERNELS: Dict[str, KernelSpec] = {}


def _variants(name, axes, example, arguments):
    """Every combination of one choice per axis, labelled by its choices' labels joined with
    ``,``; checked: each choice names an example parameter or a kernel argument."""
    if isinstance(axes, dict):
        axes = (axes,)
    known = set(inspect.signature(example).parameters) | set(arguments)
    variants = {}
    for combination in itertools.product(*(axis.items() for axis in axes)):
        choices = {}
        for _, choice in combination:
            unknown = set(choice) - known
            if unknown:
                raise TypeError(f"a variant of kernel {name!r} sets {sorted(unknown)}, which "
                                f"is neither an argument of the kernel nor of its example")
            choices.update(choice)
        variants[",".join(label for label, _ in combination)] = choices
    return variants


def kernel(*, writes, example, variants=None, sizes=(1, 3, 17), bench_sizes=(64, 1024),
           tolerances=None):
    """Declare the decorated NumPy function as the reference of a kernel of the same name.

    ``variants`` declares the kernel's paths: one axis, ``{label: choices}``, or a tuple of
    axes whose every combination is a variant. ``choices`` is a dict of keyword arguments:
    those the example generator takes are passed to it (an activation code, from which a
    backward example builds its forward output), the others replace the example's arguments
    (a flag, an optional array set to None). The parity tests and benchmarks run every
    variant; without ``variants``, the kernel has one, ``"default"``: the example as it comes.
    """
    def register(reference):
        name = reference.__name__
        arguments = inspect.signature(reference).parameters
        KERNELS[name] = KernelSpec(
            name=name, reference=reference, writes=tuple(writes), example=example,
            variants=_variants(name, variants or {"default": {}}, example, arguments),
            sizes=tuple(sizes), bench_sizes=tuple(bench_sizes),
            tolerances={**_DEFAULT_TOLERANCES, **(tolerances or {})})
        return reference
    return register


# ------------------------------------------------------------------------------- fallbacks
_COMPILED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def fallback_reason(args):
    """Why a compiled kernel could not take ``args``, as :class:`Fallbacks` records it: the
    dtype of the first floating array that is neither float32 nor float64, else ``"a strided
    array"`` when one is not C-contiguous, else ``"other arguments"`` (shapes, or a mix of
    dtypes, the compiled code does not take)."""
    arrays = [a for a in args if isinstance(a, np.ndarray)]
    for a in arrays:
        if a.dtype.kind == "f" and a.dtype not in _COMPILED_DTYPES:
            return a.dtype.name
    for a in arrays:
        if not a.flags.c_contiguous:
            return "a strided array"
    return "other arguments"


class Fallbacks(collections.Counter):
    """A compiled backend's calls that ran the NumPy reference instead of its own code:
    ``{(kernel, reason): calls}``. Only a fallback counts (nothing is added to a call the
    backend runs itself), so counting costs nothing on the fast path.

    Why count rather than raise, even when a backend is forced: a fallback is the documented
    behaviour for arguments a backend is not compiled for (float16 models, strided views),
    and raising would break them; counting makes every one visible instead
    (``fastgrad.backends.describe(kernels=True)``), and the parity tests assert that no
    registry example in float32 or float64 falls back.
    """

    def record(self, name, args, reason=None):
        """Count one fallback of kernel ``name`` on ``args`` (``reason``: by default
        :func:`fallback_reason` of ``args``)."""
        self[name, reason or fallback_reason(args)] += 1

    def of(self, name):
        """``{reason: calls}`` of kernel ``name``."""
        return {reason: calls for (kernel, reason), calls in self.items() if kernel == name}
