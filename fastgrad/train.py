"""The main job: train a multilayer perceptron on the shipped 8x8 digits.

``fastgrad train`` runs :func:`train_digits`; it is also the smallest complete example of a
fastgrad training loop (data loader, model, loss, optimiser, evaluation).
"""
import math
import time

import numpy as np

from . import autograd
from . import backends
from . import data
from . import nn
from . import optim
from . import random as _random
from .diagnostics import GradientMonitor
from .tensor import Tensor


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; training stopped at the step that produced it."""


def accuracy(model, x, y, batch_size=512):
    """The fraction of rows of ``x`` that ``model`` classifies as ``y`` (eval mode, no grad)."""
    model.eval()
    correct = 0
    with autograd.no_grad():
        for start in range(0, len(x), batch_size):
            logits = model(Tensor(x[start:start + batch_size]))
            correct += int((logits.argmax(dim=1).numpy() == y[start:start + batch_size]).sum())
    model.train()
    return correct / len(x)


def train_digits(epochs=30, hidden=128, lr=0.05, momentum=0.9, batch_size=32, seed=0,
                 log=print, monitor=False):
    """Train ``64 -> hidden -> ReLU -> 10`` with SGD and cross-entropy on the digits.

    Args:
        epochs, hidden, lr, momentum, batch_size: the usual knobs.
        seed: seeds the weights, the shuffling and the train/test split.
        log: called with one line per epoch (``print`` by default; None for silence).
        monitor: attach a :class:`~fastgrad.diagnostics.GradientMonitor`: each verdict is
            logged when it appears, and the monitor's summary at the end.

    Returns:
        A dict with per-epoch ``loss``, ``grad_norm``, ``train_accuracy``, ``test_accuracy``
        lists and the total ``seconds`` (and the ``monitor`` when one was attached).

    Raises:
        TrainingDiverged: the loss became NaN or infinite (the message names epoch and step).
    """
    for name, value in (("epochs", epochs), ("hidden", hidden), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    (x_train, y_train), (x_test, y_test) = data.load_digits(seed=seed)
    _random.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    optimizer = optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    criterion = nn.CrossEntropyLoss()
    loader = data.DataLoader(data.TensorDataset(x_train, y_train), batch_size=batch_size,
                             shuffle=True, generator=_random.Generator(seed))
    history = {"loss": [], "grad_norm": [], "train_accuracy": [], "test_accuracy": []}
    watcher = GradientMonitor(model, optimizer) if monitor else None
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        losses, norms = [], []
        for step, (x, y) in enumerate(loader, 1):
            loss = criterion(model(x), y)
            value = loss.item()
            if not math.isfinite(value):
                raise TrainingDiverged(f"loss is {value} at epoch {epoch}, step {step}: lower "
                                       "the learning rate or clip the gradients")
            optimizer.zero_grad()
            loss.backward()
            norms.append(optimizer.grad_norm())
            optimizer.step()
            losses.append(value)
            if watcher is not None:
                for verdict in watcher.step():
                    if log is not None:
                        log(f"epoch {epoch}, {verdict}")
        history["loss"].append(float(np.mean(losses)))
        history["grad_norm"].append(float(np.mean(norms)))
        history["train_accuracy"].append(accuracy(model, x_train, y_train))
        history["test_accuracy"].append(accuracy(model, x_test, y_test))
        if log is not None:
            log(f"epoch {epoch:3d}/{epochs}  loss {history['loss'][-1]:.4f}  "
                f"grad-norm {history['grad_norm'][-1]:.3f}  "
                f"train-acc {history['train_accuracy'][-1]:.3f}  "
                f"test-acc {history['test_accuracy'][-1]:.3f}  "
                f"{time.perf_counter() - started:.2f}s")
    history["seconds"] = time.perf_counter() - started
    if log is not None:
        log(f"test accuracy {100 * history['test_accuracy'][-1]:.1f}% after {epochs} epochs "
            f"in {history['seconds']:.1f} s (backend: {backends.current()})")
    if watcher is not None:
        watcher.close()
        history["monitor"] = watcher
        if log is not None:
            log(watcher.summary())
    return history
