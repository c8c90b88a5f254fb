"""The activation functions of the CUDA kernels (layers and the linear layer's epilogues), as
device functions, and the check of an activation code."""
import math

from numba import cuda

from ..numpy_ref import ACTIVATIONS

NONE, _RELU = ACTIVATIONS["none"], ACTIVATIONS["relu"]
_SIGMOID, _TANH = ACTIVATIONS["sigmoid"], ACTIVATIONS["tanh"]

#: The activation codes :func:`activate` and :func:`derivative` implement; the kernels
#: refuse any other (a code new in ACTIVATIONS goes here with its cases).
ACTIVATION_CODES = (NONE, _RELU, _SIGMOID, _TANH)


def check_activation(activation):
    if activation not in ACTIVATION_CODES:
        raise ValueError(f"activation code {activation} is not implemented by the numba_cuda "
                         f"backend (its codes: {ACTIVATION_CODES})")


@cuda.jit(device=True)
def sigmoid(v, one):
    """The reference's stable sigmoid in the dtype of ``v`` and ``one`` (1 of that dtype):
    ``(1 if v >= 0 else e) / (1 + e)``, ``e = exp(-|v|)``, which never overflows."""
    e = math.exp(-abs(v))
    return (one if v >= 0 else e) / (one + e)


@cuda.jit(device=True)
def activate(v, activation, one):
    """``act(v)`` for the activation code (``one``: 1 in v's dtype); NaN stays NaN."""
    if activation == _RELU:
        return 0 if v < 0 else v  # not max(v, 0): NaN stays NaN, as with np.maximum
    if activation == _SIGMOID:
        return sigmoid(v, one)
    if activation == _TANH:
        return math.tanh(v)
    return v


@cuda.jit(device=True)
def derivative(out, activation):
    """``act'`` in float64 from the activation's output ``out``."""
    o = float(out)
    if activation == _RELU:
        return 1.0 if o > 0 else 0.0
    if activation == _SIGMOID:
        return o * (1.0 - o)
    if activation == _TANH:
        return 1.0 - o * o
    return 1.0
