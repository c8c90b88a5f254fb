"""The kernel contract: how a kernel is declared once, and the registry of declared kernels.

A kernel is declared by decorating its NumPy reference with :func:`kernel`. The declaration
records which arguments the kernel overwrites, an example-input generator and sizes for parity
tests and benchmarks. Every other backend implements the same name and signature; the parity
tests (``tests/test_backend_parity.py``) and benchmarks (``bench/test_kernels.py``) are generated
from :data:`KERNELS`, so adding a kernel needs no edit of either.

Calling convention (shared by NumPy, Numba, C and CUDA): plain arrays and scalars in,
caller-allocated outputs written in place, at most a scalar returned. No Tensors, no Python
objects, no validation: the Python layer checks everything before a kernel runs.
"""
import dataclasses
from typing import Callable, Dict, Tuple

import numpy as np

#: Activation codes passed to the fused linear kernels (an int, so every backend can take it).
ACTIVATIONS = {"none": 0, "relu": 1, "sigmoid": 2, "tanh": 3}

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
        example: ``example(rng, dtype, size) -> dict`` of keyword arguments for a call.
        sizes: ``size`` values for parity tests (small, odd, and size 1).
        bench_sizes: ``size`` values for benchmarks.
        tolerances: per dtype, ``(rtol, atol)`` for parity against the reference.
    """

    name: str
    reference: Callable
    writes: Tuple[str, ...]
    example: Callable
    sizes: Tuple[int, ...]
    bench_sizes: Tuple[int, ...]
    tolerances: Dict[np.dtype, Tuple[float, float]]


#: Every declared kernel, by name, in declaration order.
KERNELS: Dict[str, KernelSpec] = {}


def kernel(*, writes, example, sizes=(1, 3, 17), bench_sizes=(64, 1024), tolerances=None):
    """Declare the decorated NumPy function as the reference of a kernel of the same name."""
    def register(reference):
        KERNELS[reference.__name__] = KernelSpec(
            name=reference.__name__, reference=reference, writes=tuple(writes), example=example,
            sizes=tuple(sizes), bench_sizes=tuple(bench_sizes),
            tolerances={**_DEFAULT_TOLERANCES, **(tolerances or {})})
        return reference
    return register
