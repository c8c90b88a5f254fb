"""Gradient-health diagnostics: see vanishing and exploding gradients while training, with a
verdict and a remedy.

fastgrad's addition (PyTorch users write such hooks by hand)::

    from fastgrad.diagnostics import GradientMonitor

    monitor = GradientMonitor(model, optimizer)
    for x, y in loader:
        loss = criterion(model(x), y)
        optimizer.zero_grad(); loss.backward(); optimizer.step()
        for verdict in monitor.step():
            print(verdict)
    print(monitor.summary())
    monitor.plot("gradients.png")   # pip install fastgrad[plot]

The monitor records gradient, parameter and update norms per parameter and per layer (in
forward order) from fused passes over the parameter arenas, and, for recurrent layers (RNN,
LSTM, GRU), the gradient norm at every time step from their own backward loops;
:class:`Thresholds` documents when a gradient counts as vanishing, exploding (by depth or
through time), non-finite, saturated or dead. ``monitor.to_tensorboard(logdir)`` writes the
history for TensorBoard (``pip install fastgrad[tensorboard]``), and ``monitor.state_dict()``
puts it in a checkpoint (:class:`fastgrad.train.Checkpointer`).
"""
from .monitor import GradientMonitor
from .verdicts import KINDS, Thresholds, Verdict

__all__ = ["GradientMonitor", "Thresholds", "Verdict", "KINDS"]
