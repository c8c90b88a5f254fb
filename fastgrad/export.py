"""Export a trained model for inference with NumPy alone: :func:`export`.

The exported file is a safetensors file (written by :func:`fastgrad.serialization.
write_safetensors`: atomic, checksummed) holding the weights, and, in its metadata, a JSON
graph of the layers (see :mod:`fastgrad.runtime` for the node types) with an example input and
the output the model gave for it. :func:`fastgrad.runtime.load` reads it back on any machine
with NumPy: ``fastgrad/runtime.py`` is a single file that imports nothing else.

The graph is built by walking the module tree, not by tracing, so what is exported is what
the layers are, in evaluation mode: Dropout disappears, Identity too, each BatchNorm uses its
running statistics and is folded into the layer just before it (``W' = s W``, ``b' = s (b -
mean) + beta`` with ``s = gamma / sqrt(var + eps)`` per output channel, computed in float64):
into a Linear whose output is 2-D (BatchNorm1d over features) or a Conv2d whose output is 4-D
(BatchNorm2d over channels); otherwise it stays a per-channel scale and shift. Supported
modules: Sequential, Residual, Linear, Conv2d (any stride, padding including ``"same"`` and
``"valid"``, dilation, groups, bias; zero padding), MaxPool2d and AdaptiveMaxPool2d (without
``return_indices``), AvgPool2d, AdaptiveAvgPool2d, BatchNorm1d, BatchNorm2d (with running
statistics), Dropout, Identity, Flatten, ReLU, Sigmoid, Tanh, LeakyReLU, ELU, GELU, Softplus,
LSTM and RNN (any number of layers, ``batch_first`` either way, zero initial states),
:class:`fastgrad.models.BasicBlock` (a residual node and a ReLU, or its layers alone with
``residual=False``) and :class:`fastgrad.models.ResNet` (its forward's ``flatten(x, 1)`` a
flatten node), and subclasses of these that do not override ``forward``. A Module with its
own ``forward`` cannot be walked: compose the layers with Sequential and Residual instead
(and flatten with :class:`~fastgrad.nn.Flatten`, not :func:`fastgrad.flatten`).
"""
import json
import sys

import numpy as np

from . import autograd
from .device import to_host
from .nn import (activation, container, conv, dropout, linear, normalization, pooling,
                 recurrent, residual)
from .nn.module import Module
from .runtime import GRAPH_KEY, Model, relative_error, tolerance
from .serialization import write_safetensors
from .tensor import Tensor

__all__ = ["export"]

_EXAMPLE = "__example__"
_ACTIVATIONS = {
    activation.ReLU: ("relu", ()), activation.Sigmoid: ("sigmoid", ()),
    activation.Tanh: ("tanh", ()), activation.LeakyReLU: ("leaky_relu", ("negative_slope",)),
    activation.ELU: ("elu", ("alpha",)), activation.GELU: ("gelu", ("approximate",)),
    activation.Softplus: ("softplus", ("beta", "threshold")),
}
_POOLS = {pooling.MaxPool2d: "max_pool2d", pooling.AvgPool2d: "avg_pool2d",
          pooling.AdaptiveAvgPool2d: "adaptive_avg_pool2d",
          pooling.AdaptiveMaxPool2d: "adaptive_max_pool2d"}
_SUPPORTED = (container.Sequential, residual.Residual, linear.Linear, conv.Conv2d, *_POOLS,
              normalization.BatchNorm1d, normalization.BatchNorm2d, dropout.Dropout,
              activation.Identity, activation.Flatten, recurrent.LSTM, recurrent.RNN,
              *_ACTIVATIONS)
#: The output rank at which a BatchNorm folds into the layer before it, by that layer's op.
_FOLDS_AT = {"linear": 2, "conv2d": 4}


def _label(name):
    return f"module {name!r}" if name else "the root module"


def _join(prefix, name):
    return f"{prefix}.{name}" if prefix else name


def _model_walks():
    """The walks of :mod:`fastgrad.models`' networks (whose forwards are written out), by
    class: looked up, not imported, so that export works without that module and does not
    load it; none while nothing has imported it (then no module can be one)."""
    models = sys.modules.get("fastgrad.models")
    walks = {}
    for class_name, walk in (("BasicBlock", _walk_basic_block), ("ResNet", _walk_resnet)):
        cls = getattr(models, class_name, None)
        if cls is not None:
            walks[cls] = walk
    return walks


def _kind(module, name):
    """The supported class ``module`` behaves as, or a TypeError naming it."""
    walks = _model_walks()
    for base in type(module).__mro__:
        if base in _SUPPORTED or base in walks:
            if type(module).forward is not base.forward:
                raise TypeError(f"export: {_label(name)} ({type(module).__name__}) overrides "
                                f"{base.__name__}.forward, which export cannot follow (it "
                                "walks the module tree, it does not trace)")
            return base
    supported = ", ".join(sorted([cls.__name__ for cls in _SUPPORTED]
                                + ["BasicBlock", "ResNet"]))
    raise TypeError(f"export: {_label(name)} of type {type(module).__name__} is not supported "
                    f"(supported: {supported}; compose them with Sequential and Residual "
                    "instead of a custom forward)")


def _sequence(nodes, name):
    return nodes[0] if len(nodes) == 1 else {"op": "sequential", "name": name, "layers": nodes}


def _fold(nodes):
    """Fold each batch_norm node into the linear or conv2d node just before it when it
    normalises that layer's output channels: a linear's 2-D output, a conv2d's 4-D one."""
    folded = []
    for node in nodes:
        previous = folded[-1] if folded else None
        if node["op"] == "batch_norm" and previous is not None \
                and _FOLDS_AT.get(previous["op"]) == node["ndim"] \
                and previous["weight"].shape[0] == node["scale"].shape[0]:
            scale, shift = node["scale"], node["shift"]
            weight = previous["weight"]
            bias = np.zeros(weight.shape[0]) if previous["bias"] is None else previous["bias"]
            scale_rows = scale.reshape((-1,) + (1,) * (weight.ndim - 1))
            previous["weight"] = (scale_rows * weight.astype(np.float64)).astype(weight.dtype)
            previous["bias"] = (scale * bias.astype(np.float64) + shift).astype(weight.dtype)
            previous["folded"] = node["name"]
        else:
            folded.append(node)
    return folded


def _pair(value):
    """A pooling or convolution argument (an int or a pair) as a list of two ints."""
    return [int(v) for v in value] if isinstance(value, (tuple, list)) else [int(value)] * 2


def _conv_padding(module):
    """A Conv2d's zero padding as ``[[top, bottom], [left, right]]``: ``"valid"`` none,
    ``"same"`` ``dilation (kernel - 1)`` in all with the odd one at the bottom and right, as
    PyTorch pads."""
    if module.padding == "valid":
        return [[0, 0], [0, 0]]
    if module.padding == "same":
        totals = [d * (k - 1) for k, d in zip(module.kernel_size, module.dilation)]
        return [[t // 2, t - t // 2] for t in totals]
    return [[p, p] for p in module.padding]


def _pool_node(module, kind, name):
    """The graph node of a pooling layer, its geometry as lists of two ints (an empty
    stride is the window, as in the layer; None in an adaptive size is kept, as null)."""
    node = {"op": _POOLS[kind], "name": name}
    if kind in (pooling.AdaptiveAvgPool2d, pooling.AdaptiveMaxPool2d):
        size = module.output_size
        size = list(size) if isinstance(size, (tuple, list)) else [size] * 2
        node["output_size"] = [None if s is None else int(s) for s in size]
        return node
    node.update(kernel_size=_pair(module.kernel_size),
                stride=_pair(module.stride or module.kernel_size),
                padding=_pair(module.padding), ceil_mode=bool(module.ceil_mode))
    if kind is pooling.MaxPool2d:
        node["dilation"] = _pair(module.dilation)
    else:
        node.update(count_include_pad=bool(module.count_include_pad),
                    divisor_override=None if module.divisor_override is None
                    else int(module.divisor_override))
    return node


def _walk_layers(children, prefix, x):
    """The nodes of ``children`` (name, module) applied in order, folded, and the output."""
    nodes = []
    for child_name, child in children:
        child_nodes, x = _walk(child, _join(prefix, child_name), x)
        nodes.extend(child_nodes)
    return _fold(nodes), x


def _walk_basic_block(module, name, x):
    """A BasicBlock, following its forward ``relu(bn2(conv2(relu(bn1(conv1(x))))) +
    shortcut(x))``: a residual node (its shortcut ``downsample``, or the identity) and the
    ReLU; with ``residual=False``, the layers alone."""
    layers = [(attribute, getattr(module, attribute))
              for attribute in ("conv1", "bn1", "relu", "conv2", "bn2")]
    block, out = _walk_layers(layers, name, x)
    if module.residual:
        shortcut, skip = None, x
        if module.downsample is not None:
            nodes, skip = _walk(module.downsample, _join(name, "downsample"), x)
            shortcut = _sequence(nodes, _join(name, "downsample"))
        block, out = [{"op": "residual", "name": name, "block": _sequence(block, name),
                       "shortcut": shortcut}], out + skip
    nodes, out = _walk(module.relu, _join(name, "relu"), out)
    return block + nodes, out


def _walk_resnet(module, name, x):
    """A ResNet as its forward: the stem, the three stages, the pooling, ``flatten(x, 1)``
    (a flatten node) and the classifier."""
    layers = [(attribute, getattr(module, attribute)) for attribute in (
        "conv1", "bn1", "relu", "layer1", "layer2", "layer3", "avgpool")]
    return _walk_layers(layers + [("flatten", activation.Flatten(1)), ("fc", module.fc)],
                        name, x)


def _walk(module, name, x):
    """The graph nodes of ``module`` (a list: a Sequential's layers are spliced into its
    parent's) and its output on ``x``, computed layer by layer in evaluation mode."""
    kind = _kind(module, name)
    if kind is container.Sequential:
        return _walk_layers(module.named_children(), name, x)
    if kind is residual.Residual:
        block, out = _walk(module.block, _join(name, "block"), x)
        shortcut, skip = None, x
        if module.shortcut is not None:
            nodes, skip = _walk(module.shortcut, _join(name, "shortcut"), x)
            shortcut = _sequence(nodes, _join(name, "shortcut"))
        return [{"op": "residual", "name": name, "block": _sequence(block, _join(name, "block")),
                 "shortcut": shortcut}], out + skip
    walk = _model_walks().get(kind)
    if walk is not None:
        return walk(module, name, x)
    if kind in (dropout.Dropout, activation.Identity):
        return [], x
    if kind in (pooling.MaxPool2d, pooling.AdaptiveMaxPool2d) and module.return_indices:
        raise TypeError(f"export: {_label(name)} ({type(module).__name__}) has "
                        "return_indices=True; the runtime's layers pass one array on")
    y = module(x)
    if kind in (linear.Linear, conv.Conv2d):
        bias = None if module.bias is None else _values(module.bias)
        node = {"op": "linear", "name": name, "weight": _values(module.weight),
                "bias": bias}
        if kind is conv.Conv2d:
            node.update(op="conv2d", stride=list(module.stride),
                        padding=_conv_padding(module), dilation=list(module.dilation),
                        groups=module.groups)
        return [node], y
    if kind in _POOLS:
        return [_pool_node(module, kind, name)], y
    if kind in (normalization.BatchNorm1d, normalization.BatchNorm2d):
        if module.running_mean is None or module.running_var is None:
            raise TypeError(f"export: {_label(name)} ({type(module).__name__}) has no running "
                            "statistics (track_running_stats=False): it normalises with the "
                            "batch's statistics even in evaluation mode, which a fixed graph "
                            "cannot do")
        mean = _values(module.running_mean).astype(np.float64)
        scale = 1 / np.sqrt(_values(module.running_var).astype(np.float64) + module.eps)
        shift = -mean * scale
        if module.weight is not None:
            scale = scale * _values(module.weight)
            shift = shift * _values(module.weight) + _values(module.bias)
        return [{"op": "batch_norm", "name": name, "scale": scale, "shift": shift,
                 "dtype": y.dtype, "ndim": x.ndim}], y
    if kind is activation.Flatten:
        return [{"op": "flatten", "name": name, "start_dim": module.start_dim,
                 "end_dim": module.end_dim}], y
    if kind in (recurrent.LSTM, recurrent.RNN):
        if module.bidirectional:
            raise TypeError(f"export: {_label(name)} ({type(module).__name__}) is "
                            "bidirectional; the runtime runs one direction only")
        layers = [[None if w is None else _values(w) for w in module._layer_weights(k)]
                  for k in range(module.num_layers)]
        node = {"op": "lstm" if kind is recurrent.LSTM else "rnn", "name": name,
                "input_size": module.input_size, "hidden_size": module.hidden_size,
                "num_layers": module.num_layers, "batch_first": module.batch_first,
                "layers": layers}
        if kind is recurrent.RNN:
            node["nonlinearity"] = module.nonlinearity
        return [node], y
    op, options = _ACTIVATIONS[kind]
    return [{"op": op, "name": name, **{o: getattr(module, o) for o in options}}], y


class _Weights:
    """Collects the arrays of the graph under unique keys."""

    def __init__(self):
        self.arrays = {}

    def add(self, key, array):
        if key in self.arrays:
            raise ValueError(f"export: two weights share the key {key!r}")
        self.arrays[key] = np.ascontiguousarray(array)
        return key

    def node(self, node):
        """``node`` as JSON: arrays replaced by their keys, export-only fields dropped."""
        op, name = node["op"], node["name"]
        out = {k: v for k, v in node.items() if k not in ("ndim", "dtype")}
        if op == "sequential":
            out["layers"] = [self.node(layer) for layer in node["layers"]]
        elif op == "residual":
            out["block"] = self.node(node["block"])
            out["shortcut"] = None if node["shortcut"] is None else self.node(node["shortcut"])
        elif op in ("linear", "conv2d"):
            out["weight"] = self.add(_join(name, "weight"), node["weight"])
            out["bias"] = None if node["bias"] is None else \
                self.add(_join(name, "bias"), node["bias"])
        elif op == "batch_norm":
            for field in ("scale", "shift"):
                out[field] = self.add(_join(name, field), node[field].astype(node["dtype"]))
        elif op in ("lstm", "rnn"):
            names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            out["layers"] = [[None if w is None else self.add(_join(name, f"{n}_l{k}"), w)
                              for n, w in zip(names, layer)]
                             for k, layer in enumerate(node["layers"])]
        return out

    def structure(self, value, key):
        """Store an output structure (a Tensor or nested tuples of them) under ``key``."""
        if isinstance(value, Tensor):
            return self.add(key, _values(value))
        return [self.structure(v, f"{key}.{i}") for i, v in enumerate(value)]


def _values(tensor):
    """A host copy of ``tensor``'s values: a model on a device exports as it would from the
    CPU (the exported graph runs on the host)."""
    return np.array(to_host(tensor._data))


def export(model, path, example_input):
    """Write ``model`` as a safetensors file of weights with a JSON graph of its layers, for
    :func:`fastgrad.runtime.load`.

    The model is put in evaluation mode for the export (and each module's mode restored
    after). ``example_input`` runs through the model to fix the shapes and decide the folding,
    and is stored with the model's output for a self-test: before anything is written, the
    graph runs in NumPy (as :mod:`fastgrad.runtime` will) and must match fastgrad's output to
    a relative error (max abs difference over max abs value) of 1e-5 (float16: 1e-2).

    Args:
        model: a Module built from the supported layers (see the module docstring).
        path: the output file, conventionally ``*.safetensors``; replaced atomically.
        example_input: a floating Tensor (or NumPy array) the model accepts, e.g. one batch.

    Raises:
        TypeError: for an unsupported module (naming its path and type) or example input.
        RuntimeError: when the NumPy graph does not reproduce the model on the example.
    """
    if not isinstance(model, Module):
        raise TypeError(f"model must be a fastgrad.nn.Module, got {type(model).__name__}")
    if isinstance(example_input, np.ndarray):
        example_input = Tensor(example_input)
    if not isinstance(example_input, Tensor):
        raise TypeError(f"example_input must be a Tensor or numpy.ndarray, got "
                        f"{type(example_input).__name__}")
    if example_input.dtype.kind != "f":
        raise TypeError(f"example_input must be floating, got dtype {example_input.dtype}")
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with autograd.no_grad():
            expected = model(example_input)
            nodes, _ = _walk(model, "", example_input)
    finally:
        for module, mode in modes:
            module.training = mode
    weights = _Weights()
    graph = {"format": "fastgrad.graph", "version": 1, "dtype": str(example_input.dtype),
             "root": weights.node(_sequence(_fold(nodes), "")),
             "example": {"input": weights.add(f"{_EXAMPLE}.input",
                                              _values(example_input)),
                         "output": weights.structure(expected, f"{_EXAMPLE}.output")}}
    runtime_model = Model(graph, weights.arrays, "the exported graph")
    error = relative_error(runtime_model(runtime_model.example_input),
                           runtime_model.example_output)
    limit = tolerance(example_input.dtype)
    if not error <= limit:
        raise RuntimeError(f"export: the NumPy graph reproduces the model's output on the "
                           f"example only to a relative error of {error:.3g} (limit {limit:g})")
    write_safetensors(path, weights.arrays, {GRAPH_KEY: json.dumps(graph)})
