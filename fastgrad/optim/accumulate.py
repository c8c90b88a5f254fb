"""Gradient accumulation: the gradient of a large batch from several micro-batches."""
import math
import numbers

import numpy as np

from ..backends import K
from .wrapper import OptimizerWrapper


class GradientAccumulator(OptimizerWrapper):
    """Take one optimiser step per window of ``steps`` micro-batches, with their mean gradient.

    Per micro-batch, call ``loss.backward()`` then :meth:`step`; the gradients add up in the
    parameter arena. Every ``steps``-th call turns the sum into the mean, calls
    ``optimizer.step()``, zeroes the gradients (``optimizer.zero_grad()``) and returns True;
    the other calls return False. :meth:`flush` applies a final partial window::

        acc = fastgrad.optim.GradientAccumulator(optimizer, steps=4)
        for x, y in loader:
            criterion(model(x), y).backward()
            if acc.step(n=len(x)):      # a real step was taken
                scheduler.step()
        acc.flush()

    With the sample count ``n_i`` of each micro-batch, the gradient of the window is

    .. math::
        g = \\frac{\\sum_i n_i g_i}{\\sum_i n_i},

    where :math:`g_i` is the gradient of micro-batch :math:`i`'s mean loss: the gradient of the
    mean loss over every sample of the window, even when the micro-batches differ in size
    (the last batch of an epoch). Without ``n`` it is the plain mean of the :math:`g_i`.
    Either is exactly the large batch's gradient (up to rounding) for a loss that is a mean
    over samples and a model without batch-dependent layers. ``BatchNorm`` differs: in
    training mode each micro-batch is normalised with its own mean and variance (and updates
    the running statistics once per micro-batch), so the gradients are those of a different
    function than the large batch's; use ``GroupNorm``/``LayerNorm`` or larger micro-batches
    when that matters.

    Learning-rate schedules and optimiser state (e.g. Adam's step count) advance once per real
    step: step a scheduler when :meth:`step` returns True. Do not zero the gradients between
    micro-batches: :meth:`zero_grad` discards the pending window.

    Cost: without ``n``, backward's own ``+=`` does the summing and the window ends with one
    ``scale`` pass per arena. With ``n``, each micro-batch's gradient is folded into a
    per-arena sum buffer (one ``axpy`` pass; the gradients are then set to None so the next
    backward writes instead of adding) and the window ends with one ``grad_window_mean`` pass.
    Parameters that received no gradient in the whole window keep ``grad = None`` and are not
    stepped, as in PyTorch.

    Args:
        optimizer: the optimiser (or wrapper) to step.
        steps: the number of micro-batches per real step, at least 1.

    Attributes:
        micro_step: the micro-batches in the pending window.
        real_steps: the optimiser steps taken so far.
    """

    _state_keys = ("steps", "real_steps")

    def __init__(self, optimizer, steps):
        super().__init__(optimizer)
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"steps must be a positive int, got {steps!r}")
        self.steps = int(steps)
        self.real_steps = 0
        self._sums = {}        # id(arena) -> (arena, weighted sum buffer, received-a-gradient)
        self._reset_window()

    def extra_repr(self):
        return f"steps={self.steps}, micro_step={self.micro_step}"

    def _reset_window(self):
        self.micro_step = 0
        self._weighted = None  # decided by the first micro-batch of a window
        self._samples = 0.0
        self._window = []

    def step(self, n=None):
        """Record one micro-batch whose gradient backward has just added in; step the optimiser
        at the end of a window.

        Args:
            n: the micro-batch's number of samples (any positive weight). Give it for every
                micro-batch of a window or for none.

        Returns:
            True when this call took a real optimiser step, False otherwise.
        """
        weighted = n is not None
        if weighted:
            if isinstance(n, bool) or not isinstance(n, numbers.Real) or not 0 < n < math.inf:
                raise ValueError(f"n must be a positive number of samples, got {n!r}")
            n = float(n)
        if self.micro_step and weighted != self._weighted:
            raise ValueError(f"n must be given for every micro-batch of a window or for none: "
                             f"micro-batch {self.micro_step + 1} has n={n!r}, the earlier ones "
                             f"{'had' if self._weighted else 'did not have'} n")
        if weighted:
            window = self._window_sums()
            self._samples += n
            factor = 1.0 / self._samples if self.micro_step + 1 == self.steps else None
            for arena, total, received in window:
                self._fold(arena, total, received, n, factor)
        self._weighted = weighted
        self.micro_step += 1
        if self.micro_step == self.steps:
            return self._apply()
        return False

    def flush(self):
        """Step with the mean gradient of the pending partial window, if any.

        Returns:
            True when a step was taken (the window had at least one micro-batch).
        """
        if self.micro_step == 0:
            return False
        if self._weighted:
            for arena, total, _ in self._window_sums():
                K.fill(arena.grad, 0.0)
                K.grad_window_mean(total, arena.grad, 0.0, 1.0 / self._samples)
        return self._apply()

    def zero_grad(self, set_to_none=True):
        """Zero the gradients and discard the micro-batches of the pending window."""
        self.optimizer.zero_grad(set_to_none)
        self._discard_window()

    def _discard_window(self):
        for _, total, _ in self._window:
            K.fill(total, 0.0)
        self._reset_window()

    def _window_sums(self):
        """``(arena, sum buffer, received mask)`` per arena, fixed for the pending window."""
        arenas = [arena for _, arena in self.optimizer.arenas()]
        if self.micro_step:
            if [id(a) for a in arenas] != [id(entry[0]) for entry in self._window]:
                raise RuntimeError(
                    "the optimizer's parameters were packed into new arenas in the middle of a "
                    "weighted accumulation window (did another optimizer take them?), which "
                    "loses the partial sums; finish the window (flush()) first")
            return self._window
        window = []
        for arena in arenas:
            entry = self._sums.get(id(arena))
            if entry is None or entry[0] is not arena:
                entry = (arena, np.zeros(len(arena), arena.dtype),
                         np.zeros(len(arena.params), bool))
                self._sums[id(arena)] = entry
            entry[2][:] = False
            window.append(entry)
        live = {id(a) for a in arenas}
        for key in [k for k in self._sums if k not in live]:
            del self._sums[key]
        self._window = window
        return window

    @staticmethod
    def _fold(arena, total, received, n, factor):
        """Add ``n`` times the arena's fresh gradient into ``total``; on the window's last
        micro-batch (``factor`` is 1 / the window's samples), write the weighted mean gradient
        into the arena instead."""
        got = np.ones(len(received), bool)
        got[arena.zero_stale()] = False  # no gradient this micro-batch: its slot counts as 0
        received |= got
        if factor is not None:
            K.grad_window_mean(total, arena.grad, n, factor)
        else:
            K.axpy(total, arena.grad, n)
            arena.zero_grad(set_to_none=True)

    def _apply(self):
        """Step the optimiser with the window's mean gradient, then zero and start anew."""
        if self._weighted:
            for arena, _, received in self._window:
                arena.grads_from_buffer(received)
        elif self.micro_step > 1:
            factor = 1.0 / self.micro_step
            for _, arena in self.optimizer.arenas():
                K.scale(arena.grad, factor)
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.real_steps += 1
        self._reset_window()
        return True

    def state_dict(self):
        """The wrapped optimiser's state_dict with ``steps`` and ``real_steps``.

        Only at a window boundary: the partial gradient sums of a pending window are not
        state, so saving in the middle of one raises a RuntimeError.
        """
        if self.micro_step:
            raise RuntimeError(f"state_dict() in the middle of an accumulation window "
                               f"({self.micro_step} of {self.steps} micro-batches) would lose "
                               "their gradients; save after a real step or after flush()")
        return super().state_dict()

    def _own_state(self):
        return {"steps": self.steps, "real_steps": self.real_steps}

    def _load_own_state(self, state):
        self._discard_window()
        self.steps, self.real_steps = int(state["steps"]), int(state["real_steps"])
