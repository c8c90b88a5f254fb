"""Export to a NumPy-only runtime (fastgrad.export, fastgrad.runtime): the runtime matches the
model's evaluation-mode outputs, BatchNorm folds, unsupported modules are named, the runtime
file runs on its own without fastgrad, Numba or cffi."""
import json
import os
import shutil
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import models, nn, runtime
from fastgrad.export import export
from fastgrad.serialization import save, write_safetensors

RTOL = 1e-5


def _trained_statistics(model, x, batches=3):
    """Run a few training-mode batches so BatchNorm's running statistics are not trivial."""
    model.train()
    rng = np.random.default_rng(11)
    for _ in range(batches):
        noise = rng.standard_normal(x.shape).astype(x.dtype)
        model(fg.tensor(x.numpy() * 2 + noise + 0.5))


def _eval_outputs(model, x):
    model.eval()
    with fg.no_grad():
        out = model(x)

    def arrays(value):
        return value.numpy() if isinstance(value, fg.Tensor) else tuple(map(arrays, value))
    return arrays(out)


def _export_and_compare(tmp_path, model, x, check_input=None):
    """Export, load with the runtime, and compare with the model on ``x`` and on a fresh
    input of the same shape; returns the runtime model."""
    path = tmp_path / "model.safetensors"
    was_training = [m.training for m in model.modules()]
    export(model, path, x)
    assert [m.training for m in model.modules()] == was_training
    loaded = runtime.load(path)
    other = check_input if check_input is not None else fg.tensor(
        np.random.default_rng(5).standard_normal(x.shape).astype(x.dtype))
    for sample in (x, other):
        expected = _eval_outputs(model, sample)
        assert runtime.relative_error(loaded(sample.numpy()), expected) < RTOL
    return loaded


def _ops(node):
    """Every op name in a graph, depth first."""
    found = [node["op"]]
    for child in node.get("layers", []) if node["op"] == "sequential" else []:
        found += _ops(child)
    if node["op"] == "residual":
        found += _ops(node["block"])
        if node["shortcut"] is not None:
            found += _ops(node["shortcut"])
    return found


ACTIVATIONS = [nn.ReLU(), nn.Sigmoid(), nn.Tanh(), nn.LeakyReLU(0.2), nn.ELU(0.7), nn.GELU(),
               nn.GELU("tanh"), nn.Softplus(2.0, 5.0)]


# ------------------------------------------------------------------------------ MLPs
@pytest.mark.parametrize("act", ACTIVATIONS, ids=lambda a: repr(a))
def test_mlp_with_batchnorm_folds_and_matches(tmp_path, act):
    fg.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 12), nn.BatchNorm1d(12), act, nn.Dropout(0.3),
                          nn.Linear(12, 12, bias=False), nn.BatchNorm1d(12, affine=False),
                          act, nn.Linear(12, 4))
    x = fg.randn(20, 6) * 3
    _trained_statistics(model, x)
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    loaded = _export_and_compare(tmp_path, model, x)
    ops = _ops(loaded.graph["root"])
    assert "batch_norm" not in ops and "dropout" not in ops
    assert ops.count("linear") == 3
    folded = [n for n in loaded.graph["root"]["layers"] if n.get("folded")]
    assert [n["folded"] for n in folded] == ["1", "5"]
    assert loaded.weights["4.bias"].shape == (12,)  # the folded BatchNorm gave it a bias
    for key, value in model.state_dict().items():  # export changed nothing in the model
        np.testing.assert_array_equal(value.numpy(), before[key])


def test_batchnorm_without_a_linear_before_it_is_a_scale_and_shift(tmp_path):
    fg.manual_seed(2)
    model = nn.Sequential(nn.BatchNorm1d(5), nn.Linear(5, 5), nn.ReLU(), nn.BatchNorm1d(5),
                          nn.Linear(5, 2))
    x = fg.randn(16, 5)
    _trained_statistics(model, x)
    loaded = _export_and_compare(tmp_path, model, x)
    assert _ops(loaded.graph["root"]).count("batch_norm") == 2


def test_batchnorm_over_channels_of_3d_and_4d_inputs_then_flatten(tmp_path):
    fg.manual_seed(3)
    model = nn.Sequential(nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(3 * 4 * 2, 6), nn.Tanh())
    x = fg.randn(5, 3, 4, 2)
    _trained_statistics(model, x)
    _export_and_compare(tmp_path, model, x)
    sequence_model = nn.Sequential(nn.BatchNorm1d(4), nn.Flatten(1, 2), nn.Linear(4 * 7, 3))
    x3 = fg.randn(6, 4, 7)
    _trained_statistics(sequence_model, x3)
    loaded = _export_and_compare(tmp_path, sequence_model, x3)
    assert "batch_norm" in _ops(loaded.graph["root"])  # (N, C, L): not foldable


def test_float64_models_export_in_float64(tmp_path):
    fg.manual_seed(4)
    model = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.GELU(), nn.Linear(8, 2))
    model.double()
    x = fg.randn(10, 3).double()
    _trained_statistics(model, x)
    loaded = _export_and_compare(tmp_path, model, x)
    assert loaded.dtype == np.float64
    assert loaded.self_test(rtol=1e-12) < 1e-12


def test_nested_sequentials_are_flattened_and_folding_crosses_them(tmp_path):
    fg.manual_seed(5)
    model = nn.Sequential(nn.Sequential(nn.Linear(4, 6)), nn.Sequential(nn.BatchNorm1d(6),
                                                                        nn.Identity()),
                          nn.ReLU())
    x = fg.randn(9, 4)
    _trained_statistics(model, x)
    loaded = _export_and_compare(tmp_path, model, x)
    assert _ops(loaded.graph["root"]) == ["sequential", "linear", "relu"]


# --------------------------------------------------------------------------- residuals
def test_residual_blocks_with_identity_and_projection_shortcuts(tmp_path):
    fg.manual_seed(6)
    block = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 8))
    model = nn.Sequential(
        nn.Linear(5, 8), nn.ReLU(),
        nn.Residual(block),
        nn.Residual(nn.Sequential(nn.Linear(8, 4), nn.Tanh()),
                    shortcut=nn.Linear(8, 4, bias=False)),
        nn.Residual(nn.Residual(nn.Linear(4, 4)), shortcut=nn.Identity()),
        nn.Linear(4, 2))
    x = fg.randn(12, 5)
    _trained_statistics(model, x)
    loaded = _export_and_compare(tmp_path, model, x)
    ops = _ops(loaded.graph["root"])
    assert ops.count("residual") == 4 and "batch_norm" not in ops


# -------------------------------------------------------------------------- recurrent
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_two_layer_lstm_matches(tmp_path, batch_first, bias):
    fg.manual_seed(7)
    model = nn.LSTM(3, 5, num_layers=2, bias=bias, batch_first=batch_first, dropout=0.4)
    x = fg.randn(*((4, 9, 3) if batch_first else (9, 4, 3)))
    loaded = _export_and_compare(tmp_path, model, x)
    out, (h_n, c_n) = loaded(x.numpy())
    assert out.shape == ((4, 9, 5) if batch_first else (9, 4, 5))
    assert h_n.shape == c_n.shape == (2, 4, 5)
    # unbatched input (T, I)
    single = fg.randn(9, 3)
    assert runtime.relative_error(loaded(single.numpy()), _eval_outputs(model, single)) < RTOL


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_rnn_matches(tmp_path, nonlinearity, batch_first):
    fg.manual_seed(8)
    model = nn.RNN(4, 6, num_layers=2, nonlinearity=nonlinearity, batch_first=batch_first)
    x = fg.randn(3, 10, 4)
    loaded = _export_and_compare(tmp_path, model, x)
    out, h_n = loaded(x.numpy())
    assert out.shape == (3, 10, 6) and h_n.shape == (2, 3 if batch_first else 10, 6)


def test_lstm_at_the_end_of_a_sequential(tmp_path):
    fg.manual_seed(9)
    model = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.LSTM(4, 3, batch_first=True))
    _export_and_compare(tmp_path, model, fg.randn(5, 6, 2))


# ---------------------------------------------------------------------- refusals, modes
class _Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(2, 3)

    def forward(self, x):
        return self.lstm(x)[0]


class _MySequential(nn.Sequential):
    """A subclass that does not change forward: exported like a Sequential."""


class _ScaledLinear(nn.Linear):
    def forward(self, input):
        return super().forward(input) * 2


@pytest.mark.parametrize("model, x, message", [
    (_Custom(), fg.randn(3, 2, 2), "the root module of type _Custom"),
    (nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU(), nn.RNNCell(2, 2))),
     fg.randn(3, 2), "module '1.1' of type RNNCell"),
    (nn.Residual(nn.Sequential(_ScaledLinear(2, 2))), fg.randn(3, 2),
     r"module 'block.0' \(_ScaledLinear\) overrides Linear.forward"),
    (nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2, track_running_stats=False)),
     fg.randn(4, 2), "module '1' .*track_running_stats=False"),
])
def test_unsupported_modules_are_named(tmp_path, model, x, message):
    with pytest.raises(TypeError, match=message):
        export(model, tmp_path / "m.safetensors", x)
    assert not os.listdir(tmp_path)
    assert all(m.training for m in model.modules())  # modes restored after the failure


def test_subclasses_that_keep_forward_are_supported(tmp_path):
    fg.manual_seed(10)
    model = _MySequential(nn.Linear(3, 3), nn.ReLU())
    _export_and_compare(tmp_path, model, fg.randn(4, 3))


def test_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="Module"):
        export(lambda x: x, tmp_path / "m", fg.randn(2))
    with pytest.raises(TypeError, match="example_input"):
        export(nn.Linear(2, 2), tmp_path / "m", [[1.0, 2.0]])
    with pytest.raises(TypeError, match="floating"):
        export(nn.Linear(2, 2), tmp_path / "m", fg.tensor([[1, 2]]))


def test_mixed_modes_are_restored(tmp_path):
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5), nn.BatchNorm1d(2))
    model.train()
    model[1].eval()
    export(model, tmp_path / "m.safetensors", fg.randn(4, 2))
    assert [m.training for m in model.modules()] == [True, True, False, True]


# ------------------------------------------------------------------------------- runtime
def _exported(tmp_path):
    fg.manual_seed(12)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2))
    x = fg.randn(8, 4)
    _trained_statistics(model, x)
    path = tmp_path / "model.safetensors"
    export(model, path, x)
    return model, x, path


def test_runtime_input_handling(tmp_path):
    model, x, path = _exported(tmp_path)
    loaded = runtime.load(path)
    ints = np.arange(12).reshape(3, 4)
    expected = _eval_outputs(model, fg.tensor(ints.astype(np.float32)))
    assert runtime.relative_error(loaded(ints), expected) < RTOL  # cast to float32
    assert loaded(x.numpy().tolist()).dtype == np.float32
    with pytest.raises(ValueError, match=r"linear '0' expects input of shape \(\*, 4\)"):
        loaded(np.ones((3, 5)))
    with pytest.raises(TypeError, match="real numbers"):
        loaded(np.ones((3, 4), np.complex64))


def test_runtime_refuses_tampered_weights_and_non_exports(tmp_path):
    _, _, path = _exported(tmp_path)
    weights, metadata = runtime.read_safetensors(path)
    weights["0.weight"] = weights["0.weight"] * np.float32(1.001)
    tampered = tmp_path / "tampered.safetensors"
    write_safetensors(tampered, weights, {runtime.GRAPH_KEY: metadata[runtime.GRAPH_KEY]})
    with pytest.raises(ValueError, match="self-test failed"):
        runtime.load(tampered)
    assert runtime.load(tampered, check=False).self_test(rtol=1e-2) < 1e-2
    checkpoint = tmp_path / "ckpt.safetensors"
    save({"w": fg.ones(2)}, checkpoint)
    with pytest.raises(ValueError, match="not an exported model"):
        runtime.load(checkpoint)


@pytest.mark.parametrize("change, message", [
    (lambda g: g.update(version=99), "version 99"),
    (lambda g: g.update(dtype="object"), "dtype 'object'"),
    (lambda g: g["root"]["layers"][0].update(op="conv3d"), "unknown node"),
    (lambda g: g["root"]["layers"][0].update(weight="nope"), "2-D floating weight 'nope'"),
    (lambda g: g["root"]["layers"][1].update(op="gelu", approximate="erf"), "approximate"),
    (lambda g: g["root"]["layers"][0].pop("bias"), "lacks"),
])
def test_runtime_refuses_invalid_graphs(tmp_path, change, message):
    _, _, path = _exported(tmp_path)
    weights, metadata = runtime.read_safetensors(path)
    graph = json.loads(metadata[runtime.GRAPH_KEY])
    change(graph)
    bad = tmp_path / "bad.safetensors"
    write_safetensors(bad, weights, {runtime.GRAPH_KEY: json.dumps(graph)})
    with pytest.raises(ValueError, match=message):
        runtime.load(bad)


def test_a_corrupted_export_is_refused(tmp_path):
    _, _, path = _exported(tmp_path)
    content = bytearray(path.read_bytes())
    content[-3] ^= 1
    path.write_bytes(bytes(content))
    with pytest.raises(ValueError, match="sha256"):
        runtime.load(path)
    (length,) = struct.unpack("<Q", content[:8])
    path.write_bytes(bytes(content[:8 + length + 10]))
    with pytest.raises(ValueError, match="truncated"):
        runtime.load(path)


def test_exported_weights_are_readable_by_safetensors(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    _, _, path = _exported(tmp_path)
    read = st.load_file(str(path))
    ours, _ = runtime.read_safetensors(path)
    assert sorted(read) == sorted(ours)
    for key in read:
        np.testing.assert_array_equal(read[key], ours[key])


def test_the_runtime_file_runs_alone_with_numpy_only(tmp_path):
    fg.manual_seed(13)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.GELU(),
                          nn.Residual(nn.Sequential(nn.Linear(8, 8), nn.Tanh())),
                          nn.Linear(8, 3))
    x = fg.randn(6, 4)
    _trained_statistics(model, x)
    export(model, tmp_path / "model.safetensors", x)
    lstm = nn.LSTM(3, 4, num_layers=2, batch_first=True)
    export(lstm, tmp_path / "lstm.safetensors", fg.randn(2, 5, 3))
    cnn = models.resnet(8)   # convolutions, pooling, residual blocks
    _trained_statistics(cnn, fg.randn(3, 1, 8, 8), batches=2)
    export(cnn, tmp_path / "resnet.safetensors", fg.randn(3, 1, 8, 8))
    inputs = np.random.default_rng(3).standard_normal((7, 4)).astype(np.float32)
    np.save(tmp_path / "input.npy", inputs)
    images = np.random.default_rng(4).standard_normal((5, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "images.npy", images)
    alone = tmp_path / "deploy"
    alone.mkdir()
    shutil.copy(runtime.__file__, alone / "runtime.py")
    script = textwrap.dedent("""
        import sys
        import numpy as np
        import runtime
        model = runtime.load("model.safetensors")
        np.save("output.npy", model(np.load("input.npy")))
        lstm = runtime.load("lstm.safetensors")
        assert lstm.self_test() < 1e-5
        np.save("images_out.npy", runtime.load("resnet.safetensors")(np.load("images.npy")))
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in
                        ("fastgrad", "numba", "cffi", "llvmlite", "torch", "scipy"))
        print("FORBIDDEN", loaded)
        print("RUNTIME", runtime.__file__)
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(alone)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "FORBIDDEN []" in done.stdout
    assert f"RUNTIME {alone / 'runtime.py'}" in done.stdout
    expected = _eval_outputs(model, fg.tensor(inputs))
    assert runtime.relative_error(np.load(tmp_path / "output.npy"), expected) < RTOL
    expected = _eval_outputs(cnn, fg.tensor(images))
    assert runtime.relative_error(np.load(tmp_path / "images_out.npy"), expected) < RTOL


def test_bidirectional_recurrent_layers_are_refused_up_front(tmp_path):
    model = fg.nn.LSTM(3, 4, bidirectional=True)
    with pytest.raises(TypeError, match="bidirectional"):
        export(model, tmp_path / "m.safetensors", fg.randn(5, 2, 3))
