"""Data sets shipped inside the package, so examples and tests never need the network.

``digits.csv.gz`` is the UCI "Optical Recognition of Handwritten Digits" test set (E. Alpaydin
and C. Kaynak, 1998; CC BY 4.0), copied unchanged from scikit-learn: 1,797 rows of 64 pixel
counts in 0..16 (an 8x8 image, row-major) followed by the label 0..9.
"""
import functools
import gzip
from importlib import resources
from numbers import Real

import numpy as np

_DIGITS_FILE = "digits.csv.gz"
_DIGITS_PIXEL_MAX = 16


@functools.lru_cache(maxsize=None)
def _read_digits():
    """Parse the shipped digits file once per process.

    Returns:
        ``(pixels, labels)``: read-only arrays, uint8 of shape (1797, 64) and int64 of shape
        (1797,). Read-only so that no caller can corrupt the cache; callers index copies out.
    """
    source = resources.files(__package__).joinpath(_DIGITS_FILE)
    with source.open("rb") as raw, gzip.open(raw, "rt") as text:
        table = np.loadtxt(text, delimiter=",", dtype=np.int64)
    pixels = table[:, :-1].astype(np.uint8)
    labels = np.ascontiguousarray(table[:, -1])
    pixels.setflags(write=False)
    labels.setflags(write=False)
    return pixels, labels


def _check_test_fraction(test_fraction):
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, Real):
        raise TypeError(f"test_fraction must be a float in (0, 1), got "
                        f"{type(test_fraction).__name__} {test_fraction!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be a float in (0, 1), got {test_fraction!r}")
    return float(test_fraction)


def _check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be a non-negative int, got {type(seed).__name__} {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def _check_float_dtype(dtype):
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be a floating dtype such as numpy.float32, "
                        f"got {dtype!r}") from None
    if resolved.kind != "f":
        raise TypeError(f"dtype must be a floating dtype such as numpy.float32, got {resolved}")
    return resolved


def _stratified_split(labels, test_fraction, rng):
    """Indices of a split that keeps each class's share in both parts.

    Each class ``c`` of ``n_c`` samples gives ``round(test_fraction * n_c)`` samples to the test
    part, kept within ``[1, n_c - 1]`` so that both parts hold every class. Both index arrays are
    shuffled, so neither part is ordered by class.

    Returns:
        ``(train_indices, test_indices)``, int64 arrays that partition ``range(len(labels))``.
    """
    train, test = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = min(max(round(test_fraction * len(members)), 1), len(members) - 1)
        test.append(members[:n_test])
        train.append(members[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def load_digits(test_fraction=0.2, seed=0, dtype=np.float32):
    """The 8x8 handwritten digits (1,797 images, 10 classes), split into train and test parts.

    The split is stratified (each digit keeps its share in both parts) and depends only on
    ``seed``: the same seed always gives the same split (NumPy keeps ``default_rng`` streams
    stable, though not promised across NumPy versions).

    Args:
        test_fraction: the share of each class put in the test part, a float in (0, 1).
        seed: a non-negative int seeding ``numpy.random.default_rng`` for the split.
        dtype: the floating dtype of the images.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: NumPy arrays owned by the caller; ``x`` of
        shape ``(n, 64)`` with pixels scaled to [0, 1], ``y`` int64 labels 0..9 of shape ``(n,)``.
    """
    test_fraction = _check_test_fraction(test_fraction)
    seed = _check_seed(seed)
    dtype = _check_float_dtype(dtype)
    pixels, labels = _read_digits()
    train, test = _stratified_split(labels, test_fraction, np.random.default_rng(seed))

    def part(indices):
        # Fancy indexing copies, so the cached arrays never leak to the caller.
        images = pixels[indices].astype(dtype)
        images /= _DIGITS_PIXEL_MAX
        return images, labels[indices]

    return part(train), part(test)
