"""The main job: ``fastgrad train`` on the shipped digits."""
import subprocess
import sys

import numpy as np
import pytest

from fastgrad import cli, data
from fastgrad.train import TrainingDiverged, train_digits


def test_train_reaches_95_percent_on_digits():
    lines = []
    history = train_digits(seed=0, log=lines.append)
    assert history["test_accuracy"][-1] >= 0.95
    assert history["loss"][-1] < history["loss"][0] / 10
    assert len(lines) == 31 and lines[0].startswith("epoch   1/30")
    assert all(np.isfinite(history["grad_norm"])) and history["grad_norm"][0] > 0


def test_train_is_repeatable_for_a_seed():
    first = train_digits(epochs=2, seed=3, log=None)
    second = train_digits(epochs=2, seed=3, log=None)
    assert first["loss"] == second["loss"]
    assert first["test_accuracy"] == second["test_accuracy"]


def test_a_captured_step_trains_bit_identically(tmp_path):
    eager = train_digits(epochs=2, seed=3, log=None, save=tmp_path / "eager.safetensors")
    captured = train_digits(epochs=2, seed=3, log=None, captured=True,
                            save=tmp_path / "captured.safetensors")
    for key in ("loss", "grad_norm", "train_accuracy", "test_accuracy"):
        assert captured[key] == eager[key], key
    assert (tmp_path / "captured.safetensors").read_bytes() == \
        (tmp_path / "eager.safetensors").read_bytes()


def test_non_finite_loss_stops_training_naming_epoch_and_step(monkeypatch):
    (x_train, y_train), test = data.load_digits(seed=0)
    x_train[40] = np.nan  # lands in some batch of the first epoch
    monkeypatch.setattr(data, "load_digits", lambda seed: ((x_train, y_train), test))
    with pytest.raises(TrainingDiverged, match=r"loss is nan at epoch 1, step \d+"):
        train_digits(epochs=2, seed=0, log=None)


def test_cli_reports_divergence_and_exits_nonzero(monkeypatch, capsys):
    def diverge(**kwargs):
        raise TrainingDiverged("loss is inf at epoch 2, step 7")
    monkeypatch.setattr("fastgrad.train.train_digits", diverge)
    assert cli.main(["train"]) == 1
    assert "loss is inf at epoch 2, step 7" in capsys.readouterr().err


@pytest.mark.parametrize("name, value", [("epochs", 0), ("hidden", -1), ("batch_size", 1.5)])
def test_train_rejects_bad_arguments(name, value):
    with pytest.raises(ValueError, match=name):
        train_digits(log=None, **{name: value})


def test_cli_unknown_backend_is_a_clear_error(capsys):
    assert cli.main(["--backend", "nope", "train", "--epochs", "1"]) == 2
    assert "unknown backend 'nope'" in capsys.readouterr().err


def test_console_command_runs_one_epoch():
    result = subprocess.run([sys.executable, "-m", "fastgrad", "train", "--epochs", "1"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "epoch   1/1" in result.stdout and "test accuracy" in result.stdout
