"""Random number generation: one seedable default generator, as ``torch.manual_seed`` gives.

Every random draw in fastgrad (weight initialisation, dropout, shuffling) goes through a
:class:`Generator`, by default the global one, so ``fastgrad.manual_seed(s)`` makes a run
repeatable.
"""
import numpy as np

from . import autograd as _autograd
from .device import resolve as _resolve_device


def check_seed(seed):
    """A TypeError unless ``seed`` is an int (a bool is not)."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")


def _fresh_seed():
    """A non-deterministic 64-bit seed from the operating system's entropy."""
    return int(np.random.SeedSequence().generate_state(1, np.uint64)[0])


class Generator:
    """A seedable source of random numbers (NumPy's PCG64 underneath).

    Args:
        seed: an int, or None for a fresh non-deterministic seed.
        device: where the generator's numbers are used (PyTorch's keyword): the CPU, the
            only device of this build.
    """

    def __init__(self, seed=None, *, device=None):
        _resolve_device(device)
        self.manual_seed(seed)

    def manual_seed(self, seed):
        """Restart the stream from ``seed`` (None: a fresh non-deterministic seed); returns
        self, as PyTorch's does."""
        if seed is None:
            seed = _fresh_seed()
        check_seed(seed)
        self._seed = seed
        self.numpy = np.random.Generator(np.random.PCG64(seed))
        return self

    def seed(self):
        """Restart the stream from a fresh non-deterministic seed, and return that seed."""
        return self.manual_seed(None)._seed

    def initial_seed(self):
        """The seed the stream last started from."""
        return self._seed

    def get_state(self):
        """The generator's state as a dict (JSON-friendly), for checkpoints."""
        return self.numpy.bit_generator.state

    def set_state(self, state):
        self.numpy.bit_generator.state = state


default_generator = Generator(0)


def manual_seed(seed):
    """Seed the default generator; returns it."""
    return default_generator.manual_seed(seed)


def seed():
    """Seed the default generator from fresh entropy (a non-repeatable run); returns the
    seed."""
    return default_generator.seed()


def initial_seed():
    """The seed the default generator last started from."""
    return default_generator.initial_seed()


def get_rng_state():
    """The default generator's state, for :func:`set_rng_state`.

    PyTorch returns a ByteTensor; this is the generator's state as a dict of ints (what
    :meth:`Generator.get_state` gives, and what fastgrad's checkpoints store).
    """
    return default_generator.get_state()


def set_rng_state(new_state):
    """Restore the default generator to a state from :func:`get_rng_state`."""
    default_generator.set_state(new_state)


def numpy_generator(generator=None):
    """The NumPy generator behind ``generator`` (the default one when None)."""
    _autograd._untraced("random numbers were drawn outside an op")
    if generator is None:
        return default_generator.numpy
    if not isinstance(generator, Generator):
        raise TypeError(f"generator must be a fastgrad.Generator, got {type(generator).__name__}")
    return generator.numpy
