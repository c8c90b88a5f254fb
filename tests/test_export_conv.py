"""Export of convolutional networks (fastgrad.export, fastgrad.runtime): Conv2d with BatchNorm2d
folded into it, the poolings, Flatten, residual blocks (nn.Residual, fastgrad.models'
BasicBlock and ResNet) match the model's evaluation-mode outputs in NumPy alone; malformed
conv and pooling nodes are refused with messages naming them."""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from test_export import RTOL, _eval_outputs, _export_and_compare, _ops, _trained_statistics

import fastgrad as fg
from fastgrad import models, nn, runtime
from fastgrad.export import export
from fastgrad.serialization import write_safetensors

DTYPES = [np.float32, np.float64]


def _input(rng, shape, dtype):
    return fg.tensor(rng.standard_normal(shape).astype(dtype))


def _in(dtype, model):
    """``model`` with its parameters and buffers in ``dtype``."""
    return model.double() if dtype == np.float64 else model


def _compare(tmp_path, model, x, rng):
    """Export ``model`` with example ``x`` and compare the runtime with it on ``x`` and on a
    second input drawn from ``rng``."""
    other = _input(rng, x.shape, x.dtype)
    return _export_and_compare(tmp_path, model, x, check_input=other)


# ------------------------------------------------------------------------- layers alone
CONVS = {
    "3x3-pad1": dict(kernel_size=3, padding=1),
    "stride2-nobias": dict(kernel_size=3, stride=2, padding=1, bias=False),
    "same-even-kernel-dilated": dict(kernel_size=4, padding="same", dilation=2),
    "same-2x3": dict(kernel_size=(2, 3), padding="same"),
    "valid": dict(kernel_size=3, padding="valid"),
    "2x3-stride2x1-pad0x2": dict(kernel_size=(2, 3), stride=(2, 1), padding=(0, 2)),
    "dilation2x1": dict(kernel_size=3, dilation=(2, 1), padding=(2, 1)),
    "groups2": dict(kernel_size=3, padding=1, groups=2),
    "depthwise-stride2": dict(kernel_size=3, stride=2, padding=1, groups=4, out_channels=8),
    "1x1-stride2": dict(kernel_size=1, stride=2),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("config", CONVS, ids=list(CONVS))
def test_conv2d_alone(tmp_path, rng, config, dtype):
    fg.manual_seed(20)
    options = dict(CONVS[config])
    model = _in(dtype, nn.Conv2d(4, options.pop("out_channels", 6), **options))
    loaded = _compare(tmp_path, model, _input(rng, (3, 4, 9, 8), dtype), rng)
    assert _ops(loaded.graph["root"]) == ["conv2d"]
    single = _input(rng, (4, 7, 10), dtype)  # unbatched (C, H, W)
    assert runtime.relative_error(loaded(single.numpy()), _eval_outputs(model, single)) < RTOL


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_conv2d_matches_pytorch(tmp_path, rng):
    """The runtime's convolution against PyTorch's on the exported weights (its own oracle,
    independent of fastgrad's kernels)."""
    torch = pytest.importorskip("torch")
    fg.manual_seed(21)
    for options in CONVS.values():
        options = dict(options)
        model = nn.Conv2d(4, options.pop("out_channels", 6), **options).double()
        x = _input(rng, (2, 4, 9, 8), np.float64)
        export(model, tmp_path / "conv.safetensors", x)
        loaded = runtime.load(tmp_path / "conv.safetensors")
        bias = None if model.bias is None else torch.from_numpy(model.bias.numpy())
        expected = torch.nn.functional.conv2d(
            torch.from_numpy(x.numpy()), torch.from_numpy(model.weight.numpy()), bias,
            model.stride, model.padding, model.dilation, model.groups).numpy()
        np.testing.assert_allclose(loaded(x.numpy()), expected, rtol=1e-12, atol=1e-12)


POOLS = {
    "max-2": lambda: nn.MaxPool2d(2),
    "max-3-stride2-pad1-ceil": lambda: nn.MaxPool2d(3, 2, 1, ceil_mode=True),
    "max-dilation2-ceil": lambda: nn.MaxPool2d((2, 3), (2, 1), (1, 0), dilation=2,
                                               ceil_mode=True),
    "avg-2": lambda: nn.AvgPool2d(2),
    "avg-3-stride2-pad1-ceil": lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True),
    "avg-exclude-pad-ceil": lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True,
                                                 count_include_pad=False),
    "avg-divisor": lambda: nn.AvgPool2d((2, 3), 2, (1, 1), divisor_override=5),
    # ceil_mode's last window would start in the bottom or right padding: dropped
    "max-ceil-drops-last": lambda: nn.MaxPool2d(4, 4, 1, ceil_mode=True),
    "avg-ceil-drops-last": lambda: nn.AvgPool2d(2, 4, 1, ceil_mode=True),
    "adaptive-avg-1": lambda: nn.AdaptiveAvgPool2d(1),
    "adaptive-avg-overlapping": lambda: nn.AdaptiveAvgPool2d((4, None)),
    "adaptive-max": lambda: nn.AdaptiveMaxPool2d((3, 5)),
    "flatten": lambda: nn.Flatten(),
    "batchnorm2d": lambda: nn.BatchNorm2d(3),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("layer", POOLS, ids=list(POOLS))
def test_pooling_flatten_and_batchnorm_alone(tmp_path, rng, layer, dtype):
    model = _in(dtype, nn.Sequential(POOLS[layer]()))
    x = _input(rng, (2, 3, 9, 7), dtype)
    _trained_statistics(model, x)
    loaded = _compare(tmp_path, model, x, rng)
    assert len(_ops(loaded.graph["root"])) == 1
    if layer.startswith(("max", "avg", "adaptive")):
        single = _input(rng, (3, 10, 11), dtype)
        assert runtime.relative_error(loaded(single.numpy()),
                                      _eval_outputs(model, single)) < RTOL


def test_max_pooling_keeps_nan_and_inf_as_the_model(tmp_path):
    model = nn.MaxPool2d(2, 1, 1)
    x = np.arange(32, dtype=np.float32).reshape(1, 2, 4, 4)
    x[0, 0, 1, 2], x[0, 1, 0, 0] = np.nan, -np.inf
    export(model, tmp_path / "m.safetensors", fg.randn(1, 2, 4, 4))
    out = runtime.load(tmp_path / "m.safetensors")(x)
    np.testing.assert_array_equal(out, _eval_outputs(model, fg.tensor(x)))
    assert np.isnan(out[0, 0, 1:3, 2:4]).all()


# -------------------------------------------------------------------------- small nets
def _cnn():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 12, 3, padding=1, bias=False), nn.BatchNorm2d(12), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 10))


def _unfolded(loaded, model):
    """``loaded``'s graph with each folded conv2d node put back as the layer's own weights
    followed by a batch_norm node computed here from the BatchNorm2d's statistics."""
    modules = dict(model.named_modules())
    graph = json.loads(json.dumps(loaded.graph))
    weights = dict(loaded.weights)
    layers = []
    for node in graph["root"]["layers"]:
        layers.append(node)
        if node["op"] != "conv2d" or "folded" not in node:
            continue
        conv, bn = modules[node["name"]], modules[node.pop("folded")]
        weights[node["weight"]] = conv.weight.numpy()
        if conv.bias is None:
            node["bias"] = None
        else:
            weights[node["bias"]] = conv.bias.numpy()
        bn_name = node["name"] + "+bn"
        scale = bn.weight.numpy() / np.sqrt(bn.running_var.numpy() + bn.eps)
        weights[f"{bn_name}.scale"] = scale
        weights[f"{bn_name}.shift"] = bn.bias.numpy() - bn.running_mean.numpy() * scale
        layers.append({"op": "batch_norm", "name": bn_name, "scale": f"{bn_name}.scale",
                       "shift": f"{bn_name}.shift"})
    graph["root"]["layers"] = layers
    return runtime.Model(graph, weights, "unfolded")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_conv_bn_relu_pool_net_folds_and_matches(tmp_path, rng, dtype):
    fg.manual_seed(22)
    model = _in(dtype, _cnn())
    x = _input(rng, (6, 1, 12, 12), dtype)
    _trained_statistics(model, x)
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    loaded = _compare(tmp_path, model, x, rng)
    assert _ops(loaded.graph["root"]) == ["sequential", "conv2d", "relu", "max_pool2d",
                                          "conv2d", "relu", "adaptive_avg_pool2d", "flatten",
                                          "linear"]
    layers = loaded.graph["root"]["layers"]
    assert [layers[k].get("folded") for k in (0, 3, 7)] == ["1", "5", None]
    assert loaded.weights["4.bias"].shape == (12,)  # the folded BatchNorm gave it a bias
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), before[key])
    unfolded = _unfolded(loaded, model)
    assert _ops(unfolded.graph["root"]).count("batch_norm") == 2
    for sample in (x.numpy(), rng.standard_normal((3, 1, 12, 12))):
        assert runtime.relative_error(loaded(sample), unfolded(sample)) < RTOL
        assert runtime.relative_error(unfolded(sample),
                                      _eval_outputs(model, fg.tensor(sample.astype(dtype)))) < RTOL


def test_batchnorm2d_not_after_a_conv_stays_a_node(tmp_path, rng):
    fg.manual_seed(23)
    model = nn.Sequential(nn.BatchNorm2d(2), nn.Conv2d(2, 4, 3), nn.MaxPool2d(2),
                          nn.BatchNorm2d(4), nn.Conv2d(4, 4, 1), nn.ReLU(), nn.BatchNorm2d(4),
                          nn.Flatten(), nn.Linear(4 * 3 * 3, 2))
    x = _input(rng, (5, 2, 8, 8), np.float32)
    _trained_statistics(model, x)
    loaded = _export_and_compare(tmp_path, model, x)
    assert _ops(loaded.graph["root"]).count("batch_norm") == 3


def test_a_conv_residual_net_with_projection_shortcuts(tmp_path, rng):
    fg.manual_seed(24)

    def block(channels):
        return nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                             nn.BatchNorm2d(channels), nn.ReLU(),
                             nn.Conv2d(channels, channels, 3, padding="same"))
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Residual(block(6)),
        nn.Residual(nn.Sequential(nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8)),
                    shortcut=nn.Sequential(nn.Conv2d(6, 8, 1, stride=2, bias=False),
                                           nn.BatchNorm2d(8))),
        nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8 * 2 * 2, 3))
    x = _input(rng, (4, 3, 8, 8), np.float32)
    _trained_statistics(model, x)
    loaded = _export_and_compare(tmp_path, model, x)
    ops = _ops(loaded.graph["root"])
    assert ops.count("residual") == 2 and "batch_norm" not in ops


# ---------------------------------------------------------------- BasicBlock and ResNet
@pytest.mark.parametrize("residual, downsample, norm", [
    (True, False, None), (True, True, None), (False, False, None), (True, True, nn.Identity)])
def test_basic_blocks(tmp_path, rng, residual, downsample, norm):
    fg.manual_seed(25)
    shortcut = None
    if downsample:
        shortcut = nn.Sequential(nn.Conv2d(4, 6, 1, stride=2, bias=False),
                                 (norm or nn.BatchNorm2d)(6))
    model = models.BasicBlock(4, 6 if downsample else 4, 2 if downsample else 1, shortcut,
                              norm, residual)
    x = _input(rng, (3, 4, 7, 7), np.float32)
    _trained_statistics(model, x)
    loaded = _export_and_compare(tmp_path, model, x)
    ops = _ops(loaded.graph["root"])
    assert ops.count("residual") == int(residual) and "batch_norm" not in ops
    assert ops.count("conv2d") == 2 + downsample and ops[-1] == "relu"


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("size", [8, 28])
@pytest.mark.parametrize("residual", [True, False], ids=["resnet", "plain"])
def test_resnet_of_fastgrad_models(tmp_path, rng, size, residual, dtype):
    fg.manual_seed(26)
    model = _in(dtype, models.ResNet(depth=8, residual=residual))
    x = _input(rng, (2, 1, size, size), dtype)
    _trained_statistics(model, x, batches=1)
    loaded = _compare(tmp_path, model, x, rng)
    assert loaded(x.numpy()).shape == (2, 10)
    ops = _ops(loaded.graph["root"])
    assert "batch_norm" not in ops and ops.count("conv2d") == 7 + 2 * residual
    assert ops.count("residual") == 3 * residual


def test_resnet_without_batchnorm(tmp_path, rng):
    fg.manual_seed(27)
    model = models.ResNet(depth=8, batch_norm=False)
    loaded = _export_and_compare(tmp_path, model, _input(rng, (2, 1, 8, 8), np.float32))
    assert "folded" not in json.dumps(loaded.graph)


# ---------------------------------------------------------------------- refusals
class _LoudBlock(models.BasicBlock):
    def forward(self, x):
        return super().forward(x) * 2


@pytest.mark.parametrize("model, x, message", [
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2, return_indices=True)),
     fg.randn(1, 1, 6, 6), r"module '1' \(MaxPool2d\) has return_indices=True"),
    (nn.Sequential(nn.AdaptiveMaxPool2d(2, return_indices=True)), fg.randn(1, 1, 6, 6),
     "return_indices=True"),
    (nn.Sequential(nn.Conv1d(2, 2, 3)), fg.randn(1, 2, 6), "module '0' of type Conv1d"),
    (nn.Sequential(nn.ConvTranspose2d(2, 2, 3)), fg.randn(1, 2, 6, 6),
     "module '0' of type ConvTranspose2d"),
    (nn.Sequential(_LoudBlock(2, 2)), fg.randn(1, 2, 5, 5),
     r"module '0' \(_LoudBlock\) overrides BasicBlock.forward"),
])
def test_unsupported_conv_modules_are_named(tmp_path, model, x, message):
    with pytest.raises(TypeError, match=message):
        export(model, tmp_path / "m.safetensors", x)
    assert not os.listdir(tmp_path)


def _conv_export(tmp_path):
    fg.manual_seed(28)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.AvgPool2d(2, ceil_mode=True), nn.AdaptiveAvgPool2d(1))
    path = tmp_path / "conv.safetensors"
    export(model, path, fg.randn(2, 2, 6, 6))
    return path


def _layer(op):
    return lambda g: next(n for n in g["root"]["layers"] if n["op"] == op)


@pytest.mark.parametrize("change, message", [
    (lambda g: _layer("conv2d")(g).update(stride=[0, 1]), r"stride=\[0, 1\], expected two"),
    (lambda g: _layer("conv2d")(g).update(stride=2), "stride=2"),
    (lambda g: _layer("conv2d")(g).update(dilation=[1, True]), "dilation"),
    (lambda g: _layer("conv2d")(g).update(padding=[1, 1]), r"needs padding \[\[top, bottom\]"),
    (lambda g: _layer("conv2d")(g).update(padding=[[1, 1], [1, -1]]), "needs padding"),
    (lambda g: _layer("conv2d")(g).update(groups=0), "groups=0"),
    (lambda g: _layer("conv2d")(g).update(groups=3),
     r"weight of shape \(4, 2, 3, 3\).*multiple of groups=3"),
    (lambda g: _layer("conv2d")(g).update(bias="__example__.input"),
     "1-D floating weight '__example__.input'"),
    (lambda g: _layer("conv2d")(g).update(bias="0.weight", weight="0.bias"),
     "4-D floating weight '0.bias'"),
    (lambda g: _layer("conv2d")(g).pop("dilation"), r"lacks \['dilation'\]"),
    (lambda g: _layer("max_pool2d")(g).update(padding=[2, 0]), "more than half"),
    (lambda g: _layer("max_pool2d")(g).update(kernel_size=[2]), "kernel_size"),
    (lambda g: _layer("avg_pool2d")(g).update(ceil_mode=1), "ceil_mode=1, expected true"),
    (lambda g: _layer("avg_pool2d")(g).update(divisor_override=0), "divisor_override=0"),
    (lambda g: _layer("adaptive_avg_pool2d")(g).update(output_size=[1, -1]), "output_size"),
])
def test_runtime_refuses_malformed_conv_and_pool_nodes(tmp_path, change, message):
    path = _conv_export(tmp_path)
    weights, metadata = runtime.read_safetensors(path)
    graph = json.loads(metadata[runtime.GRAPH_KEY])
    change(graph)
    bad = tmp_path / "bad.safetensors"
    write_safetensors(bad, weights, {runtime.GRAPH_KEY: json.dumps(graph)})
    with pytest.raises(ValueError, match="invalid graph: .*" + message):
        runtime.load(bad)


def test_runtime_refuses_a_bias_that_does_not_fit_the_weight(tmp_path):
    path = _conv_export(tmp_path)
    weights, metadata = runtime.read_safetensors(path)
    weights["0.bias"] = np.zeros(3, np.float32)
    bad = tmp_path / "bad.safetensors"
    write_safetensors(bad, weights, dict(metadata))
    with pytest.raises(ValueError, match=r"bias of shape \(3,\) for a weight of shape "
                                         r"\(4, 2, 3, 3\): expected \(4,\)"):
        runtime.load(bad)


def test_runtime_conv_input_errors_name_the_layer(tmp_path):
    loaded = runtime.load(_conv_export(tmp_path))
    with pytest.raises(ValueError, match=r"conv2d '0' expects input of shape \(N, 2, H, W\) "
                                         r"or \(2, H, W\), got \(1, 3, 6, 6\)"):
        loaded(np.ones((1, 3, 6, 6)))
    with pytest.raises(ValueError, match=r"conv2d '0' expects input .*got \(6, 6\)"):
        loaded(np.ones((6, 6)))
    with pytest.raises(ValueError, match="max_pool2d '2': an input of 1 x 6 is smaller"):
        loaded(np.ones((1, 2, 1, 6)))
    weights, metadata = runtime.read_safetensors(_conv_export(tmp_path))
    weights["0.weight"] = np.zeros((4, 3, 3, 3), np.float32)  # in-channels of another net
    bad = tmp_path / "bad.safetensors"
    write_safetensors(bad, weights, dict(metadata))
    with pytest.raises(ValueError, match="conv2d '0' expects input of shape \\(N, 3, H, W\\)"):
        runtime.load(bad)


# ------------------------------------------------------------------------------ C alone
CSRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "csrc")

_C_PROLOGUE = r"""
#include <stdio.h>
#include <stdlib.h>
#include "fastgrad.h"

/* a plain row-major CBLAS sgemm with 32-bit integers, standing in for a real BLAS */
static void naive_sgemm(int order, int trans_a, int trans_b, int32_t m, int32_t n, int32_t k,
                        float alpha, const float *a, int32_t lda, const float *b, int32_t ldb,
                        float beta, float *c, int32_t ldc)
{
    (void)order;
    for (int32_t i = 0; i < m; i++)
        for (int32_t j = 0; j < n; j++) {
            double sum = 0;
            for (int32_t p = 0; p < k; p++)
                sum += (double)(trans_a == 112 ? a[p * lda + i] : a[i * lda + p]) *
                       (trans_b == 112 ? b[j * ldb + p] : b[p * ldb + j]);
            c[i * ldc + j] = alpha * (float)sum + (beta == 0 ? 0 : beta * c[i * ldc + j]);
        }
}

#define CHECK(call) if ((call) != FG_OK) { fprintf(stderr, "failed: %s\n", #call); return 1; }
"""


class _CProgram:
    """Writes the C calls of fastgrad.h that run an exported graph's nodes, one buffer per
    node output, shapes taken from the runtime's outputs of the same nodes."""

    def __init__(self, weights):
        self.weights, self.lines, self.arrays, self.count = weights, [], [], 0

    def array(self, values, const=True):
        name = f"a{self.count}"
        self.count += 1
        values = np.asarray(values, np.float32).ravel()
        self.arrays.append(f"static {'const ' if const else ''}float {name}[{max(values.size, 1)}]"
                           f" = {{{', '.join(f'{v:.9g}f' for v in values) or '0'}}};")
        return name

    def buffer(self, size):
        name = f"b{self.count}"
        self.count += 1
        self.lines.append(f"float *{name} = malloc(sizeof(float) * {size});")
        return name

    def weight(self, key):
        return "NULL" if key is None else self.array(self.weights[key])

    def window(self, x, y, kernel, stride, pad, dilation=(1, 1)):
        name = f"w{self.count}"
        self.count += 1
        fields = (*x.shape, *y.shape[2:], *kernel, *stride, *pad, *dilation)
        self.lines.append(f"fg_window2d {name} = {{{', '.join(map(str, fields))}}};")
        return name

    def emit(self, node, var, x):
        """C for ``node`` on buffer ``var`` holding ``x``: the output's buffer and value."""
        op, weights = node["op"], self.weights
        if op == "sequential":
            for layer in node["layers"]:
                var, x = self.emit(layer, var, x)
            return var, x
        if op == "residual":
            out, y = self.emit(node["block"], var, x)
            skip = var if node["shortcut"] is None else self.emit(node["shortcut"], var, x)[0]
            self.lines.append(f"fg_axpy_f32({out}, {skip}, {y.size}, 1.0, FG_PAR_AXPY);")
            return out, y + (x if node["shortcut"] is None else
                             runtime._run(node["shortcut"], weights, x))
        y = runtime._run(node, weights, x)
        if op == "flatten":
            return var, y
        out = self.buffer(y.size)
        if op == "relu":
            self.lines.append(f"CHECK(fg_activation_fwd_f32({var}, {out}, {y.size}, FG_RELU, "
                              "FG_PAR_ACTIVATION));")
        elif op == "linear":
            self.lines.append(
                f"CHECK(fg_linear_fwd_f32({var}, {self.weight(node['weight'])}, "
                f"{self.weight(node['bias'])}, {x.shape[0]}, {x.shape[1]}, {y.shape[1]}, "
                f"FG_NONE, {out}, &blas, FG_PAR_ACTIVATION));")
        elif op == "conv2d":
            # the top and left padding; the bottom and right ("same"'s extra one) follow
            # from the output size, the kernel reading zeros outside the image
            window = self.window(x, y, weights[node["weight"]].shape[2:], node["stride"],
                                 [p[0] for p in node["padding"]], node["dilation"])
            self.lines.append(
                f"CHECK(fg_conv2d_fwd_f32({var}, {self.weight(node['weight'])}, "
                f"{self.weight(node['bias'])}, &{window}, {y.shape[1]}, {node['groups']}, "
                f"{out}, &blas));")
        elif op == "max_pool2d":
            window = self.window(x, y, node["kernel_size"], node["stride"], node["padding"],
                                 node["dilation"])
            self.lines.append(f"int64_t *i{out} = malloc(sizeof(int64_t) * {y.size});")
            self.lines.append(f"CHECK(fg_max_pool2d_fwd_f32({var}, &{window}, {out}, i{out}, "
                              "FG_PAR_POOL));")
        elif op == "avg_pool2d":
            window = self.window(x, y, node["kernel_size"], node["stride"], node["padding"])
            self.lines.append(
                f"CHECK(fg_avg_pool2d_fwd_f32({var}, &{window}, {int(node['count_include_pad'])}"
                f", {node['divisor_override'] or 0}, {out}, FG_PAR_POOL));")
        else:  # adaptive_avg_pool2d to a size dividing the input's: a plain average pooling
            assert op == "adaptive_avg_pool2d"
            step = [a // b for a, b in zip(x.shape[2:], y.shape[2:])]
            window = self.window(x, y, step, step, (0, 0))
            self.lines.append(f"CHECK(fg_avg_pool2d_fwd_f32({var}, &{window}, 1, 0, {out}, "
                              "FG_PAR_POOL));")
        return out, y

    def source(self, graph, x):
        out, y = self.emit(graph["root"], self.array(x, const=False), x)
        body = "\n    ".join(self.lines)
        return (_C_PROLOGUE + "\n".join(self.arrays) + f"""
int main(void)
{{
    fg_blas blas = {{(uintptr_t)naive_sgemm, 0, 0, 0, 32}};
    {body}
    for (int i = 0; i < {y.size}; i++)
        printf("%.9g\\n", {out}[i]);
    return 0;
}}
"""), y


def test_an_exported_conv_net_runs_on_the_c_kernels_alone(tmp_path, rng):
    """fastgrad.h's kernels run an exported network node by node from C (the conv, pooling,
    activation, linear and axpy kernels; a folded BatchNorm is in the conv's weights), and
    give the runtime's outputs: what a C-only deployment does."""
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler (cc) on PATH")
    fg.manual_seed(30)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.MaxPool2d(2, ceil_mode=True),
        models.BasicBlock(4, 6, 2, nn.Sequential(nn.Conv2d(4, 6, 1, stride=2, bias=False),
                                                 nn.BatchNorm2d(6))),
        models.BasicBlock(6, 6),
        nn.Conv2d(6, 6, 3, padding=1, groups=6), nn.ReLU(),
        nn.Conv2d(6, 6, 2, padding="same", dilation=1),
        nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))
    x = _input(rng, (2, 1, 9, 9), np.float32)
    _trained_statistics(model, x, batches=2)
    export(model, tmp_path / "net.safetensors", x)
    loaded = runtime.load(tmp_path / "net.safetensors")
    source, expected = _CProgram(loaded.weights).source(loaded.graph, x.numpy())
    np.testing.assert_array_equal(expected, loaded(x.numpy()))
    (tmp_path / "net.c").write_text(source)
    build = subprocess.run(
        [compiler, "-O0", "-std=c11", "-Wall", "-Werror", "-Wno-unknown-pragmas", f"-I{CSRC}",
         str(tmp_path / "net.c"), *(os.path.join(CSRC, f"{name}.c") for name in
                                    ("conv", "gemm", "layers", "arena")),
         "-o", str(tmp_path / "net"), "-lm"], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(tmp_path / "net")], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    outputs = np.array(run.stdout.split(), np.float32).reshape(expected.shape)
    assert runtime.relative_error(outputs, expected) < RTOL
