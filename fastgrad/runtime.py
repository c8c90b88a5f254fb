"""Inference for models exported by :func:`fastgrad.export`, with NumPy alone.

This file is self-contained on purpose: it imports NumPy and the standard library only (not
fastgrad, Numba or cffi), so it can be copied on its own to a machine that has NumPy and run
there::

    import runtime                      # this file, copied next to the script
    model = runtime.load("model.safetensors")
    logits = model(batch)               # a NumPy array in, NumPy arrays out

An exported file is a safetensors file (weights) whose metadata holds a JSON graph of the
model's layers and the keys of an example input with its expected output; :func:`load`
verifies the file's checksum, checks the graph and, by default, runs the example and compares
(:meth:`Model.self_test`). The model computes in the dtype it was exported in, in evaluation
mode (Dropout is gone, BatchNorm uses its running statistics, folded into the preceding Linear
or Conv2d where there is one). Convolutions and poolings run as views of every window
(``numpy.lib.stride_tricks.sliding_window_view``), a convolution's copied once into columns
for one batched matrix product over its groups.

The module also holds fastgrad's one safetensors reader, :func:`read_safetensors`, which
:func:`fastgrad.load` uses too: a weights file is parsed and validated in one place.

Graph nodes (JSON objects, ``"op"`` says which; ``"name"`` is the module's path in the
exported model, for messages):

=======================  ============================================================
``sequential``           ``layers``: a list of nodes applied in order
``residual``             ``block`` and ``shortcut`` (a node, or null for the identity): their
                         sum
``linear``               ``weight`` (out, in) and ``bias`` (out,) or null: ``x @ weight.T +
                         bias``
``batch_norm``           ``scale`` and ``shift`` (C,): ``x * scale + shift`` along dimension 1
``conv2d``               ``weight`` (out, in / groups, kH, kW), ``bias`` (out,) or null,
                         ``stride`` [sH, sW], ``padding`` [[top, bottom], [left, right]]
                         (zeros; ``"same"`` resolved, its odd one at the bottom and right),
                         ``dilation`` [dH, dW], ``groups``: PyTorch's conv2d of (N, C, H, W)
                         or (C, H, W)
``max_pool2d``           ``kernel_size``, ``stride``, ``padding`` (-inf, at most half the
                         kernel) and ``dilation``, each [h, w]; ``ceil_mode``
``avg_pool2d``           ``kernel_size``, ``stride``, ``padding`` (zeros), each [h, w];
                         ``ceil_mode``, ``count_include_pad``, ``divisor_override`` (null or a
                         non-zero int)
``adaptive_avg_pool2d``  ``output_size`` [h, w] (a null keeps the input's): PyTorch's windows
``adaptive_max_pool2d``  the same, the maximum of each window
``flatten``              ``start_dim``, ``end_dim``
``relu`` ...             ``sigmoid``, ``tanh``, ``leaky_relu`` (``negative_slope``), ``elu``
                         (``alpha``), ``gelu`` (``approximate``), ``softplus`` (``beta``,
                         ``threshold``)
``lstm``                 ``input_size``, ``hidden_size``, ``num_layers``, ``batch_first``,
                         ``layers``: per layer ``[weight_ih, weight_hh, bias_ih, bias_hh]``
                         (biases may be null); returns ``(output, (h_n, c_n))`` as PyTorch's
                         LSTM
``rnn``                  the same with ``nonlinearity`` (``tanh``/``relu``); returns
                         ``(output, h_n)``
=======================  ============================================================

Weights are referenced by their key in the safetensors file.
"""
import hashlib
import io
import json
import math
import os
import struct

import numpy as np

__all__ = ["load", "Model", "read_safetensors", "relative_error", "tolerance",
           "SAFETENSORS_DTYPES", "GRAPH_KEY", "CHECKSUM_KEY"]

#: safetensors dtype names and their little-endian NumPy dtypes (BF16 and the 8-bit floats
#: have no NumPy dtype and are refused).
SAFETENSORS_DTYPES = {
    "BOOL": np.dtype("?"), "U8": np.dtype("u1"), "I8": np.dtype("i1"),
    "U16": np.dtype("<u2"), "I16": np.dtype("<i2"), "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"), "U64": np.dtype("<u8"), "I64": np.dtype("<i8"),
    "F16": np.dtype("<f2"), "F32": np.dtype("<f4"), "F64": np.dtype("<f8"),
}
#: Metadata key of the sha256 (hex) of a file's data section, written by fastgrad.
CHECKSUM_KEY = "fastgrad.sha256"
#: Metadata key of an exported model's graph (JSON).
GRAPH_KEY = "fastgrad.graph"
#: The largest header accepted, as the safetensors library (100 MB).
_MAX_HEADER = 100_000_000
_GRAPH_FORMAT = "fastgrad.graph"
_GRAPH_VERSION = 1


# ---------------------------------------------------------------------------------- reading
def _refuse(path, problem):
    return ValueError(f"{os.fspath(path)}: not a valid safetensors file: {problem}")


def _unique_keys(pairs):
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        duplicate = next(key for key in keys if keys.count(key) > 1)
        raise ValueError(f"duplicate key {duplicate!r}")
    return dict(pairs)


def _reject_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _check_entry(path, name, entry):
    """The (dtype, shape, begin, end) of header entry ``name``, or a ValueError."""
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise _refuse(path, f"tensor {name!r} must be described by exactly 'dtype', 'shape' "
                            f"and 'data_offsets', got {entry!r}")
    dtype = entry["dtype"]
    if dtype not in SAFETENSORS_DTYPES:
        raise _refuse(path, f"tensor {name!r} has unknown or unsupported dtype {dtype!r} "
                            f"(supported: {', '.join(SAFETENSORS_DTYPES)})")
    shape, offsets = entry["shape"], entry["data_offsets"]
    if not isinstance(shape, list) or not all(_is_int(s) and s >= 0 for s in shape):
        raise _refuse(path, f"tensor {name!r} has an invalid shape {shape!r}")
    if not isinstance(offsets, list) or len(offsets) != 2 \
            or not all(_is_int(o) and o >= 0 for o in offsets) or offsets[0] > offsets[1]:
        raise _refuse(path, f"tensor {name!r} has invalid data_offsets {offsets!r}")
    nbytes = math.prod(shape) * SAFETENSORS_DTYPES[dtype].itemsize
    if offsets[1] - offsets[0] != nbytes:
        raise _refuse(path, f"tensor {name!r} of dtype {dtype} and shape {shape} needs "
                            f"{nbytes} bytes, its data_offsets {offsets} span "
                            f"{offsets[1] - offsets[0]}")
    return SAFETENSORS_DTYPES[dtype], tuple(shape), offsets[0], offsets[1]


def _read_header(path, handle, size):
    """The header's tensor entries (validated, in data order) and its metadata."""
    if size < 8:
        raise _refuse(path, f"the file holds {size} bytes, too few for the 8-byte header "
                            "length")
    (length,) = struct.unpack("<Q", handle.read(8))
    if length == 0 or length > min(_MAX_HEADER, size - 8):
        raise _refuse(path, f"bad header length {length} for a file of {size} bytes "
                            "(truncated, or not a safetensors file)")
    raw = handle.read(length)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys,
                            parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise _refuse(path, f"the header is not valid JSON ({error!r:.200})") from None
    if not isinstance(header, dict):
        raise _refuse(path, f"the header must be a JSON object, got {type(header).__name__}")
    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise _refuse(path, "__metadata__ must map strings to strings")
    entries = sorted(((name, *_check_entry(path, name, entry))
                      for name, entry in header.items()), key=lambda e: (e[3], e[4]))
    position = 0
    for name, _, _, begin, end in entries:
        if begin < position:
            raise _refuse(path, f"tensor {name!r} overlaps the previous tensor (data_offsets "
                                f"start at {begin}, the previous one ends at {position})")
        if begin > position:
            raise _refuse(path, f"a gap of {begin - position} bytes precedes tensor {name!r}")
        position = end
    available = size - 8 - length
    if position > available:
        raise _refuse(path, f"truncated: the header describes {position} bytes of tensor "
                            f"data, the file holds {available}")
    if position < available:
        raise _refuse(path, f"{available - position} bytes follow the last tensor's data")
    return entries, metadata


def read_safetensors(path):
    """Read and validate a safetensors file with NumPy alone.

    Everything is checked before a tensor is built: the header length against the file's
    size, the header (JSON, a string-to-string ``__metadata__``, known dtypes, shapes matching
    their byte ranges, byte ranges in bounds, without overlap or gap, covering the data
    section) and, when the metadata holds a ``fastgrad.sha256`` checksum (files fastgrad
    writes), the sha256 of the data section.

    Args:
        path: a file path (str or ``os.PathLike``), or a binary file object (``io.BytesIO``,
            ``open(path, "rb")``) read from its position to its end; messages name it by
            its ``name`` where it has a string one.

    Returns:
        ``(tensors, metadata)``: a dict of name to a new NumPy array (native byte order,
        writable, in the file's data order) and the ``__metadata__`` dict ({} when absent).

    Raises:
        ValueError: naming the path and the problem, for a truncated, corrupted or foreign
            file. OSError (FileNotFoundError...) when the file cannot be read. TypeError for
            a text-mode file object.
    """
    if not hasattr(path, "read"):
        with open(path, "rb") as handle:
            return _read_file(path, handle, os.fstat(handle.fileno()).st_size)
    if isinstance(path, io.TextIOBase):
        raise TypeError(f"read_safetensors needs a binary file object (opened with 'rb'), got "
                        f"a text-mode {type(path).__name__}")
    name = getattr(path, "name", None)
    name = name if isinstance(name, str) else f"<{type(path).__name__}>"
    seekable = callable(getattr(path, "seekable", None)) and path.seekable()
    handle = path if seekable else io.BytesIO(path.read())
    start = handle.tell()
    size = handle.seek(0, io.SEEK_END) - start
    handle.seek(start)
    return _read_file(name, handle, size)


def _read_file(path, handle, size):
    """:func:`read_safetensors` on ``handle``, positioned at the start of the file's
    ``size`` bytes; ``path`` names it in messages."""
    entries, metadata = _read_header(path, handle, size)
    digest = hashlib.sha256()
    tensors = {}
    for name, dtype, shape, begin, end in entries:
        array = np.empty(shape, dtype)
        view = array.reshape(-1).view(np.uint8)
        filled = 0
        while filled < view.size:
            count = handle.readinto(view[filled:])
            if not count:
                raise _refuse(path, f"truncated while reading tensor {name!r}")
            filled += count
        digest.update(view)
        if dtype.kind == "b" and view.size and view.max() > 1:
            raise _refuse(path, f"bool tensor {name!r} holds bytes other than 0 and 1")
        tensors[name] = array if dtype.isnative else array.astype(dtype.newbyteorder("="))
    expected = metadata.get(CHECKSUM_KEY)
    if expected is not None and digest.hexdigest() != expected:
        raise ValueError(f"{os.fspath(path)}: corrupted: the sha256 of the tensor data is "
                         f"{digest.hexdigest()}, the file's metadata records {expected}")
    return tensors, metadata


# ------------------------------------------------------------------------------ activations
def _sigmoid(z):
    """1 / (1 + exp(-z)) from exp(-|z|): no overflow for any z."""
    e = np.exp(-np.abs(z))
    return (np.where(z >= 0, 1, e) / (1 + e)).astype(z.dtype, copy=False)


_erfc = np.frompyfunc(math.erfc, 1, 1)


def _gelu(x, approximate):
    # float64 inside, as fastgrad: the CDF's tail and the cubic lose float32's accuracy
    x64 = x.astype(np.float64)
    if approximate == "none":
        cdf = 0.5 * _erfc(-x64 * math.sqrt(0.5)).astype(np.float64)
    else:
        inner = np.clip(x64, -40, 40)
        cdf = 0.5 + 0.5 * np.tanh(0.7978845608028654 * (inner + 0.044715 * inner ** 3))
    return (x64 * cdf).astype(x.dtype)


def _softplus(x, beta, threshold):
    z = x * beta
    soft = (np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))) / beta
    return np.where(z > threshold, x, soft).astype(x.dtype, copy=False)


_ACTIVATIONS = {
    "relu": (lambda x: np.maximum(x, 0), ()),
    "sigmoid": (_sigmoid, ()),
    "tanh": (np.tanh, ()),
    "leaky_relu": (lambda x, s: np.where(x > 0, x, x * x.dtype.type(s)), ("negative_slope",)),
    "elu": (lambda x, a: np.where(x > 0, x, x.dtype.type(a) * np.expm1(np.minimum(x, 0))),
            ("alpha",)),
    "gelu": (_gelu, ("approximate",)),
    "softplus": (_softplus, ("beta", "threshold")),
}


# -------------------------------------------------------------------------------- the model
def _recurrent(node, weights, x):
    """A multi-layer LSTM or Elman RNN over ``x``, PyTorch's semantics, zero initial states."""
    lstm = node["op"] == "lstm"
    batched = x.ndim == 3
    if not batched:
        x = x[:, None, :]
    elif node["batch_first"]:
        x = x.transpose(1, 0, 2)
    steps, batch = x.shape[:2]
    hidden = node["hidden_size"]
    finals_h, finals_c = [], []
    for w_ih, w_hh, b_ih, b_hh in ([None if k is None else weights[k] for k in layer]
                                   for layer in node["layers"]):
        projected = x @ w_ih.T
        if b_ih is not None:
            projected += b_ih + b_hh
        h = np.zeros((batch, hidden), x.dtype)
        c = np.zeros_like(h)
        out = np.empty((steps, batch, hidden), x.dtype)
        for t in range(steps):
            z = projected[t] + h @ w_hh.T
            if lstm:
                i, f, g, o = (z[:, k * hidden:(k + 1) * hidden] for k in range(4))
                c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
                h = _sigmoid(o) * np.tanh(c)
            else:
                h = np.tanh(z) if node["nonlinearity"] == "tanh" else np.maximum(z, 0)
            out[t] = h
        x = out
        finals_h.append(h)
        finals_c.append(c)
    h_n, c_n = np.stack(finals_h), np.stack(finals_c)
    if not batched:
        x, h_n, c_n = x[:, 0], h_n[:, 0], c_n[:, 0]
    elif node["batch_first"]:
        x = x.transpose(1, 0, 2)
    x = np.ascontiguousarray(x)
    return (x, (h_n, c_n)) if lstm else (x, h_n)


def _flatten(x, start_dim, end_dim):
    start, end = (d + x.ndim if d < 0 else d for d in (start_dim, end_dim))
    return x.reshape(x.shape[:start] + (-1,) + x.shape[end + 1:])


def _windows(x, kernel, stride, padding, dilation, fill):
    """Every window of ``x`` (N, C, H, W), padded by ``padding`` ((top, bottom), (left,
    right)) of ``fill``: a view (N, C, OH, OW, KH, KW) whose ``[n, c, i, j, p, q]`` is the
    padded image's element at row ``i stride_h + p dilation_h`` and column likewise."""
    padded = np.pad(x, ((0, 0), (0, 0)) + tuple(tuple(pair) for pair in padding),
                    constant_values=fill)
    spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    view = np.lib.stride_tricks.sliding_window_view(padded, spans, axis=(2, 3))
    return view[:, :, ::stride[0], ::stride[1], ::dilation[0], ::dilation[1]]


def _images(node, x, channels=None):
    """``x`` as a batch of images (N, C, H, W) and whether it was one; a ValueError naming
    the layer for another rank or channel count (None: any)."""
    if x.ndim not in (3, 4) or channels is not None and x.shape[-3] != channels:
        wanted = "C" if channels is None else channels
        raise ValueError(f"{node['op']} {node['name']!r} expects input of shape (N, {wanted}, H, "
                         f"W) or ({wanted}, H, W), got {x.shape}")
    return (x, True) if x.ndim == 4 else (x[None], False)


def _too_small(node, x, spans):
    """A ValueError when the padded image of ``x`` is smaller than a window."""
    padded = [x.shape[2 + axis] + sum(node["padding"][axis]) for axis in range(2)]
    if any(size < span for size, span in zip(padded, spans)):
        raise ValueError(f"{node['op']} {node['name']!r}: the padded input is "
                         f"{padded[0]} x {padded[1]}, smaller than the window's "
                         f"{spans[0]} x {spans[1]}")


def _conv2d(node, weights, x):
    """A 2-D convolution: im2col (a view of every window, copied once into columns) and one
    batched matrix product over the groups."""
    weight = weights[node["weight"]]
    out_channels, group_channels, kernel_h, kernel_w = weight.shape
    groups = node["groups"]
    x, batched = _images(node, x, group_channels * groups)
    _too_small(node, x, [d * (k - 1) + 1 for k, d in zip((kernel_h, kernel_w),
                                                         node["dilation"])])
    windows = _windows(x, (kernel_h, kernel_w), node["stride"], node["padding"],
                       node["dilation"], 0)
    n, _, out_h, out_w = windows.shape[:4]
    # columns (N, groups, OH OW, C/groups KH KW), rows of the weight's (channel, p, q) order
    columns = windows.reshape(n, groups, group_channels, out_h, out_w, kernel_h, kernel_w) \
        .transpose(0, 1, 3, 4, 2, 5, 6).reshape(n, groups, out_h * out_w, -1)
    products = columns @ weight.reshape(groups, out_channels // groups, -1).transpose(0, 2, 1)
    out = products.transpose(0, 1, 3, 2).reshape(n, out_channels, out_h, out_w)
    if node["bias"] is not None:
        out += weights[node["bias"]][:, None, None]
    return out if batched else out[0]


def _pool_padding(node, x):
    """The padding of a max or average pooling of ``x`` as ((top, bottom), (left, right))
    and its output size: ``floor((size + 2 padding - dilation (kernel - 1) - 1) / stride) +
    1``, or with ``ceil_mode`` rounded up (less the last window if it would start in the
    right padding), the bottom and right padding then grown to hold the last window."""
    dilation = node.get("dilation", [1, 1])
    padding, size = [], []
    for axis in range(2):
        length, kernel, stride, pad = (x.shape[2 + axis], node["kernel_size"][axis],
                                       node["stride"][axis], node["padding"][axis])
        span = dilation[axis] * (kernel - 1) + 1
        count = (length + 2 * pad - span) // stride + 1
        if node["ceil_mode"]:
            count = -(-(length + 2 * pad - span) // stride) + 1
            if (count - 1) * stride >= length + pad:
                count -= 1
        if count < 1:
            raise ValueError(f"{node['op']} {node['name']!r}: an input of {x.shape[2]} x "
                             f"{x.shape[3]} is smaller than the window")
        padding.append((pad, max(pad, (count - 1) * stride + span - length - pad)))
        size.append(count)
    return padding, size


def _max_pool2d(node, x):
    """Max pooling: the maximum of each window, padding -inf (never picked), NaN the
    maximum as in PyTorch."""
    x, batched = _images(node, x)
    padding, (out_h, out_w) = _pool_padding(node, x)
    windows = _windows(x, node["kernel_size"], node["stride"], padding, node["dilation"],
                       -np.inf)[:, :, :out_h, :out_w]
    out = windows.max(axis=(4, 5))
    return out if batched else out[0]


def _avg_divisors(node, height, width, out_size):
    """(OH, OW) divisors of average pooling, PyTorch's rule: ``divisor_override`` if set;
    with ``count_include_pad`` the window's size clipped to the padded image (ceil_mode's
    last windows run past it); else its count of elements inside the image."""
    if node["divisor_override"] is not None:
        return np.full(out_size, node["divisor_override"])
    lengths = []
    for size, count, kernel, stride, pad in zip((height, width), out_size,
                                                node["kernel_size"], node["stride"],
                                                node["padding"]):
        start = np.arange(count) * stride - pad
        end = np.minimum(start + kernel, size + pad)
        lengths.append(end - start if node["count_include_pad"]
                       else np.minimum(end, size) - np.maximum(start, 0))
    return np.outer(*lengths)


def _avg_pool2d(node, x):
    """Average pooling: each window's sum (zero padding) over its divisor."""
    x, batched = _images(node, x)
    padding, out_size = _pool_padding(node, x)
    windows = _windows(x, node["kernel_size"], node["stride"], padding, [1, 1],
                       0)[:, :, :out_size[0], :out_size[1]]
    divisors = _avg_divisors(node, x.shape[2], x.shape[3], out_size)
    out = (windows.sum(axis=(4, 5)) / divisors).astype(x.dtype, copy=False)
    return out if batched else out[0]


def _adaptive_pool2d(node, x):
    """Adaptive average or max pooling: output (i, j) pools the input rows ``floor(i H /
    OH)`` to ``ceil((i + 1) H / OH)`` (exclusive) and the columns likewise, PyTorch's
    windows; a null output size keeps the input's."""
    _images(node, x)
    if 0 in x.shape[-3:]:
        raise ValueError(f"{node['op']} {node['name']!r} expects non-empty channels, height "
                         f"and width, got input of shape {x.shape}")
    reduce = np.mean if node["op"] == "adaptive_avg_pool2d" else np.max
    sizes = [x.shape[-2 + axis] if s is None else s
             for axis, s in enumerate(node["output_size"])]
    edges = [[((i * length) // count, -(-(i + 1) * length // count)) for i in range(count)]
             for length, count in zip(x.shape[-2:], sizes)]
    out = np.empty(x.shape[:-2] + tuple(sizes), x.dtype)
    for i, (top, bottom) in enumerate(edges[0]):
        for j, (left, right) in enumerate(edges[1]):
            out[..., i, j] = reduce(x[..., top:bottom, left:right], axis=(-2, -1))
    return out


def _run(node, weights, x):
    """Evaluate graph node ``node`` on ``x``."""
    op = node["op"]
    if not isinstance(x, np.ndarray):
        raise ValueError(f"layer {node['name']!r} ({op}) takes an array, the previous layer "
                         "returned a tuple")
    if op == "sequential":
        for layer in node["layers"]:
            x = _run(layer, weights, x)
        return x
    if op == "residual":
        skip = x if node["shortcut"] is None else _run(node["shortcut"], weights, x)
        out = _run(node["block"], weights, x)
        if not isinstance(out, np.ndarray) or out.shape != skip.shape:
            raise ValueError(f"residual {node['name']!r}: block and shortcut outputs differ in "
                             "shape")
        return out + skip
    if op == "linear":
        weight = weights[node["weight"]]
        if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
            raise ValueError(f"linear {node['name']!r} expects input of shape "
                             f"(*, {weight.shape[1]}), got {x.shape}")
        out = x @ weight.T
        if node["bias"] is not None:
            out += weights[node["bias"]]
        return out
    if op == "conv2d":
        return _conv2d(node, weights, x)
    if op == "max_pool2d":
        return _max_pool2d(node, x)
    if op == "avg_pool2d":
        return _avg_pool2d(node, x)
    if op in ("adaptive_avg_pool2d", "adaptive_max_pool2d"):
        return _adaptive_pool2d(node, x)
    if op == "batch_norm":
        scale, shift = weights[node["scale"]], weights[node["shift"]]
        if x.ndim < 2 or x.shape[1] != scale.shape[0]:
            raise ValueError(f"batch_norm {node['name']!r} expects {scale.shape[0]} channels "
                             f"in dimension 1, got input of shape {x.shape}")
        broadcast = (-1,) + (1,) * (x.ndim - 2)
        return x * scale.reshape(broadcast) + shift.reshape(broadcast)
    if op == "flatten":
        return _flatten(x, node["start_dim"], node["end_dim"])
    if op in ("lstm", "rnn"):
        if x.ndim not in (2, 3) or x.shape[-1] != node["input_size"]:
            raise ValueError(f"{op} {node['name']!r} expects input of shape (T, N, "
                             f"{node['input_size']}), (N, T, {node['input_size']}) or (T, "
                             f"{node['input_size']}), got {x.shape}")
        return _recurrent(node, weights, x)
    function, options = _ACTIVATIONS[op]
    return function(x, *(node[o] for o in options))


_OPTIONS = {"sequential": ("layers",), "residual": ("block", "shortcut"),
            "linear": ("weight", "bias"), "batch_norm": ("scale", "shift"),
            "conv2d": ("weight", "bias", "stride", "padding", "dilation", "groups"),
            "max_pool2d": ("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
            "avg_pool2d": ("kernel_size", "stride", "padding", "ceil_mode",
                           "count_include_pad", "divisor_override"),
            "adaptive_avg_pool2d": ("output_size",), "adaptive_max_pool2d": ("output_size",),
            "flatten": ("start_dim", "end_dim"),
            "lstm": ("input_size", "hidden_size", "num_layers", "batch_first", "layers"),
            "rnn": ("input_size", "hidden_size", "num_layers", "batch_first", "layers",
                    "nonlinearity"),
            **{op: options for op, (_, options) in _ACTIVATIONS.items()}}


def _check_node(node, weights, problems):
    """Append to ``problems`` what is wrong with ``node`` and its children: unknown ops,
    missing or mistyped options, weights missing or of the wrong rank."""
    if not isinstance(node, dict) or node.get("op") not in _OPTIONS:
        problems.append(f"unknown node {node!r:.80}")
        return
    op, name = node["op"], node.get("name")
    missing = [o for o in ("name",) + _OPTIONS[op] if o not in node]
    if missing:
        problems.append(f"node {name!r} ({op}) lacks {missing}")
        return

    def weight(key, ndim, optional=False):
        if key is None and optional:
            return
        if not isinstance(key, str) or key not in weights or weights[key].ndim != ndim \
                or weights[key].dtype.kind != "f":
            problems.append(f"node {name!r} ({op}) needs a {ndim}-D floating weight {key!r}")

    def integer(option, minimum):
        value = node[option]
        if not _is_int(value) or value < minimum:
            problems.append(f"node {name!r} ({op}) has {option}={value!r}")

    def pair(option, minimum, nullable=False):
        """A list of two ints >= ``minimum`` (or nulls), else a problem; whether it is."""
        value = node[option]
        if isinstance(value, list) and len(value) == 2 and all(
                (v is None and nullable) or (_is_int(v) and v >= minimum) for v in value):
            return True
        problems.append(f"node {name!r} ({op}) has {option}={value!r}, expected two "
                        f"integers >= {minimum}")
        return False

    def flag(option):
        if not isinstance(node[option], bool):
            problems.append(f"node {name!r} ({op}) has {option}={node[option]!r}, expected "
                            "true or false")

    if op == "sequential":
        if not isinstance(node["layers"], list):
            problems.append(f"node {name!r} (sequential) needs a list of layers")
            return
        for layer in node["layers"]:
            _check_node(layer, weights, problems)
    elif op == "residual":
        _check_node(node["block"], weights, problems)
        if node["shortcut"] is not None:
            _check_node(node["shortcut"], weights, problems)
    elif op == "linear":
        weight(node["weight"], 2)
        weight(node["bias"], 1, optional=True)
    elif op == "batch_norm":
        weight(node["scale"], 1)
        weight(node["shift"], 1)
    elif op == "conv2d":
        _check_conv2d(node, weights, problems, weight, pair, integer)
    elif op in ("max_pool2d", "avg_pool2d"):
        kernel_ok = pair("kernel_size", 1)
        pair("stride", 1)
        if pair("padding", 0) and kernel_ok and any(
                p > k // 2 for p, k in zip(node["padding"], node["kernel_size"])):
            problems.append(f"node {name!r} ({op}) has padding={node['padding']}, more than "
                            f"half its kernel_size={node['kernel_size']}")
        flag("ceil_mode")
        if op == "max_pool2d":
            pair("dilation", 1)
        else:
            flag("count_include_pad")
            divisor = node["divisor_override"]
            if divisor is not None and (not _is_int(divisor) or divisor == 0):
                problems.append(f"node {name!r} ({op}) has divisor_override={divisor!r}, "
                                "expected null or a non-zero integer")
    elif op in ("adaptive_avg_pool2d", "adaptive_max_pool2d"):
        pair("output_size", 0, nullable=True)
    elif op == "flatten":
        integer("start_dim", -64)
        integer("end_dim", -64)
    elif op in ("lstm", "rnn"):
        for option, minimum in (("input_size", 0), ("hidden_size", 1), ("num_layers", 1)):
            integer(option, minimum)
        layers = node["layers"]
        if not isinstance(layers, list) or len(layers) != node["num_layers"] or not all(
                isinstance(layer, list) and len(layer) == 4 for layer in layers):
            problems.append(f"node {name!r} ({op}) needs num_layers lists of 4 weights")
            return
        for layer in layers:
            for key, ndim in zip(layer, (2, 2, 1, 1)):
                weight(key, ndim, optional=ndim == 1)
        if op == "rnn" and node["nonlinearity"] not in ("tanh", "relu"):
            problems.append(f"node {name!r} (rnn) has nonlinearity {node['nonlinearity']!r}")
    elif op == "gelu":
        if node["approximate"] not in ("none", "tanh"):
            problems.append(f"node {name!r} (gelu) has approximate={node['approximate']!r}")
    else:
        for option in _OPTIONS[op]:
            if isinstance(node[option], bool) or not isinstance(node[option], (int, float)):
                problems.append(f"node {name!r} ({op}) has {option}={node[option]!r}")


def _check_conv2d(node, weights, problems, weight, pair, integer):
    """:func:`_check_node`'s checks of a conv2d node (its helpers passed in): the geometry,
    then, when the weights are there, their shapes against each other and ``groups``."""
    name, count = node["name"], len(problems)
    weight(node["weight"], 4)
    weight(node["bias"], 1, optional=True)
    pair("stride", 1)
    pair("dilation", 1)
    integer("groups", 1)
    padding = node["padding"]
    if not isinstance(padding, list) or len(padding) != 2 or not all(
            isinstance(side, list) and len(side) == 2
            and all(_is_int(p) and p >= 0 for p in side) for side in padding):
        problems.append(f"node {name!r} (conv2d) needs padding [[top, bottom], [left, right]], "
                        f"got {padding!r}")
    if len(problems) > count:
        return
    shape = weights[node["weight"]].shape
    if shape[0] % node["groups"] or 0 in shape:
        problems.append(f"node {name!r} (conv2d) has a weight of shape {shape}: expected "
                        f"(out_channels, in_channels / groups, kH, kW), non-empty, "
                        f"out_channels a multiple of groups={node['groups']}")
    if node["bias"] is not None and weights[node["bias"]].shape != shape[:1]:
        problems.append(f"node {name!r} (conv2d) has a bias of shape "
                        f"{weights[node['bias']].shape} for a weight of shape {shape}: "
                        f"expected ({shape[0]},)")


def _structure(value, weights):
    """An output structure (a key, or a list of structures) with the arrays put in, as tuples."""
    if isinstance(value, str):
        return weights[value]
    return tuple(_structure(v, weights) for v in value)


def _leaves(value):
    if isinstance(value, np.ndarray):
        return [value]
    return [leaf for v in value for leaf in _leaves(v)]


def tolerance(dtype):
    """The relative error allowed between an exported model and fastgrad on the stored
    example: 1e-5, or ten epsilons of a coarser dtype (1e-2 for float16)."""
    return max(1e-5, 10 * float(np.finfo(dtype).eps))


def relative_error(actual, expected):
    """``max |actual - expected| / max |expected|`` over all arrays of two output structures
    (the inf-norm relative error; inf when the structures differ)."""
    actual, expected = _leaves(actual), _leaves(expected)
    if len(actual) != len(expected) or any(a.shape != e.shape
                                            for a, e in zip(actual, expected)):
        return math.inf
    error = scale = 0.0
    for a, e in zip(actual, expected):
        if e.size:
            error = max(error, float(np.max(np.abs(a.astype(np.float64) - e))))
            scale = max(scale, float(np.max(np.abs(e.astype(np.float64)))))
    return error / scale if scale else error


class Model:
    """An exported model, ready for inference in NumPy: call it on an array.

    Args:
        graph: the graph dict (see the module docstring).
        weights: a dict of key to NumPy array.
        source: where the graph came from, for messages.

    Attributes:
        dtype: the dtype the model computes in; inputs are cast to it.
        example_input, example_output: the example stored at export (None without one).
    """

    def __init__(self, graph, weights, source="<memory>"):
        if not isinstance(graph, dict) or graph.get("format") != _GRAPH_FORMAT:
            raise ValueError(f"{source}: not a fastgrad graph (format {graph.get('format')!r})"
                             if isinstance(graph, dict) else f"{source}: not a fastgrad graph")
        if graph.get("version") != _GRAPH_VERSION:
            raise ValueError(f"{source}: graph version {graph.get('version')!r} is not "
                             f"supported by this runtime (version {_GRAPH_VERSION})")
        problems = []
        if graph.get("dtype") not in ("float16", "float32", "float64"):
            problems.append(f"dtype {graph.get('dtype')!r} is not float16, float32 or float64")
        _check_node(graph.get("root"), weights, problems)
        if problems:
            raise ValueError(f"{source}: invalid graph: " + "; ".join(problems))
        self.source = source
        self.graph = graph
        self.weights = weights
        self.dtype = np.dtype(graph["dtype"])
        example = graph.get("example")
        self.example_input = self.example_output = None
        if example is not None:
            try:
                self.example_input = weights[example["input"]]
                self.example_output = _structure(example["output"], weights)
            except (KeyError, TypeError):
                raise ValueError(f"{source}: the example refers to missing tensors") from None

    def __call__(self, input):
        """Run the model on ``input`` (anything ``numpy.asarray`` takes, real-valued).

        Returns:
            A NumPy array, or the layer's tuple for a recurrent model (``(output, (h_n,
            c_n))`` for an LSTM, ``(output, h_n)`` for an RNN).
        """
        x = np.asarray(input)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"input must hold real numbers, got dtype {x.dtype}")
        return _run(self.graph["root"], self.weights, x.astype(self.dtype, copy=False))

    def self_test(self, rtol=None):
        """Run the stored example and compare with the output recorded at export.

        Args:
            rtol: the largest relative error accepted; None for :func:`tolerance` of the
                model's dtype (1e-5 for float32 and float64).

        Returns:
            The inf-norm relative error (see :func:`relative_error`).

        Raises:
            ValueError: when it exceeds ``rtol``, or the file holds no example.
        """
        if self.example_input is None:
            raise ValueError(f"{self.source}: no example was stored at export")
        rtol = tolerance(self.dtype) if rtol is None else rtol
        error = relative_error(self(self.example_input), self.example_output)
        if not error <= rtol:
            raise ValueError(f"{self.source}: self-test failed: relative error {error:.3g} on "
                             f"the stored example exceeds {rtol:g}")
        return error

    def __repr__(self):
        return f"runtime.Model({self.source!r}, dtype={self.dtype})"


def load(path, check=True):
    """Load a model written by :func:`fastgrad.export`.

    Args:
        path: the exported ``.safetensors`` file.
        check: run :meth:`Model.self_test` on the stored example (relative error at most
            1e-5 in float32 and float64).

    Returns:
        A :class:`Model`.

    Raises:
        ValueError: for a file that is not a valid export (see :func:`read_safetensors`),
            or a failed self-test.
    """
    weights, metadata = read_safetensors(path)
    if GRAPH_KEY not in metadata:
        raise ValueError(f"{os.fspath(path)}: a safetensors file, but not an exported model "
                         f"(its metadata has no {GRAPH_KEY!r})")
    try:
        graph = json.loads(metadata[GRAPH_KEY])
    except ValueError as error:
        raise ValueError(f"{os.fspath(path)}: the graph is not valid JSON ({error})") from None
    model = Model(graph, weights, os.fspath(path))
    if check:
        model.self_test()
    return model
