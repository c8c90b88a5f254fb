"""Convolution layers: Conv1d, Conv2d and ConvTranspose2d, PyTorch's parameters, shapes and
initialisation (see :mod:`fastgrad.nn.functional` for the operations)."""
import math
import numbers

import numpy as np

from .._checks import check_dtype, check_tensor, integer
from . import functional as F
from . import init
from .module import Module, Parameter

_PADDING_STRINGS = ("same", "valid")
_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _tuple(value, dims, argument):
    """An int or a sequence of ints as a tuple of ``dims`` ints (one int repeated)."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * dims
    if len(values) != dims:
        raise ValueError(f"{argument} must be an int or a tuple of {dims} ints, got {value!r}")
    return tuple(integer(v, argument) for v in values)


class _ConvNd(Module):
    """The body of the convolution layers: argument checks, parameters, initialisation and
    repr, PyTorch's. ``transposed`` layers hold their weight as (in, out / groups, *kernel)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation,
                 transposed, output_padding, groups, bias, padding_mode, dtype, dims):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups <= 0:
            raise ValueError(f"groups must be a positive integer, got {groups!r}")
        if in_channels % groups:
            raise ValueError(f"in_channels must be divisible by groups, got in_channels="
                             f"{in_channels} and groups={groups}")
        if out_channels % groups:
            raise ValueError(f"out_channels must be divisible by groups, got out_channels="
                             f"{out_channels} and groups={groups}")
        self.kernel_size = _tuple(kernel_size, dims, "kernel_size")
        self.stride = _tuple(stride, dims, "stride")
        if isinstance(padding, str):
            if padding not in _PADDING_STRINGS:
                raise ValueError(f"Invalid padding string {padding!r}, should be one of "
                                 f"{_PADDING_STRINGS}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = _tuple(padding, dims, "padding")
        self.dilation = _tuple(dilation, dims, "dilation")
        self.output_padding = _tuple(output_padding, dims, "output_padding")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, but got "
                             f"padding_mode={padding_mode!r}")
        if padding_mode != "zeros":
            raise NotImplementedError(
                f"padding_mode={padding_mode!r} is not supported by fastgrad's "
                f"{type(self).__name__}, only 'zeros'; pad the input with "
                f"F.pad(input, pad, mode={padding_mode!r}) and use padding=0 instead")
        dtype = check_dtype(dtype, floating=True)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.transposed, self.groups, self.padding_mode = transposed, int(groups), padding_mode
        shape = (in_channels, out_channels // groups) if transposed else \
            (out_channels, in_channels // groups)
        self.weight = Parameter(np.empty(shape + self.kernel_size, dtype))
        if bias:
            self.bias = Parameter(np.empty(out_channels, dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        """PyTorch's initialisation: kaiming_uniform_ with a = sqrt(5) for the weight (which
        is U(-1/sqrt(fan_in), 1/sqrt(fan_in))), the same bound for the bias; fan_in is
        ``weight.shape[1] * prod(kernel_size)``."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * math.prod(self.kernel_size)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def extra_repr(self):
        dims = len(self.kernel_size)
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding != (0,) * dims:
            text += f", padding={self.padding}"
        if self.dilation != (1,) * dims:
            text += f", dilation={self.dilation}"
        if self.output_padding != (0,) * dims:
            text += f", output_padding={self.output_padding}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text


class Conv1d(_ConvNd):
    """1-D convolution over (N, C_in, L) or (C_in, L) inputs (see
    :func:`fastgrad.nn.functional.conv1d`).

    Args:
        in_channels, out_channels: C_in and C_out, multiples of ``groups``.
        kernel_size, stride, dilation: ints (or 1-tuples).
        padding: an int, ``"valid"`` or ``"same"`` (stride 1).
        groups: independent channel groups (``groups == in_channels``: depthwise).
        bias: learn an additive bias.
        padding_mode: only ``"zeros"``; PyTorch's other modes raise NotImplementedError
            (pad with :func:`fastgrad.nn.functional.pad` first).
        dtype: parameter dtype (float32 by default).

    Attributes:
        weight: (C_out, C_in / groups, kernel_size); bias: (C_out,). Both U(-1/sqrt(fan_in),
        1/sqrt(fan_in)) with fan_in = C_in / groups * kernel_size, as PyTorch.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         False, 0, groups, bias, padding_mode, dtype, dims=1)

    def forward(self, input):
        return F.conv1d(input, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)


class Conv2d(_ConvNd):
    """2-D convolution over (N, C_in, H, W) or (C_in, H, W) inputs (see
    :func:`fastgrad.nn.functional.conv2d` for the formula and output size).

    Args:
        in_channels, out_channels: C_in and C_out, multiples of ``groups``.
        kernel_size, stride, dilation: ints or (height, width) pairs.
        padding: an int, a pair, ``"valid"`` or ``"same"`` (stride 1).
        groups: independent channel groups (``groups == in_channels``: depthwise).
        bias: learn an additive bias.
        padding_mode: only ``"zeros"``; PyTorch's other modes raise NotImplementedError
            (pad with :func:`fastgrad.nn.functional.pad` first).
        dtype: parameter dtype (float32 by default).

    Attributes:
        weight: (C_out, C_in / groups, kH, kW); bias: (C_out,). Both U(-1/sqrt(fan_in),
        1/sqrt(fan_in)) with fan_in = C_in / groups * kH * kW, as PyTorch.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         False, 0, groups, bias, padding_mode, dtype, dims=2)

    def forward(self, input):
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)


class ConvTranspose2d(_ConvNd):
    """The transposed 2-D convolution over (N, C_in, H, W) or (C_in, H, W) inputs: the input
    gradient of a Conv2d of the same arguments, as a layer (see
    :func:`fastgrad.nn.functional.conv_transpose2d`).

    Args:
        in_channels, out_channels: C_in and C_out, multiples of ``groups``.
        kernel_size, stride, padding, dilation: ints or pairs (no padding strings).
        output_padding: extra size on one side of the output, below stride or dilation.
        groups: independent channel groups.
        bias: learn an additive bias.
        padding_mode: only ``"zeros"`` (PyTorch's only one for this layer).
        dtype: parameter dtype (float32 by default).

    Attributes:
        weight: (C_in, C_out / groups, kH, kW); bias: (C_out,). Both U(-1/sqrt(fan_in),
        1/sqrt(fan_in)) with fan_in = C_out / groups * kH * kW (PyTorch computes it from the
        weight's shape the same way).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 dtype=None):
        if isinstance(padding, str):
            raise TypeError(f"ConvTranspose2d: padding must be an int or a pair of ints, got "
                            f"{padding!r}")
        if padding_mode != "zeros":
            raise ValueError('Only "zeros" padding mode is supported for ConvTranspose2d')
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         True, output_padding, groups, bias, padding_mode, dtype, dims=2)

    def _output_padding(self, input, output_size):
        """``output_padding``, or the one that makes the output ``output_size`` ((H, W), or
        with the leading dimensions), PyTorch's rule and errors."""
        if output_size is None:
            return self.output_padding
        check_tensor(input, "input")
        output_size = tuple(output_size)
        leading = input.ndim - 2
        if len(output_size) == leading + 2:
            output_size = output_size[leading:]
        if len(output_size) != 2:
            raise ValueError(f"ConvTranspose2D: for {input.ndim}D input, output_size must have "
                             f"2 or {leading + 2} elements (got {len(output_size)})")
        smallest = [(size - 1) * s - 2 * p + d * (k - 1) + 1 for size, s, p, d, k in zip(
            input.shape[-2:], self.stride, self.padding, self.dilation, self.kernel_size)]
        largest = [low + s - 1 for low, s in zip(smallest, self.stride)]
        if any(not low <= size <= high for size, low, high in zip(output_size, smallest,
                                                                  largest)):
            raise ValueError(f"requested an output size of {output_size}, but valid sizes range "
                             f"from {smallest} to {largest} (for an input of "
                             f"{tuple(input.shape[-2:])})")
        return tuple(size - low for size, low in zip(output_size, smallest))

    def forward(self, input, output_size=None):
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding,
                                  self._output_padding(input, output_size), self.groups,
                                  self.dilation)
