"""Parameter and gradient arenas: many parameters, one contiguous buffer.

An optimiser packs the parameters it is given into one :class:`Arena` per dtype: their values
become views into one flat buffer and their gradients views into another. A whole-model
operation is then one pass over one array, not a loop over tensors: the fused optimiser step,
zeroing the gradients, global gradient norms (and later clipping and all-reduce).

A parameter lives in at most one arena. Packing it into a new arena (a second optimiser over
the same parameter) or assigning ``param.data`` (``Module.to(dtype)``) takes it out of the old
one, which is then no longer :attr:`Arena.intact`: its owner packs a new one before the next
fused operation. Always correct, and only as costly as a copy when two optimisers really share
parameters.
"""
import numpy as np

from .backends import K
from .tensor import Tensor


class Arena:
    """Flat value, gradient and optimiser-state buffers for parameters of one dtype.

    Args:
        params: the parameters (leaf Tensors of one floating dtype), in order.
        state: the owner's per-parameter state dict; for the names in ``state_names``,
            ``state[param][name]`` becomes a view of the arena's flat state buffer ``name``.
        state_names: names of the per-element state kept in flat buffers.

    Attributes:
        last_norms: the per-parameter gradient norms of the last fused
            :func:`~fastgrad.nn.utils.clip_grad_norm_` over this arena (float64, one per
            parameter, of type ``last_norm_type``), or None: diagnostics read them instead of
            measuring again.
    """

    def __init__(self, params, state, state_names=()):
        self.params = list(params)
        self.shapes = [p.shape for p in self.params]  # fixed while intact: new data releases
        self.dtype = self.params[0].dtype
        sizes = [p.numel() for p in self.params]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.data = np.empty(len(self), self.dtype)
        self.grad = np.zeros(len(self), self.dtype)
        self.state_buffers = {}
        self.last_norms = self.last_norm_type = None
        for p, start, stop in zip(self.params, self.offsets[:-1], self.offsets[1:]):
            if p._arena is not None:
                p._arena.intact = False
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

    def state_buffer(self, name):
        """The flat optimiser-state buffer ``name`` (allocated zeroed on first use)."""
        if name not in self.state_buffers:
            self.state_buffers[name] = np.zeros(len(self), self.dtype)
        return self.state_buffers[name]

    def state_view(self, name, index):
        """Parameter ``index``'s slice of state buffer ``name`` as a Tensor of its shape."""
        start, stop = self.offsets[index], self.offsets[index + 1]
        return Tensor(self.state_buffer(name)[start:stop].reshape(self.params[index].shape))

    def all_grads(self):
        """True when every parameter has a gradient (the fused whole-arena path applies)."""
        return all(p._grad is not None for p in self.params)

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
            ``(total, per_param)``: a float and a float64 array with one norm per parameter.
        """
        for p in self.params:
            if p._grad is None:
                p._grad_view[...] = 0
        per_param = np.empty(len(self.params), np.float64)
        total = K.segment_norms(self.grad, self.offsets, float(norm_type), per_param)
        return total, per_param
