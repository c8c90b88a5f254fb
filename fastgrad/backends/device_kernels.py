"""A device backend's kernels as the kernel table of registered device arrays.

The CPU backends hand a kernel call on registered device arrays (:mod:`fastgrad.device`) to
that device's kernel table. :class:`DeviceKernels` builds such a table from a device backend
module (:mod:`fastgrad.backends.numba_cuda`), which implements the registry's kernels on its
own arrays (numba's device arrays) with the reference's names and signatures. Each entry
translates one call:

- a registered device array becomes the backend's array over the same memory (no copy);
- a host NumPy array (the index tables the core keeps on the host: an arena's segment
  offsets, a monitor's layer map) is copied to the device; a read-only one is copied once and
  kept for as long as it lives, a writable one at every call (it may have changed). A kernel
  never writes one (the core allocates its outputs on the device): that would be a
  TypeError before the launch;
- what the backend returns where the reference returns a Python float (a total norm) comes
  back as a 0-d device array of the registered type, not read on the host: a training step
  never waits for the device on it (clipping decides on the device).

A device array that is not C-contiguous is copied to C order when the kernel only reads it
(kernels may reshape their arrays, which a strided device array refuses). Calls the backend is
not compiled for (a dtype other than float32 and float64, an output that is not C-contiguous)
and kernels it lacks go to the reference kernels, which compute on device arrays through
NumPy's dispatch protocols.
"""
import inspect
import weakref

import numpy as np

from . import numpy_ref
from .spec import KERNELS

#: The dtypes device backends compile their kernels for.
COMPILED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class DeviceKernels:
    """The kernel table of one device array type, from a device backend's kernels.

    Args:
        module: the backend (an object with a function per registry kernel it implements).
        array_type: the registered device array type (``cupy.ndarray``).
        to_kernel: ``to_kernel(array)`` -> the backend's array over ``array``'s memory.
        from_kernel: ``from_kernel(array)`` -> a registered array over the backend array's
            memory.
        upload: ``upload(host_array)`` -> a new backend array with its values on the device.
        overrides: ``{name: kernel}`` taken instead of the module's (on the backend's arrays,
            with the module's signatures), e.g. its product kernels around a vendor library's
            matrix product (:func:`fastgrad.backends.numba_cuda.product_kernels`).

    Every kernel of the registry is an attribute: ``table.fill(buffer, 0.0)``.
    """

    def __init__(self, module, array_type, to_kernel, from_kernel, upload, overrides=None):
        self._array_type = array_type
        self._to_kernel, self._from_kernel, self._upload = to_kernel, from_kernel, upload
        self._uploaded = {}  # (address, shape, strides, dtype) of fixed host memory -> copy
        for name, spec in KERNELS.items():
            implementation = (overrides or {}).get(name) or getattr(module, name, None)
            reference = getattr(numpy_ref, name)
            setattr(self, name, reference if implementation is None
                    else self._entry(implementation, reference, spec))

    def _entry(self, implementation, reference, spec):
        """The table's function for one kernel (see the module docstring)."""
        names = list(inspect.signature(spec.reference).parameters)
        written = {i for i, name in enumerate(names) if name in spec.writes}
        array_type = self._array_type

        def call(*args):
            converted = []
            for i, value in enumerate(args):
                kind = type(value)
                if kind is array_type:
                    if value.dtype.kind == "f" and value.dtype not in COMPILED_DTYPES:
                        return reference(*args)
                    if not value.flags.c_contiguous:
                        if i in written:  # the reference writes through any layout
                            return reference(*args)
                        value = value.copy()  # C order: the kernels may reshape it
                    value = self._to_kernel(value)
                elif kind is np.ndarray:
                    if i in written:
                        raise TypeError(f"{spec.name}: argument {names[i]!r} is "
                                        f"written by the kernel on the device, so it must be a "
                                        f"device array, got a host numpy.ndarray")
                    value = self._host_table(value)
                converted.append(value)
            result = implementation(*converted)
            return None if result is None else self._from_kernel(result).reshape(())

        call.__name__ = call.__qualname__ = spec.name
        call.__doc__ = implementation.__doc__
        return call

    def _host_table(self, array):
        """``array`` (host) on the device: kept while the memory it views lives when neither
        it nor the arrays it views can change (a view of the same elements, made anew at
        each call, finds it)."""
        root = _fixed_root(array)
        if root is None:
            return self._upload(array)
        key = (array.__array_interface__["data"][0], array.shape, array.strides,
               array.dtype.str)
        kept = self._uploaded.get(key)
        if kept is None:
            kept = self._uploaded[key] = self._upload(array)
            weakref.finalize(root, self._uploaded.pop, key, None)
        return kept


def _fixed_root(array):
    """The array owning ``array``'s memory when neither it nor any array between them is
    writable (its values are fixed while that array lives), else None."""
    while True:
        if array.flags.writeable:
            return None
        if not isinstance(array.base, np.ndarray):
            return array
        array = array.base
