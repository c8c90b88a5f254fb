"""How the C library's ``malloc`` keeps the memory of freed arrays: for the next step, not
for the system.

A training step allocates and frees the same large arrays every step: activations, their
gradients, a convolution's columns, 0.1-10 MB each. glibc's ``malloc`` serves blocks above
its mmap threshold (128 KiB at start, raised to the largest block freed so far) with a fresh
``mmap`` and unmaps them at ``free``, and gives the top of its heap back to the system once
twice that threshold is free there. Either way the next step's arrays land on pages the
kernel has to fault in and zero again: measured here, 6,600 minor page faults per step of
the CNN row of ``bench/vs_torch.py`` (24-27 ms a step; 13-14 ms without them), 1,560 per
ResNet-20 step, 3,300 per LSTM step.

So on import, where the C library is glibc, fastgrad sets two of ``malloc``'s parameters
(``mallopt``):

- ``M_MMAP_THRESHOLD`` to 32 MiB, glibc's largest: blocks below it come from the heap and
  are reused there; larger ones are still mapped and unmapped on their own.
- ``M_TRIM_THRESHOLD`` to 1 GiB: free memory at the heap's top is kept for reuse until more
  than that is free.

This is process-wide: every ``malloc`` of the program sees it, NumPy's included. Its cost is
that memory freed in blocks below 32 MiB stays with the process, up to its peak use, instead
of going back to the system (as a caching allocator, PyTorch's on the GPU for one, keeps
it). ``FASTGRAD_MALLOC=system`` in the environment leaves ``malloc`` as it is. Elsewhere
(macOS, Windows, musl) nothing is changed.
"""
import ctypes
import os

from . import config

#: ``mallopt``'s parameter numbers (glibc's malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: The values fastgrad sets: parameter name -> (number, value).
SETTINGS = {"M_MMAP_THRESHOLD": (M_MMAP_THRESHOLD, 32 << 20),
            "M_TRIM_THRESHOLD": (M_TRIM_THRESHOLD, 1 << 30)}
#: What ``FASTGRAD_MALLOC`` may say: ``fastgrad`` (the default) or ``system``.
CHOICES = ("fastgrad", "system")

#: The parameters set in this process, name -> value (empty: none were).
applied = {}


def _glibc():
    """The running C library when it is glibc (its ``mallopt``), else None."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
        return ctypes.CDLL(None)
    except (AttributeError, ValueError, OSError):  # no confstr, no such name, no libc
        return None


def tune_malloc(choice=None):
    """Apply :data:`SETTINGS` with ``mallopt`` unless ``choice`` (default: ``FASTGRAD_MALLOC``,
    :data:`fastgrad.config.MALLOC`) is ``"system"``; returns :data:`applied`.

    Raises:
        ValueError: ``choice`` is not one of :data:`CHOICES`.
    """
    if choice is None:
        choice = config.MALLOC
    if choice not in CHOICES:
        raise ValueError(f"FASTGRAD_MALLOC must be one of {', '.join(CHOICES)}, "
                         f"got {choice!r}")
    libc = _glibc() if choice == "fastgrad" else None
    if libc is not None:
        for name, (parameter, value) in SETTINGS.items():
            if libc.mallopt(parameter, value) == 1:  # 1: accepted, 0: refused
                applied[name] = value
    return applied
