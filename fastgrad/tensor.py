"""Tensor: a NumPy array with a gradient, and the constructors users call.

A Tensor wraps one ``numpy.ndarray`` (never a copy unless asked), or an array of a device
library registered with :mod:`fastgrad.device`, records the operation that made it
(``grad_fn``) while gradients are being recorded, and receives ``.grad`` from
:func:`fastgrad.autograd.backward`. Dtypes are NumPy dtypes; promotion follows PyTorch
(see :mod:`fastgrad.dtypes`). ``device``, ``to()``, ``cpu()`` and ``cuda()`` speak PyTorch's
device idiom through :mod:`fastgrad.device`; values leave a device only explicitly (``cpu()``,
``item()``, ``tolist()``, printing), never through ``numpy()``, as in PyTorch.
"""
import numbers

import numpy as np

from . import _checks
from . import autograd
from . import dtypes
from . import ops
from .device import array_device as _array_device
from .device import cuda_device as _cuda_device
from .device import device_arrays as _device_arrays
from .device import to_device as _move_array
from .device import to_host as _to_host
from .device import resolve as _resolve_device
from .dtypes import Size

_new_size = tuple.__new__  # a Size from a NumPy shape, skipping Size()'s checks (hot path)


class Tensor:
    """An n-dimensional array that can take part in reverse-mode differentiation.

    Build tensors with :func:`fastgrad.tensor` (copies) or :func:`fastgrad.from_numpy` (shares
    memory); the constructor itself wraps an existing ``numpy.ndarray`` as is.
    """

    __slots__ = ("_data", "_requires_grad", "_grad", "grad_fn", "_output_nr", "_version",
                 "_arena", "_grad_view", "_hooks", "_post_hooks", "__weakref__")
    # Let NumPy defer to Tensor's reflected operators (ndarray + Tensor -> Tensor.__radd__).
    __array_priority__ = 1000

    def __init__(self, data, requires_grad=False):
        if not isinstance(data, np.ndarray) and _device_arrays(data) is None:
            raise TypeError(f"Tensor() wraps a numpy.ndarray, got {type(data).__name__}; "
                            "use fastgrad.tensor(data) to build one from other data")
        if data.dtype.kind not in "biuf":
            raise TypeError(f"Tensor() data must hold bool, integer or floating values, got "
                            f"dtype {data.dtype}")
        self._data = data
        self._grad = None
        self.grad_fn = None
        self._output_nr = 0
        self._version = 0
        # set only by fastgrad.arena: the Arena this tensor's values live in, if any, and the
        # slot of its gradient there (where backward and the grad setter write a new gradient)
        self._arena = None
        self._grad_view = None
        self._hooks = None       # register_hook's hooks by handle id, once there is one
        self._post_hooks = None  # register_post_accumulate_grad_hook's, likewise
        self._requires_grad = False
        if requires_grad:
            self.requires_grad = True

    # ----------------------------------------------------------------------------- attributes
    @property
    def shape(self):
        """The shape, a :class:`~fastgrad.Size` (a tuple)."""
        return _new_size(Size, self._data.shape)

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def ndim(self):
        return self._data.ndim

    def dim(self):
        return self._data.ndim

    def size(self, dim=None):
        """The shape (a :class:`~fastgrad.Size`), or the length of dimension ``dim``."""
        if dim is None:
            return _new_size(Size, self._data.shape)
        axis = _checks.normalize_dim(dim, self._data.ndim)
        if not self._data.ndim:
            raise IndexError(f"dim {dim} specified but the tensor has no dimensions")
        return self._data.shape[axis]

    def numel(self):
        return self._data.size

    def stride(self, dim=None):
        """The step, in elements, between neighbours along each dimension (or along ``dim``)."""
        strides = tuple(step // self._data.itemsize for step in self._data.strides)
        if dim is None:
            return strides
        axis = _checks.normalize_dim(dim, self._data.ndim)
        if not self._data.ndim:
            raise IndexError(f"dim {dim} specified but the tensor has no dimensions")
        return strides[axis]

    def is_contiguous(self, memory_format=dtypes.contiguous_format):
        """True when the elements lie in memory in C order, without gaps."""
        _check_contiguous_format(memory_format, "is_contiguous")
        return self._data.flags.c_contiguous

    def is_floating_point(self):
        return self._data.dtype.kind == "f"

    def element_size(self):
        """The size of one element in bytes."""
        return self._data.itemsize

    @property
    def itemsize(self):
        return self._data.itemsize

    @property
    def nbytes(self):
        return self._data.nbytes

    @property
    def device(self):
        """The :class:`~fastgrad.device` holding the values."""
        return _array_device(self._data)

    @property
    def is_cuda(self):
        return self.device.type == "cuda"

    @property
    def is_cpu(self):
        return self.device.type == "cpu"

    def __len__(self):
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self._data)

    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        if value and not dtypes.is_floating(self._data.dtype):
            raise RuntimeError("only Tensors of floating point dtype can require gradients, "
                               f"got dtype {self._data.dtype}")
        if not value and self.grad_fn is not None:
            raise RuntimeError("requires_grad can only be turned off on leaf tensors; "
                               "use .detach() for a non-leaf tensor")
        self._requires_grad = bool(value)

    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` in place; returns self."""
        self.requires_grad = _checks.flag(requires_grad, "requires_grad")
        return self

    @property
    def is_leaf(self):
        return self.grad_fn is None

    @property
    def grad(self):
        """The accumulated gradient (a Tensor of this tensor's shape and dtype), or None."""
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is not None:
            value = _as_tensor(value, "grad")
            if value.shape != self.shape:
                raise ValueError(f"grad must have shape {self.shape}, got {value.shape}")
            if self._grad_view is not None:
                # keep the gradient inside its arena slot
                np.copyto(self._grad_view, value._data)
                value = Tensor(self._grad_view)
        self._grad = value

    @property
    def data(self):
        """This tensor's values as a detached Tensor that shares its memory."""
        return Tensor(self._data)

    @data.setter
    def data(self, value):
        self._data = _as_tensor(value, "data")._data
        if self._arena is not None:
            self._arena.release(self)

    @property
    def T(self):
        return ops.permute(self, tuple(reversed(range(self._data.ndim))))

    # ------------------------------------------------------------------------ conversions
    def numpy(self):
        """The underlying array (shared memory, as PyTorch's ``.numpy()``).

        Raises:
            TypeError: the values are on another device than the CPU (PyTorch's message:
                copy them with :meth:`cpu` first).
        """
        autograd._untraced("a tensor's values were read on the host (.numpy())")
        self._check_host()
        return self._data

    def _check_host(self):
        if type(self._data) is not np.ndarray and _device_arrays(self._data) is not None:
            raise TypeError(f"can't convert {self.device} device type tensor to numpy. Use "
                            "Tensor.cpu() to copy the tensor to host memory first.")

    def __array__(self, dtype=None, copy=None):
        autograd._untraced("a tensor's values were read on the host (numpy.asarray)")
        self._check_host()
        if copy:
            return np.array(self._data, dtype=dtype, copy=True)
        return self._data if dtype is None else self._data.astype(dtype, copy=False)

    def item(self):
        """The single value as a Python number."""
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted "
                               "to a Python number")
        autograd._untraced("a tensor's value was read on the host (.item(), float(), int())")
        return _to_host(self._data).item()

    def tolist(self):
        autograd._untraced("a tensor's values were read on the host (.tolist())")
        return _to_host(self._data).tolist()

    def detach(self):
        """A tensor sharing this one's memory, cut out of the graph."""
        return Tensor(self._data)

    def clone(self):
        """A differentiable copy with its own memory."""
        return ops.clone(self)

    def to(self, *args, **kwargs):
        """This tensor on another device and/or of another dtype, in PyTorch's call forms:

        - ``to(dtype, non_blocking=False, copy=False)``
        - ``to(device=None, dtype=None, non_blocking=False, copy=False)`` (``device`` a
          :class:`~fastgrad.device`, a string such as ``"cpu"`` or an int)
        - ``to(other, non_blocking=False, copy=False)``: ``other``'s device and dtype

        each with the keyword ``memory_format`` (``fastgrad.preserve_format`` or
        ``fastgrad.contiguous_format``). Returns self when nothing changes, unless ``copy``;
        the cast and the copy to another device are differentiable. ``non_blocking`` is
        accepted and has no effect (copies are synchronous).

        Raises:
            RuntimeError: a device this build cannot hold tensors on (``"cuda"`` without CUDA
                arrays...), or a malformed device string.
            TypeError: arguments that fit none of the forms, or a dtype a tensor cannot hold.
        """
        device, dtype, _, copy, memory_format = _to_arguments(args, kwargs, "to")
        result = self if device is None else ops.to_device(self, device)
        result = result if dtype is None else ops.cast(result, dtype)
        if memory_format is dtypes.contiguous_format:
            result = result.contiguous()
        if copy and result is self:
            result = ops.clone(self)
        return result

    def cpu(self, memory_format=dtypes.preserve_format):
        """This tensor on the CPU (self when it is there already)."""
        return self.to("cpu", memory_format=memory_format)

    def cuda(self, device=None, non_blocking=False, memory_format=dtypes.preserve_format):
        """This tensor on a CUDA device (``device``: None for the current one, an int or a
        device).

        Raises:
            RuntimeError: no CUDA device is available (:func:`fastgrad.cuda.is_available`).
        """
        return self.to(_cuda_device(device), non_blocking=non_blocking,
                       memory_format=memory_format)

    def type(self, dtype=None, non_blocking=False):
        """With no ``dtype``, the type name PyTorch gives, such as ``"torch.FloatTensor"``
        (:data:`fastgrad.dtypes.TYPE_NAMES`); otherwise this tensor cast to ``dtype``, which
        may also be such a name (``"torch.LongTensor"`` or ``"fastgrad.LongTensor"``).

        Raises:
            ValueError: an unknown type name.
            RuntimeError: a CUDA type name (``"torch.cuda.FloatTensor"``).
        """
        if dtype is None:
            return "torch." + dtypes.TYPE_NAMES.get(self._data.dtype, self._data.dtype.name)
        if isinstance(dtype, str):
            dtype = _dtype_of_type_name(dtype)
        return self.to(dtype, non_blocking)

    def contiguous(self, memory_format=dtypes.contiguous_format):
        """Self when its elements are already in C order, else a differentiable C-order copy."""
        _check_contiguous_format(memory_format, "contiguous")
        return self if self._data.flags.c_contiguous else ops.clone(self)

    def float(self):
        return self.to(dtypes.float32)

    def double(self):
        return self.to(dtypes.float64)

    def half(self):
        return self.to(dtypes.float16)

    def long(self):
        return self.to(dtypes.int64)

    def int(self):
        return self.to(dtypes.int32)

    def short(self):
        return self.to(dtypes.int16)

    def char(self):
        return self.to(dtypes.int8)

    def byte(self):
        return self.to(dtypes.uint8)

    def bool(self):
        return self.to(dtypes.bool_)

    def __repr__(self):
        data = _to_host(self._data)
        # PyTorch prints 4 decimals unless every value is whole ("1., 2.")
        whole = data.dtype.kind != "f" or not np.any(np.isfinite(data) & (data != np.round(data)))
        body = np.array2string(data, separator=", ", prefix="tensor(", precision=4,
                               floatmode="maxprec_equal" if whole else "fixed")
        extras = [] if type(self._data) is np.ndarray else [f"device='{self.device}'"]
        if self._data.dtype not in (dtypes.float32, dtypes.int64, dtypes.bool_) \
                or self._data.size == 0:
            extras.append(f"dtype={self._data.dtype}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{type(self.grad_fn).__name__}Backward>")
        elif self._requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body] + extras) + ")"

    def __format__(self, format_spec):
        """A 0-d tensor formats as its number (``f"{loss:.4f}"``); others only with an empty
        spec, as their repr (PyTorch's rule: a one-element 1-d tensor takes no ``.4f``)."""
        if self._data.ndim == 0:
            return self._data.item().__format__(format_spec)
        return object.__format__(self, format_spec)

    def __bool__(self):
        if self._data.size != 1:
            raise RuntimeError(f"the truth value of a Tensor with {self._data.size} elements "
                               "is ambiguous")
        autograd._untraced("a tensor's value decided a branch (bool())")
        return bool(self._data)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self._data.dtype.kind not in "iu" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be used as an index")
        autograd._untraced("a tensor's value was read on the host (as an index)")
        return int(self._data.item())

    __hash__ = object.__hash__

    # ------------------------------------------------------------------------------ autograd
    def backward(self, gradient=None, retain_graph=None):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        Args:
            gradient: d(loss)/d(self), required unless self holds a single element.
            retain_graph: keep the graph so backward can run through it again
                (default False: the graph's saved arrays are freed).
        """
        autograd.backward(self, (gradient,), retain_graph=bool(retain_graph))

    def register_hook(self, hook):
        """Call ``hook(grad)`` with this tensor's gradient each time a backward computes it.

        PyTorch's semantics: the gradient is complete (summed over every use of the tensor)
        when the hook sees it; a hook that returns a Tensor (same shape and dtype) replaces
        the gradient, which then flows on to earlier nodes, or, for a leaf, is what
        accumulates into ``.grad``; returning None keeps it. Hooks run in the order they were
        registered, each seeing what the previous returned. Works on leaves and non-leaves,
        and for the inputs of :func:`fastgrad.autograd.grad`. The hook must not modify its
        argument in place.

        Args:
            hook: a callable ``hook(grad) -> Tensor or None``.

        Returns:
            A :class:`~fastgrad.autograd.RemovableHandle`; ``handle.remove()`` unregisters
            the hook.

        Raises:
            RuntimeError: the tensor does not require gradients.
        """
        if not callable(hook):
            raise TypeError(f"hook must be callable, got {type(hook).__name__}")
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require "
                               "gradient")
        autograd._untraced("a tensor hook was registered")
        if self._hooks is None:
            self._hooks = {}
            node = self.grad_fn
            if node is not None:
                # the node runs the hooks, so they work even after this Tensor is gone
                if node.tensor_hooks is None:
                    node.tensor_hooks = {}
                node.tensor_hooks[self._output_nr] = self._hooks
        handle = autograd.RemovableHandle(self._hooks)
        self._hooks[handle.id] = hook
        return handle

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(self)`` each time a backward has finished accumulating this leaf's
        gradient into ``.grad``.

        PyTorch's semantics: once per backward that gives the leaf a gradient, after the sum
        over all its uses is in ``.grad`` (and after its tensor hooks); the hook reads or
        changes ``self.grad`` in place and returns None. Not called by
        :func:`fastgrad.autograd.grad`, which accumulates nothing. Distributed data-parallel
        training uses it to start all-reducing a bucket of gradients as soon as the bucket is
        complete, while the backward goes on.

        Args:
            hook: a callable ``hook(tensor) -> None``.

        Returns:
            A :class:`~fastgrad.autograd.RemovableHandle`.

        Raises:
            RuntimeError: the tensor is not a leaf, or does not require gradients.
        """
        if not callable(hook):
            raise TypeError(f"hook must be callable, got {type(hook).__name__}")
        if self.grad_fn is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf "
                               "tensors")
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require "
                               "gradient")
        if self._post_hooks is None:
            self._post_hooks = {}
        handle = autograd.RemovableHandle(self._post_hooks, autograd._post_hook_ids)
        self._post_hooks[handle.id] = hook
        autograd._post_hook_ids[handle.id] = True
        return handle

    # ------------------------------------------------------------------------------ in place
    def _check_inplace(self):
        if autograd.is_grad_enabled() and self._requires_grad:
            kind = "a leaf Tensor that requires grad" if self.grad_fn is None \
                else "a Tensor that is part of a graph"
            raise RuntimeError(f"in-place operation on {kind}; wrap it in fastgrad.no_grad()")

    def _write(self, values, argument="src"):
        """Overwrite this tensor's values in place (broadcast to its shape, cast to its
        dtype); ``argument`` names ``values`` in errors."""
        self._check_inplace()
        values = values._data if isinstance(values, Tensor) else values
        if type(values) not in (int, float, bool):  # a Python scalar fits: the common fill_
            shape = np.shape(values)
            try:
                broadcast = np.broadcast_shapes(shape, self.shape)
            except ValueError:
                broadcast = None
            if broadcast != self.shape:
                raise RuntimeError(f"{argument} of shape {shape} cannot be written into a "
                                   f"tensor of shape {self.shape}")
        with np.errstate(all="ignore"):  # NaN into integers, overflow to inf: as in PyTorch
            np.copyto(self._data, values, casting="unsafe")
        autograd._traced_copy(self._data, values)
        self._version += 1
        return self

    def _update(self, name, ufunc, other, alpha=1):
        """``self = ufunc(self, alpha * other)`` in place: computed in the dtype the
        out-of-place op gives, then cast to this tensor's dtype (an integer tensor times 2.7
        stays integer; PyTorch refuses that cast); ``other`` must broadcast to this tensor's
        shape."""
        self._check_inplace()
        if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, numbers.Number) \
                or isinstance(alpha, complex):
            raise TypeError(f"{name}: alpha must be a number, got {type(alpha).__name__}")
        a, b = ops._binary_operands(self.detach(), other)
        result = a.dtype
        if name == "div_" and result.kind != "f":
            result = dtypes.default_float
        if name == "sub_" and result.kind == "b":
            raise RuntimeError("sub_: subtracting a bool other from a bool tensor is not "
                               "supported")
        a, b = a._data, getattr(b, "_data", b)
        with np.errstate(all="ignore"):
            if alpha != 1:
                b = b * np.asarray(alpha).astype(result)
            return self._write(ufunc(a, b), "other")

    def copy_(self, src):
        """Copy ``src`` into this tensor in place (broadcast, cast to this dtype), from any
        device, as PyTorch's does (the values cross between devices by an explicit copy)."""
        values = _as_tensor(src, "src")._data
        if type(values) is not type(self._data):  # another device's array
            values = _move_array(values, self.device)
        return self._write(values, "src")

    def fill_(self, value):
        """Set every element to ``value`` (a number, or a 0-d Tensor)."""
        if isinstance(value, Tensor):
            if value.ndim != 0:
                raise RuntimeError(f"fill_ takes a 0-dimensional value tensor, got one of "
                                   f"shape {value.shape}")
            value = value.item()
        if not isinstance(value, (numbers.Real, np.bool_)):
            raise TypeError(f"fill_: value must be a number, got {type(value).__name__}")
        # a Python number is written as it is (no shape to check)
        return self._write(value if type(value) in (int, float, bool) else np.asarray(value),
                           "value")

    def zero_(self):
        return self._write(0, "value")

    def add_(self, other, alpha=1):
        return self._update("add_", np.add, other, alpha)

    def sub_(self, other, alpha=1):
        return self._update("sub_", np.subtract, other, alpha)

    def mul_(self, other):
        return self._update("mul_", np.multiply, other)

    def div_(self, other):
        return self._update("div_", np.true_divide, other)

    def clamp_(self, min=None, max=None):
        self._check_inplace()
        return self._write(ops.clamp(self.detach(), min, max)._data, "min")

    def _in_graph(self):
        """True for a non-leaf tensor whose history autograd is recording."""
        return self.grad_fn is not None and autograd.is_grad_enabled()

    # Augmented assignment (``out += identity`` in every residual block): on a tensor inside a
    # graph, Python's rebinding of the name gives PyTorch's values and gradients from the
    # out-of-place result, which fastgrad's autograd can record (it cannot rewrite a graph
    # tensor's history in place); elsewhere the tensor is updated in place, as in PyTorch.
    def __iadd__(self, other):
        return ops.add(self, other) if self._in_graph() else self.add_(other)

    def __isub__(self, other):
        return ops.sub(self, other) if self._in_graph() else self.sub_(other)

    def __imul__(self, other):
        return ops.mul(self, other) if self._in_graph() else self.mul_(other)

    def __itruediv__(self, other):
        return ops.div(self, other) if self._in_graph() else self.div_(other)

    # ----------------------------------------------------------------------------- operators
    def __add__(self, other):
        return ops.add(self, other)

    def __radd__(self, other):
        return ops.add(other, self)

    def __sub__(self, other):
        return ops.sub(self, other)

    def __rsub__(self, other):
        return ops.sub(other, self)

    def __mul__(self, other):
        return ops.mul(self, other)

    def __rmul__(self, other):
        return ops.mul(other, self)

    def __truediv__(self, other):
        return ops.div(self, other)

    def __rtruediv__(self, other):
        return ops.div(other, self)

    def __pow__(self, other):
        return ops.pow(self, other)

    def __rpow__(self, other):
        return ops.pow(other, self)

    def __neg__(self):
        return ops.neg(self)

    def __matmul__(self, other):
        return ops.matmul(self, other)

    def __rmatmul__(self, other):
        return ops.matmul(other, self)

    def __getitem__(self, index):
        return ops.index(self, index)

    def __lt__(self, other):
        return ops.compare(np.less, self, other)

    def __le__(self, other):
        return ops.compare(np.less_equal, self, other)

    def __gt__(self, other):
        return ops.compare(np.greater, self, other)

    def __ge__(self, other):
        return ops.compare(np.greater_equal, self, other)

    def __eq__(self, other):
        return ops.compare(np.equal, self, other)

    def __ne__(self, other):
        return ops.compare(np.not_equal, self, other)

    def __abs__(self):
        return ops.abs(self)

    # ------------------------------------------------------------------------ tensor methods
    def add(self, other):
        return ops.add(self, other)

    def sub(self, other):
        return ops.sub(self, other)

    def mul(self, other):
        return ops.mul(self, other)

    def div(self, other):
        return ops.div(self, other)

    def pow(self, exponent):
        return ops.pow(self, exponent)

    def neg(self):
        return ops.neg(self)

    def matmul(self, other):
        return ops.matmul(self, other)

    def exp(self):
        return ops.exp(self)

    def log(self):
        return ops.log(self)

    def sqrt(self):
        return ops.sqrt(self)

    def abs(self):
        return ops.abs(self)

    def tanh(self):
        return ops.tanh(self)

    def sigmoid(self):
        return ops.sigmoid(self)

    def relu(self):
        return ops.relu(self)

    # The methods below pass their arguments through untouched: the functions in ops own the
    # signatures (keyword names, aliases such as axis=) and the checks.
    def clamp(self, *args, **kwargs):
        return ops.clamp(self, *args, **kwargs)

    clip = clamp

    def sum(self, *args, **kwargs):
        return ops.sum(self, *args, **kwargs)

    def mean(self, *args, **kwargs):
        return ops.mean(self, *args, **kwargs)

    def max(self, *args, **kwargs):
        return ops.max(self, *args, **kwargs)

    def argmax(self, *args, **kwargs):
        return ops.argmax(self, *args, **kwargs)

    def softmax(self, *args, **kwargs):
        return ops.softmax(self, *args, **kwargs)

    def log_softmax(self, *args, **kwargs):
        return ops.log_softmax(self, *args, **kwargs)

    def reshape(self, *shape, **kwargs):
        return ops.reshape(self, *shape, **kwargs)

    view = reshape

    def flatten(self, *args, **kwargs):
        return ops.flatten(self, *args, **kwargs)

    def transpose(self, *args, **kwargs):
        return ops.transpose(self, *args, **kwargs)

    def t(self):
        if self._data.ndim > 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, got "
                               f"{self._data.ndim} dims")
        return self.T

    def permute(self, *dims, **kwargs):
        return ops.permute(self, *dims, **kwargs)

    def squeeze(self, *args, **kwargs):
        return ops.squeeze(self, *args, **kwargs)

    def unsqueeze(self, *args, **kwargs):
        return ops.unsqueeze(self, *args, **kwargs)


def _is_dtype(value):
    """True for what ``to()`` takes as a dtype: a NumPy dtype, or a scalar type such as
    ``numpy.float32`` or Python's ``float`` (float64, as in PyTorch)."""
    return isinstance(value, np.dtype) or (
        isinstance(value, type) and issubclass(value, (np.generic, bool, int, float)))


#: ``to()``'s forms, by the kind of its first positional argument: the names its positional
#: arguments bind to.
_TO_FORMS = {"tensor": ("tensor", "non_blocking", "copy"),
             "dtype": ("dtype", "non_blocking", "copy"),
             "device": ("device", "dtype", "non_blocking", "copy")}


def _to_arguments(args, kwargs, name):
    """``(device, dtype, non_blocking, copy, memory_format)`` from the arguments of a
    ``to(*args, **kwargs)`` call in one of PyTorch's three forms (:meth:`Tensor.to`); the
    device resolved (None when not given), the dtype resolved and checked. ``name`` names the
    method in errors."""
    first = args[0] if args else None
    form = "tensor" if isinstance(first, Tensor) else "dtype" if _is_dtype(first) else "device"
    names = _TO_FORMS[form]
    if len(args) > len(names):
        raise TypeError(f"{name}() takes at most {len(names)} positional arguments "
                        f"({', '.join(names)}), got {len(args)}")
    bound = dict(zip(names, args))
    for key, value in kwargs.items():
        if key not in names and key != "memory_format":
            raise TypeError(f"{name}() got an unexpected keyword argument {key!r} (in the form "
                            f"{name}({', '.join(names)}, *, memory_format))")
        if key in bound:
            raise TypeError(f"{name}() got multiple values for argument {key!r}")
        bound[key] = value
    if form == "tensor":
        other = bound["tensor"]
        device, dtype = other.device, other.dtype
    else:
        device, dtype = bound.get("device"), bound.get("dtype")
    if device is not None:
        device = _resolve_device(device)
    if dtype is not None:
        dtype = dtypes.resolve(dtype)
        if dtype.kind not in "biuf":
            raise TypeError(f"dtype must be a bool, integer or floating dtype, got {dtype}")
    non_blocking = _checks.flag(bound.get("non_blocking", False), "non_blocking")
    copy = _checks.flag(bound.get("copy", False), "copy")
    memory_format = bound.get("memory_format", dtypes.preserve_format)
    if not isinstance(memory_format, dtypes.memory_format):
        raise TypeError(f"memory_format must be fastgrad.preserve_format or "
                        f"fastgrad.contiguous_format, got {memory_format!r}")
    return device, dtype, non_blocking, copy, memory_format


def _dtype_of_type_name(name):
    """The dtype ``Tensor.type()`` names ``name`` (``"torch.FloatTensor"``...)."""
    module, _, type_name = name.rpartition(".")
    if module in ("torch.cuda", "fastgrad.cuda"):
        _resolve_device("cuda", "dtype")  # raises: no CUDA backend
    if module in ("torch", "fastgrad"):
        for dtype, known in dtypes.TYPE_NAMES.items():
            if known == type_name:
                return dtype
    raise ValueError(f"invalid type: {name!r} (expected a name such as 'torch.FloatTensor': "
                     f"{', '.join(dtypes.TYPE_NAMES.values())})")


def _check_contiguous_format(memory_format, name):
    if memory_format is not dtypes.contiguous_format:
        raise RuntimeError(f"{name}() supports memory_format=fastgrad.contiguous_format only, "
                           f"got {memory_format!r}")


def _as_tensor(value, argument):
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray) or _device_arrays(value) is not None:
        if value.dtype.kind not in "biuf":
            raise TypeError(f"{argument} must hold bool, integer or floating values, got "
                            f"dtype {value.dtype}")
        return Tensor(value)
    raise TypeError(f"{argument} must be a Tensor or numpy.ndarray, got {type(value).__name__}")


def tensor(data, *, dtype=None, device=None, requires_grad=False):
    """A new tensor holding a copy of ``data``.

    Dtypes follow PyTorch: Python floats give float32 (the default dtype), Python ints int64,
    bools bool, NumPy arrays and scalars keep their dtype; ``dtype`` overrides.

    Args:
        data: a number, a (nested) sequence, a NumPy array, a device array (CuPy's: the
            tensor is on its device unless ``device`` says otherwise), a Tensor, or anything
            with ``__array__``.
        dtype: a NumPy dtype (``fastgrad.float32``, ``fastgrad.float64``, ``fastgrad.int64``...).
        device: where the tensor lives (:func:`fastgrad.device.resolve`; the CPU unless
            ``data`` is a tensor elsewhere).
        requires_grad: record operations on the result for backward.
    """
    where = None if device is None else _resolve_device(device)
    if isinstance(data, Tensor):
        where = data.device if where is None else where
        data = _to_host(data._data)
    elif _device_arrays(data) is not None:  # a device library's array (CuPy's): its device
        where = _array_device(data) if where is None else where
        data = _to_host(data)
    explicit = dtypes.resolve(dtype) if dtype is not None else None
    if explicit is not None and explicit.kind not in "biuf":
        raise TypeError(f"dtype must be a bool, integer or floating dtype, got {explicit}")
    keeps_dtype = isinstance(data, (np.ndarray, np.generic)) or hasattr(data, "__array__")
    try:
        array = np.array(data, copy=True)
    except (TypeError, ValueError, OverflowError) as error:
        raise TypeError(f"data must be a number, a sequence of numbers or an array, got "
                        f"{type(data).__name__}: {error}") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"data must hold bool, integer or floating values, got dtype "
                        f"{array.dtype}")
    if explicit is not None and explicit != array.dtype:
        if explicit.kind in "iu" and array.dtype.kind in "iu" and array.size:
            info = np.iinfo(explicit)
            if array.min() < info.min or array.max() > info.max:
                raise RuntimeError(f"data holds values in [{array.min()}, {array.max()}], out "
                                   f"of the range of dtype {explicit}")
        with np.errstate(all="ignore"):  # NaN to an integer: unspecified, as in PyTorch
            array = array.astype(explicit)
    elif explicit is None and not keeps_dtype and array.dtype == dtypes.float64:
        with np.errstate(over="ignore"):  # beyond float32's range: inf, as in PyTorch
            array = array.astype(dtypes.default_float)
    if where is not None and where.type != "cpu":
        array = _move_array(array, where)
    return Tensor(array, requires_grad=requires_grad)


def from_numpy(array):
    """A tensor that shares memory with the NumPy array ``array`` (changes show in both)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy expects a numpy.ndarray, got {type(array).__name__}")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"from_numpy supports arrays of bool, integer and floating dtypes, "
                        f"got an array of dtype {array.dtype}")
    return Tensor(array)


def is_tensor(obj):
    """True when ``obj`` is a fastgrad Tensor (a Parameter included)."""
    return isinstance(obj, Tensor)


def is_floating_point(input):
    """True when ``input`` (a Tensor) holds a floating dtype."""
    return _as_tensor_argument(input, "is_floating_point").is_floating_point()


def numel(input):
    """The number of elements of ``input`` (a Tensor)."""
    return _as_tensor_argument(input, "numel").numel()


def _as_tensor_argument(input, name):
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}(): argument 'input' must be Tensor, not {type(input).__name__}")
    return input


def _bind_methods():
    """Give Tensor the methods the op modules list in their ``TENSOR_METHODS`` tables (one
    table per module, beside the functions, instead of a wrapper here for each)."""
    from . import creation, pointwise, reductions, shapes
    for module in (creation, pointwise, reductions, shapes):
        for name, function in module.TENSOR_METHODS.items():
            if name in Tensor.__dict__:
                raise RuntimeError(f"{module.__name__} redefines Tensor.{name}")
            setattr(Tensor, name, function)


_bind_methods()
