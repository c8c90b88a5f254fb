"""Shape and selection operations beyond ``reshape``/``permute``/``cat`` of
:mod:`fastgrad.ops` (PyTorch's names: ``chunk``, ``split``, ``expand``, ``repeat``,
``gather``, ``masked_fill``, ``flip``, ``tril``, ``einsum``, ``pad``...), item assignment
(``x[key] = value``) and the in-place forms PyTorch has (``masked_fill_``, ``scatter_``...).

Views stay views where PyTorch's are (``chunk``, ``split``, ``unbind``, ``narrow``,
``expand``, ``movedim``: NumPy views of the input's memory); ``flip``, ``roll``, ``repeat``,
``gather`` and the other selections copy, as in PyTorch. Each op reuses the Functions of
:mod:`fastgrad.ops` where one fits (a chunk is an :class:`~fastgrad.ops.Index` view, ``mm``
is ``matmul``) and adds a Function only for a backward of its own.

In-place writes (``x[key] = value``, ``masked_fill_``, ``scatter_``...) follow PyTorch's
rules: refused on a leaf that requires grad while gradients are recorded; differentiable when
the tensor or the written value is part of a graph, in which case the tensor takes the write's
place in the graph (:func:`_in_place`).

``TENSOR_METHODS`` maps each Tensor method this module provides to its implementation;
:mod:`fastgrad.tensor` binds them.
"""
import builtins
import math
import numbers
import string
import weakref

import numpy as np

from . import autograd
from . import dtypes
from . import ops
from ._checks import check_broadcast, flag, integer, is_tensor, normalize_dim, tensor_input
from .autograd import Function
from .device import full, to_device_of, zeros
from .ops import Index, index_key, unbroadcast
from .tensor import Tensor

__all__ = [
    "addmm", "argwhere", "bmm", "chunk", "diag", "dot", "einsum", "flip", "fliplr", "flipud",
    "gather", "index_select", "masked_fill", "masked_select", "mm", "moveaxis", "movedim",
    "mv", "narrow", "nonzero", "outer", "roll", "scatter", "scatter_add", "split",
    "swapaxes", "swapdims", "take_along_dim", "tensor_split", "tile", "tril", "triu",
    "unbind", "unflatten",
]


# ------------------------------------------------------------------------------------ helpers
def _int(value, argument):
    """``value`` (an int, a NumPy integer or a 0-d integer tensor) as an int."""
    if is_tensor(value) and value.ndim == 0 and value.dtype.kind in "iu":
        return int(value.item())
    return integer(value, argument)


def _ints(values, argument):
    """``values`` (a sequence of ints) as a tuple of ints."""
    if not isinstance(values, (tuple, list)):
        raise TypeError(f"{argument} must be a tuple of ints, got {type(values).__name__} "
                        f"{values!r}")
    return tuple(_int(v, argument) for v in values)


def _varargs(values, argument):
    """Method arguments given as ``f(1, 2)`` or ``f((1, 2))`` as a tuple of ints."""
    if len(values) == 1 and isinstance(values[0], (tuple, list)):
        values = values[0]
    return _ints(tuple(values), argument)


def _dims(dims, ndim, argument="dims"):
    """``dims`` (an int or a sequence of ints) as distinct non-negative axes, in order."""
    dims = dims if isinstance(dims, (tuple, list)) else (dims,)
    axes = tuple(normalize_dim(d, builtins.max(ndim, 1), argument) for d in dims)
    for axis in axes:
        if axes.count(axis) > 1:
            raise RuntimeError(f"dim {axis} appears multiple times in the list of {argument}")
    return axes


def _slice_along(input, axis, start, stop):
    """``input[..., start:stop, ...]`` along ``axis``: a view, differentiable."""
    return Index.apply(input, (slice(None),) * axis + (slice(start, stop), Ellipsis), None)


def _index_tensor(index, name, dtypes_allowed=(dtypes.int64,)):
    """``index`` checked to be a Tensor of one of ``dtypes_allowed``; its array."""
    if not is_tensor(index):
        raise TypeError(f"{name}(): index must be a Tensor, got {type(index).__name__}")
    if index.dtype not in dtypes_allowed:
        allowed = " or ".join(str(d) for d in dtypes_allowed)
        raise RuntimeError(f"{name}(): Expected dtype {allowed} for index, got {index.dtype}")
    return index._data


def _number(value, argument):
    """A Python or NumPy number (not a Tensor), checked."""
    if isinstance(value, np.generic):
        value = value.item()
    if not isinstance(value, numbers.Number) or isinstance(value, complex):
        raise TypeError(f"{argument} must be a number or a Tensor, got "
                        f"{type(value).__name__} {value!r}")
    return value


def _as_dtype(value, dtype):
    """A number as a 0-d array of ``dtype`` (a float into an integer tensor truncates, as a
    PyTorch fill does)."""
    with np.errstate(all="ignore"):
        return np.asarray(value).astype(dtype)


def _fits(shape, target):
    """True when an array of ``shape`` broadcasts to exactly ``target``."""
    try:
        return np.broadcast_shapes(shape, target) == tuple(target)
    except ValueError:
        return False


# ------------------------------------------------------------------------------ in-place work
def _saved_arrays(node):
    """The arrays a graph node keeps for its backward (attributes, or inside tuples)."""
    for value in vars(node).values():
        if isinstance(value, np.ndarray):
            yield value
        elif isinstance(value, (tuple, list)):
            yield from (v for v in value if isinstance(v, np.ndarray))


def _stand_in(tensor):
    """A Tensor holding ``tensor``'s memory and its place in the graph, to stand for its
    values before an in-place write. The node that made ``tensor`` sees the stand-in as its
    output, unchanged, unless that node kept the output's values for its backward (``exp``
    does): it then keeps seeing ``tensor``, whose version the write changes, so that backward
    fails as PyTorch's does, the values it needs being gone."""
    old = Tensor(tensor._data)
    node = tensor.grad_fn
    if node is not None:
        old.grad_fn, old._output_nr, old._requires_grad = node, tensor._output_nr, True
        released = node.inputs is None  # a backward already ran through it (and will refuse)
        if not released and not builtins.any(np.may_share_memory(a, tensor._data)
                                             for a in _saved_arrays(node)):
            node.output_refs = tuple(weakref.ref(old) if i == tensor._output_nr else ref
                                     for i, ref in enumerate(node.output_refs))
    return old


def _check_writable(tensor, name):
    if not tensor._data.flags.writeable:
        raise RuntimeError(f"{name}: unsupported operation: the tensor is an expanded view "
                           "(more than one element refers to a single memory location) or "
                           "read-only; clone() it before writing into it")


def _recording(tensor, sources):
    """True when an in-place write into ``tensor`` of ``sources`` (Tensors or numbers) must
    be recorded for backward."""
    return autograd.is_grad_enabled() and (tensor._requires_grad or builtins.any(
        is_tensor(s) and s._requires_grad for s in sources))


def _in_place(tensor, compute, name, *sources):
    """Make ``tensor`` hold ``compute(old)`` in place: PyTorch's in-place op semantics.

    ``compute(old)`` runs the out-of-place op on ``old``, a Tensor sharing ``tensor``'s memory
    (and, while gradients are recorded, its place in the graph); it must not keep ``old``'s
    values for its backward, and may write its result into them. The result's values are then
    ``tensor``'s, and so is its place in the graph: a tensor that did not require grad does
    once a value that does is written into it (``out[t] = h`` builds a differentiable buffer),
    and a non-leaf's gradient flows to the old values where they survived.

    Refused (RuntimeError), as in PyTorch, on a leaf that requires grad while gradients are
    recorded; also refused there on a view of another tensor's memory (fastgrad has no view
    tracking: the other tensor would miss the gradient). Every earlier use of ``tensor`` in a
    graph then fails at backward with the in-place-modification error, since its version
    changed.
    """
    _check_writable(tensor, name)
    if not _recording(tensor, sources):
        with autograd.no_grad():
            result = compute(tensor.detach())
    else:
        if tensor.grad_fn is None and tensor._requires_grad:
            raise RuntimeError(f"{name}: a leaf Variable that requires grad is being used in an "
                               "in-place operation; wrap it in fastgrad.no_grad()")
        data = tensor._data
        node = tensor.grad_fn
        aliased = (node.inputs or ()) if node is not None else ()
        if (node is None and data.base is not None) or builtins.any(
                t is not None and t._data is not data and np.may_share_memory(t._data, data)
                for t in aliased):
            raise RuntimeError(f"{name}: writing, with gradients recorded, into a view of "
                               "another tensor's memory is not supported (that tensor would "
                               "not see the gradient); write into the tensor itself, or into "
                               "a clone()")
        result = compute(_stand_in(tensor))
        tensor.grad_fn, tensor._output_nr = result.grad_fn, result._output_nr
        tensor._requires_grad = result._requires_grad
    if result._data is not tensor._data:
        np.copyto(tensor._data, result._data, casting="unsafe")
        autograd._traced_copy(tensor._data, result._data)
    tensor._version += 1
    return tensor


# --------------------------------------------------------------------------------- item write
def _put(x, value, basic, advanced):
    """``x[basic][advanced] = value`` (``x[basic] = value`` when ``advanced`` is None), in
    ``x``'s memory."""
    view = x[basic]
    if advanced is None:
        view[...] = value
    else:
        view[advanced] = value


class IndexPut(Function):
    """``x[basic][advanced] = value`` written into ``x``'s memory (the keys of
    :func:`fastgrad.ops.index_key`; ``value`` broadcast to the indexed shape). The old
    values' gradient is the output's, zero where written; the value's is the output's at the
    written places, summed over where it was broadcast (a place written twice gives both
    writes its gradient, as PyTorch's)."""

    def forward(self, x, value, basic, advanced):
        self.basic, self.advanced = basic, advanced
        self.value_shape, self.value_dtype = value.shape, value.dtype
        _put(x, value, basic, advanced)
        return x

    def backward(self, grad):
        basic, advanced = self.basic, self.advanced
        written = grad[basic] if advanced is None else grad[basic][advanced]
        grad_value = None
        if self.needs_input_grad[1]:
            grad_value = unbroadcast(written, self.value_shape, self.value_dtype)
        grad_x = None
        if self.needs_input_grad[0]:
            grad_x = grad.copy()
            if advanced is None:
                grad_x[basic] = 0
            else:
                grad_x[basic][advanced] = 0
        return grad_x, grad_value, None, None


def _strip_leading_ones(shape):
    """``shape`` without its leading 1s: PyTorch's item assignment drops them from the value
    before broadcasting (a (1, 3) value fills a (3,) place)."""
    start = 0
    while start < len(shape) and shape[start] == 1:
        start += 1
    return shape[start:]


def setitem(self, key, value):
    """``self[key] = value``, in place, by PyTorch's indexing rules (:func:`fastgrad.ops.index`).

    ``value`` is a number (converted to this tensor's dtype) or a Tensor broadcast to the
    indexed shape (after dropping its leading size-1 dimensions). Basic keys (ints, slices,
    None, Ellipsis) copy any dtype in; keys with index tensors or masks need a value of this
    tensor's dtype, as in PyTorch. Where several indices name one place, one write wins.
    Differentiable as PyTorch's (see :func:`_in_place`): ``out[t] = h`` with ``h`` requiring
    grad makes ``out`` part of the graph; ``h[mask] = 0`` on a non-leaf stops the gradient
    at the written places.

    Raises:
        TypeError: a value that is neither a number nor a Tensor (PyTorch refuses lists and
            NumPy arrays too).
        IndexError: a bad key (as for reading).
        RuntimeError: a value that does not broadcast to the indexed shape, a dtype mismatch
            with index tensors, a leaf that requires grad while gradients are recorded.
    """
    if not is_tensor(value) and (not isinstance(value, (numbers.Number, np.generic))
                                  or isinstance(value, complex)):
        raise TypeError(f"can't assign a {type(value).__name__} to a Tensor (assign a "
                        f"number or a Tensor)")
    if key is False:
        return  # PyTorch writes nothing and checks nothing else
    basic, advanced = index_key(self.shape, key)
    if is_tensor(value):
        if advanced is not None and value.dtype != self.dtype:
            raise RuntimeError(f"Index put requires the source and destination dtypes match, "
                               f"got {self.dtype} for the destination and {value.dtype} for "
                               f"the source")
        target = self._data[basic]
        if advanced is not None:
            # the shape NumPy's advanced indexing gives, computed on a zero-strided stand-in
            # on the tensor's device (where index arrays of that device can index it)
            target = np.broadcast_to(zeros((), np.int8, target), target.shape)[advanced]
        shape = _strip_leading_ones(value.shape)
        if shape != value.shape:
            value = ops.reshape(value, shape)
        if not _fits(shape, target.shape):
            raise RuntimeError(f"shape mismatch: value tensor of shape {list(value.shape)} "
                               f"cannot be broadcast to indexing result of shape "
                               f"{list(target.shape)}")
    else:  # a NumPy scalar: it is written into an array on any device
        value = _as_dtype(_number(value, "value"), self.dtype)[()]
    _check_writable(self, "setitem")
    if not _recording(self, (value,)):  # the common case, written directly
        autograd._untraced("a tensor was written by item assignment outside autograd")
        with np.errstate(all="ignore"):  # NaN into integers, as in PyTorch
            _put(self._data, getattr(value, "_data", value), basic, advanced)
        self._version += 1
        return
    value = ops.cast(value, self.dtype) if is_tensor(value) else value
    _in_place(self, lambda old: IndexPut.apply(old, value, basic, advanced), "setitem", value)


# ---------------------------------------------------------------------------- splits, views
def _split_sizes(size, split_size):
    """PyTorch's pieces of a dimension of ``size`` cut every ``split_size``: the last may be
    shorter; one empty piece for an empty dimension."""
    if split_size < 0:
        raise RuntimeError(f"split expects split_size be non-negative, but got "
                           f"split_size={split_size}")
    if split_size == 0:
        if size:
            raise RuntimeError(f"split_size can only be 0 if dimension size is 0, but got "
                               f"dimension size of {size}")
        return [0]
    count = builtins.max(-(-size // split_size), 1)
    return [split_size] * (count - 1) + [size - split_size * (count - 1)]


def _pieces(input, sizes, axis):
    """``input`` cut along ``axis`` into consecutive views of ``sizes``."""
    starts = np.cumsum([0] + list(sizes))
    return tuple(_slice_along(input, axis, int(a), int(b)) for a, b in zip(starts, starts[1:]))


def split(tensor, split_size_or_sections, dim=0):
    """``tensor`` cut along ``dim`` into views: pieces of ``split_size_or_sections`` elements
    (an int; the last piece may be shorter) or of the sizes it lists (which must add up to
    the dimension)."""
    tensor = tensor_input(tensor)
    if tensor.ndim == 0:
        raise RuntimeError("split expects at least a 1-dimensional tensor")
    axis = normalize_dim(dim, tensor.ndim)
    size = tensor.shape[axis]
    if isinstance(split_size_or_sections, (tuple, list)):
        sizes = list(_ints(split_size_or_sections, "split_size_or_sections"))
        if builtins.any(s < 0 for s in sizes):
            raise RuntimeError(f"split_with_sizes expects split_sizes have only non-negative "
                               f"entries, but got split_sizes={sizes}")
        if builtins.sum(sizes) != size:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {size} "
                               f"(input tensor's size at dimension {axis}), but got "
                               f"split_sizes={sizes}")
    else:
        sizes = _split_sizes(size, _int(split_size_or_sections, "split_size_or_sections"))
    return _pieces(tensor, sizes, axis)


def chunk(input, chunks, dim=0):
    """``input`` cut along ``dim`` into at most ``chunks`` views of equal size (the last may
    be smaller, and there may be fewer, as in PyTorch: 6 elements in 4 chunks are 3 of 2)."""
    input = tensor_input(input)
    chunks = _int(chunks, "chunks")
    if input.ndim == 0:
        raise RuntimeError("chunk expects at least a 1-dimensional tensor")
    if chunks <= 0:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    axis = normalize_dim(dim, input.ndim)
    size = input.shape[axis]
    if size == 0:
        return _pieces(input, [0] * chunks, axis)
    return _pieces(input, _split_sizes(size, -(-size // chunks)), axis)


def tensor_split(input, indices_or_sections, dim=0):
    """``input`` cut along ``dim`` into views: ``sections`` pieces as equal as can be (the
    first ones one longer), or at the positions ``indices`` lists (Python slice rules:
    negative positions count from the end, positions past it give empty pieces). A 0-d
    integer tensor is a number of sections, a 1-d one a list of positions."""
    input = tensor_input(input)
    if input.ndim == 0:
        raise RuntimeError("tensor_split expects at least a 1-dimensional tensor, but got a "
                           "tensor with 0 dims")
    axis = normalize_dim(dim, input.ndim)
    size = input.shape[axis]
    split_at = indices_or_sections
    if is_tensor(split_at):
        if split_at.dtype.kind not in "iu" or split_at.ndim > 1:
            raise RuntimeError(f"tensor_split expects tensor_indices_or_sections to be a 0-d "
                               f"or 1-d integer tensor, got dtype {split_at.dtype} and shape "
                               f"{tuple(split_at.shape)}")
        split_at = split_at.item() if split_at.ndim == 0 else split_at.tolist()
    if isinstance(split_at, (tuple, list)):
        positions = [None] + list(_ints(split_at, "indices")) + [None]
        return tuple(Index.apply(input, (slice(None),) * axis + (slice(a, b), Ellipsis), None)
                     for a, b in zip(positions, positions[1:]))
    sections = _int(split_at, "sections")
    if sections <= 0:
        raise RuntimeError(f"number of sections must be larger than 0, got {sections}")
    small, extra = divmod(size, sections)
    return _pieces(input, [small + 1] * extra + [small] * (sections - extra), axis)


def unbind(input, dim=0):
    """The slices of ``input`` along ``dim``, as a tuple of views without that dimension."""
    input = tensor_input(input)
    if input.ndim == 0:
        raise IndexError("Dimension specified as 0 but tensor has no dimensions")
    axis = normalize_dim(dim, input.ndim)
    return tuple(Index.apply(input, (slice(None),) * axis + (i, Ellipsis), None)
                 for i in range(input.shape[axis]))


def narrow(input, dim, start, length):
    """The view of ``input`` holding ``length`` elements along ``dim`` from ``start``
    (negative: counted from the end)."""
    input = tensor_input(input)
    if input.ndim == 0:
        raise RuntimeError("narrow() cannot be applied to a 0-dim tensor.")
    axis = normalize_dim(dim, input.ndim)
    start, length = _int(start, "start"), _int(length, "length")
    size = input.shape[axis]
    if not -size <= start <= size:
        raise IndexError(f"start out of range (expected to be in range of [{-size}, {size}], "
                         f"but got {start})")
    if length < 0:
        raise RuntimeError("narrow(): length must be non-negative.")
    if start < 0:
        start += size
    if start + length > size:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size "
                           f"({size}).")
    return _slice_along(input, axis, start, start + length)


def movedim(input, source, destination):
    """``input`` with the dimensions ``source`` moved to the places ``destination``, the
    others keeping their order (a view)."""
    input = tensor_input(input)
    ndim = input.ndim
    src = source if isinstance(source, (tuple, list)) else (source,)
    dst = destination if isinstance(destination, (tuple, list)) else (destination,)
    if len(src) != len(dst):
        raise RuntimeError(f"movedim: Invalid source or destination dims: source ({list(src)} "
                           f"dims) should contain the same number of dims as destination "
                           f"({list(dst)} dims)")
    src = [normalize_dim(d, builtins.max(ndim, 1), "source") for d in src]
    dst = [normalize_dim(d, builtins.max(ndim, 1), "destination") for d in dst]
    for name, dims in (("source", src), ("destination", dst)):
        if len(set(dims)) != len(dims):
            raise RuntimeError(f"movedim: repeated dim in `{name}` ({dims})")
    if ndim == 0:
        return ops.reshape(input, ())
    rest = iter(d for d in range(ndim) if d not in src)
    placed = dict(zip(dst, src))
    return ops.permute(input, tuple(placed[d] if d in placed else next(rest)
                                    for d in range(ndim)))


moveaxis = movedim


def swapaxes(input, axis0, axis1):
    """``input`` with dimensions ``axis0`` and ``axis1`` swapped (NumPy's name for
    ``transpose``)."""
    return ops.transpose(input, axis0, axis1)


def swapdims(input, dim0, dim1):
    """``input`` with dimensions ``dim0`` and ``dim1`` swapped (``transpose``)."""
    return ops.transpose(input, dim0, dim1)


def unflatten(input, dim, sizes):
    """``input`` with dimension ``dim`` split into ``sizes`` (one of them may be -1)."""
    input = tensor_input(input)
    axis = normalize_dim(dim, input.ndim)
    sizes = _ints(sizes, "sizes")
    if not sizes:
        raise RuntimeError("unflatten: sizes must be non-empty")
    size = input.shape[axis] if input.ndim else 1
    known = math.prod(s for s in sizes if s != -1)
    if sizes.count(-1) > 1 or (sizes.count(-1) and (known == 0 or size % known)) or (
            -1 not in sizes and known != size):
        raise RuntimeError(f"unflatten: Provided sizes {list(sizes)} don't multiply up to the "
                           f"size of dim {dim} ({size}) in the input tensor")
    if -1 in sizes:
        sizes = tuple(size // known if s == -1 else s for s in sizes)
    return ops.reshape(input, input.shape[:axis] + sizes + input.shape[axis + 1:])


# ----------------------------------------------------------------------- expand and repeat
class Expand(Function):
    """``x`` broadcast to ``shape`` (a read-only view); backward sums over the broadcast
    dimensions."""

    def forward(self, x, shape):
        self.shape = x.shape
        return np.broadcast_to(x, shape)

    def backward(self, grad):
        return unbroadcast(grad, self.shape, grad.dtype), None


def expand(input, *sizes):
    """``input`` viewed with size-1 dimensions repeated to ``sizes`` (and new leading
    dimensions); -1 keeps a size. No memory is copied: the view is read-only (PyTorch
    refuses most writes into an expanded tensor too)."""
    input = tensor_input(input)
    sizes = _varargs(sizes, "size")
    shape = input.shape
    if len(sizes) < len(shape):
        raise RuntimeError(f"expand: the number of sizes provided ({len(sizes)}) must be "
                           f"greater or equal to the number of dimensions in the tensor "
                           f"({len(shape)})")
    lead = len(sizes) - len(shape)
    target = []
    for i, size in enumerate(sizes):
        if i < lead:
            if size < 0:
                raise RuntimeError(f"The expanded size of the tensor ({size}) isn't allowed in "
                                   f"a leading, non-existing dimension {i}")
            target.append(size)
            continue
        existing = shape[i - lead]
        if size == -1:
            size = existing
        if size != existing and existing != 1:
            raise RuntimeError(f"The expanded size of the tensor ({size}) must match the "
                               f"existing size ({existing}) at non-singleton dimension {i}.  "
                               f"Target sizes: {list(sizes)}.  Tensor sizes: {list(shape)}")
        if size < 0:
            raise RuntimeError(f"expand: size {size} at dimension {i} is negative")
        target.append(size)
    target = tuple(target)
    return input if target == shape else Expand.apply(input, target)


def expand_as(input, other):
    """``input`` expanded to ``other``'s shape."""
    return expand(input, tuple(tensor_input(other).shape))


class Repeat(Function):
    """``x`` tiled ``reps`` times along each dimension (``reps`` as long as ``x.ndim``);
    backward sums the copies."""

    def forward(self, x, reps):
        self.shape, self.reps = x.shape, reps
        return np.tile(x, reps)

    def backward(self, grad):
        interleaved = tuple(v for pair in zip(self.reps, self.shape) for v in pair)
        return grad.reshape(interleaved).sum(axis=tuple(range(0, grad.ndim * 2, 2))), None


def repeat(input, *sizes):
    """``input`` repeated ``sizes[i]`` times along dimension ``i`` (a copy); extra leading
    sizes add dimensions. PyTorch's ``Tensor.repeat`` (``torch.repeat`` does not exist)."""
    input = tensor_input(input)
    sizes = _varargs(sizes, "repeats")
    if len(sizes) < input.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number "
                           "of dimensions of tensor")
    if builtins.any(s < 0 for s in sizes):
        raise RuntimeError(f"Trying to create tensor with negative dimension: repeats "
                           f"{list(sizes)}")
    shape = (1,) * (len(sizes) - input.ndim) + tuple(input.shape)
    return Repeat.apply(ops.reshape(input, shape), sizes)


def tile(input, dims):
    """``input`` repeated ``dims[i]`` times along dimension ``i``; with fewer ``dims`` than
    dimensions the leading ones repeat once (NumPy's ``tile``)."""
    input = tensor_input(input)
    dims = _ints(dims if isinstance(dims, (tuple, list)) else (dims,), "dims")
    return repeat(input, (1,) * (input.ndim - len(dims)) + dims)


def _tile_method(self, *dims):
    return tile(self, _varargs(dims, "dims"))


def view_as(self, other):
    """This tensor viewed with ``other``'s shape."""
    return ops.reshape(self, tuple(tensor_input(other).shape))


reshape_as = view_as


# ------------------------------------------------------------------------- gather and scatter
def _along(index, axis):
    """The NumPy key that pairs each element of ``index`` with its own position in every
    dimension but ``axis``, where it takes the index's value."""
    key = list(np.indices(index.shape, sparse=True))
    key[axis] = index
    return tuple(key)


def _check_positions(index, size, axis):
    """PyTorch's RuntimeError for positions outside ``[0, size)`` (no negative ones)."""
    if index.size:
        low, high = index.min(), index.max()
        if low < 0 or high >= size:
            raise RuntimeError(f"index {low if low < 0 else high} is out of bounds for "
                               f"dimension {axis} with size {size}")


def _scatter_operands(name, input, dim, index, src=None):
    """The checked ``(input, axis, index array)`` of gather and the scatters, with ``src``
    (a Tensor) checked too; 0-d operands act as 1-d."""
    input = tensor_input(input)
    index = _index_tensor(index, name, (dtypes.int64, dtypes.int32))
    axis = normalize_dim(dim, builtins.max(input.ndim, 1))
    ndim = builtins.max(input.ndim, 1)
    if builtins.max(index.ndim, 1) != ndim:
        raise RuntimeError(f"{name}(): Index tensor must have the same number of dimensions as "
                           f"{'input' if name == 'gather' else 'self'} tensor")
    shape = tuple(input.shape) or (1,)
    index_shape = index.shape or (1,)
    if src is not None and builtins.max(src.ndim, 1) != ndim:
        raise RuntimeError(f"{name}(): Index tensor must have the same number of dimensions as "
                           "src tensor")
    src_shape = (tuple(src.shape) or (1,)) if src is not None else None
    for d in range(ndim):
        if (d != axis and index_shape[d] > shape[d]) or (
                src_shape is not None and index_shape[d] > src_shape[d]):
            also = "" if src is None else f" and to be no larger size than src {list(src_shape)}"
            raise RuntimeError(f"{name}(): Size does not match at dimension {d}: expected index "
                               f"{list(index_shape)} to be no larger than self {list(shape)} "
                               f"apart from dimension {axis}{also}")
    _check_positions(index, shape[axis], axis)
    return input, axis, index


class Gather(Function):
    """``out[i][j] = x[index[i][j]][j]`` along ``axis`` (the key of :func:`_along`);
    backward scatter-adds, so repeated positions sum their gradients."""

    def forward(self, x, key):
        self.shape, self.key = x.shape, key
        return x[key]

    def backward(self, grad):
        out = zeros(self.shape, grad.dtype, grad)
        np.add.at(out, self.key, grad)
        return out, None


def gather(input, dim, index, *, sparse_grad=False):
    """Values of ``input`` along ``dim`` at the positions ``index`` holds (int64 or int32, as
    many dimensions as ``input``, no larger in the others): ``out[i][j] = input[index[i][j]][j]``
    for ``dim=0``. ``sparse_grad`` is accepted; gradients are dense."""
    flag(sparse_grad, "sparse_grad")
    input, axis, index = _scatter_operands("gather", input, dim, index)
    if input.ndim == 0 or index.ndim == 0:  # both at most 1-d: gathered as 1-d
        return ops.reshape(Gather.apply(ops.reshape(input, -1), _along(index.reshape(-1), 0)),
                           index.shape)
    return Gather.apply(input, _along(index, axis))


class Scatter(Function):
    """``x`` with ``src`` (its leading part the shape of the index) written at the key of
    :func:`_along`, or with the number ``src`` written there. Backward: ``x``'s gradient is
    zero where written; ``src``'s gathered from the written places."""

    def forward(self, x, src, key, index_shape):
        self.key, self.index_shape = key, index_shape
        self.src_shape = np.shape(src)
        out = x.copy()
        out[key] = src[tuple(slice(0, s) for s in index_shape)] if np.ndim(src) else src
        return out

    def backward(self, grad):
        grad_x = grad_src = None
        if self.needs_input_grad[0]:
            grad_x = grad.copy()
            grad_x[self.key] = 0
        if self.needs_input_grad[1]:
            grad_src = zeros(self.src_shape, grad.dtype, grad)
            grad_src[tuple(slice(0, s) for s in self.index_shape)] = grad[self.key]
        return grad_x, grad_src, None, None


class ScatterAdd(Function):
    """``x`` plus ``src`` (its leading part the shape of the index) added at the key of
    :func:`_along` (repeated positions add up). Backward: ``x``'s gradient passes as is;
    ``src``'s is gathered from the places it was added to."""

    def forward(self, x, src, key, index_shape):
        self.key, self.index_shape, self.src_shape = key, index_shape, src.shape
        out = x.copy()
        np.add.at(out, key, src[tuple(slice(0, s) for s in index_shape)])
        return out

    def backward(self, grad):
        grad_src = None
        if self.needs_input_grad[1]:
            grad_src = zeros(self.src_shape, grad.dtype, grad)
            grad_src[tuple(slice(0, s) for s in self.index_shape)] = grad[self.key]
        return grad, grad_src, None, None


def _scatter_source(name, input, src, value):
    """The Tensor or the number scatter writes (``src``, or the keyword ``value``), checked."""
    if (src is None) == (value is None):
        raise TypeError(f"{name}() takes the values to write as src (a Tensor or a number) or "
                        f"as value (a number), exactly one of them")
    src = value if src is None else src
    if is_tensor(src):
        if src.dtype != input.dtype:
            raise RuntimeError(f"{name}(): Expected self.dtype to be equal to src.dtype, got "
                               f"{input.dtype} and {src.dtype}")
        return src
    return _as_dtype(_number(src, "value"), input.dtype)[()]  # a scalar, for any device


def _scatter_apply(function, name, input, dim, index, src):
    input, axis, index = _scatter_operands(name, input, dim, index,
                                           src if is_tensor(src) else None)
    shape = input.shape
    if builtins.min(input.ndim, index.ndim, src.ndim if is_tensor(src) else 1) == 0:
        # all at most 1-d: scattered as 1-d
        input, index = ops.reshape(input, -1), index.reshape(-1)
        src = ops.reshape(src, -1) if is_tensor(src) else src
    return ops.reshape(function.apply(input, src, _along(index, axis), index.shape), shape)


def scatter(input, dim, index, src=None, *, value=None):
    """A copy of ``input`` with the values of ``src`` written along ``dim`` at the positions
    ``index`` holds: ``out[index[i][j]][j] = src[i][j]`` for ``dim=0``. ``src`` is a Tensor of
    ``input``'s dtype (at least the index's size) or a number (also as ``value=``):
    ``scatter(zeros, 1, labels[:, None], 1.0)`` is a one-hot encoding. Where several
    positions coincide one write wins. PyTorch's ``reduce=`` (deprecated there) is not
    offered; see :func:`scatter_add`."""
    input = tensor_input(input)
    return _scatter_apply(Scatter, "scatter", input, dim, index,
                          _scatter_source("scatter", input, src, value))


def scatter_add(input, dim, index, src):
    """A copy of ``input`` with ``src`` added along ``dim`` at the positions ``index`` holds:
    ``out[index[i][j]][j] += src[i][j]`` for ``dim=0``, repeated positions adding up."""
    input = tensor_input(input)
    if not is_tensor(src):
        raise TypeError(f"scatter_add(): src must be a Tensor, got {type(src).__name__}")
    return _scatter_apply(ScatterAdd, "scatter_add", input, dim, index,
                          _scatter_source("scatter_add", input, src, None))


def _scatter_(self, dim, index, src=None, *, value=None):
    """In-place :func:`scatter`."""
    return _in_place(self, lambda old: scatter(old, dim, index, src, value=value), "scatter_",
                     src)


def _scatter_add_(self, dim, index, src):
    """In-place :func:`scatter_add`."""
    return _in_place(self, lambda old: scatter_add(old, dim, index, src), "scatter_add_", src)


def take_along_dim(input, indices, dim=None):
    """Values of ``input`` at ``indices`` along ``dim``, the two broadcast against each other
    in the other dimensions (NumPy's ``take_along_axis``); with ``dim=None``, positions in the
    flattened ``input``."""
    input = tensor_input(input)
    index = _index_tensor(indices, "take_along_dim")
    if dim is None:
        return gather(ops.reshape(input, -1), 0, Tensor(index.reshape(-1)))
    axis = normalize_dim(dim, builtins.max(input.ndim, 1))
    if index.ndim != input.ndim:
        raise RuntimeError(f"torch.take_along_dim(): input and indices should have the same "
                           f"number of dimensions, but got {input.ndim} dimensions for input, "
                           f"and {index.ndim} dimensions for indices")
    if input.ndim == 0:
        return gather(input, axis, Tensor(index))
    others = [list(input.shape), list(index.shape)]
    for sizes in others:
        sizes[axis] = 1
    shape = list(check_broadcast(*others, names=("input", "indices")))
    index_shape = shape.copy()
    shape[axis], index_shape[axis] = input.shape[axis], index.shape[axis]
    return gather(expand(input, tuple(shape)), axis,
                  Tensor(np.broadcast_to(index, tuple(index_shape))))


def index_select(input, dim, index):
    """The slices of ``input`` along ``dim`` at the positions of ``index`` (a 0-d or 1-d
    int64 or int32 tensor), in that order, as a copy; backward sums repeated positions."""
    input = tensor_input(input)
    positions = _index_tensor(index, "index_select", (dtypes.int64, dtypes.int32))
    if positions.ndim > 1:
        raise IndexError("index_select(): Index is supposed to be a vector")
    axis = normalize_dim(dim, builtins.max(input.ndim, 1))
    size = input.shape[axis] if input.ndim else 1
    positions = positions.reshape(-1)
    if positions.size and (positions.min() < 0 or positions.max() >= size):
        bad = positions[(positions < 0) | (positions >= size)][0]
        raise RuntimeError(f"index_select(): index {bad} is out of range for dimension {axis} "
                           f"with size {size}")
    if input.ndim == 0:
        if positions.size != 1:
            raise RuntimeError(f"index_select(): Index to scalar can have only 1 value, got "
                               f"{positions.size} value(s)")
        return ops.clone(input)
    return Index.apply(input, (Ellipsis,), (slice(None),) * axis + (positions,))


# ------------------------------------------------------------------------------------ masks
def _mask(mask, name):
    if not is_tensor(mask):
        raise TypeError(f"{name}: mask must be a Tensor, got {type(mask).__name__}")
    if mask.dtype != dtypes.bool_:
        raise RuntimeError(f"{name} only supports boolean masks, but got mask with dtype "
                           f"{mask.dtype}")
    return mask


def masked_fill(input, mask, value):
    """A copy of ``input`` (broadcast with ``mask``) holding ``value`` where the bool ``mask``
    is True. ``value``, a number or a 0-d tensor, takes ``input``'s dtype; the gradient
    reaches ``input`` where the mask is False and a 0-d tensor ``value`` where it is True."""
    input = tensor_input(input)
    mask = _mask(mask, "masked_fill")
    if is_tensor(value):
        if value.ndim != 0:
            raise RuntimeError(f"masked_fill_ only supports a 0-dimensional value tensor, but "
                               f"got tensor with {value.ndim} dimension(s).")
        value = ops.cast(value, input.dtype)
    else:
        value = Tensor(_as_dtype(_number(value, "value"), input.dtype))
    check_broadcast(input.shape, mask.shape, names=("input", "mask"))
    return ops.where(mask, value, input)


def _masked_fill_(self, mask, value):
    """In-place :func:`masked_fill`; ``mask`` must broadcast to this tensor's shape."""
    mask = _mask(mask, "masked_fill_")
    if not _fits(mask.shape, self.shape):
        raise RuntimeError(f"masked_fill_: mask of shape {tuple(mask.shape)} does not broadcast "
                           f"to the tensor's shape {tuple(self.shape)}")
    return _in_place(self, lambda old: masked_fill(old, mask, value), "masked_fill_", value)


def masked_select(input, mask):
    """The elements of ``input`` where the bool ``mask`` is True (the two broadcast), as a
    1-d copy in row-major order."""
    input = tensor_input(input)
    mask = _mask(mask, "masked_select")
    shape = tuple(check_broadcast(input.shape, mask.shape, names=("input", "mask")))
    mask = np.broadcast_to(mask._data, shape)
    return Index.apply(expand(input, shape), (Ellipsis,), (mask,))


def nonzero(input, *, as_tuple=False):
    """The positions of ``input``'s nonzero elements: an (n, ndim) int64 tensor, one row per
    element in row-major order; with ``as_tuple``, one 1-d int64 tensor per dimension (a 0-d
    input counts as 1-d)."""
    input = tensor_input(input)
    if flag(as_tuple, "as_tuple"):
        return ops.where(input)
    return Tensor(np.argwhere(input._data).astype(np.int64))


def argwhere(input):
    """The positions of ``input``'s nonzero elements, an (n, ndim) int64 tensor."""
    return nonzero(input)


# ----------------------------------------------------------------------- reorder, triangles
class Flip(Function):
    """``x`` reversed along ``axes``, as a copy; backward reverses the gradient back."""

    def forward(self, x, axes):
        self.axes = axes
        return np.flip(x, axes).copy()  # PyTorch's flip copies

    def backward(self, grad):
        return np.flip(grad, self.axes), None


def flip(input, dims):
    """A copy of ``input`` with the order of its elements reversed along each of ``dims``."""
    input = tensor_input(input)
    if not isinstance(dims, (tuple, list)):
        raise TypeError(f"flip(): argument 'dims' must be a tuple of ints, not "
                        f"{type(dims).__name__}")
    axes = _dims(_ints(dims, "dims"), input.ndim)
    return Flip.apply(input, axes if input.ndim else ())


def _flip_method(self, *dims):
    return flip(self, _varargs(dims, "dims"))


def fliplr(input):
    """``input`` with its dimension 1 reversed (left and right of a matrix swapped)."""
    input = tensor_input(input)
    if input.ndim < 2:
        raise RuntimeError("Input must be >= 2-d.")
    return flip(input, (1,))


def flipud(input):
    """``input`` with its dimension 0 reversed (up and down of a matrix swapped)."""
    input = tensor_input(input)
    if input.ndim < 1:
        raise RuntimeError("Input must be >= 1-d.")
    return flip(input, (0,))


class Roll(Function):
    """``x`` rolled by ``shifts`` along ``axes``; backward rolls the gradient back."""

    def forward(self, x, shifts, axes):
        self.shifts, self.axes = shifts, axes
        return np.roll(x, shifts, axes)

    def backward(self, grad):
        return np.roll(grad, tuple(-s for s in self.shifts), self.axes), None, None


def roll(input, shifts, dims=None):
    """A copy of ``input`` with its elements shifted by ``shifts`` along ``dims``, those
    pushed past the end coming back at the start; with ``dims=None``, along the flattened
    tensor, the shape kept."""
    input = tensor_input(input)
    shifts = _ints(shifts if isinstance(shifts, (tuple, list)) else (shifts,), "shifts")
    if dims is None:
        if len(shifts) != 1:
            raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, "
                               f"dims:0")
        flat = Roll.apply(ops.reshape(input, -1), shifts, (0,))
        return ops.reshape(flat, tuple(input.shape))
    axes = dims if isinstance(dims, (tuple, list)) else (dims,)
    if len(axes) != len(shifts):
        raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:"
                           f"{len(axes)}")
    axes = tuple(normalize_dim(d, builtins.max(input.ndim, 1)) for d in axes)
    if input.ndim == 0:
        return ops.clone(input)
    return Roll.apply(input, shifts, axes)


class Triangle(Function):
    """``x`` where ``keep`` (a mask over the last two dimensions) holds, zero elsewhere; the
    gradient passes where it holds."""

    def forward(self, x, keep):
        self.keep = keep
        return np.where(keep, x, x.dtype.type(0))

    def backward(self, grad):
        return np.where(self.keep, grad, grad.dtype.type(0)), None


def _triangle(name, input, diagonal, lower):
    input = tensor_input(input)
    diagonal = _int(diagonal, "diagonal")
    if input.ndim < 2:
        raise RuntimeError(f"{name}: input tensor must have at least 2 dimensions")
    rows, cols = input.shape[-2:]
    keep = np.tri(rows, cols, diagonal, dtype=bool) if lower else \
        ~np.tri(rows, cols, diagonal - 1, dtype=bool)
    return Triangle.apply(input, to_device_of(keep, input._data))


def tril(input, diagonal=0):
    """The lower triangle of the matrices in ``input`` (its last two dimensions): elements
    on and below the ``diagonal``-th diagonal (above the main one for positive values),
    zeros above it."""
    return _triangle("tril", input, diagonal, True)


def triu(input, diagonal=0):
    """The upper triangle of the matrices in ``input`` (its last two dimensions): elements
    on and above the ``diagonal``-th diagonal, zeros below it."""
    return _triangle("triu", input, diagonal, False)


def _tril_(self, diagonal=0):
    return _in_place(self, lambda old: tril(old, diagonal), "tril_")


def _triu_(self, diagonal=0):
    return _in_place(self, lambda old: triu(old, diagonal), "triu_")


class Diag(Function):
    """Between a vector and the ``offset``-th diagonal of a matrix, both ways (each
    direction's backward is the other)."""

    def forward(self, x, offset):
        self.offset, self.shape = offset, x.shape
        return np.diag(x, offset).copy()  # NumPy's matrix -> vector diag is a read-only view

    def backward(self, grad):
        if len(self.shape) == 1:
            return np.diag(grad, self.offset).copy(), None
        out = zeros(self.shape, grad.dtype, grad)
        steps = np.arange(grad.shape[0])
        out[steps - builtins.min(self.offset, 0), steps + builtins.max(self.offset, 0)] = grad
        return out, None


def diag(input, diagonal=0):
    """A square matrix with the vector ``input`` on its ``diagonal``-th diagonal, or the
    ``diagonal``-th diagonal of the matrix ``input`` as a vector (a copy)."""
    input = tensor_input(input)
    diagonal = _int(diagonal, "diagonal")
    if input.ndim not in (1, 2):
        raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {input.ndim}D")
    return Diag.apply(input, diagonal)


# ----------------------------------------------------------------------------------- products
def _same_dtype(name, a, b, message):
    if a.dtype != b.dtype:
        raise RuntimeError(f"{name}: {message}, but got {a.dtype} and {b.dtype}")


def mm(input, mat2):
    """The matrix product of two matrices (no broadcasting: see ``matmul``)."""
    input, mat2 = tensor_input(input), tensor_input(mat2)
    if input.ndim != 2:
        raise RuntimeError(f"mm: self must be a matrix, got a {input.ndim}-d tensor")
    if mat2.ndim != 2:
        raise RuntimeError(f"mm: mat2 must be a matrix, got a {mat2.ndim}-d tensor")
    if input.shape[1] != mat2.shape[0]:
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({input.shape[0]}x"
                           f"{input.shape[1]} and {mat2.shape[0]}x{mat2.shape[1]})")
    _same_dtype("mm", input, mat2, "expected mat1 and mat2 to have the same dtype")
    return ops.matmul(input, mat2)


def bmm(input, mat2):
    """Matrix products of two batches of matrices, (b, n, m) and (b, m, p) (no
    broadcasting)."""
    input, mat2 = tensor_input(input), tensor_input(mat2)
    for name, t in (("batch1", input), ("batch2", mat2)):
        if t.ndim != 3:
            raise RuntimeError(f"bmm: {name} must be a 3D tensor, got a {t.ndim}-d tensor")
    if mat2.shape[:2] != (input.shape[0], input.shape[2]):
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                           f"[{input.shape[0]}, {input.shape[2]}] but got: "
                           f"[{mat2.shape[0]}, {mat2.shape[1]}].")
    _same_dtype("bmm", input, mat2, "expected batch1 and batch2 to have the same dtype")
    return ops.matmul(input, mat2)


def mv(input, vec):
    """The product of the matrix ``input`` and the vector ``vec``."""
    input, vec = tensor_input(input), tensor_input(vec)
    if input.ndim != 2 or vec.ndim != 1:
        raise RuntimeError(f"vector + matrix @ vector expected, got 1, {input.ndim}, "
                           f"{vec.ndim}")
    if input.shape[1] != vec.shape[0]:
        raise RuntimeError(f"size mismatch, got input ({input.shape[0]}), mat "
                           f"({input.shape[0]}x{input.shape[1]}), vec ({vec.shape[0]})")
    _same_dtype("mv", input, vec, "expected input and vec to have the same dtype")
    return ops.matmul(input, vec)


def dot(input, tensor):
    """The dot product of two vectors of the same size and dtype (a 0-d tensor)."""
    input, tensor = tensor_input(input), tensor_input(tensor)
    if input.ndim != 1 or tensor.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {input.ndim}D and {tensor.ndim}D "
                           f"tensors")
    if input.shape != tensor.shape:
        raise RuntimeError(f"inconsistent tensor size, expected tensor [{input.shape[0]}] and "
                           f"src [{tensor.shape[0]}] to have the same number of elements, but "
                           f"got {input.shape[0]} and {tensor.shape[0]} elements respectively")
    _same_dtype("dot", input, tensor, "expected both vectors to have same dtype")
    return ops.matmul(input, tensor)


def outer(input, vec2):
    """The outer product of two vectors: ``out[i, j] = input[i] * vec2[j]``."""
    input, vec2 = tensor_input(input), tensor_input(vec2)
    for name, t in (("self", input), ("vec2", vec2)):
        if t.ndim != 1:
            raise RuntimeError(f"outer: Expected 1-D argument {name}, but got {t.ndim}-D")
    return ops.mul(ops.reshape(input, (-1, 1)), vec2)


def addmm(input, mat1, mat2, *, beta=1, alpha=1):
    """``beta * input + alpha * (mat1 @ mat2)``, ``input`` broadcast to the product's shape
    (with ``beta=0`` its values are ignored, NaN included, as in PyTorch; it then gets no
    gradient, where PyTorch gives it zeros)."""
    input = tensor_input(input)
    product = mm(mat1, mat2)
    for name, factor in (("beta", beta), ("alpha", alpha)):
        _number(factor, name)
    if not _fits(input.shape, product.shape):
        raise RuntimeError(f"addmm: input of shape {tuple(input.shape)} does not broadcast to "
                           f"the product's shape {tuple(product.shape)}")
    scaled = product if alpha == 1 else ops.mul(product, alpha)
    if beta == 0:
        return scaled
    return ops.add(input if beta == 1 else ops.mul(input, beta), scaled)


# ------------------------------------------------------------------------------------- einsum
def _einsum_terms(equation, shapes):
    """``equation`` rewritten with a letter for every dimension (the dimensions under
    ``...`` get unused letters, aligned from the right) and an explicit output.

    Returns:
        ``(inputs, output, sizes)``: one string of letters per operand, the output's letters,
        and the size of each letter (the largest; others must be 1 or equal).
    """
    equation = equation.replace(" ", "")
    lhs, arrow, rhs = equation.partition("->")
    terms = lhs.split(",")
    if len(terms) < len(shapes):
        raise RuntimeError("einsum(): more operands were provided than specified in the "
                           "equation")
    if len(terms) > len(shapes):
        raise RuntimeError("einsum(): fewer operands were provided than specified in the "
                           "equation")
    for position, char in enumerate(equation):
        if not (char in string.ascii_letters or char in ".,->"):
            raise RuntimeError(f"einsum(): invalid subscript given at index {position} in the "
                               f"equation string, subscripts must be in [a-zA-Z]")
    for number, term in enumerate(terms + ([rhs] if arrow else [])):
        if term.replace("...", "").count(".") or term.count("...") > 1:
            raise RuntimeError(f"einsum(): found '.' for operand {number} that is not part of "
                               f"any ellipsis")
    used = set(equation) & set(string.ascii_letters)
    spare = [c for c in string.ascii_letters if c not in used]
    covered = []
    for number, (term, shape) in enumerate(zip(terms, shapes)):
        letters = len(term.replace("...", ""))
        if "..." not in term and letters != len(shape):
            raise RuntimeError(f"einsum(): the number of subscripts in the equation ({letters}) "
                               f"does not match the number of dimensions ({len(shape)}) for "
                               f"operand {number} and no ellipsis was given")
        if letters > len(shape):
            raise RuntimeError(f"einsum(): the number of subscripts in the equation ({letters}) "
                               f"is more than the number of dimensions ({len(shape)}) for "
                               f"operand {number}")
        covered.append(len(shape) - letters if "..." in term else 0)
    ellipsis = "".join(spare[:builtins.max(covered, default=0)])
    inputs = [t.replace("...", ellipsis[len(ellipsis) - k:]) for t, k in zip(terms, covered)]
    if arrow:
        output = rhs.replace("...", ellipsis)
        for char in output:
            if output.count(char) > 1:
                raise RuntimeError(f"einsum(): output subscript {char} appears more than once "
                                   f"in the output")
            if not builtins.any(char in term for term in inputs):
                raise RuntimeError(f"einsum(): output subscript {char} does not appear in the "
                                   f"equation for any input operand")
    else:
        counts = "".join(terms).replace("...", "")
        output = ellipsis + "".join(sorted(c for c in set(counts) if counts.count(c) == 1))
    sizes = {}
    for number, (term, shape) in enumerate(zip(inputs, shapes)):
        for char, size in zip(term, shape):
            seen = sizes.get(char, size)
            if size != seen and 1 not in (size, seen):
                raise RuntimeError(f"einsum(): subscript {char} has size {size} for operand "
                                   f"{number} which does not broadcast with previously seen "
                                   f"size {seen}")
            sizes[char] = builtins.max(seen, size)
    return inputs, output, sizes


class Einsum(Function):
    """NumPy's ``einsum`` on an explicit equation (:func:`_einsum_terms`). The gradient of
    each operand is the einsum of the output's gradient with the other operands; a letter
    repeated in the operand (a diagonal) gets an identity matrix, and a letter only the
    operand has (summed away) a vector of ones, to spread the gradient along it."""

    def forward(self, *arrays, inputs, output, sizes):
        self.arrays, self.terms, self.output, self.sizes = arrays, inputs, output, sizes
        broadcast = builtins.any(s != sizes[c] for t, a in zip(inputs, arrays)
                                 for c, s in zip(t, a.shape))
        return np.einsum(f"{','.join(inputs)}->{output}", *arrays,
                         optimize=len(arrays) > 1 and not broadcast)

    def backward(self, grad):
        grads = []
        for position, (term, array) in enumerate(zip(self.terms, self.arrays)):
            if not self.needs_input_grad[position]:
                grads.append(None)
                continue
            terms = [self.output] + [t for i, t in enumerate(self.terms) if i != position]
            operands = [grad] + [a for i, a in enumerate(self.arrays) if i != position]
            spare = iter(c for c in string.ascii_letters if c not in self.sizes)
            target = ""
            for char in term:
                if char in target:  # a diagonal: the output letter d pairs with char
                    renamed = next(spare)
                    terms.append(char + renamed)
                    operands.append(to_device_of(np.eye(self.sizes[char], dtype=grad.dtype),
                                                 grad))
                    char = renamed
                target += char
            for char in set(term) - set("".join(terms)):
                terms.append(char)
                operands.append(full(self.sizes[char], 1, grad.dtype, grad))
            result = np.einsum(f"{','.join(terms)}->{target}", *operands,
                               optimize=len(operands) > 2)
            grads.append(unbroadcast(result, array.shape, array.dtype))
        return tuple(grads)


def einsum(equation, *operands):
    """Einstein summation over ``operands`` by ``equation`` (``"ij,jk->ik"``; ``...`` for
    broadcast dimensions; without ``->`` the output holds the letters seen once, in
    alphabetical order), as PyTorch's; the operands may also come as one list. Differentiable
    in every operand. PyTorch's sublist form (``einsum(a, [0, 1], b, [1, 2])``) is not
    offered.

    Raises:
        RuntimeError: an equation that does not fit the operands (PyTorch's messages), or
            operands of different dtypes.
    """
    if not isinstance(equation, str):
        raise TypeError(f"einsum(): the equation must be a string (the sublist form is not "
                        f"supported), got {type(equation).__name__}")
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not operands:
        raise ValueError("einsum(): must specify the equation string and at least one operand")
    operands = [tensor_input(t) for t in operands]
    for t in operands[1:]:
        if t.dtype != operands[0].dtype:
            raise RuntimeError(f"einsum(): expected all operands to have dtype "
                               f"{operands[0].dtype}, got {t.dtype}")
    inputs, output, sizes = _einsum_terms(equation, [t.shape for t in operands])
    return Einsum.apply(*operands, inputs=inputs, output=output, sizes=sizes)


# ---------------------------------------------------------------------------------- padding
class ConstantPad(Function):
    """``x`` placed in a ``shape`` array filled with ``value``; ``inner`` and ``outer`` are
    the keys of the kept part of ``x`` and of where it goes (negative pads crop)."""

    def forward(self, x, shape, inner, outer, value):
        self.shape, self.inner, self.outer = x.shape, inner, outer
        out = full(shape, value, x.dtype, x)
        out[outer] = x[inner]
        return out

    def backward(self, grad):
        out = zeros(self.shape, grad.dtype, grad)
        out[self.inner] = grad[self.outer]
        return out, None, None, None, None


class GatherPad(Function):
    """``x`` taken, along each padded axis, at the source positions of the padded result
    (reflected, replicated or wrapped); backward adds each gradient back to its source."""

    def forward(self, x, sources):
        self.shape, self.sources = x.shape, sources
        for axis, positions in sources:
            x = np.take(x, positions, axis=axis)
        return x

    def backward(self, grad):
        for axis, positions in reversed(self.sources):
            sizes = list(grad.shape)
            sizes[axis] = self.shape[axis]
            out = zeros(sizes, grad.dtype, grad)
            np.add.at(out, (slice(None),) * axis + (positions,), grad)
            grad = out
        return grad, None


#: ``pad``'s modes other than "constant", as NumPy's ``pad`` names them.
_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def pad(input, pad, mode="constant", value=None):
    """``input`` padded on both sides of its last ``len(pad) // 2`` dimensions, PyTorch's
    order: ``pad = (left, right)`` for the last dimension, then ``(top, bottom)`` for the
    one before, and so on. Negative sizes crop.

    Args:
        input: a tensor.
        pad: an even-length sequence of ints.
        mode: "constant" (``value``, default 0), "reflect" (mirrored, edge not repeated),
            "replicate" (the edge repeated) or "circular" (wrapped around). The last three
            pad 1 to 3 trailing dimensions of a tensor with one or two more dimensions (a
            batch and channels), as in PyTorch.
        value: the fill value of "constant" mode.

    Raises:
        RuntimeError: an odd-length ``pad``, more pairs than dimensions, a crop past the
            size, a reflection as long as the dimension, a wrap more than once around.
        NotImplementedError: an unknown mode, or a dimension count the mode does not take.
    """
    input = tensor_input(input)
    pads = _ints(tuple(pad) if isinstance(pad, (tuple, list)) else pad, "pad")
    if len(pads) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    pairs = len(pads) // 2
    if pairs > input.ndim:
        raise RuntimeError(f"Padding length should be less than or equal to two times the input "
                           f"dimension but got padding length {len(pads)} and input of "
                           f"dimension {input.ndim}")
    if mode != "constant" and mode not in _PAD_MODES:
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    if mode != "constant" and (pairs not in (1, 2, 3) or input.ndim not in (pairs + 1,
                                                                             pairs + 2)):
        raise NotImplementedError(f"pad: mode {mode!r} pads 1 to 3 trailing dimensions of a "
                                  f"tensor with one or two more (got padding size {len(pads)} "
                                  f"for a {input.ndim}-d input)")
    shape = list(input.shape)
    inner, outer, sources = [slice(None)] * input.ndim, [slice(None)] * input.ndim, []
    for pair in range(pairs):
        axis = input.ndim - 1 - pair
        left, right, size = pads[2 * pair], pads[2 * pair + 1], shape[axis]
        kept = size - builtins.max(-left, 0) - builtins.max(-right, 0)
        if size + left + right < 0 or kept < 0:
            raise RuntimeError(f"pad: padding ({left}, {right}) crops more than the size "
                               f"{size} of dimension {axis}")
        if mode == "reflect" and builtins.max(left, right) >= size:
            raise RuntimeError(f"Padding size should be less than the corresponding input "
                               f"dimension, but got: padding ({left}, {right}) at dimension "
                               f"{axis} of input {list(input.shape)}")
        if mode == "circular" and builtins.max(left, right) > size:
            raise RuntimeError("Padding value causes wrapping around more than once.")
        if mode == "replicate" and kept == 0 and (left > 0 or right > 0):
            raise RuntimeError(f"pad: cannot replicate the edge of dimension {axis} of size "
                               f"0 after cropping")
        start = builtins.max(-left, 0)
        if mode == "constant":
            inner[axis] = slice(start, start + kept)
            outer[axis] = slice(builtins.max(left, 0), builtins.max(left, 0) + kept)
        else:
            positions = np.pad(np.arange(start, start + kept),
                               (builtins.max(left, 0), builtins.max(right, 0)),
                               mode=_PAD_MODES[mode])
            sources.append((axis, positions))
        shape[axis] = size + left + right
    if mode != "constant":
        if value not in (None, 0):
            raise RuntimeError(f"pad: mode {mode!r} takes no value, got value={value!r}")
        return GatherPad.apply(input, [(axis, to_device_of(positions, input._data))
                                       for axis, positions in sources])
    # a NumPy scalar: it fills an array on any device
    fill = _as_dtype(0 if value is None else _number(value, "value"), input.dtype)[()]
    return ConstantPad.apply(input, tuple(shape), tuple(inner), tuple(outer), fill)


def one_hot(tensor, num_classes=-1):
    """The int64 one-hot encoding of the class indices ``tensor`` (int64, non-negative): a
    new last dimension of ``num_classes`` (-1: the largest index plus one) holding 1 at each
    index and 0 elsewhere."""
    tensor = tensor_input(tensor)
    num_classes = _int(num_classes, "num_classes")
    if tensor.dtype != dtypes.int64:
        raise RuntimeError(f"one_hot is only applicable to index tensor of type LongTensor "
                           f"(int64), got {tensor.dtype}.")
    values = tensor._data
    if num_classes == -1:
        if not values.size:
            raise RuntimeError("Can not infer total number of classes from empty tensor.")
        num_classes = int(values.max()) + 1
    elif num_classes < -1:
        raise RuntimeError(f"num_classes must be -1 or non-negative, got {num_classes}")
    if values.size and values.min() < 0:
        raise RuntimeError("Class values must be non-negative.")
    if values.size and values.max() >= num_classes:
        raise RuntimeError("Class values must be smaller than num_classes.")
    classes = to_device_of(np.arange(num_classes), values)
    return Tensor((values[..., None] == classes).astype(np.int64))


#: Tensor method name -> function taking the tensor first.
TENSOR_METHODS = {
    "__setitem__": setitem,
    "addmm": addmm, "argwhere": argwhere, "bmm": bmm, "chunk": chunk, "diag": diag,
    "dot": dot, "expand": expand, "expand_as": expand_as, "flip": _flip_method,
    "fliplr": fliplr, "flipud": flipud, "gather": gather, "index_select": index_select,
    "masked_fill": masked_fill, "masked_fill_": _masked_fill_, "masked_select": masked_select,
    "mm": mm, "moveaxis": moveaxis, "movedim": movedim, "mv": mv, "narrow": narrow,
    "nonzero": nonzero, "outer": outer, "repeat": repeat, "reshape_as": reshape_as,
    "roll": roll, "scatter": scatter, "scatter_": _scatter_, "scatter_add": scatter_add,
    "scatter_add_": _scatter_add_, "split": split, "swapaxes": swapaxes,
    "swapdims": swapdims, "take_along_dim": take_along_dim, "tensor_split": tensor_split,
    "tile": _tile_method, "tril": tril, "tril_": _tril_, "triu": triu, "triu_": _triu_,
    "unbind": unbind, "unflatten": unflatten, "view_as": view_as,
}
