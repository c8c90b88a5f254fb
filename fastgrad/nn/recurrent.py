"""Recurrent layers with PyTorch's parameters and semantics: RNNCell, RNN, LSTMCell, LSTM,
GRUCell and GRU.

Parameter names, shapes, gate order (i, f, g, o for the LSTM; r, z, n for the GRU) and
initialisation are PyTorch's, so a PyTorch ``state_dict`` loads as is, and weights move back the
same way.

A layer runs its whole time loop inside one :class:`~fastgrad.autograd.Function` (``_RNNLayer``,
``_LSTMLayer``, ``_GRULayer`` in :mod:`fastgrad.nn.functional`, the home of the layer ops): the
input projection of every step is one GEMM before the loop; each step is one GEMM with ``W_hh`` and
its pointwise part (the fused ``lstm_cell_fwd`` kernel, ``activation_fwd`` for the plain RNN,
two ``activation_fwd`` calls for the GRU); backward runs the loop in reverse (the pointwise
derivatives and one GEMM per step), then GEMMs over the whole sequence give ``dW_ih``,
``dW_hh`` and the input's gradient. Backpropagation through time over thousands of steps
therefore adds one graph node per layer and direction, no recursion, and memory linear in the
sequence length (per step only the activated gates, the cell state and the output are kept).
A cell is the same Function over one step. The reverse direction of a bidirectional layer is
the same Function over the time-reversed sequence.

fastgrad's addition: :meth:`RNN.record_time_grads` (and LSTM's, GRU's) has backward report the
gradient norm at every time step, which :class:`fastgrad.diagnostics.GradientMonitor` uses to see
a gradient vanish or explode through time.

Not supported (PyTorch has them): ``proj_size`` and packed sequences.
"""
import functools
import math
import numbers
import warnings

import numpy as np

from .. import ops
from .. import random as _random
from .._checks import check_dtype, check_tensor
from ..backends import ACTIVATIONS
from ..tensor import Tensor
from . import init
from .functional import _GRULayer, _LSTMLayer, _RNNLayer
from .module import Module, Parameter

_NONLINEARITIES = ("tanh", "relu")


# --------------------------------------------------------------------------------- validation
def _check_size(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
    if value < minimum:
        if minimum == 1:
            raise ValueError(f"{name} must be greater than zero")
        raise ValueError(f"{name} must be a non-negative int, got {value}")
    return int(value)


def _check_nonlinearity(nonlinearity):
    if nonlinearity not in _NONLINEARITIES:
        raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
    return nonlinearity


def _check_hidden_dtype(name, value, argument, dtype):
    if value.dtype != dtype:
        raise RuntimeError(f"{name} {argument} dtype ({value.dtype}) does not match weight "
                           f"dtype ({dtype})")


def _dropout(x, p):
    """Inverted dropout of ``x`` (zero with probability p, scale the rest by 1 / (1 - p))."""
    keep = _random.numpy_generator().random(x.shape) >= p
    scale = 0.0 if p == 1 else 1.0 / (1.0 - p)
    return x * Tensor((keep * scale).astype(x.dtype))


# ---------------------------------------------------------------------------------- the cells
class _CellBase(Module):
    """Parameters, initialisation and input checks shared by :class:`RNNCell`,
    :class:`LSTMCell` and :class:`GRUCell`."""

    _gates = 1
    _states = 1

    def __init__(self, input_size, hidden_size, bias, dtype):
        super().__init__()
        self.input_size = _check_size(input_size, "input_size", 0)
        self.hidden_size = _check_size(hidden_size, "hidden_size", 1)
        self.bias = bool(bias)
        dtype = check_dtype(dtype, floating=True)
        width = self._gates * self.hidden_size
        self.weight_ih = Parameter(np.empty((width, self.input_size), dtype))
        self.weight_hh = Parameter(np.empty((width, self.hidden_size), dtype))
        if self.bias:
            self.bias_ih = Parameter(np.empty(width, dtype))
            self.bias_hh = Parameter(np.empty(width, dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self):
        """Every weight and bias from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as
        PyTorch."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            init.uniform_(weight, -bound, bound)

    def _prepare(self, input, states):
        """Check ``input`` and ``states`` (a tuple of Tensors, or None for zeros); return
        ``(x, states, batched)``: ``x`` is the input as a one-step sequence (1, N, I), each
        state is (N, H) (None when not given).
        """
        name = type(self).__name__
        check_tensor(input, "input")
        if input.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"input has inconsistent input_size: got {input.shape[-1]} "
                               f"expected {self.input_size}")
        dtype = self.weight_ih.dtype
        if input.dtype != dtype:
            raise RuntimeError(f"{name}: input dtype ({input.dtype}) does not match weight "
                               f"dtype ({dtype})")
        batched = input.ndim == 2
        batch = input.shape[0] if batched else 1
        x = input.reshape(1, batch, self.input_size)
        if states is None:
            return x, (None,) * self._states, batched
        for index, state in enumerate(states):
            what = f"hx[{index}]" if len(states) > 1 else "hidden"
            check_tensor(state, what)
            if state.ndim not in (1, 2):
                raise ValueError(f"{name}: Expected {what} to be 1D or 2D, got {state.ndim}D "
                                 "instead")
            if state.ndim != input.ndim:
                raise RuntimeError(f"{name}: for {input.ndim}-D input, {what} should also be "
                                   f"{input.ndim}-D but got {state.ndim}-D tensor")
            state_batch = state.shape[0] if batched else 1
            if state_batch != batch:
                raise RuntimeError(f"Input batch size {batch} doesn't match hidden{index} "
                                   f"batch size {state_batch}")
            if state.shape[-1] != self.hidden_size:
                raise RuntimeError(f"hidden{index} has inconsistent hidden_size: got "
                                   f"{state.shape[-1]}, expected {self.hidden_size}")
            _check_hidden_dtype(name, state, what, dtype)
        return x, tuple(s.reshape(batch, self.hidden_size) for s in states), batched

    def _weights(self):
        return self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s


class RNNCell(_CellBase):
    """An Elman RNN cell: one step of :class:`RNN`.

    .. math::
        h' = \\phi(x W_{ih}^T + b_{ih} + h W_{hh}^T + b_{hh}), \\quad \\phi = \\tanh
        \\text{ or ReLU}

    Args:
        input_size: features of the input x.
        hidden_size: features of the hidden state h.
        bias: learn the biases ``bias_ih`` and ``bias_hh``.
        nonlinearity: ``'tanh'`` or ``'relu'``.
        dtype: parameter dtype (float32 by default).

    Shape:
        input (N, I) or (I,); hx (N, H) or (H,), zeros when omitted; output h' like hx.

    Attributes:
        weight_ih (H, I), weight_hh (H, H), bias_ih (H,), bias_hh (H,): all initialised from
        U(-1/sqrt(H), 1/sqrt(H)).
    """

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", dtype=None):
        nonlinearity = _check_nonlinearity(nonlinearity)
        super().__init__(input_size, hidden_size, bias, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        x, (h0,), batched = self._prepare(input, None if hx is None else (hx,))
        _, h = _RNNLayer.apply(x, h0, *self._weights(), ACTIVATIONS[self.nonlinearity])
        return h if batched else h.reshape(self.hidden_size)


class LSTMCell(_CellBase):
    """A long short-term memory cell: one step of :class:`LSTM`.

    .. math::
        (z_i, z_f, z_g, z_o) = x W_{ih}^T + b_{ih} + h W_{hh}^T + b_{hh}; \\quad
        c' = \\sigma(z_f) c + \\sigma(z_i) \\tanh(z_g); \\quad
        h' = \\sigma(z_o) \\tanh(c')

    The four gates come from one matrix product per input; the pointwise part is the fused
    ``lstm_cell_fwd``/``lstm_cell_bwd`` kernel pair.

    Args:
        input_size: features of the input x.
        hidden_size: features of the hidden state h and cell state c.
        bias: learn the biases ``bias_ih`` and ``bias_hh``.
        dtype: parameter dtype (float32 by default).

    Shape:
        input (N, I) or (I,); hx a tuple ``(h, c)`` of (N, H) or (H,) each, zeros when
        omitted; returns ``(h', c')`` of the same shapes.

    Attributes:
        weight_ih (4H, I), weight_hh (4H, H), bias_ih (4H,), bias_hh (4H,): the gates stacked
        in the order i, f, g, o, all initialised from U(-1/sqrt(H), 1/sqrt(H)).

    References: Hochreiter & Schmidhuber, "Long short-term memory", Neural Computation 1997.
    """

    _gates = 4
    _states = 2

    def __init__(self, input_size, hidden_size, bias=True, dtype=None):
        super().__init__(input_size, hidden_size, bias, dtype)

    def forward(self, input, hx=None):
        if hx is not None:
            hx = tuple(hx)
            if len(hx) != 2:
                raise ValueError(f"LSTMCell: hx must be a tuple (h, c), got {len(hx)} "
                                 "elements")
        x, (h0, c0), batched = self._prepare(input, hx)
        _, h, c = _LSTMLayer.apply(x, h0, c0, *self._weights())
        if batched:
            return h, c
        return h.reshape(self.hidden_size), c.reshape(self.hidden_size)


class GRUCell(_CellBase):
    """A gated recurrent unit cell: one step of :class:`GRU`.

    .. math::
        r = \\sigma(x W_{ir}^T + b_{ir} + h W_{hr}^T + b_{hr}); \\quad
        z = \\sigma(x W_{iz}^T + b_{iz} + h W_{hz}^T + b_{hz}); \\\\
        n = \\tanh(x W_{in}^T + b_{in} + r (h W_{hn}^T + b_{hn})); \\quad
        h' = (1 - z) n + z h

    Args:
        input_size: features of the input x.
        hidden_size: features of the hidden state h.
        bias: learn the biases ``bias_ih`` and ``bias_hh``.
        dtype: parameter dtype (float32 by default).

    Shape:
        input (N, I) or (I,); hx (N, H) or (H,), zeros when omitted; output h' like hx.

    Attributes:
        weight_ih (3H, I), weight_hh (3H, H), bias_ih (3H,), bias_hh (3H,): the gates stacked
        in the order r, z, n, all initialised from U(-1/sqrt(H), 1/sqrt(H)).

    References: Cho et al., "Learning phrase representations using RNN encoder-decoder for
    statistical machine translation", EMNLP 2014.
    """

    _gates = 3

    def __init__(self, input_size, hidden_size, bias=True, dtype=None):
        super().__init__(input_size, hidden_size, bias, dtype)

    def forward(self, input, hx=None):
        x, (h0,), batched = self._prepare(input, None if hx is None else (hx,))
        _, h = _GRULayer.apply(x, h0, *self._weights())
        return h if batched else h.reshape(self.hidden_size)


# --------------------------------------------------------------------------------- the layers
class _RNNBase(Module):
    """Parameters, initialisation, input checks and the layer loop shared by :class:`RNN`,
    :class:`LSTM` and :class:`GRU`; a subclass gives its gate count, its number of states and
    ``_layer``, one layer and direction over a time-major sequence (with the per-step norm
    ``record`` callable of :meth:`record_time_grads`, or None)."""

    _gates = 1
    _states = 1

    def __init__(self, input_size, hidden_size, num_layers, bias, batch_first, dropout,
                 bidirectional, dtype):
        super().__init__()
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) \
                or not 0 <= dropout <= 1:
            raise ValueError("dropout should be a number in range [0, 1] representing the "
                             f"probability of an element being zeroed, got {dropout!r}")
        self.input_size = _check_size(input_size, "input_size", 0)
        self.hidden_size = _check_size(hidden_size, "hidden_size", 1)
        self.num_layers = _check_size(num_layers, "num_layers", 1)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so "
                          "non-zero dropout expects num_layers greater than 1, but got "
                          f"dropout={dropout} and num_layers={num_layers}", UserWarning,
                          stacklevel=3)
        dtype = check_dtype(dtype, floating=True)
        width = self._gates * self.hidden_size
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else self.hidden_size * self._directions
            for suffix in ("", "_reverse")[:self._directions]:
                setattr(self, f"weight_ih_l{layer}{suffix}",
                        Parameter(np.empty((width, layer_input), dtype)))
                setattr(self, f"weight_hh_l{layer}{suffix}",
                        Parameter(np.empty((width, self.hidden_size), dtype)))
                if self.bias:
                    setattr(self, f"bias_ih_l{layer}{suffix}", Parameter(np.empty(width, dtype)))
                    setattr(self, f"bias_hh_l{layer}{suffix}", Parameter(np.empty(width, dtype)))
        self._time_grad_recorder = None
        self.reset_parameters()

    @property
    def _directions(self):
        return 2 if self.bidirectional else 1

    def record_time_grads(self, recorder):
        """Have each backward through this module report its gradient norm at every time step
        (fastgrad's addition; :class:`fastgrad.diagnostics.GradientMonitor` sets it).

        From the next forward pass on, the backward of every layer and direction calls
        ``recorder(layer, direction, hidden, cell)``: ``layer`` counts from 0, ``direction``
        is 0 (forward) or 1 (reverse); ``hidden`` holds :math:`\\lVert \\partial L /
        \\partial h_t \\rVert` for t = 1..T, the total gradient of the loss with respect to
        the layer's hidden state at step t (through the output at step t and through the
        steps after it), its L2 norm over batch and units, as a float64 NumPy array in the
        input's time order (also for the reverse direction); ``cell`` is the same for the
        LSTM's cell state along the cell path, :math:`\\lVert \\partial L / \\partial c_t
        \\rVert` as c_t is passed on: the gradient it receives from step t + 1 (from c_n at
        t = T, so 0 there when c_n is not used), what the forget gates carry back; None for
        RNN and GRU. The norms come from the backward loop itself (no second pass through the
        recurrence): the step gradients go to a small ring of reused buffers, measured a few
        steps at a time in float64 while in cache (0.6-4 % of the layer's backward).

        Args:
            recorder: the callable, or None to stop recording (then backward is unchanged).
        """
        if recorder is not None and not callable(recorder):
            raise TypeError(f"recorder must be callable or None, got {type(recorder).__name__}")
        self._time_grad_recorder = recorder

    def reset_parameters(self):
        """Every weight and bias from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as
        PyTorch."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            init.uniform_(weight, -bound, bound)

    def _layer_weights(self, layer, direction=0):
        """``(weight_ih, weight_hh, bias_ih, bias_hh)`` of layer ``layer`` in ``direction`` (0
        forward, 1 reverse); the biases are None when ``bias=False``."""
        suffix = "_reverse" if direction else ""
        kinds = ("weight_ih", "weight_hh", "bias_ih", "bias_hh") if self.bias else \
            ("weight_ih", "weight_hh")
        weights = tuple(getattr(self, f"{kind}_l{layer}{suffix}") for kind in kinds)
        return weights if self.bias else weights + (None, None)

    def _check_states(self, states, batched, batch):
        """Check the initial states; each must be (D * num_layers, N, H), or
        (D * num_layers, H) for unbatched input (D = 2 when bidirectional, else 1)."""
        name = type(self).__name__
        for index, state in enumerate(states):
            check_tensor(state, f"hx[{index}]" if len(states) > 1 else "hx")
        ranks = [s.ndim for s in states]
        rank = 3 if batched else 2
        if any(r != rank for r in ranks):
            kind = "batched 3-D" if batched else "unbatched 2-D"
            if len(states) == 1:
                raise RuntimeError(f"For {kind} input, hx should also be {rank}-D but got "
                                   f"{ranks[0]}-D tensor")
            raise RuntimeError(f"For {kind} input, hx and cx should also be {rank}-D but got "
                               f"({ranks[0]}-D, {ranks[1]}-D) tensors")
        layers = self.num_layers * self._directions
        expected = (layers, batch, self.hidden_size) if batched else (layers, self.hidden_size)
        dtype = self.weight_ih_l0.dtype
        for index, state in enumerate(states):
            if state.shape != expected:
                which = f"hidden[{index}]" if len(states) > 1 else "hidden"
                raise RuntimeError(f"Expected {which} size {expected}, got {list(state.shape)}")
            _check_hidden_dtype(name, state, "hx" if len(states) == 1 else f"hx[{index}]",
                                dtype)

    def _run(self, input, states):
        """Check ``input`` and ``states`` (a tuple of Tensors, or None), run every layer and
        return ``(output, final_states)`` in the caller's layout."""
        name = type(self).__name__
        check_tensor(input, "input")
        if input.ndim not in (2, 3):
            raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.ndim}D "
                             "instead")
        dtype = self.weight_ih_l0.dtype
        if input.dtype != dtype:
            raise ValueError(f"{name} input dtype ({input.dtype}) does not match weight dtype "
                             f"({dtype}). Convert input: input.to({dtype}), or convert model: "
                             f"model.to({input.dtype})")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected "
                               f"{self.input_size}, got {input.shape[-1]}")
        batched = input.ndim == 3
        if not batched:
            x = input.unsqueeze(1)
        elif self.batch_first:
            x = input.transpose(0, 1)
        else:
            x = input
        if x.shape[0] == 0:
            raise RuntimeError(f"Expected sequence length to be larger than 0 in {name}")
        batch = x.shape[1]
        if states is not None:
            self._check_states(states, batched, batch)
            if not batched:
                states = tuple(s.unsqueeze(1) for s in states)
        finals = [[] for _ in range(self._states)]
        recorder = self._time_grad_recorder
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self._directions):
                index = layer * self._directions + direction  # PyTorch's order of h_n's rows
                initial = [None] * self._states if states is None else [s[index] for s in states]
                record = None if recorder is None else functools.partial(recorder, layer,
                                                                         direction)
                results = self._layer(x, initial, self._layer_weights(layer, direction),
                                      direction == 1, record)
                outputs.append(results[0])
                for final, state in zip(finals, results[1:]):
                    final.append(state)
            x = outputs[0] if len(outputs) == 1 else ops.cat(outputs, 2)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = _dropout(x, self.dropout)
        finals = [ops.stack(final) for final in finals]
        if not batched:
            return x.squeeze(1), [f.squeeze(1) for f in finals]
        if self.batch_first:
            x = x.transpose(0, 1)
        return x, finals

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class RNN(_RNNBase):
    """A multi-layer Elman RNN with tanh or ReLU nonlinearity, PyTorch's layout and semantics.

    For each layer k, direction and step t (the input of layer k > 0 is the output of layer
    k - 1, after dropout in training mode):

    .. math::
        h_t = \\phi(x_t W_{ih}^T + b_{ih} + h_{t-1} W_{hh}^T + b_{hh}), \\quad
        \\phi = \\tanh \\text{ or ReLU}

    Args:
        input_size: features of the input x.
        hidden_size: features of the hidden state h.
        num_layers: stacked recurrent layers.
        nonlinearity: ``'tanh'`` or ``'relu'``.
        bias: learn the biases ``bias_ih_l{k}`` and ``bias_hh_l{k}``.
        batch_first: input and output are (N, T, feature) instead of (T, N, feature).
        dropout: probability of zeroing the output of each layer except the last, in training
            mode only.
        bidirectional: add a reverse direction to every layer (see :class:`LSTM`).
        dtype: parameter dtype (float32 by default).

    Shape:
        input (T, N, I), or (N, T, I) with ``batch_first``, or unbatched (T, I); hx
        (D * num_layers, N, H) or (D * num_layers, H), zeros when omitted (D = 2 when
        bidirectional, else 1). Returns ``(output, h_n)``: output (T, N, D * H) (the last
        layer's h_t at every step; (N, T, D * H) with ``batch_first``, (T, D * H) unbatched)
        and h_n (D * num_layers, N, H) (each layer's and direction's last h_t).

    Attributes:
        weight_ih_l{k} (H, I for k = 0 else D * H), weight_hh_l{k} (H, H), bias_ih_l{k} (H,),
        bias_hh_l{k} (H,), and the same with the suffix ``_reverse`` for the reverse
        direction: all initialised from U(-1/sqrt(H), 1/sqrt(H)).

    Each layer's whole time loop is one graph node: one GEMM for the inputs of all steps, one
    GEMM and one ``activation_fwd`` per step; backward mirrors it.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, dtype=None):
        nonlinearity = _check_nonlinearity(nonlinearity)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, dtype)
        self.nonlinearity = nonlinearity

    def _layer(self, x, initial, weights, reverse, record):
        return _RNNLayer.apply(x, initial[0], *weights, ACTIVATIONS[self.nonlinearity],
                               reverse=reverse, record=record)

    def forward(self, input, hx=None):
        output, (h_n,) = self._run(input, None if hx is None else (hx,))
        return output, h_n


class LSTM(_RNNBase):
    """A multi-layer long short-term memory RNN, PyTorch's layout and semantics.

    For each layer k, direction and step t (the input of layer k > 0 is the output of layer
    k - 1, after dropout in training mode):

    .. math::
        (z_i, z_f, z_g, z_o) = x_t W_{ih}^T + b_{ih} + h_{t-1} W_{hh}^T + b_{hh}; \\quad
        c_t = \\sigma(z_f) c_{t-1} + \\sigma(z_i) \\tanh(z_g); \\quad
        h_t = \\sigma(z_o) \\tanh(c_t)

    Args:
        input_size: features of the input x.
        hidden_size: features of the hidden state h and cell state c.
        num_layers: stacked recurrent layers.
        bias: learn the biases ``bias_ih_l{k}`` and ``bias_hh_l{k}``.
        batch_first: input and output are (N, T, feature) instead of (T, N, feature).
        dropout: probability of zeroing the output of each layer except the last, in training
            mode only.
        bidirectional: add a reverse direction to every layer: its own weights (suffix
            ``_reverse``) run over the sequence from the last step to the first, and the
            layer's output at step t is the forward h_t and the reverse h_t concatenated on the
            feature axis.
        dtype: parameter dtype (float32 by default).

    Shape:
        input (T, N, I), or (N, T, I) with ``batch_first``, or unbatched (T, I); hx a tuple
        ``(h_0, c_0)`` of (D * num_layers, N, H) each (or (D * num_layers, H) unbatched), zeros
        when omitted (D = 2 when bidirectional, else 1). Returns ``(output, (h_n, c_n))``:
        output (T, N, D * H) (the last layer's h_t at every step; (N, T, D * H) with
        ``batch_first``, (T, D * H) unbatched), h_n and c_n (D * num_layers, N, H) (the last
        states of layer 0 forward, layer 0 reverse, layer 1 forward, ...; the reverse
        direction's last state is the one after step 0).

    Attributes:
        weight_ih_l{k} (4H, I for k = 0 else D * H), weight_hh_l{k} (4H, H), bias_ih_l{k}
        (4H,), bias_hh_l{k} (4H,), and the same with the suffix ``_reverse`` for the reverse
        direction: the gates stacked in the order i, f, g, o, all initialised from
        U(-1/sqrt(H), 1/sqrt(H)).

    Each layer's (and direction's) whole time loop is one graph node: one GEMM for the inputs
    of all steps, then per step one GEMM with ``weight_hh`` and the fused ``lstm_cell_fwd``
    kernel; backward mirrors it with ``lstm_cell_bwd``. Memory is linear in T, and 1,000-step
    sequences cost no recursion.

    References: Hochreiter & Schmidhuber, "Long short-term memory", Neural Computation 1997;
    Gers, Schmidhuber & Cummins, "Learning to forget", Neural Computation 2000.
    """

    _gates = 4
    _states = 2

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, dtype=None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, dtype)

    def _layer(self, x, initial, weights, reverse, record):
        return _LSTMLayer.apply(x, initial[0], initial[1], *weights, reverse=reverse,
                                record=record)

    def forward(self, input, hx=None):
        if hx is not None:
            hx = tuple(hx)
            if len(hx) != 2:
                raise ValueError(f"LSTM: hx must be a tuple (h_0, c_0), got {len(hx)} elements")
        output, (h_n, c_n) = self._run(input, hx)
        return output, (h_n, c_n)


class GRU(_RNNBase):
    """A multi-layer gated recurrent unit RNN, PyTorch's layout and semantics.

    For each layer k, direction and step t (the input of layer k > 0 is the output of layer
    k - 1, after dropout in training mode):

    .. math::
        r_t = \\sigma(x_t W_{ir}^T + b_{ir} + h_{t-1} W_{hr}^T + b_{hr}); \\quad
        z_t = \\sigma(x_t W_{iz}^T + b_{iz} + h_{t-1} W_{hz}^T + b_{hz}); \\\\
        n_t = \\tanh(x_t W_{in}^T + b_{in} + r_t (h_{t-1} W_{hn}^T + b_{hn})); \\quad
        h_t = (1 - z_t) n_t + z_t h_{t-1}

    Args:
        input_size: features of the input x.
        hidden_size: features of the hidden state h.
        num_layers: stacked recurrent layers.
        bias: learn the biases ``bias_ih_l{k}`` and ``bias_hh_l{k}``.
        batch_first: input and output are (N, T, feature) instead of (T, N, feature).
        dropout: probability of zeroing the output of each layer except the last, in training
            mode only.
        bidirectional: add a reverse direction to every layer (see :class:`LSTM`).
        dtype: parameter dtype (float32 by default).

    Shape:
        input (T, N, I), or (N, T, I) with ``batch_first``, or unbatched (T, I); hx
        (D * num_layers, N, H) or (D * num_layers, H), zeros when omitted (D = 2 when
        bidirectional, else 1). Returns ``(output, h_n)``: output (T, N, D * H) (the last
        layer's h_t at every step; (N, T, D * H) with ``batch_first``, (T, D * H) unbatched)
        and h_n (D * num_layers, N, H) (each layer's and direction's last h_t).

    Attributes:
        weight_ih_l{k} (3H, I for k = 0 else D * H), weight_hh_l{k} (3H, H), bias_ih_l{k}
        (3H,), bias_hh_l{k} (3H,), and the same with the suffix ``_reverse`` for the reverse
        direction: the gates stacked in the order r, z, n, all initialised from
        U(-1/sqrt(H), 1/sqrt(H)).

    Each layer's (and direction's) whole time loop is one graph node: one GEMM for the inputs
    of all steps, then per step one GEMM with ``weight_hh`` and two ``activation_fwd`` calls
    (sigmoid over r and z, tanh over n); backward mirrors it.

    References: Cho et al., "Learning phrase representations using RNN encoder-decoder for
    statistical machine translation", EMNLP 2014.
    """

    _gates = 3

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, dtype=None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, dtype)

    def _layer(self, x, initial, weights, reverse, record):
        return _GRULayer.apply(x, initial[0], *weights, reverse=reverse, record=record)

    def forward(self, input, hx=None):
        output, (h_n,) = self._run(input, None if hx is None else (hx,))
        return output, h_n
