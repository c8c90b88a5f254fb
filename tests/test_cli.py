"""The ``fastgrad`` command end to end: ``diagnose``, ``demo``, ``train --monitor``, on small
settings."""
import csv
import io
import subprocess
import sys

import pytest

from fastgrad import cli
from fastgrad.demo import Config, ProgressBar, demo_configs, run

PNG = b"\x89PNG\r\n\x1a\n"


def _no_matplotlib(monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)


def test_diagnose_deep_sigmoid_mlp_prints_summary_and_vanishing_verdict(capsys, tmp_path):
    path = tmp_path / "history.csv"
    status = cli.main(["diagnose", "--depth", "8", "--width", "16", "--activation", "sigmoid",
                       "--steps", "4", "--csv", str(path), "--no-progress"])
    out = capsys.readouterr()
    assert status == 0, out.err
    assert out.out.startswith("fastgrad diagnose: MLP of 8 Linear layers x 16, sigmoid")
    assert "step 0: vanishing" in out.out and "ratio to output" in out.out
    assert "test accuracy" in out.out and out.err == ""
    rows = list(csv.DictReader(open(path)))
    assert sum(r["type"] == "Linear" for r in rows) == 4 * 8


def test_diagnose_recurrent_with_clipping_and_adam(capsys):
    status = cli.main(["diagnose", "--cell", "lstm", "--length", "6", "--steps", "3",
                       "--clip", "0.5", "--optimizer", "adam", "--lr", "0.01", "--every", "2",
                       "--no-activations"])
    out = capsys.readouterr().out
    assert status == 0
    assert "LSTM x1, 32 units, on the adding problem (T=6)" in out
    assert "2 recorded step(s) of 3 (every 2)" in out and "clipping ran" in out


def test_diagnose_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "g.png"
    assert cli.main(["diagnose", "--depth", "3", "--steps", "2", "--plot", str(path)]) == 0
    assert path.read_bytes()[:8] == PNG


def test_diagnose_plot_without_matplotlib_says_what_to_install(tmp_path, capsys, monkeypatch):
    _no_matplotlib(monkeypatch)
    status = cli.main(["diagnose", "--depth", "3", "--steps", "2", "--plot",
                       str(tmp_path / "g.png")])
    assert status == 1
    assert "pip install fastgrad[plot]" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["diagnose", "--steps", "0"], "steps must be an int >= 1, got 0"),
    (["diagnose", "--clip", "-1"], "clip must be a positive number"),
    (["demo", "--scale", "2"], "scale must be in (0, 1]"),
])
def test_bad_values_are_clear_errors(argv, message, capsys):
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_unknown_choice_is_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["diagnose", "--init", "orthogonal"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_demo_prints_its_table_and_writes_its_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "demo.png"
    assert cli.main(["demo", "--scale", "0.02", "--plot", str(path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    for label in ("sigmoid, default init", "ReLU + He init", "sigmoid + BatchNorm",
                  "sigmoid + residual", "plain CNN", "CNN + residual", "CNN + BatchNorm2d",
                  "RNN + clipping", "LSTM + clipping"):
        assert label in out
    assert "grad ratio first/last" in out and "vanishing" in out
    assert path.read_bytes()[:8] == PNG


def test_demo_without_matplotlib_still_prints_the_table(tmp_path, capsys, monkeypatch):
    _no_matplotlib(monkeypatch)
    assert cli.main(["demo", "--scale", "0.02", "--plot", str(tmp_path / "d.png")]) == 0
    out = capsys.readouterr()
    assert "LSTM + clipping" in out.out and "pip install fastgrad[plot]" in out.err
    assert not (tmp_path / "d.png").exists()


def test_train_monitor_prints_the_summary(capsys):
    assert cli.main(["train", "--epochs", "1", "--monitor"]) == 0
    out = capsys.readouterr().out
    assert "GradientMonitor: 45 recorded step(s)" in out and "verdicts: none" in out


def test_demo_configs_are_the_published_story():
    configs = demo_configs()
    assert [c.label for c in configs] == [
        "sigmoid, default init", "ReLU + He init", "sigmoid + BatchNorm", "sigmoid + residual",
        "plain CNN", "CNN + residual", "CNN + BatchNorm2d",
        "RNN", "RNN + clipping", "LSTM", "LSTM + clipping"]
    mlps = [c for c in configs if not c.cell and not c.conv]
    assert len(mlps) == 4 and all(c.depth == 20 and c.steps == 600 for c in mlps)
    cnns = [c for c in configs if c.conv]
    assert all(c.depth == 20 and c.width == 16 and c.steps == 200 for c in cnns)
    assert [(c.residual, c.batchnorm) for c in cnns] == [(False, False), (True, False),
                                                         (False, True)]
    assert [c.clip for c in configs if c.cell] == [None, 1.0, None, 1.0]


def test_a_short_cnn_run_measures_its_convolutions():
    """The demo's CNN rows on a few steps: the monitor sees the Conv2d layers in forward
    order (stem first, fc last), and the run reports an accuracy on the digits."""
    config = Config(conv=True, depth=8, width=4, residual=True, batchnorm=True, steps=3,
                    batch_size=16, lr=0.01)
    assert config.describe().startswith("ResNet of 8 layers, 4-8-16 channels, default init, "
                                        "BatchNorm2d, on the digits as 1x8x8 images")
    result = run(config)
    types, names = result.monitor.layer_types, result.monitor.layer_names
    assert names[0] == "conv1" and names[-1] == "fc"
    assert types.count("Conv2d") == 7 + 2 and types.count("BatchNorm2d") == 7 + 2
    assert result.steps == 3 and 0 <= result.accuracy <= 1
    assert result.depth_ratio() > 0 and result.monitor.history()["grad_norm"].shape[0] == 3


def test_config_rejects_unknown_names():
    with pytest.raises(ValueError, match="activation must be one of"):
        Config(activation="swish")
    with pytest.raises(ValueError, match="cell must be"):
        Config(cell="gru")


def test_demo_plot_gives_the_cnns_their_own_depth_panel(monkeypatch):
    """Without matplotlib: plot_demo's middle panel gets the CNNs' Conv2d layers in forward
    order, the projection shortcuts left out so plain and residual share the depth axis; the
    left panel keeps the MLPs' Linear layers; the last the recurrent runs' norms in time."""
    from fastgrad import demo
    from fastgrad.diagnostics import reports
    drawn = {}

    class Figure:
        def tight_layout(self):
            pass

        def savefig(self, path, format):
            drawn["saved"] = path

    axes = ["left", "middle", "right", "time"]
    monkeypatch.setattr(reports, "new_figure", lambda **kwargs: (Figure(), axes))
    monkeypatch.setattr(reports, "plot_time", lambda axis, curves, title: drawn.update(
        {axis: ([len(norms) for norms, _ in curves], [label for _, label in curves])}))
    monkeypatch.setattr(reports, "plot_depth", lambda axis, grad, labels, title, xlabel:
                        drawn.update({axis: ([len(row) for row in grad], labels, xlabel)}))
    monkeypatch.setattr(reports, "plot_steps", lambda axis, series, title: None)
    common = dict(depth=8, width=4, steps=2, batch_size=16)
    results = [run(Config(conv=True, label="plain", **common)),
               run(Config(conv=True, residual=True, label="res", **common)),
               run(Config(depth=3, width=8, steps=2, label="mlp")),
               run(Config(cell="rnn", depth=1, width=4, length=5, steps=2, batch_size=8,
                          label="rnn"))]
    demo.plot_demo(results, "demo.png")
    assert drawn["time"] == ([5], ["rnn"])  # ||dL/dh_t|| over the 5 time steps
    assert drawn["middle"] == ([7, 7], ["plain", "res"], "Conv2d layer (forward order)")
    assert drawn["left"] == ([3], ["mlp"], "Linear layer (forward order)")
    assert drawn["saved"] == "demo.png"


@pytest.mark.parametrize("kwargs, message", [
    (dict(depth=21), r"the CNN's depth must be 6n \+ 2 \(8, 14, 20, 32, ...\), got 21"),
    (dict(activation="sigmoid"), "activation must be 'relu' with conv=True, got 'sigmoid'"),
    (dict(cell="rnn"), "conv=True is a CNN on the digits: cell must be None, got 'rnn'"),
])
def test_config_rejects_a_cnn_it_cannot_build(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Config(conv=True, **kwargs)


def test_progress_bar_draws_on_its_stream_only_when_enabled():
    stream = io.StringIO()
    bar = ProgressBar(10, "run", stream=stream, enabled=True)
    bar.update(5, "loss 1.0", force=True)
    bar.close()
    assert stream.getvalue().startswith("\rrun [") and "5/10" in stream.getvalue()
    quiet = io.StringIO()
    bar = ProgressBar(10, stream=quiet)  # not a terminal: off by default
    bar.update(10, force=True)
    bar.close()
    assert quiet.getvalue() == ""


def test_console_command_diagnose_runs():
    result = subprocess.run([sys.executable, "-m", "fastgrad", "diagnose", "--depth", "3",
                             "--steps", "2"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "GradientMonitor: 2 recorded step(s)" in result.stdout


def test_warmup_compiles_every_jit_kernel_and_prints_the_time(capsys):
    from fastgrad import backends
    status = cli.main(["warmup", "--dtypes", "float32"])
    out = capsys.readouterr().out
    assert status == 0
    jit = [name for name in backends.available() if name in backends.JIT_BACKENDS]
    if not jit:
        assert out.startswith("no JIT backend is available")
    for name in jit:
        assert out.startswith(f"{name:8s} {len(backends.KERNELS)} kernels x float32: ")
        assert out.rstrip().endswith(" s")
