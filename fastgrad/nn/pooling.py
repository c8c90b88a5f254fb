"""Pooling layers: MaxPool2d, AvgPool2d, AdaptiveAvgPool2d and AdaptiveMaxPool2d, PyTorch's
arguments, defaults and reprs (see :mod:`fastgrad.nn.functional` for the operations, which
check the arguments at the first call, as PyTorch's do)."""
from . import functional as F
from .module import Module


class MaxPool2d(Module):
    """2-D max pooling (see :func:`fastgrad.nn.functional.max_pool2d`).

    Args:
        kernel_size: the window, an int or a (height, width) pair.
        stride: the step between windows (default: ``kernel_size``).
        padding: implicit -inf padding on both sides, at most half the window.
        dilation: the step between a window's elements.
        return_indices: also return the int64 flat position of each maximum.
        ceil_mode: round the output size up instead of down.

    Shape:
        input (N, C, H, W) or (C, H, W); output (N, C, H_out, W_out) or (C, H_out, W_out).
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, input):
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                            ceil_mode=self.ceil_mode, return_indices=self.return_indices)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """2-D average pooling (see :func:`fastgrad.nn.functional.avg_pool2d`).

    Args:
        kernel_size: the window, an int or a (height, width) pair.
        stride: the step between windows (default: ``kernel_size``).
        padding: implicit zero padding on both sides, at most half the window.
        ceil_mode: round the output size up instead of down.
        count_include_pad: count the padding in each window's divisor.
        divisor_override: a non-zero int dividing every window's sum instead.

    Shape:
        input (N, C, H, W) or (C, H, W); output (N, C, H_out, W_out) or (C, H_out, W_out).
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, input):
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """2-D average pooling to a fixed output size, whatever the input's (see
    :func:`fastgrad.nn.functional.adaptive_avg_pool2d`). ``AdaptiveAvgPool2d(1)`` is the
    global average pooling before a classifier.

    Args:
        output_size: an int or an (H_out, W_out) pair; None in the pair keeps the input's.
    """

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input):
        return F.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveMaxPool2d(Module):
    """2-D max pooling to a fixed output size (see
    :func:`fastgrad.nn.functional.adaptive_max_pool2d`).

    Args:
        output_size: an int or an (H_out, W_out) pair; None in the pair keeps the input's.
        return_indices: also return the int64 flat position of each maximum.
    """

    def __init__(self, output_size, return_indices=False):
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, input):
        return F.adaptive_max_pool2d(input, self.output_size, self.return_indices)

    def extra_repr(self):
        return f"output_size={self.output_size}"
