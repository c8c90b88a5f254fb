"""The gradient monitor: recorded norms against direct computation, verdicts on constructed
cases (and none on a healthy network), thresholds and reports."""
import csv
import math
import sys

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import data, nn, optim
from fastgrad.diagnostics import GradientMonitor, Thresholds, Verdict
from fastgrad.diagnostics import verdicts
from fastgrad.diagnostics.verdicts import Checker, ModelTraits
from fastgrad.tensor import Tensor


@pytest.fixture(scope="module")
def digits():
    (x, y), _ = data.load_digits(seed=0)
    return x, y


def _mlp(depth, width, activation, init=None, batchnorm=False, seed=0):
    fg.manual_seed(seed)
    layers = [nn.Linear(64, width)]
    for i in range(depth - 1):
        if batchnorm:
            layers.append(nn.BatchNorm1d(width))
        layers += [activation(), nn.Linear(width, width if i < depth - 2 else 10)]
    model = nn.Sequential(*layers)
    if init == "he":
        for module in model.modules():
            if isinstance(module, nn.Linear):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)
    return model


def _train(model, optimizer, monitor, x, y, steps, batch=64, clip=None, criterion=None):
    criterion = criterion or nn.CrossEntropyLoss()
    found = []
    for step in range(steps):
        start = (step * batch) % (len(x) - batch)
        loss = criterion(model(Tensor(x[start:start + batch])), Tensor(y[start:start + batch]))
        optimizer.zero_grad()
        loss.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        found += monitor.step()
    return found


# ----------------------------------------------------------------------- verdicts that fire
def test_deep_sigmoid_net_at_default_init_has_vanishing_gradients(digits):
    model = _mlp(12, 32, nn.Sigmoid)
    optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    monitor = GradientMonitor(model, optimizer)
    found = _train(model, optimizer, monitor, *digits, steps=4)
    vanishing = [v for v in found if v.kind == "vanishing"]
    assert vanishing and vanishing[0].step == 0
    first = vanishing[0]
    assert first.layers[0] == "0" and first.figure < 1e-3
    assert "nn.ReLU" in first.remedy and "kaiming_normal_" in first.remedy
    assert "BatchNorm1d" in first.remedy and "Residual" in first.remedy
    assert "step 0: vanishing" in str(first)


def test_rnn_with_spectral_radius_3_has_exploding_gradients():
    x, y = data.adding_problem(64, 50, seed=0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.RNN(2, 32, batch_first=True)
            self.head = nn.Linear(32, 1)

        def forward(self, input):
            return self.head(self.rnn(input)[0][:, -1])

    fg.manual_seed(0)
    model = Net()
    weight = model.rnn.weight_hh_l0.numpy()
    weight *= 3.0 / np.max(np.abs(np.linalg.eigvals(weight)))
    optimizer = optim.SGD(model.parameters(), lr=0.01)
    monitor = GradientMonitor(model, optimizer)
    found = _train(model, optimizer, monitor, x, y, steps=2, batch=32,
                   criterion=nn.MSELoss())
    exploding = [v for v in found if v.kind == "exploding"]
    assert exploding and exploding[0].step == 0
    assert exploding[0].layers == ("rnn",) and exploding[0].figure > 1e3
    assert "nn.LSTM" in exploding[0].remedy and "clip_grad_norm_" in exploding[0].remedy


@pytest.mark.parametrize("clip", [None, 1.0])
def test_nan_gradient_gives_a_non_finite_verdict_naming_the_layer(digits, clip):
    x, y = digits
    model = _mlp(3, 16, nn.ReLU)
    optimizer = optim.SGD(model.parameters(), lr=0.01)
    monitor = GradientMonitor(model, optimizer)
    _train(model, optimizer, monitor, x, y, steps=2)
    loss = nn.CrossEntropyLoss()(model(Tensor(x[:8])), Tensor(y[:8]))
    optimizer.zero_grad()
    loss.backward()
    model[2].weight.grad.numpy()[0, 0] = np.nan
    if clip is not None:
        with np.errstate(invalid="ignore"):
            nn.utils.clip_grad_norm_(model.parameters(), clip)
    found = monitor.step()
    assert [v.kind for v in found] == ["non-finite"]
    assert found[0].step == 2 and found[0].layers == ("2",) and math.isnan(found[0].figure)
    assert "check the inputs" in found[0].remedy
    assert math.isnan(monitor.history()["global_norm"][-1])


def test_nan_in_the_input_is_flagged_at_that_step(digits):
    x, y = digits
    x = x.copy()
    x[64 * 3 + 5] = np.nan
    model = _mlp(3, 16, nn.ReLU)
    optimizer = optim.SGD(model.parameters(), lr=0.01)
    monitor = GradientMonitor(model, optimizer)
    with np.errstate(invalid="ignore"):
        found = _train(model, optimizer, monitor, x, y, steps=4)
    assert found and found[0].kind == "non-finite" and found[0].step == 3


def test_growth_of_the_global_norm_is_exploding_but_a_single_spike_is_not():
    traits = ModelTraits(set(), False, False, False, False, 2, 1.0, lr=0.1)
    checker = Checker(Thresholds(), ["a", "b"], traits)
    norms = [1.0] * 10 + [30.0] + [1.0] * 5
    assert not any(checker.check(i, [n, n], None, n, False, {}) for i, n in enumerate(norms))
    norms = [20.0, 25.0, 30.0]
    found = [v for i, n in enumerate(norms, 16) for v in checker.check(i, [n, n], None, n, False,
                                                                       {})]
    assert [v.kind for v in found] == ["exploding"] and found[0].step == 17
    assert found[0].figure == pytest.approx(20.0)
    assert "lower the learning rate (now 0.1)" in found[0].remedy


def test_a_layer_below_the_floor_for_patience_steps_is_vanishing():
    traits = ModelTraits({"relu"}, True, True, False, False, 3, 1.4)
    checker = Checker(Thresholds(patience=2), ["a", "b", "c"], traits)
    assert checker.check(0, [1.0, 1e-9, 1.0], None, 1.0, False, {}) == []
    found = checker.check(1, [1.0, 1e-9, 1.0], [True, True, True], 1.0, False, {})
    assert [(v.kind, v.layers) for v in found] == [("vanishing", ("b",))]
    assert checker.check(2, [1.0, 1e-10, 1.0], None, 1.0, False, {}) == []
    assert checker.verdicts[-1].last_step == 2 and checker.verdicts[-1].worst == 1e-10
    # a layer without gradients is not vanishing
    checker = Checker(Thresholds(patience=1), ["a", "b"], traits)
    assert checker.check(0, [0.0, 1.0], [False, True], 1.0, False, {}) == []


class _GeneralChecker(Checker):
    """A Checker that never takes the usual-step shortcut (it always seems to be counting
    a layer towards the floor)."""

    _counting = property(lambda self: True, lambda self, value: None)


def test_the_usual_step_shortcut_issues_what_the_general_checks_do():
    traits = ModelTraits({"sigmoid"}, False, False, False, False, 3, 1.0, lr=0.1)
    rng = np.random.default_rng(0)
    thresholds = Thresholds(patience=2, window=4, growth=3.0, floor=1e-3)
    fast, general = (cls(thresholds, ["a", "b", "c"], traits) for cls in (Checker,
                                                                          _GeneralChecker))
    for step in range(3000):
        norms = list(np.exp(rng.normal(0, 3 if step % 500 < 250 else 1, 3)))
        if step % 97 == 5:
            norms[rng.integers(3)] = rng.choice([np.nan, np.inf, 0.0])
        total = math.sqrt(sum(n * n for n in norms))
        got, want = (c.check(step, list(norms), None, total, False, {}) for c in (fast, general))
        assert [v.state() for v in got] == [v.state() for v in want], step
    assert {v.kind for v in fast.verdicts} >= {"vanishing", "exploding", "non-finite"}
    assert fast.state_dict() == general.state_dict()


def test_saturated_sigmoids_are_flagged(digits):
    model = _mlp(3, 32, nn.Sigmoid)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 3.0)
    optimizer = optim.SGD(model.parameters(), lr=0.01)
    monitor = GradientMonitor(model, optimizer, activations=True)
    found = _train(model, optimizer, monitor, *digits, steps=3)
    saturation = [v for v in found if v.kind == "saturation"]
    assert saturation and saturation[0].step == 2 and saturation[0].figure > 0.5
    assert "xavier_uniform_" in saturation[0].remedy
    stats = monitor.history()["activations"][saturation[0].layers[0]]
    assert stats["kind"] == "Sigmoid" and len(stats["step"]) == 3


def test_dead_relu_units_are_flagged(digits):
    model = _mlp(3, 32, nn.ReLU)
    nn.init.constant_(model[0].bias, -50.0)
    optimizer = optim.SGD(model.parameters(), lr=0.01)
    monitor = GradientMonitor(model, optimizer, activations=True)
    found = _train(model, optimizer, monitor, *digits, steps=3)
    dead = [v for v in found if v.kind == "dead-units"]
    assert dead and dead[0].layers == ("1",) and dead[0].figure == 1.0
    assert "LeakyReLU" in dead[0].remedy


def test_dead_units_of_a_convolution_are_its_channels(rng):
    # one of four filters never fires: a quarter of the units dead (a unit is a channel, at
    # every position, not the last axis of the image)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 36, 3))
    nn.init.constant_(model[0].bias, 0.0)
    with fg.no_grad():
        model[0].bias[2] = -50.0
    optimizer = optim.SGD(model.parameters(), lr=0.0)
    monitor = GradientMonitor(model, optimizer, activations=True)
    x = fg.tensor(rng.standard_normal((8, 1, 6, 6)).astype(np.float32))
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(x), fg.tensor(np.arange(8) % 3)).backward()
    optimizer.step()
    monitor.step()
    assert monitor.history()["activations"]["1"]["dead"][0] == 0.25


def test_the_remedies_for_a_plain_cnn_name_convolution_remedies():
    from fastgrad import models
    traits = ModelTraits.of(models.plain_cnn(20, batch_norm=False))
    assert traits.conv and traits.depth == 20 and not traits.residual
    assert not traits.batchnorm and traits.init_gain == pytest.approx(math.sqrt(2), rel=0.2)
    text = verdicts.remedy_vanishing(traits)
    assert "nn.BatchNorm2d after each Conv2d" in text and "fastgrad.models.resnet" in text
    assert "20 Conv2d and Linear layers deep" in text and "BatchNorm1d" not in text
    residual = ModelTraits.of(models.resnet(8))
    assert residual.residual and residual.batchnorm and "residual" not in \
        verdicts.remedy_vanishing(residual)


# -------------------------------------------------------------------- and those that do not
def test_healthy_relu_he_batchnorm_net_gets_no_verdict(digits):
    model = _mlp(8, 64, nn.ReLU, init="he", batchnorm=True)
    optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    monitor = GradientMonitor(model, optimizer, activations=True)
    assert _train(model, optimizer, monitor, *digits, steps=60, clip=5.0) == []
    assert "none - the gradients look healthy" in monitor.summary()


# ------------------------------------------------------------------ norms against direct ones
def _direct(params):
    return np.array([np.linalg.norm(p.grad.numpy().astype(np.float64)) for p in params])


@pytest.mark.parametrize("clip", [None, 0.01])
def test_recorded_norms_equal_direct_norms(digits, clip):
    x, y = digits
    model = _mlp(4, 16, nn.Tanh)
    optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    monitor = GradientMonitor(model, optimizer)
    params = list(model.parameters())
    expected_grad, expected_after, expected_update, expected_param = [], [], [], []
    for step in range(3):
        loss = nn.CrossEntropyLoss()(model(Tensor(x[:32])), Tensor(y[:32]))
        optimizer.zero_grad()
        loss.backward()
        expected_grad.append(_direct(params))
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        expected_after.append(np.linalg.norm(_direct(params)))
        before = [p.numpy().astype(np.float64) for p in params]
        optimizer.step()
        monitor.step()
        expected_param.append([np.linalg.norm(p.numpy().astype(np.float64)) for p in params])
        expected_update.append([np.linalg.norm(p.numpy() - b) for p, b in zip(params, before)])
    history = monitor.history()
    np.testing.assert_allclose(history["parameter_grad_norm"], expected_grad, rtol=1e-6)
    np.testing.assert_allclose(history["global_norm"],
                               np.linalg.norm(expected_grad, axis=1), rtol=1e-6)
    np.testing.assert_allclose(history["clipped_norm"], expected_after, rtol=1e-5)
    if clip is not None:
        assert (history["clip_coef"] < 1).all() and np.allclose(history["clipped_norm"], clip)
    np.testing.assert_allclose(history["parameter_norm"], expected_param, rtol=1e-6)
    np.testing.assert_allclose(history["parameter_update_ratio"],
                               np.array(expected_update) / np.array(expected_param),
                               rtol=1e-4)
    by_layer = np.sqrt(np.array(expected_grad)[:, 0::2] ** 2 + np.array(expected_grad)[:, 1::2]
                       ** 2)
    np.testing.assert_allclose(history["grad_norm"], by_layer, rtol=1e-6)
    assert history["layers"] == ["0", "2", "4", "6"]


def test_after_clipping_the_gradients_are_not_measured_again(digits, monkeypatch):
    from fastgrad.backends import K
    x, y = digits
    model = _mlp(3, 16, nn.ReLU)
    optimizer = optim.SGD(model.parameters(), lr=0.01)
    monitor = GradientMonitor(model, optimizer)
    (_, arena), = optimizer.arenas()
    passes, fused = [], []
    original, original_fused = K.segment_norms, K.monitor_norms

    def counting(values, offsets, norm_type, out):
        passes.append(values)
        return original(values, offsets, norm_type, out)

    def counting_fused(grads, *args):
        fused.append(grads)
        return original_fused(grads, *args)

    monkeypatch.setattr(K, "segment_norms", counting)
    monkeypatch.setattr(K, "monitor_norms", counting_fused)
    loss = nn.CrossEntropyLoss()(model(Tensor(x[:32])), Tensor(y[:32]))
    optimizer.zero_grad()
    loss.backward()
    before = nn.utils.clip_grad_norm_(model.parameters(), 1e-3).item()
    clip_passes = len(passes)
    optimizer.step()
    monitor.step()
    measured = passes[clip_passes:]
    assert not any(np.shares_memory(v, arena.grad) and v.size > 10 for v in measured)
    assert len(measured) == 1  # the probe of the clip coefficient, on one bias
    assert fused == [None]  # parameters and updates in one pass, gradients not read again
    assert monitor.history()["global_norm"][0] == pytest.approx(before, rel=1e-6)
    assert monitor.history()["clipped_norm"][0] == pytest.approx(1e-3, rel=1e-4)


def test_norms_without_optimizer_with_extra_parameters_and_every_two(digits):
    x, y = digits
    body = _mlp(3, 8, nn.ReLU)
    extra = nn.Parameter(np.ones(3, np.float32))
    unused = nn.Linear(2, 2)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.unused = body, unused

        def forward(self, input):
            return self.body(input)

    model = Net()
    optimizer = optim.SGD([p for p in model.parameters() if all(p is not q for q in
                           unused.parameters())] + [extra], lr=0.1)
    monitor = GradientMonitor(model, every=2)
    params = list(model.parameters())
    recorded = []
    for step in range(4):
        loss = nn.CrossEntropyLoss()(model(Tensor(x[:16])), Tensor(y[:16])) + extra.sum()
        optimizer.zero_grad()
        loss.backward()
        if step % 2 == 0:
            recorded.append([np.linalg.norm(p.grad.numpy()) if p.grad is not None else 0.0
                             for p in params])
        optimizer.step()
        monitor.step()
    history = monitor.history()
    assert list(history["step"]) == [0, 2] and monitor.steps == 4
    np.testing.assert_allclose(history["parameter_grad_norm"], recorded, rtol=1e-6)
    assert np.isfinite(history["parameter_update_ratio"][:, :6]).all()
    assert history["layers"][-1] == "unused"  # never called: after the forward-order layers


def test_layers_are_in_forward_order_and_order_hooks_are_removed(digits):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.out = nn.Linear(16, 10)
            self.body = nn.Sequential(nn.Linear(64, 16), nn.ReLU())

        def forward(self, input):
            return self.out(self.body(input))

    model = Net()
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    monitor = GradientMonitor(model, optimizer)
    assert model.body[0]._has_hooks()
    _train(model, optimizer, monitor, *digits, steps=2)
    assert monitor.layer_names == ["body.0", "out"]
    assert not any(m._has_hooks() for m in model.modules())
    assert monitor.layer_shapes == [(16, 64), (10, 16)]


def test_activation_hooks_only_on_recorded_steps_and_close_removes_them(digits):
    model = _mlp(2, 8, nn.Tanh)
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    monitor = GradientMonitor(model, optimizer, every=3, activations=True)
    _train(model, optimizer, monitor, *digits, steps=5)
    assert list(monitor.history()["activations"]["1"]["step"]) == [0, 3]
    monitor.close()
    assert not any(m._has_hooks() for m in model.modules())


# ------------------------------------------------------------------ thresholds and arguments
def test_thresholds_are_configurable_and_validated():
    assert Thresholds.of(None) == Thresholds()
    assert Thresholds.of({"window": 5}).window == 5
    with pytest.raises(ValueError, match="unknown threshold"):
        Thresholds.of({"windw": 5})
    with pytest.raises(ValueError, match="vanishing_ratio must be a positive"):
        Thresholds(vanishing_ratio=-1.0)
    with pytest.raises(ValueError, match="patience must be a positive int"):
        Thresholds(patience=0)
    with pytest.raises(TypeError, match="thresholds must be"):
        Thresholds.of(3)


def test_custom_vanishing_threshold_changes_the_verdict(digits):
    model = _mlp(4, 16, nn.Sigmoid)
    optimizer = optim.SGD(model.parameters(), lr=0.01)
    loose = GradientMonitor(model, optimizer, thresholds={"vanishing_ratio": 1e-12})
    assert _train(model, optimizer, loose, *digits, steps=2) == []


@pytest.mark.parametrize("arguments, error, message", [
    (dict(model=3), TypeError, "model must be a fastgrad.nn.Module"),
    (dict(every=0), ValueError, "every must be a positive int"),
    (dict(optimizer=object()), TypeError, "optimizer must be a fastgrad optimiser"),
    (dict(model=nn.ReLU()), ValueError, "no parameters"),
])
def test_bad_arguments_raise(arguments, error, message):
    arguments = {"model": nn.Linear(2, 2), **arguments}
    with pytest.raises(error, match=message):
        GradientMonitor(**arguments)


# --------------------------------------------------------------------------------- reports
@pytest.fixture
def trained(digits):
    model = _mlp(3, 16, nn.Sigmoid)
    optimizer = optim.SGD(model.parameters(), lr=0.05)
    monitor = GradientMonitor(model, optimizer, activations=True)
    _train(model, optimizer, monitor, *digits, steps=5, clip=0.1)
    return monitor


def test_summary_lists_layers_global_norm_and_verdicts(trained):
    text = trained.summary()
    for expected in ("layer", "grad first", "ratio to output", "update/param", "Linear",
                     "16x64", "clipping ran at 5 recorded step(s)", "activations",
                     "Sigmoid"):
        assert expected in text
    assert "recorded" in GradientMonitor(nn.Linear(2, 2)).summary()


def test_history_shapes(trained):
    history = trained.history()
    assert history["grad_norm"].shape == (5, 3)
    assert history["parameter_grad_norm"].shape == (5, 6)
    assert history["global_norm"].shape == history["clipped_norm"].shape == (5,)
    assert history["parameters"][0] == "0.weight"


def test_to_csv_writes_one_row_per_step_and_layer(trained, tmp_path):
    path = tmp_path / "history.csv"
    trained.to_csv(path)
    rows = list(csv.DictReader(open(path)))
    layers = [r for r in rows if r["type"] == "Linear"]
    assert len(layers) == 5 * 3
    assert float(layers[0]["grad_norm"]) == pytest.approx(trained.history()["grad_norm"][0, 0])
    assert sum(r["type"] == "Sigmoid" for r in rows) == 5 * 2


def test_plot_without_matplotlib_says_what_to_install(trained, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(ImportError, match=r"pip install fastgrad\[plot\]"):
        trained.plot(tmp_path / "g.png")


def test_plot_writes_a_png(trained, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "g.png"
    trained.plot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_verdict_text_names_step_kind_and_remedy():
    verdict = Verdict("exploding", 4, ("rnn",), 2e3, "it grew", "clip")
    verdict.last_step = 9
    assert str(verdict) == "step 4: exploding: it grew (still at step 9). Remedy: clip."
