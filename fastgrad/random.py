"""Random number generation: one seedable default generator, as ``torch.manual_seed`` gives.

Every random draw in fastgrad (weight initialisation, dropout, shuffling) goes through a
:class:`Generator`, by default the global one, so ``fastgrad.manual_seed(s)`` makes a run
repeatable.
"""
import numpy as np


class Generator:
    """A seedable source of random numbers (NumPy's PCG64 underneath).

    Args:
        seed: an int, or None for fresh entropy.
    """

    def __init__(self, seed=None):
        self.manual_seed(seed)

    def manual_seed(self, seed):
        """Restart the stream from ``seed``; returns self, as PyTorch's does."""
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
        self._seed = seed
        self.numpy = np.random.Generator(np.random.PCG64(seed))
        return self

    def initial_seed(self):
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


def numpy_generator(generator=None):
    """The NumPy generator behind ``generator`` (the default one when None)."""
    if generator is None:
        return default_generator.numpy
    if not isinstance(generator, Generator):
        raise TypeError(f"generator must be a fastgrad.Generator, got {type(generator).__name__}")
    return generator.numpy
