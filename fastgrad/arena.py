"""Parameter and gradient arenas: many parameters, one contiguous buffer.

An optimiser packs the parameters it is given into one :class:`Arena` per dtype: their values
become views into one flat buffer and their gradients views into another. A whole-model
operation is then one pass over one array, not a loop over tensors: the fused optimiser step,
zeroing the gradients, global gradient norms, clipping and accumulation.

A parameter lives in at most one arena. Packing it into a new arena (a second optimiser over
the same parameter) or assigning ``param.data`` (``Module.to(dtype)``) takes it out of the old
one, which is then no longer :attr:`Arena.intact`: its owner packs a new one before the next
fused operation. Always correct, and only as costly as a copy when two optimisers really share
parameters.

The arena is the only code that links a parameter to its slots (:func:`arena_of` finds a
parameter's arena); clipping, the gradient monitor, accumulation and the optimisers work
through the methods below. A parameter without a gradient keeps its slot in :attr:`Arena.grad`,
whose values are then stale: :meth:`Arena.zero_stale` zeroes them before a pass over the whole
buffer that must count them as zero.

Clipping remembers the per-parameter norms it measured (:meth:`Arena.remember_clip`), so that
the gradient monitor need not measure again; each record is stamped with the running count of
clips (:func:`clip_count`), and :meth:`Arena.clip_norms` returns it only when it is newer than
the caller's last reading of that count.
"""
import numpy as np

from .backends import K
from .device import empty, zeros
from .tensor import Tensor

_clips = 0  # clips remembered so far, on every arena: the stamp of the latest record


def arena_of(tensor):
    """The :class:`Arena` whose buffers hold ``tensor``'s values and gradient, or None.

    The arena may no longer be :attr:`~Arena.intact` (another of its parameters left it).
    """
    return tensor._arena


def clip_count():
    """The number of clips remembered so far on any arena (see :meth:`Arena.remember_clip`):
    a reading to pass later as ``since`` to :meth:`Arena.clip_norms`."""
    return _clips


class Arena:
    """Flat value, gradient and optimiser-state buffers for parameters of one dtype on one
    device (the buffers are that device's arrays; ``offsets`` is host memory).

    Args:
        params: the parameters (leaf Tensors of one floating dtype), in order.
        state: the owner's per-parameter state dict; for the names in ``state_names``,
            ``state[param][name]`` becomes a view of the arena's flat state buffer ``name``.
        state_names: names of the per-element state kept in flat buffers.

    Attributes (read them, never rebind them; kernels write the buffers' contents):
        params: the parameters, in order.
        shapes: their shapes.
        dtype: their dtype.
        offsets: int64 segment boundaries: parameter ``i`` is ``[offsets[i], offsets[i+1])``
            of every flat buffer.
        data: the flat values; ``param.data`` is a view of its segment.
        grad: the flat gradients; a parameter's ``.grad``, when it has one, is a view of its
            segment (see :meth:`holds_grads`); a parameter without one has a stale segment.
        state_buffers: the flat optimiser-state buffers by name (see :meth:`state_buffer`).
        intact: False once a parameter has left the arena: its owner packs a new one.
    """

    def __init__(self, params, state, state_names=()):
        self.params = list(params)
        self.shapes = [p.shape for p in self.params]  # fixed while intact: new data releases
        self.dtype = self.params[0].dtype
        sizes = [p.numel() for p in self.params]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.offsets.flags.writeable = False  # fixed: a device keeps its copy (see K tables)
        like = self.params[0]._data  # the buffers live on the parameters' device
        self.data = empty(len(self), self.dtype, like)
        self.grad = zeros(len(self), self.dtype, like)
        self.state_buffers = {}
        self._clip = None  # (stamp, norms, norm_type) of the latest clip remembered
        for p, start, stop in zip(self.params, self.offsets[:-1], self.offsets[1:]):
            if p._arena is not None:
                p._arena.release(p)
            data_view = self.data[start:stop].reshape(p.shape)
            grad_view = self.grad[start:stop].reshape(p.shape)
            data_view[...] = p._data
            p._data, p._arena, p._grad_view = data_view, self, grad_view
            if p._grad is not None:
                grad_view[...] = p._grad._data
                p._grad = Tensor(grad_view)
            own_state = state.get(p, {})
            for name in state_names:
                if name in own_state:
                    view = self.state_buffer(name)[start:stop].reshape(p.shape)
                    view[...] = own_state[name]._data
                    own_state[name] = Tensor(view)
        self.intact = True

    def __len__(self):
        return int(self.offsets[-1])

    def release(self, param):
        """Forget ``param``'s slot (its data was replaced): the arena is no longer intact."""
        param._arena = param._grad_view = None
        self.intact = False

    # ----------------------------------------------------------------------------- state
    def state_buffer(self, name):
        """The flat optimiser-state buffer ``name`` (allocated zeroed on first use)."""
        if name not in self.state_buffers:
            self.state_buffers[name] = zeros(len(self), self.dtype, self.data)
        return self.state_buffers[name]

    def state_view(self, name, index):
        """Parameter ``index``'s slice of state buffer ``name`` as a Tensor of its shape."""
        start, stop = self.offsets[index], self.offsets[index + 1]
        return Tensor(self.state_buffer(name)[start:stop].reshape(self.params[index].shape))

    # ------------------------------------------------------------------------- gradients
    def all_grads(self):
        """True when every parameter has a gradient (the fused whole-arena path applies)."""
        return not [p for p in self.params if p._grad is None]  # a comprehension: no generator

    def holds_grads(self):
        """True when the arena is intact and every gradient lives in its segment of
        :attr:`grad` (backward and the ``.grad`` setter write there; a gradient whose array
        was replaced does not): whole-arena kernels over :attr:`grad` then see and change
        exactly the parameters' gradients."""
        return self.intact and all(p._grad is None or p._grad._data is p._grad_view
                                   for p in self.params)

    def zero_stale(self):
        """Zero the segments of the parameters without a gradient (they hold stale values),
        so that a pass over the whole of :attr:`grad` counts them as zero.

        Returns:
            The indices of those parameters, a list.
        """
        missing = [i for i, p in enumerate(self.params) if p._grad is None]
        for i in missing:
            self.params[i]._grad_view[...] = 0
        return missing

    def grads_from_buffer(self, present):
        """Make the buffer's contents the gradients: parameter ``i`` gets its segment of
        :attr:`grad` as ``.grad`` where ``present[i]`` is true, and no gradient elsewhere
        (gradient accumulation sums into the buffer, then hands the result over this way)."""
        for p, has in zip(self.params, present):
            p._grad = Tensor(p._grad_view) if has else None

    def zero_grad(self, set_to_none=True):
        """Forget the gradients, or zero the existing ones (one fill when all exist; a
        parameter without a gradient keeps none, as in PyTorch)."""
        if set_to_none:
            for p in self.params:
                p._grad = None
        elif self.all_grads():
            K.fill(self.grad, 0.0)
        else:
            for p in self.params:
                if p._grad is not None:
                    p._grad._data[...] = 0

    def grad_norms(self, norm_type=2.0):
        """The norm of all gradients together and each parameter's own, in one pass.

        Parameters without a gradient count as zero.

        Returns:
            ``(total, per_param)``: a Python float (or a 0-d array on the arena's device from a
            device's kernel table) and a float64 array on the arena's device with one norm
            per parameter.
        """
        self.zero_stale()
        per_param = empty(len(self.params), np.float64, self.grad)
        total = K.segment_norms(self.grad, self.offsets, float(norm_type), per_param)
        return total, per_param

    # ------------------------------------------------------------------ remembered norms
    def remember_clip(self, norms, norm_type):
        """Record the per-parameter gradient norms a clip measured on :attr:`grad` before it
        scaled (clipping calls this; the gradient monitor reads them with
        :meth:`clip_norms` instead of measuring again).

        Args:
            norms: a float64 array with one norm per parameter; kept, not copied: the caller
                hands it over and does not change it afterwards.
            norm_type: their order (a float).
        """
        global _clips
        _clips += 1
        self._clip = (_clips, norms, norm_type)

    def clip_norms(self, norm_type, since=0):
        """The per-parameter norms of order ``norm_type`` that the latest clip over this arena
        measured before scaling (see :meth:`remember_clip`), or None.

        Args:
            norm_type: the order wanted: a clip of another order gives None.
            since: a :func:`clip_count` reading: a clip remembered before it gives None (the
                gradient monitor reads the count at each of its steps, so it sees only the
                clips of the step it records).

        Returns:
            A float64 array with one norm per parameter (read it, do not change it), or None.
        """
        if self._clip is None:
            return None
        stamp, norms, kind = self._clip
        return norms if stamp > since and kind == norm_type else None
