"""Step guards and gradient transforms that wrap an optimiser: skipping steps whose gradients
are not finite, and annealed gradient noise."""
import math
import numbers
import warnings

import numpy as np

from .. import autograd
from .. import clipping
from .. import random as _random
from .._checks import check_norm_type, real
from ..backends import K
from ..device import empty, to_device_of, to_host
from .wrapper import OptimizerWrapper


def _closure_loss(closure):
    if closure is None:
        return None
    with autograd.enable_grad():
        return closure()


def _arena_buffers(optimizer):
    """One clipping buffer per arena of ``optimizer``; segment positions are
    ``(group index, index in the group)``."""
    groups = optimizer.param_groups
    buffers = []
    for group, arena in optimizer.arenas():
        g = next(i for i, candidate in enumerate(groups) if candidate is group)
        index = {id(p): i for i, p in enumerate(group["params"])}
        buffers.append(clipping.arena_buffer(arena, [(g, index[id(p)]) for p in arena.params]))
    return buffers


class SkipNonFinite(OptimizerWrapper):
    """Skip every optimiser step whose gradients hold a NaN or an inf, count it and warn, as
    mixed-precision loss scalers do.

    Each :meth:`step` measures the gradients with one norm pass per arena (a gradient is
    non-finite exactly when its norm is); when any is NaN or inf the wrapped optimiser does
    not step, so neither the parameters nor its state (moments, step counts) change,
    :attr:`skipped` grows by one and, with ``warn``, a ``RuntimeWarning`` names the step and
    the first offending parameter. The gradients are kept, like ``GradScaler`` keeps them:
    inspect them, then zero them as usual with ``zero_grad()`` before the next backward.

    With ``max_norm``, the same pass also clips the gradients to that total norm (as
    :func:`fastgrad.nn.utils.clip_grad_norm_` over all the optimiser's parameters, per-parameter
    norms kept on the arenas): the finite check and the clip share one measuring pass.

    Args:
        optimizer: the optimiser (or wrapper) to guard.
        warn: warn on every skipped step.
        max_norm: clip the gradients to this total norm when they are finite (None: no clip).
        norm_type: the order of the norm for ``max_norm``.

    Attributes:
        step_count: the calls of :meth:`step` so far.
        skipped: how many of them were skipped.
        last_skipped: whether the latest call was skipped.
        last_norm: the total gradient norm measured by the latest call (of order
            ``norm_type`` with ``max_norm``, otherwise the largest absolute value).
    """

    _state_keys = ("step_count", "skipped")

    def __init__(self, optimizer, warn=True, max_norm=None, norm_type=2.0):
        super().__init__(optimizer)
        if max_norm is not None:
            max_norm = real(max_norm, "max_norm", tensor=True)
            if not max_norm >= 0:
                raise ValueError(f"max_norm must be a non-negative number, got {max_norm}")
        self.warn, self.max_norm = bool(warn), max_norm
        self.norm_type = check_norm_type(norm_type)
        self.step_count = self.skipped = 0
        self.last_skipped, self.last_norm = False, None

    def extra_repr(self):
        return f"warn={self.warn}, max_norm={self.max_norm}, norm_type={self.norm_type}"

    def step(self, closure=None):
        """Step the wrapped optimiser unless a gradient is not finite.

        Args:
            closure: a function that recomputes the loss (with gradients) and returns it; it
                runs before the check.

        Returns:
            The closure's loss, or None.
        """
        loss = _closure_loss(closure)
        self.step_count += 1
        buffers = _arena_buffers(self.optimizer)
        if self.max_norm is not None:
            total, norms = clipping.clip_buffers(buffers, self.max_norm, self.norm_type,
                                                 keep_if_nonfinite=True)
        else:
            norms = [empty(len(b.offsets) - 1, np.float64, b.flat) for b in buffers]
            total = clipping.combine([K.segment_norms(b.flat, b.offsets, math.inf, n)
                                      for b, n in zip(buffers, norms)], math.inf)
        self.last_norm = total = float(total)  # the decision below is the host's
        self.last_skipped = not math.isfinite(total)
        if not self.last_skipped:
            self.optimizer.step()
            return loss
        self.skipped += 1
        if self.warn:
            (g, i), shape = clipping.first_nonfinite(buffers, norms)
            count = sum(int((~np.isfinite(to_host(n))).sum()) for n in norms)
            warnings.warn(f"step {self.step_count}: {count} parameter(s) have non-finite gradients "
                          f"(first: param_groups[{g}]['params'][{i}] of shape {tuple(shape)}); "
                          f"the optimizer step was skipped ({self.skipped} of {self.step_count} "
                          "steps skipped so far)", RuntimeWarning, stacklevel=2)
        return loss

    def _own_state(self):
        return {"step_count": self.step_count, "skipped": self.skipped}

    def _load_own_state(self, state):
        self.step_count, self.skipped = int(state["step_count"]), int(state["skipped"])


class GradientNoise(OptimizerWrapper):
    """Add annealed Gaussian noise to the gradients before each optimiser step.

    .. math::
        g_t \\leftarrow g_t + \\mathcal{N}(0, \\sigma_t^2), \\qquad
        \\sigma_t^2 = \\frac{\\eta}{(1 + t)^\\gamma}

    with :math:`t = 0, 1, 2, \\dots` counting this wrapper's steps. The noise helps very deep
    networks escape poor regions early in training and fades as :math:`t` grows. The paper
    uses :math:`\\eta \\in \\{0.01, 0.3, 1.0\\}` and :math:`\\gamma = 0.55`.

    The noise is drawn from ``generator`` (the default :mod:`fastgrad.random` generator when
    None, so ``fastgrad.manual_seed`` makes it repeatable) into a scratch buffer per arena and
    added with one ``axpy`` pass per arena; parameters without a gradient receive none. Wrap
    it inside a :class:`~fastgrad.optim.GradientAccumulator` (``GradientAccumulator(
    GradientNoise(opt), steps=k)``) so that the noise goes to the mean gradient once per real
    step. The generator's state is not part of :meth:`state_dict`.

    Args:
        optimizer: the optimiser (or wrapper) to step.
        eta: the noise variance at :math:`t = 0`, non-negative.
        gamma: the decay exponent, non-negative.
        generator: a :class:`fastgrad.Generator`, or None for the default one.

    Attributes:
        t: the steps taken so far.

    References:
        Neelakantan et al., "Adding Gradient Noise Improves Learning for Very Deep Networks",
        arXiv:1511.06807, 2015.
    """

    _state_keys = ("t",)

    def __init__(self, optimizer, eta=0.01, gamma=0.55, generator=None):
        super().__init__(optimizer)
        for name, value in (("eta", eta), ("gamma", gamma)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                    or not value >= 0 or math.isinf(value):
                raise ValueError(f"{name} must be a finite non-negative number, got {value!r}")
        _random.numpy_generator(generator)  # a TypeError now rather than at the first step
        self.eta, self.gamma, self.generator = float(eta), float(gamma), generator
        self.t = 0
        self._scratch = {}  # id(arena) -> (arena, noise buffer)

    def extra_repr(self):
        return f"eta={self.eta}, gamma={self.gamma}, t={self.t}"

    def std(self, t=None):
        """The noise's standard deviation :math:`\\sigma_t` at step ``t`` (default: the next)."""
        t = self.t if t is None else t
        return math.sqrt(self.eta / (1.0 + t) ** self.gamma)

    def step(self, closure=None):
        """Add the noise of step :attr:`t` to the gradients, then step the wrapped optimiser.

        Returns:
            The closure's loss, or None.
        """
        loss = _closure_loss(closure)
        sigma = self.std()
        rng = _random.numpy_generator(self.generator)
        live = set()
        for _, arena in self.optimizer.arenas():
            live.add(id(arena))
            noise = self._noise_buffer(arena)
            if noise.dtype in (np.float32, np.float64):
                rng.standard_normal(dtype=noise.dtype, out=noise)
            else:
                noise[...] = rng.standard_normal(noise.shape)
            noise = to_device_of(noise, arena.grad)  # drawn on the host, as on the CPU
            if arena.all_grads():
                K.axpy(arena.grad, noise, sigma)
            else:
                for i, p in enumerate(arena.params):
                    if p._grad is not None:
                        start, stop = arena.offsets[i], arena.offsets[i + 1]
                        K.axpy(arena.grad[start:stop], noise[start:stop], sigma)
        for key in [k for k in self._scratch if k not in live]:
            del self._scratch[key]
        self.t += 1
        self.optimizer.step()
        return loss

    def _noise_buffer(self, arena):
        entry = self._scratch.get(id(arena))
        if entry is None or entry[0] is not arena:
            entry = self._scratch[id(arena)] = (arena, np.empty(len(arena), arena.dtype))
        return entry[1]

    def _own_state(self):
        return {"t": self.t}

    def _load_own_state(self, state):
        self.t = int(state["t"])
