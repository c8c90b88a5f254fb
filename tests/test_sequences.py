"""The generated sequence tasks: layouts, values, determinism and argument checks."""
import numpy as np
import pytest

import fastgrad as fg
from fastgrad.data import adding_problem, copy_task


# --------------------------------------------------------------------------- adding problem
@pytest.mark.parametrize("T", [2, 3, 50, 101])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adding_problem_layout_and_target(T, dtype):
    x, y = adding_problem(200, T, seed=3, dtype=dtype)
    assert x.shape == (200, T, 2) and y.shape == (200, 1)
    assert x.dtype == y.dtype == dtype
    values, marker = x[:, :, 0], x[:, :, 1]
    assert ((values >= 0) & (values < 1)).all()
    assert set(np.unique(marker)) <= {0, 1}
    half = T // 2
    np.testing.assert_array_equal(marker[:, :half].sum(1), 1)  # one mark in each half
    np.testing.assert_array_equal(marker[:, half:].sum(1), 1)
    expected = (values.astype(np.float64) * marker).sum(1, keepdims=True)
    np.testing.assert_allclose(y, expected, rtol=1e-6 if dtype == np.float32 else 1e-15)


def test_adding_problem_marks_cover_both_halves_uniformly():
    x, _ = adding_problem(4000, 10, seed=0)
    positions = np.argwhere(x[:, :, 1] == 1)[:, 1]
    counts = np.bincount(positions, minlength=10)
    # 4,000 marks over the 5 positions of each half: about 800 each
    assert counts.sum() == 8000 and (np.abs(counts - 800) < 120).all(), counts


def test_adding_problem_baseline_of_predicting_one_is_a_sixth():
    _, y = adding_problem(50_000, 20, seed=1, dtype=np.float64)
    assert abs(np.mean((y - 1) ** 2) - 1 / 6) < 0.005
    assert abs(y.mean() - 1) < 0.01


def test_adding_problem_is_deterministic_per_seed():
    a, b = adding_problem(10, 30, seed=4), adding_problem(10, 30, seed=4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    c = adding_problem(10, 30, seed=5)
    assert not np.array_equal(a[0], c[0])


def test_sequence_tasks_are_exported_from_fastgrad_data():
    assert fg.data.adding_problem is adding_problem and fg.data.copy_task is copy_task


# -------------------------------------------------------------------------------- copy task
@pytest.mark.parametrize("T, n_symbols, copy_length", [(1, 8, 10), (5, 8, 10), (100, 3, 4),
                                                       (7, 1, 1)])
def test_copy_task_layout(T, n_symbols, copy_length):
    inputs, targets = copy_task(50, T, seed=2, n_symbols=n_symbols, copy_length=copy_length)
    length = T + 2 * copy_length
    assert inputs.shape == targets.shape == (50, length)
    assert inputs.dtype == targets.dtype == np.int64
    symbols = inputs[:, :copy_length]
    assert ((symbols >= 1) & (symbols <= n_symbols)).all()
    delimiter = copy_length + T - 1
    np.testing.assert_array_equal(inputs[:, copy_length:delimiter], 0)
    np.testing.assert_array_equal(inputs[:, delimiter], n_symbols + 1)
    np.testing.assert_array_equal(inputs[:, delimiter + 1:], 0)
    assert delimiter + 1 + copy_length == length
    np.testing.assert_array_equal(targets[:, :T + copy_length], 0)
    np.testing.assert_array_equal(targets[:, T + copy_length:], symbols)


def test_copy_task_defaults_are_arjovskys_layout():
    inputs, targets = copy_task(3, 100)
    assert inputs.shape == (3, 120)
    assert set(np.unique(inputs)) <= set(range(10)) and (inputs == 9).sum() == 3
    assert set(np.unique(inputs[:, :10])) <= set(range(1, 9))


def test_copy_task_symbols_are_uniform_and_deterministic():
    inputs, _ = copy_task(2000, 5, seed=7, n_symbols=4, copy_length=5)
    counts = np.bincount(inputs[:, :5].ravel(), minlength=5)[1:]
    assert (np.abs(counts - 2500) < 200).all(), counts
    np.testing.assert_array_equal(copy_task(20, 5, seed=7)[0], copy_task(20, 5, seed=7)[0])
    assert not np.array_equal(copy_task(20, 5, seed=7)[0], copy_task(20, 5, seed=8)[0])


# ---------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("call, error, match", [
    (lambda: adding_problem(0, 10), ValueError, "n must be an int >= 1, got 0"),
    (lambda: adding_problem(2.0, 10), TypeError, "n must be an int >= 1, got float"),
    (lambda: adding_problem(5, 1), ValueError, "T must be an int >= 2, got 1"),
    (lambda: adding_problem(5, True), TypeError, "T must be an int >= 2, got bool"),
    (lambda: adding_problem(5, 10, seed=-1), ValueError, "seed must be a non-negative int"),
    (lambda: adding_problem(5, 10, dtype=np.int64), TypeError, "dtype must be a floating"),
    (lambda: copy_task(5, 0), ValueError, "T must be an int >= 1, got 0"),
    (lambda: copy_task(5, 10, n_symbols=0), ValueError, "n_symbols must be an int >= 1"),
    (lambda: copy_task(5, 10, copy_length=0), ValueError, "copy_length must be an int >= 1"),
    (lambda: copy_task(5, 10, seed="a"), TypeError, "seed must be a non-negative int"),
    (lambda: copy_task(-3, 10), ValueError, "n must be an int >= 1, got -3"),
])
def test_arguments_are_validated(call, error, match):
    with pytest.raises(error, match=match):
        call()
