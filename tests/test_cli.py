"""The ``fastgrad`` command end to end: ``diagnose``, ``demo``, ``train --monitor``, on small
settings."""
import csv
import io
import subprocess
import sys

import pytest

from fastgrad import cli
from fastgrad.demo import Config, ProgressBar, demo_configs

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
                  "sigmoid + residual", "RNN + clipping", "LSTM + clipping"):
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
        "RNN", "RNN + clipping", "LSTM", "LSTM + clipping"]
    assert all(c.depth == 20 and c.steps == 600 for c in configs[:4])
    assert [c.clip for c in configs[4:]] == [None, 1.0, None, 1.0]


def test_config_rejects_unknown_names():
    with pytest.raises(ValueError, match="activation must be one of"):
        Config(activation="swish")
    with pytest.raises(ValueError, match="cell must be"):
        Config(cell="gru")


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
