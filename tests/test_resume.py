"""Exact resume: ``fastgrad train`` killed with SIGKILL and resumed from its last checkpoint
ends bit-identical to an uninterrupted run; the DataLoader's and the Checkpointer's state on
their own."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import data
from fastgrad.train import Checkpointer, train_digits

ROOT = Path(fg.__file__).resolve().parents[1]
BACKENDS = ["numpy"] + (["numba"] if "numba" in fg.backends.available() else [])

# 1438 training digits in batches of 8: 180 steps per epoch, 2160 in all. A checkpoint every
# 47 steps always falls inside an epoch (47 and 180 are coprime and 47 * 180 > 2160), so the
# loader's mid-epoch state is what the resume depends on; the first checkpoint comes after 2%
# of the run, which leaves the kill a wide margin.
EPOCHS, BATCH, EVERY = 12, 8, 47
STEPS_PER_EPOCH = 180


def _train_command(backend, *options):
    return [sys.executable, "-m", "fastgrad", "--backend", backend, "train",
            "--epochs", str(EPOCHS), "--hidden", "16", "--batch-size", str(BATCH),
            "--lr", "0.02", "--seed", "5", *options]


def _run(command, **kwargs):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


def _epoch_lines(stdout):
    """The per-epoch log lines without their wall-clock time."""
    return [re.sub(r"\s+[\d.]+s$", "", line) for line in stdout.splitlines()
            if line.startswith("epoch")]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_run_killed_with_sigkill_resumes_bit_identical(tmp_path, backend):
    checkpoint, reference, resumed = (tmp_path / name for name in
                                      ("run.safetensors", "reference.safetensors",
                                       "resumed.safetensors"))
    # the uninterrupted run and the one to kill run side by side (two processes, two cores)
    uninterrupted = _run(_train_command(backend, "--save", str(reference)))
    victim = _run(_train_command(backend, "--checkpoint", str(checkpoint),
                                 "--checkpoint-every", str(EVERY)))
    deadline = time.monotonic() + 120
    while not checkpoint.exists():
        assert victim.poll() is None, f"the run ended before its first checkpoint:\n" \
                                      f"{victim.communicate()[1]}"
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.001)
    victim.send_signal(signal.SIGKILL)  # from outside, as a crash or an OOM killer would
    victim.communicate()
    assert victim.returncode == -signal.SIGKILL, "the run finished before it could be killed"

    killed_at = fg.load(checkpoint)
    step = killed_at["step"]
    assert 0 < step < EPOCHS * STEPS_PER_EPOCH and step % EVERY == 0
    assert 0 < killed_at["loader"]["batches_taken"] < STEPS_PER_EPOCH  # inside an epoch

    out, err = uninterrupted.communicate(timeout=120)
    assert uninterrupted.returncode == 0, err
    resume = _run(_train_command(backend, "--checkpoint", str(checkpoint),
                                 "--checkpoint-every", str(EVERY), "--resume",
                                 "--save", str(resumed)))
    resumed_out, err = resume.communicate(timeout=120)
    assert resume.returncode == 0, err

    expected, actual = fg.load(reference), fg.load(resumed)
    assert list(actual) == list(expected) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    for key in expected:
        assert np.array_equal(actual[key].numpy(), expected[key].numpy()), key
        # the resumed run trained on from the checkpoint: the comparison has teeth
        assert not np.array_equal(killed_at["model"][key].numpy(), expected[key].numpy())
    # its history (restored for the interrupted epoch, computed after) matches too
    resumed_epochs = _epoch_lines(resumed_out)
    first = step // STEPS_PER_EPOCH  # epochs completed before the kill
    assert resumed_epochs == _epoch_lines(out)[first:]
    assert len(resumed_epochs) == EPOCHS - first


# -------------------------------------------------------------------------------- loader
def _loader(generator=True, size=23, batch_size=4, **options):
    dataset = data.TensorDataset(np.arange(size * 2, dtype=np.float32).reshape(size, 2),
                                 np.arange(size))
    return data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                           generator=fg.Generator(3) if generator else None, **options)


def _labels(batches):
    return [batch[1].numpy().tolist() for batch in batches]


@pytest.mark.parametrize("taken", [0, 1, 3, 6])  # 6 batches per epoch: 6 is "all taken"
def test_a_restored_loader_continues_its_epoch_and_the_next_ones(tmp_path, taken):
    loader = _loader()
    next(iter(loader))  # a first epoch, abandoned: the generator has moved on
    epoch = iter(loader)
    for _ in range(taken):
        next(epoch)
    fg.save({"loader": loader.state_dict()}, tmp_path / "ck.safetensors")
    rest = _labels(epoch) + _labels(loader) + _labels(loader)

    fresh = _loader()
    fresh.load_state_dict(fg.load(tmp_path / "ck.safetensors")["loader"])
    assert _labels(fresh) + _labels(fresh) + _labels(fresh) == rest


def test_a_loader_on_the_default_generator_saves_its_order_not_the_stream():
    fg.manual_seed(0)
    loader = _loader(generator=False, drop_last=True)
    epoch = iter(loader)
    next(epoch)
    state, rng = loader.state_dict(), fg.random.default_generator.get_state()
    assert state["generator"] is None and state["batches_taken"] == 1
    expected = _labels(epoch) + _labels(loader)

    fg.manual_seed(99)
    fresh = _loader(generator=False, drop_last=True)
    fresh.load_state_dict(state)
    fg.random.default_generator.set_state(rng)
    assert _labels(fresh) + _labels(fresh) == expected
    assert len(expected) == 4 + 5


def test_the_loader_state_between_epochs_starts_a_fresh_epoch():
    loader = _loader()
    list(loader)
    state = loader.state_dict()
    assert state["order"] is None and state["batches_taken"] == 0
    expected = _labels(loader)
    fresh = _loader()
    fresh.load_state_dict(state)
    assert _labels(fresh) == expected


@pytest.mark.parametrize("change, message", [
    (lambda s: {**s, "batches_taken": 7}, r"batches_taken.*\[0, 6\].*got 7"),
    (lambda s: {**s, "batches_taken": True}, r"batches_taken.*got True"),
    (lambda s: {**s, "order": s["order"][:-1]}, r"order.*permutation of the 23"),
    (lambda s: {**s, "order": np.zeros(23, np.int64)}, r"order.*permutation of the 23"),
    (lambda s: {**s, "order": s["order"].astype(np.float64)}, r"order.*dtype float64"),
    (lambda s: {**s, "generator": None}, r"generator.*the loader has one"),
    (lambda s: {"order": s["order"]}, r"keys 'order', 'batches_taken' and 'generator'"),
    (lambda s: [s], r"must be a dict"),
])
def test_the_loader_refuses_a_state_that_does_not_fit(change, message):
    loader = _loader()
    next(iter(loader))
    state = loader.state_dict()
    with pytest.raises(ValueError, match=message):
        _loader().load_state_dict(change(state))


# --------------------------------------------------------------------------- checkpointer
class _Counter:
    def __init__(self):
        self.value = 0

    def state_dict(self):
        return {"value": self.value}

    def load_state_dict(self, state):
        self.value = state["value"]


def test_checkpointer_round_trip_restores_objects_rng_and_progress(tmp_path):
    path = tmp_path / "ck.safetensors"
    model, counter = fg.nn.Linear(3, 2), _Counter()
    checkpoints = Checkpointer(path, every=5, model=model, counter=counter)
    assert checkpoints.restore() is None  # no file yet: a fresh start
    assert [checkpoints.due(s) for s in range(1, 11)] == [False] * 4 + [True] + [False] * 4 \
        + [True]
    counter.value = 7
    fg.manual_seed(11)
    checkpoints.save(step=5, epoch=0, note="first")
    drawn = fg.rand(3).numpy().copy()

    other, other_counter = fg.nn.Linear(3, 2), _Counter()
    fg.manual_seed(12)
    progress = Checkpointer(path, model=other, counter=other_counter).restore()
    assert progress == {"step": 5, "epoch": 0, "note": "first"}
    assert other_counter.value == 7
    for key, value in model.state_dict().items():
        assert np.array_equal(other.state_dict()[key].numpy(), value.numpy())
    assert np.array_equal(fg.rand(3).numpy(), drawn)


def test_checkpointer_validates_its_arguments(tmp_path):
    path = tmp_path / "ck.safetensors"
    with pytest.raises(ValueError, match="every must be a positive int"):
        Checkpointer(path, every=0)
    with pytest.raises(TypeError, match="path must be a str"):
        Checkpointer(3)
    with pytest.raises(TypeError, match="counter must have state_dict"):
        Checkpointer(path, counter=object())
    with pytest.raises(ValueError, match="'rng' is the name"):
        Checkpointer(path, rng=_Counter())
    with pytest.raises(ValueError, match=r"progress names \['counter'\]"):
        Checkpointer(path, counter=_Counter()).save(counter=1)
    Checkpointer(path, counter=_Counter()).save(step=1)
    with pytest.raises(ValueError, match=r"no state for \['model'\]"):
        Checkpointer(path, counter=_Counter(), model=fg.nn.Linear(1, 1)).restore()


# ---------------------------------------------------------------------------- train_digits
def test_train_digits_resumes_from_its_final_checkpoint_to_train_further(tmp_path):
    path, options = tmp_path / "run.safetensors", dict(hidden=8, batch_size=64, log=None)
    straight = train_digits(epochs=3, save=tmp_path / "straight.safetensors", **options)
    train_digits(epochs=2, checkpoint=path, **options)
    resumed = train_digits(epochs=3, checkpoint=path, resume=True,
                           save=tmp_path / "resumed.safetensors", **options)
    for key in ("loss", "grad_norm", "train_accuracy", "test_accuracy"):
        assert resumed[key] == straight[key]
    a, b = fg.load(tmp_path / "straight.safetensors"), fg.load(tmp_path / "resumed.safetensors")
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert fg.load(path)["epoch"] == 4  # the next epoch to run


def test_train_digits_with_a_monitor_reports_the_whole_run_after_a_resume(tmp_path):
    path, options = tmp_path / "run.safetensors", dict(hidden=8, batch_size=128, log=None,
                                                       monitor=True)
    straight = train_digits(epochs=3, **options)["monitor"]
    train_digits(epochs=2, checkpoint=path, **options)
    resumed = train_digits(epochs=3, checkpoint=path, resume=True, **options)["monitor"]
    assert resumed.summary() == straight.summary()
    a, b = straight.history(), resumed.history()
    assert len(a["step"]) == 3 * 12  # 1437 training rows, 128 per step, last batch kept
    for key in ("step", "grad_norm", "param_norm", "update_ratio", "global_norm"):
        assert np.array_equal(a[key], b[key]), key


def test_train_digits_refuses_a_checkpoint_of_other_settings(tmp_path):
    path = tmp_path / "run.safetensors"
    train_digits(epochs=2, hidden=8, batch_size=128, checkpoint=path, log=None)
    with pytest.raises(ValueError, match=r"other settings: hidden=8 \(now 9\), lr=0.05 "
                                         r"\(now 0.1\)"):
        train_digits(epochs=2, hidden=9, lr=0.1, batch_size=128, checkpoint=path, resume=True,
                     log=None)
    with pytest.raises(ValueError, match="is at epoch 3, beyond epochs=1"):
        train_digits(epochs=1, hidden=8, batch_size=128, checkpoint=path, resume=True,
                     log=None)


@pytest.mark.parametrize("options, message", [
    (dict(resume=True), "need a checkpoint path"),
    (dict(checkpoint_every=10), "need a checkpoint path"),
    (dict(checkpoint="x", checkpoint_every=0), "checkpoint_every must be a positive int"),
])
def test_train_digits_checkpoint_arguments_are_checked(options, message):
    with pytest.raises(ValueError, match=message):
        train_digits(epochs=1, log=None, **options)
