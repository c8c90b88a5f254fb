"""Gradient health through time: the per-step norms ||dL/dh_t|| (and ||dL/dc_t||) that the
recurrent layers' backward loops report, against unrolled cell loops of fastgrad and PyTorch
(skipped without torch); the monitor's record of them, its verdicts in time, reports, and its
state in a checkpoint (a resumed run reports what an uninterrupted one does)."""
import csv
import math

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import data, demo, nn, optim
from fastgrad.diagnostics import KINDS, GradientMonitor, Thresholds
from fastgrad.diagnostics import reports
from fastgrad.diagnostics.verdicts import through_time
from fastgrad.nn import functional as F
from fastgrad.train import Checkpointer

KIND_NAMES = ("rnn-tanh", "lstm", "gru")
#: (num_layers, batch_first, bidirectional, initial state)
LAYOUTS = [(1, False, False, False), (2, True, False, True), (1, False, True, True),
           (2, True, True, False)]


def _make(kind, input_size, hidden, **options):
    if kind == "lstm":
        return nn.LSTM(input_size, hidden, **options)
    if kind == "gru":
        return nn.GRU(input_size, hidden, **options)
    return nn.RNN(input_size, hidden, nonlinearity=kind[4:], **options)


class _Lib:
    """What the reference loop needs from fastgrad or PyTorch."""

    def __init__(self, torch=None):
        self.torch = torch
        self.nn = torch.nn if torch else nn
        self.cat = torch.cat if torch else fg.cat

    def tensor(self, array):
        return self.torch.tensor(array) if self.torch else fg.tensor(array)

    def numpy(self, tensor):
        return tensor.detach().numpy() if self.torch else tensor.numpy()

    def cell(self, kind, input_size, hidden, weights):
        if kind == "lstm":
            cell = self.nn.LSTMCell(input_size, hidden)
        elif kind == "gru":
            cell = self.nn.GRUCell(input_size, hidden)
        else:
            cell = self.nn.RNNCell(input_size, hidden, nonlinearity=kind[4:])
        cell.load_state_dict({name: self.tensor(value) for name, value in weights.items()})
        return cell


def _reference(lib, kind, weights, x, initial, layers, directions, hidden, loss_weights):
    """Per layer and direction, ||dL/dh_t|| and ||dL/dc_t|| (float64, t in time order) from a
    loop of ``lib``'s cells with hooks on every h_t and on every c_t as it is passed on to the
    next step; the loss weighs the last layer's outputs and every final state as
    ``loss_weights`` says."""
    steps = x.shape[0]
    grads = {}
    layer_input = [lib.tensor(x[t]) for t in range(steps)]
    finals = []
    for layer in range(layers):
        outputs = []
        for direction in range(directions):
            suffix = f"_l{layer}{'_reverse' if direction else ''}"
            cell = lib.cell(kind, layer_input[0].shape[-1], hidden,
                            {name: value for name, value in
                             ((n[:-len(suffix)], v) for n, v in weights.items()
                              if n.endswith(suffix))})
            index = layer * directions + direction
            state = None
            if initial is not None:
                state = tuple(lib.tensor(s[index]) for s in initial)
                state = state if kind == "lstm" else state[0]
            found = grads[layer, direction] = (np.zeros(steps), np.zeros(steps))
            hs = [None] * steps
            for t in (range(steps) if direction == 0 else range(steps - 1, -1, -1)):
                state = cell(layer_input[t], state)
                if kind == "lstm":
                    # what the next step (or c_n) receives: PyTorch's LSTMCell computes h_t
                    # from its c_t output, whose hook would also see the path through h_t
                    state = (state[0], state[1].clone())
                parts = state if kind == "lstm" else (state,)
                for which, part in enumerate(parts):
                    part.register_hook(lambda g, row=found[which], t=t: row.__setitem__(
                        t, np.linalg.norm(lib.numpy(g).astype(np.float64))))
                hs[t] = parts[0]
            finals.append(state if kind == "lstm" else (state,))
            outputs.append(hs)
        layer_input = [outputs[0][t] if directions == 1
                       else lib.cat([outputs[0][t], outputs[1][t]], 1) for t in range(steps)]
    out_weights, final_weights = loss_weights
    loss = sum((layer_input[t] * lib.tensor(out_weights[t])).sum() for t in range(steps))
    for index, states in enumerate(finals):
        for which, state in enumerate(states):
            loss = loss + (state * lib.tensor(final_weights[which][index])).sum()
    loss.backward()
    return grads


def _module_norms(kind, layout, rng):
    """The module's reported norms and what the reference loop needs to recompute them."""
    layers, batch_first, bidirectional, with_initial = layout
    steps, batch, inputs, hidden = 6, 3, 4, 5
    directions = 2 if bidirectional else 1
    fg.manual_seed(0)
    module = _make(kind, inputs, hidden, num_layers=layers, batch_first=batch_first,
                   bidirectional=bidirectional)
    x = rng.standard_normal((steps, batch, inputs)).astype(np.float32)
    count = 2 if kind == "lstm" else 1
    initial = None
    if with_initial:
        initial = tuple(rng.standard_normal((layers * directions, batch, hidden))
                        .astype(np.float32) for _ in range(count))
    out_weights = rng.standard_normal((steps, batch, directions * hidden)).astype(np.float32)
    final_weights = [rng.standard_normal((layers * directions, batch, hidden))
                     .astype(np.float32) for _ in range(count)]
    got = {}
    module.record_time_grads(lambda layer, direction, h, c: got.__setitem__(
        (layer, direction), (h, c)))
    xin = x.transpose(1, 0, 2) if batch_first else x
    states = None if initial is None else tuple(fg.tensor(s) for s in initial)
    if kind == "lstm":
        output, finals = module(fg.tensor(np.ascontiguousarray(xin)), states)
    else:
        output, h_n = module(fg.tensor(np.ascontiguousarray(xin)),
                             None if states is None else states[0])
        finals = (h_n,)
    weights_out = out_weights.transpose(1, 0, 2) if batch_first else out_weights
    loss = (output * fg.tensor(np.ascontiguousarray(weights_out))).sum()
    for final, w in zip(finals, final_weights):
        loss = loss + (final * fg.tensor(w)).sum()
    loss.backward()
    weights = {name: value.numpy().copy() for name, value in module.state_dict().items()}
    return got, (kind, weights, x, initial, layers, directions, hidden,
                 (out_weights, final_weights))


def _assert_norms_match(got, expected, kind):
    assert set(got) == set(expected)
    for key, (h, c) in got.items():
        assert h.dtype == np.float64 and h.shape == (6,)
        scale = expected[key][0].max()
        np.testing.assert_allclose(h, expected[key][0], rtol=1e-5, atol=1e-6 * scale,
                                   err_msg=f"dL/dh of layer, direction {key}")
        if kind == "lstm":
            scale = max(expected[key][1].max(), 1e-30)
            np.testing.assert_allclose(c, expected[key][1], rtol=1e-5, atol=1e-6 * scale,
                                       err_msg=f"dL/dc of layer, direction {key}")
        else:
            assert c is None


# -------------------------------------------------------------------------- the oracle tests
@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda v: "L{}-bf{:d}-bi{:d}-h0{:d}".format(*v))
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_step_norms_equal_an_unrolled_fastgrad_cell_loop(kind, layout, rng):
    got, args = _module_norms(kind, layout, rng)
    _assert_norms_match(got, _reference(_Lib(), *args), kind)


@pytest.mark.parametrize("ring_steps", [2, 4])
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_step_norms_measured_a_window_at_a_time_equal_the_loops(kind, ring_steps, rng,
                                                                  monkeypatch):
    # a ring of 2 or 4 steps' gradients (batch 3 x 5 units of float32): the 6 steps are
    # measured in windows of 2, or of 4 and 2, each before the ring overwrites it
    monkeypatch.setattr(F, "RING_BYTES", ring_steps * 3 * 5 * 4)
    got, args = _module_norms(kind, (2, False, True, True), rng)
    _assert_norms_match(got, _reference(_Lib(), *args), kind)


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_an_empty_batch_records_zero_norms(kind):
    module = _make(kind, 3, 4)
    got = {}
    module.record_time_grads(lambda layer, direction, h, c: got.__setitem__(layer, (h, c)))
    module(fg.zeros(5, 0, 3, requires_grad=True))[0].sum().backward()
    h, c = got[0]
    assert np.array_equal(h, np.zeros(5)) and (c is None) == (kind != "lstm")


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda v: "L{}-bf{:d}-bi{:d}-h0{:d}".format(*v))
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_step_norms_equal_an_unrolled_torch_cell_loop(kind, layout, rng):
    torch = pytest.importorskip("torch")
    got, args = _module_norms(kind, layout, rng)
    _assert_norms_match(got, _reference(_Lib(torch), *args), kind)


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_recording_changes_no_gradient_and_none_turns_it_off(kind, rng):
    x = rng.standard_normal((7, 3, 4)).astype(np.float32)

    def grads(recorder):
        fg.manual_seed(1)
        module = _make(kind, 4, 5, num_layers=2, bidirectional=True)
        module.record_time_grads(recorder)
        xt = fg.tensor(x, requires_grad=True)
        output = module(xt)[0]
        (output * output).sum().backward()
        return [xt.grad.numpy()] + [p.grad.numpy() for p in module.parameters()]

    calls = []
    recorded = grads(lambda *args: calls.append(args))
    assert len(calls) == 4  # 2 layers x 2 directions
    for a, b in zip(recorded, grads(None)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match="recorder must be callable or None, got int"):
        nn.GRU(2, 3).record_time_grads(3)


def test_a_reverse_direction_reports_in_the_inputs_time_order(rng):
    """Only the last output is in the loss: the forward direction's gradient is largest at
    the last step, the reverse direction's only nonzero one is at the last step (its first)."""
    module = nn.RNN(2, 4, bidirectional=True)
    got = {}
    module.record_time_grads(lambda layer, direction, h, c: got.__setitem__(direction, h))
    output, _ = module(fg.tensor(rng.standard_normal((5, 2, 2)).astype(np.float32)))
    output[-1].sum().backward()
    assert np.argmax(got[0]) == 4 and np.all(got[0] > 0)
    assert got[1][4] > 0 and np.all(got[1][:4] == 0)


# ------------------------------------------------------------------------------- the ratio
def test_through_time_gives_ratio_and_horizon():
    norms = np.array([1e-9, 1e-6, 1e-4, 1e-2, 1.0])
    assert through_time(norms, 1e-3) == (pytest.approx(1e-9), 2)
    assert through_time(np.ones(4), 1e-3) == (1.0, 4)
    assert through_time(np.array([5.0, 1.0]), 1e-3) == (5.0, 2)
    ratio, horizon = through_time(np.array([1.0, 0.0]), 1e-3)
    assert math.isnan(ratio) and horizon == 0
    ratio, horizon = through_time(np.array([np.nan, 1.0]), 1e-3)
    assert math.isnan(ratio)


def test_time_thresholds_are_validated_and_kinds_listed():
    assert {"vanishing-in-time", "exploding-in-time"} <= set(KINDS)
    assert Thresholds().time_vanishing_ratio == 1e-3 and Thresholds().time_exploding_ratio == 1e3
    with pytest.raises(ValueError, match="time_vanishing_ratio must be a positive finite"):
        Thresholds(time_vanishing_ratio=0)
    with pytest.raises(ValueError, match="time_exploding_ratio"):
        Thresholds(time_exploding_ratio=math.inf)


# ----------------------------------------------------------------------------- the monitor
def _adding_batches(steps, length, batch=32, seed=0):
    x, y = data.adding_problem(steps * batch, length, seed=seed)
    return [(fg.tensor(x[i * batch:(i + 1) * batch]), fg.tensor(y[i * batch:(i + 1) * batch]))
            for i in range(steps)]


def _train(model, optimizer, monitor, batches, start=0, stop=None, checkpoints=None):
    criterion = nn.MSELoss()
    for step in range(start, len(batches) if stop is None else stop):
        x, y = batches[step]
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        monitor.step()
        if checkpoints is not None and checkpoints.due(step + 1):
            checkpoints.save(step=step + 1)


def test_monitor_records_every_layer_and_direction_with_the_layers_own_norms(rng):
    fg.manual_seed(0)
    model = demo.SequenceRegressor("lstm", 2, 8, num_layers=2)
    model.rnn = nn.LSTM(2, 8, num_layers=2, batch_first=True, bidirectional=True)
    model.head = nn.Linear(16, 1)
    optimizer = optim.SGD(model.parameters(), lr=0.01)
    monitor = GradientMonitor(model, optimizer)
    assert monitor.time_keys == ["rnn.l0", "rnn.l0.cell", "rnn.l0_reverse",
                                 "rnn.l0_reverse.cell", "rnn.l1", "rnn.l1.cell",
                                 "rnn.l1_reverse", "rnn.l1_reverse.cell"]
    direct = []
    batches = _adding_batches(3, 9)
    recorder = model.rnn._time_grad_recorder
    for x, y in batches:
        seen = {}
        model.rnn.record_time_grads(lambda *args: (seen.__setitem__(args[:2], args[2:]),
                                                   recorder(*args)))
        _train(model, optimizer, monitor, [(x, y)])
        direct.append(seen)
    table = monitor.history()["time_grad_norms"]
    assert list(table) == monitor.time_keys
    for key in monitor.time_keys:
        assert table[key].shape == (3, 9)
    for s, seen in enumerate(direct):
        np.testing.assert_array_equal(table["rnn.l1_reverse"][s], seen[1, 1][0])
        np.testing.assert_array_equal(table["rnn.l0.cell"][s], seen[0, 0][1])
    # the last output only is in the loss: the last layer's reverse direction gets gradient
    # only at its first step, the sequence's last; c_n is unused, so the cell's is 0 at T
    reverse = table["rnn.l1_reverse"]
    assert np.all(reverse[:, :-1] == 0) and np.all(reverse[:, -1] > 0)
    assert np.all(table["rnn.l1.cell"][:, -1] == 0) and np.all(table["rnn.l1.cell"][:, 0] > 0)
    monitor.close()
    assert model.rnn._time_grad_recorder is None


def test_recorders_are_armed_on_recorded_steps_only_and_backward_passes_combine():
    fg.manual_seed(0)
    model = demo.SequenceRegressor("rnn", 2, 6)
    optimizer = optim.SGD(model.parameters(), lr=0.01)
    monitor = GradientMonitor(model, optimizer, every=3)
    batches = _adding_batches(4, 5)
    armed = []
    for step, (x, y) in enumerate(batches):
        armed.append(model.rnn._time_grad_recorder is not None)
        optimizer.zero_grad()
        parts = []
        model.rnn.record_time_grads(None if not armed[-1] else (
            lambda layer, direction, h, c, recorder=model.rnn._time_grad_recorder:
            (parts.append(h), recorder(layer, direction, h, c))))
        for half in (slice(0, 16), slice(16, 32)):  # two backward passes, one step
            nn.MSELoss()(model(x[half]), y[half]).backward()
        optimizer.step()
        monitor.step()
    assert armed == [True, False, False, True]
    table = monitor.history()["time_grad_norms"]["rnn.l0"]
    assert table.shape == (2, 5)
    np.testing.assert_allclose(table[-1], np.sqrt(parts[0] ** 2 + parts[1] ** 2), rtol=1e-15)


def test_plain_rnn_on_the_adding_problem_vanishes_in_time():
    result = demo.run(demo.Config(cell="rnn", depth=1, width=32, length=30, optimizer="adam",
                                  lr=0.03, steps=5, batch_size=64, seed=0))
    found = [v for v in result.monitor.verdicts if v.kind == "vanishing-in-time"]
    assert len(found) == 1
    verdict = found[0]
    assert verdict.layers == ("rnn.l0",) and verdict.figure < 1e-3
    assert verdict.step == 2  # the third recorded step: patience 3
    assert "effective horizon" in verdict.finding and "of 30 steps" in verdict.finding
    assert "nn.LSTM or nn.GRU instead of nn.RNN" in verdict.remedy
    assert "nn.init.orthogonal_(rnn.weight_hh_l0)" in verdict.remedy
    profile = reports.time_profiles(result.monitor.history())["rnn.l0"]
    assert np.all(profile[0][:3] < 1e-3) and np.all(profile[1][:3] < 30)


def test_lstm_with_forget_bias_1_on_a_short_sequence_does_not_vanish_in_time():
    fg.manual_seed(0)
    model = demo.SequenceRegressor("lstm", 2, 16)
    hidden = 16
    with fg.no_grad():
        model.rnn.bias_ih_l0[hidden:2 * hidden] = 1.0
        model.rnn.bias_hh_l0[hidden:2 * hidden] = 0.0
    optimizer = optim.Adam(model.parameters(), lr=0.01)
    monitor = GradientMonitor(model, optimizer)
    _train(model, optimizer, monitor, _adding_batches(6, 8))
    assert not [v for v in monitor.verdicts if v.kind.endswith("-in-time")]
    ratio, horizon, length = reports.time_profiles(monitor.history())["rnn.l0"]
    assert np.all(ratio > 1e-3) and np.all(horizon == 8) and np.all(length == 8)


def test_rnn_with_spectral_radius_3_explodes_in_time():
    fg.manual_seed(0)
    model = demo.SequenceRegressor("rnn", 2, 32)
    weight = model.rnn.weight_hh_l0.numpy()
    weight *= 3.0 / np.max(np.abs(np.linalg.eigvals(weight)))
    optimizer = optim.SGD(model.parameters(), lr=1e-4)
    monitor = GradientMonitor(model, optimizer, thresholds={"patience": 2})
    _train(model, optimizer, monitor, _adding_batches(2, 40))
    found = [v for v in monitor.verdicts if v.kind == "exploding-in-time"]
    assert found and found[0].step == 1 and found[0].figure > 1e3
    assert "clip_grad_norm_" in found[0].remedy and "truncate" in found[0].remedy


# ----------------------------------------------------------------------------- the reports
@pytest.fixture(scope="module")
def vanishing():
    return demo.run(demo.Config(cell="rnn", depth=1, width=16, length=20, optimizer="adam",
                                lr=0.03, steps=5, batch_size=32, seed=0)).monitor


def test_summary_shows_ratio_horizon_and_verdict(vanishing):
    text = vanishing.summary()
    assert "gradient through time" in text and "horizon" in text
    row = next(line for line in text.splitlines() if line.startswith("rnn.l0 "))
    assert row.split()[1] == "20" and row.endswith("vanishing-in-time")


def test_to_csv_has_one_row_per_recorded_step_and_time_step(vanishing, tmp_path):
    path = tmp_path / "history.csv"
    vanishing.to_csv(path)
    rows = [r for r in csv.DictReader(open(path)) if r["type"] == "dL/dh"]
    assert len(rows) == 5 * 20
    assert rows[0]["layer"] == "rnn.l0" and rows[0]["time_step"] == "1"
    table = vanishing.history()["time_grad_norms"]["rnn.l0"]
    assert float(rows[23]["time_grad_norm"]) == table[1, 3]


def test_time_curves_pick_the_layer_and_spread_snapshots(vanishing):
    key, curves = reports.time_curves(vanishing.history(), wanted=3)
    assert key == "rnn.l0" and [label for _, label in curves] == ["step 0", "step 2", "step 4"]
    assert all(len(norms) == 20 for norms, _ in curves)
    assert reports.time_curves({"time_grad_norms": {}, "step": np.zeros(0)}) is None


def test_plot_includes_the_time_panel(vanishing, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "g.png"
    vanishing.plot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -------------------------------------------------------------------------- the checkpoint
def _checkpointed_run(path, batches, stop=None, resume=False):
    fg.manual_seed(0)
    model = demo.SequenceRegressor("rnn", 2, 12)
    optimizer = optim.Adam(model.parameters(), lr=0.02)
    monitor = GradientMonitor(model, optimizer, every=2, activations=True,
                              thresholds={"patience": 4})
    checkpoints = Checkpointer(path, 3, model=model, optimizer=optimizer, monitor=monitor)
    start = checkpoints.restore()["step"] if resume else 0
    _train(model, optimizer, monitor, batches, start, stop, checkpoints)
    return monitor


def _assert_same(a, b):
    if isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            _assert_same(a[key], b[key])
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


def test_a_resumed_run_reports_what_an_uninterrupted_one_does(tmp_path):
    batches = _adding_batches(12, 24)
    whole = _checkpointed_run(tmp_path / "whole.safetensors", batches)
    path = tmp_path / "run.safetensors"
    _checkpointed_run(path, batches, stop=8)          # killed after step 8; saved at step 6
    resumed = _checkpointed_run(path, batches, resume=True)
    assert resumed.steps == whole.steps == 12
    _assert_same(resumed.history(), whole.history())
    assert resumed.verdicts == whole.verdicts
    # the verdict needs 4 recorded steps in a row: 0, 2, 4 before the checkpoint, 6 after it
    kinds = {v.kind: v for v in whole.verdicts}
    assert kinds["vanishing-in-time"].step == 6
    assert resumed.summary() == whole.summary()


def test_load_state_dict_refuses_another_model_or_every():
    fg.manual_seed(0)
    model = demo.SequenceRegressor("rnn", 2, 4)
    state = GradientMonitor(model, every=2).state_dict()
    with pytest.raises(ValueError, match="every=2, this monitor has every=1"):
        GradientMonitor(model).load_state_dict(state)
    with pytest.raises(ValueError, match="other parameters"):
        GradientMonitor(demo.SequenceRegressor("lstm", 2, 4, num_layers=2),
                        every=2).load_state_dict(state)
