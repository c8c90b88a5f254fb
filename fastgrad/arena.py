"""Parameter and gradient arenas: many parameters, one contiguous buffer.

An optimiser packs the parameters it is given into one :class:`Arena` per dtype: their values
become views into one flat buffer and their gradients views into another. A whole-model
operation is then one pass over one array, not a loop over tensors: the fused optimiser step,
zeroing the gradients, global gradient norms (and later clipping and all-reduce).

A parameter lives in at most one arena. Packing it into a new arena (a second optimiser over
the same parameter) or assigning ``param.data`` takes it out of the old one, which is then
repacked by its owner before its next fused operation: always correct, and only as costly as a
copy when two optimisers really share parameters.
"""
import numpy as np

from .backends import K
from . import tensor as _tensor


class Arena:
    """Flat value, gradient and optimiser-state buffers for parameters of one dtype.

    Args:
        params: the parameters (leaf Tensors of one floating dtype), in order.
        state: the owner's per-parameter state dict (``state[param][name]`` Tensors); the
            arena keeps those Tensors as views of its flat state buffers.
    """

    def __init__(self, params, state):
        self.params = list(params)
        self.dtype = self.params[0].dtype
        sizes = [p.numel() for p in self.params]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self._state = state
        self.state_buffers = {}
        self.pack()

    def __len__(self):
        return int(self.offsets[-1])

    def _slots(self):
        return zip(self.params, self.offsets[:-1], self.offsets[1:])

    def pack(self):
        """Copy the parameters (and their gradients and state) into fresh flat buffers."""
        total = len(self)
        self.data = np.empty(total, self.dtype)
        self.grad = np.zeros(total, self.dtype)
        old_state, self.state_buffers = self.state_buffers, {}
        for name in old_state:
            self.state_buffer(name)
        for p, start, stop in self._slots():
            if p._arena is not None and p._arena is not self:
                p._arena.intact = False
            data_view = self.data[start:stop].reshape(p.shape)
            grad_view = self.grad[start:stop].reshape(p.shape)
            data_view[...] = p._data
            p._data, p._arena, p._grad_view = data_view, self, grad_view
            if p._grad is not None:
                grad_view[...] = p._grad._data
                p._grad = _tensor.Tensor(grad_view)
            for name, value in self._state.get(p, {}).items():
                if name in self.state_buffers:
                    view = self.state_buffers[name][start:stop].reshape(p.shape)
                    view[...] = value._data
                    self._state[p][name] = _tensor.Tensor(view)
        self.intact = True

    def release(self, param):
        """Forget ``param``'s slot (its data was replaced); the arena must be repacked."""
        param._arena = param._grad_view = None
        self.intact = False

    def ensure_packed(self):
        """Repack if any parameter left this arena since the last packing."""
        if not self.intact:
            self.pack()

    def state_buffer(self, name):
        """The flat optimiser-state buffer ``name`` (allocated zeroed on first use)."""
        if name not in self.state_buffers:
            self.state_buffers[name] = np.zeros(len(self), self.dtype)
        return self.state_buffers[name]

    def state_view(self, name, index):
        """Parameter ``index``'s slice of state buffer ``name`` as a Tensor of its shape."""
        start, stop = self.offsets[index], self.offsets[index + 1]
        return _tensor.Tensor(self.state_buffer(name)[start:stop].reshape(self.params[index].shape))

    def all_grads(self):
        """True when every parameter has a gradient (the fused whole-arena path applies)."""
        return all(p._grad is not None for p in self.params)

    def zero_grad(self, set_to_none=True):
        """Forget the gradients, or zero them with one fill of the gradient buffer."""
        self.ensure_packed()
        if set_to_none:
            for p in self.params:
                p._grad = None
        else:
            K.fill(self.grad, 0.0)
            for p in self.params:
                p._grad = _tensor.Tensor(p._grad_view)

    def grad_norms(self, norm_type=2.0):
        """The global gradient norm and each parameter's own, from one pass over the arena.

        Parameters without a gradient count as zero.

        Returns:
            ``(total, per_param)``: a float and a float64 array with one norm per parameter.
        """
        self.ensure_packed()
        for p in self.params:
            if p._grad is None:
                p._grad_view[...] = 0
        per_param = np.empty(len(self.params), np.float64)
        total = K.segment_norms(self.grad, self.offsets, float(norm_type), per_param)
        return total, per_param
