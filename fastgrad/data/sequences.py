"""Synthetic sequence tasks for the classic long-range-memory benchmarks, generated on demand.

Both tasks put the information a model needs at the start (or at random places) of a long
sequence and ask for it only at the end, so a recurrent network solves them only if gradients
survive many steps: the standard tests of vanishing gradients and of the remedies (LSTM,
orthogonal or identity initialisation, clipping). Nothing is downloaded; the same ``seed``
always gives the same arrays (NumPy keeps ``default_rng`` streams stable, though not promised
across NumPy versions).
"""
import numpy as np

from .datasets import _check_float_dtype, _check_seed


def _check_count(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= {minimum}, got {type(value).__name__} "
                        f"{value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def adding_problem(n, T, seed=0, dtype=np.float32):
    """The adding problem: sum the two marked numbers of a sequence of length ``T``.

    Each sequence has two channels. Channel 0 holds values drawn uniformly from [0, 1);
    channel 1 is a marker, 1 at exactly two steps and 0 elsewhere: one step drawn uniformly
    from the first half ``[0, T // 2)`` and one from the second half ``[T // 2, T)``. The
    target is the sum of the two marked values, in [0, 2). Always predicting 1, the target's
    mean, scores a mean squared error of 1/6 (about 0.167), the baseline a model must beat.

    Args:
        n: number of sequences, an int >= 1.
        T: sequence length, an int >= 2.
        seed: a non-negative int seeding ``numpy.random.default_rng``.
        dtype: the floating dtype of ``x`` and ``y``.

    Returns:
        ``(x, y)``: NumPy arrays, ``x`` of shape (n, T, 2) (batch first: pass
        ``batch_first=True`` to a recurrent layer, or transpose), ``y`` of shape (n, 1).

    References: Hochreiter & Schmidhuber, "Long short-term memory", Neural Computation 1997
    (experiment 4); Le, Jaitly & Hinton, "A simple way to initialize recurrent networks of
    rectified linear units", arXiv:1504.00941, 2015 (the two-halves variant used here).
    """
    n = _check_count(n, "n", 1)
    T = _check_count(T, "T", 2)
    rng = np.random.default_rng(_check_seed(seed))
    dtype = _check_float_dtype(dtype)
    half = T // 2
    values = rng.uniform(0.0, 1.0, (n, T))
    first = rng.integers(0, half, n)
    second = rng.integers(half, T, n)
    rows = np.arange(n)
    x = np.zeros((n, T, 2), dtype)
    x[:, :, 0] = values
    x[rows, first, 1] = 1
    x[rows, second, 1] = 1
    # the target sums the values as stored, so it is exact in the returned dtype
    y = (x[rows, first, 0].astype(np.float64) + x[rows, second, 0]).astype(dtype)
    return x, y.reshape(n, 1)


def copy_task(n, T, seed=0, n_symbols=8, copy_length=10):
    """The copy memory task: recall a short random string after a delay of ``T`` steps.

    Codes: 0 is the blank, ``1 .. n_symbols`` the symbols, ``n_symbols + 1`` the delimiter
    (``n_symbols + 2`` classes in all). Each sequence has length ``L = T + 2 * copy_length``:

    - input: ``copy_length`` symbols drawn uniformly from ``1 .. n_symbols``, then ``T - 1``
      blanks, the delimiter (at position ``copy_length + T - 1``), then ``copy_length`` blanks;
    - target: ``T + copy_length`` blanks, then the same ``copy_length`` symbols.

    So the model must output the string during the last ``copy_length`` steps, right after
    the delimiter. With the defaults this is Arjovsky et al.'s layout (10 symbols of 8, length
    T + 20). A model that outputs blanks and then guesses uniformly scores a cross-entropy of
    ``copy_length * log(n_symbols) / L``, the baseline to beat.

    Args:
        n: number of sequences, an int >= 1.
        T: the delay, an int >= 1.
        seed: a non-negative int seeding ``numpy.random.default_rng``.
        n_symbols: size of the alphabet, an int >= 1.
        copy_length: length of the string to copy, an int >= 1.

    Returns:
        ``(inputs, targets)``: int64 NumPy arrays of shape (n, L), batch first.

    References: Arjovsky, Shah & Bengio, "Unitary evolution recurrent neural networks", ICML
    2016 (section 4.1); Hochreiter & Schmidhuber, "Long short-term memory", 1997.
    """
    n = _check_count(n, "n", 1)
    T = _check_count(T, "T", 1)
    rng = np.random.default_rng(_check_seed(seed))
    n_symbols = _check_count(n_symbols, "n_symbols", 1)
    copy_length = _check_count(copy_length, "copy_length", 1)
    length = T + 2 * copy_length
    symbols = rng.integers(1, n_symbols + 1, (n, copy_length), dtype=np.int64)
    inputs = np.zeros((n, length), np.int64)
    inputs[:, :copy_length] = symbols
    inputs[:, copy_length + T - 1] = n_symbols + 1
    targets = np.zeros((n, length), np.int64)
    targets[:, T + copy_length:] = symbols
    return inputs, targets
