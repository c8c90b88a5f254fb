"""The shipped digits data set, and fastgrad.data's TensorDataset and DataLoader (those of
fastgrad.utils.data, tested in full in test_utils_data.py)."""
import numpy as np
import pytest

from fastgrad import random
from fastgrad.data import DataLoader
from fastgrad.data import TensorDataset
from fastgrad.data import load_digits
from fastgrad.random import Generator
from fastgrad.tensor import Tensor

N_DIGITS = 1797


def _concat_split(split):
    (x_train, y_train), (x_test, y_test) = split
    return np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test])


# ----------------------------------------------------------------------------- load_digits
def test_digits_shapes_and_dtypes():
    (x_train, y_train), (x_test, y_test) = load_digits()
    assert x_train.shape == (len(y_train), 64)
    assert x_test.shape == (len(y_test), 64)
    assert len(y_train) + len(y_test) == N_DIGITS
    assert x_train.dtype == np.float32 and x_test.dtype == np.float32
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64


def test_digits_values_are_scaled_pixel_counts():
    x, _ = _concat_split(load_digits())
    assert x.min() == 0.0 and x.max() == 1.0
    # Every pixel is a count 0..16 divided by 16, so 16 * x is a whole number.
    np.testing.assert_array_equal(16 * x, np.round(16 * x))


def test_digits_label_counts():
    _, y = _concat_split(load_digits())
    counts = np.bincount(y)
    assert len(counts) == 10
    assert counts.sum() == N_DIGITS
    assert counts.min() >= 170 and counts.max() <= 190
    # The UCI test set's class sizes, as shipped.
    assert counts.tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_digits_split_is_a_partition_of_the_whole_set():
    x_default, y_default = _concat_split(load_digits(seed=0))
    x_other, y_other = _concat_split(load_digits(seed=7))
    order_default = np.lexsort(np.column_stack([x_default, y_default]).T)
    order_other = np.lexsort(np.column_stack([x_other, y_other]).T)
    np.testing.assert_array_equal(x_default[order_default], x_other[order_other])
    np.testing.assert_array_equal(y_default[order_default], y_other[order_other])


@pytest.mark.parametrize("test_fraction", [0.2, 0.5, 0.1])
def test_digits_split_sizes_and_stratification(test_fraction):
    (_, y_train), (_, y_test) = load_digits(test_fraction=test_fraction)
    class_sizes = np.bincount(np.concatenate([y_train, y_test]))
    expected_test = np.array([round(test_fraction * n) for n in class_sizes])
    np.testing.assert_array_equal(np.bincount(y_test, minlength=10), expected_test)
    np.testing.assert_array_equal(np.bincount(y_train, minlength=10), class_sizes - expected_test)
    assert abs(len(y_test) / N_DIGITS - test_fraction) < 0.01


def test_digits_parts_are_not_ordered_by_class():
    (_, y_train), _ = load_digits()
    assert np.any(np.diff(y_train) < 0)


def test_digits_tiny_fraction_keeps_every_class_in_both_parts():
    (_, y_train), (_, y_test) = load_digits(test_fraction=1e-6)
    np.testing.assert_array_equal(np.bincount(y_test, minlength=10), np.ones(10))
    assert set(y_train.tolist()) == set(range(10))


def test_digits_same_seed_same_split():
    first, second = load_digits(seed=3), load_digits(seed=3)
    for (x_a, y_a), (x_b, y_b) in zip(first, second):
        np.testing.assert_array_equal(x_a, x_b)
        np.testing.assert_array_equal(y_a, y_b)


def test_digits_different_seeds_different_splits():
    (x_a, _), _ = load_digits(seed=0)
    (x_b, _), _ = load_digits(seed=1)
    assert x_a.shape == x_b.shape
    assert not np.array_equal(x_a, x_b)


def test_digits_returns_copies():
    (x_train, y_train), (x_test, y_test) = load_digits()
    for array in (x_train, y_train, x_test, y_test):
        assert array.flags.writeable and array.flags.owndata
    x_train[:] = -1.0
    y_test[:] = -1
    (x_again, _), (_, y_again) = load_digits()
    assert x_again.min() == 0.0
    assert y_again.min() == 0


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, "float64"])
def test_digits_dtype(dtype):
    (x_train, y_train), (x_test, _) = load_digits(dtype=dtype)
    assert x_train.dtype == np.dtype(dtype) and x_test.dtype == np.dtype(dtype)
    assert y_train.dtype == np.int64
    reference, _ = _concat_split(load_digits(dtype=np.float64))
    np.testing.assert_array_equal(_concat_split(load_digits(dtype=dtype))[0], reference)


@pytest.mark.parametrize("kwargs, error, pattern", [
    ({"test_fraction": 0.0}, ValueError, r"test_fraction must be a float in \(0, 1\), got 0\.0"),
    ({"test_fraction": 1.0}, ValueError, r"test_fraction .* got 1\.0"),
    ({"test_fraction": -0.5}, ValueError, r"test_fraction .* got -0\.5"),
    ({"test_fraction": float("nan")}, ValueError, r"test_fraction .* got nan"),
    ({"test_fraction": "0.2"}, TypeError, r"test_fraction must be a float .* got str '0\.2'"),
    ({"test_fraction": True}, TypeError, r"test_fraction .* got bool True"),
    ({"seed": 1.5}, TypeError, r"seed must be a non-negative int, got float 1\.5"),
    ({"seed": None}, TypeError, r"seed must be a non-negative int, got NoneType None"),
    ({"seed": -1}, ValueError, r"seed must be a non-negative int, got -1"),
    ({"dtype": np.int64}, TypeError, r"dtype must be a floating dtype .* got int64"),
    ({"dtype": "not a dtype"}, TypeError, r"dtype must be a floating dtype .* got 'not a dtype'"),
])
def test_digits_bad_arguments(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        load_digits(**kwargs)


# ---------------------------------------------------------------------------- TensorDataset
def test_tensor_dataset_length_and_indexing():
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10, dtype=np.int64)
    dataset = TensorDataset(x, y)
    assert len(dataset) == 10
    sample_x, sample_y = dataset[3]
    assert isinstance(sample_x, Tensor) and isinstance(sample_y, Tensor)
    np.testing.assert_array_equal(sample_x, [6.0, 7.0])
    assert sample_y.shape == () and sample_y.item() == 3
    batch_x, batch_y = dataset[np.array([4, 0, 9])]
    np.testing.assert_array_equal(batch_x, x[[4, 0, 9]])
    np.testing.assert_array_equal(batch_y, [4, 0, 9])


def test_tensor_dataset_accepts_tensors_without_copying():
    x = np.ones((5, 3), dtype=np.float32)
    dataset = TensorDataset(Tensor(x), np.zeros(5, dtype=np.int64))
    assert len(dataset) == 5
    assert np.shares_memory(dataset.tensors[0].numpy(), x)


def test_tensor_dataset_size_mismatch():
    with pytest.raises(ValueError, match=r"same first dimension .* got sizes \[4, 3\]"):
        TensorDataset(np.zeros((4, 2)), np.zeros(3))


def test_tensor_dataset_needs_an_array():
    with pytest.raises(ValueError, match="at least one tensor"):
        TensorDataset()


def test_tensor_dataset_rejects_non_arrays_and_scalars():
    with pytest.raises(TypeError, match=r"tensors\[1\] must be a Tensor or a NumPy array, got "
                                        r"list"):
        TensorDataset(np.zeros(3), [1, 2, 3])
    with pytest.raises(ValueError, match=r"tensors\[0\] must have at least one dimension"):
        TensorDataset(np.float32(1.0))


# ------------------------------------------------------------------------------- DataLoader
def _dataset(n=10):
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    return TensorDataset(x, np.arange(n, dtype=np.int64))


@pytest.mark.parametrize("n, batch_size, drop_last, expected", [
    (10, 3, False, 4), (10, 3, True, 3), (9, 3, False, 3), (9, 3, True, 3),
    (2, 5, False, 1), (2, 5, True, 0), (10, 1, False, 10),
])
def test_loader_batch_count(n, batch_size, drop_last, expected):
    loader = DataLoader(_dataset(n), batch_size=batch_size, drop_last=drop_last)
    batches = list(loader)
    assert len(loader) == expected == len(batches)
    sizes = [len(labels) for _, labels in batches]
    assert all(size == batch_size for size in sizes[:-1])
    assert sum(sizes) == (n // batch_size * batch_size if drop_last else n)


def test_loader_without_shuffle_keeps_order():
    labels = np.concatenate([y.numpy() for _, y in DataLoader(_dataset(10), batch_size=4)])
    np.testing.assert_array_equal(labels, np.arange(10))


def test_loader_batches_are_contiguous_tensors_with_dtypes_kept():
    x = np.asfortranarray(np.arange(30, dtype=np.float64).reshape(10, 3))
    dataset = TensorDataset(x, np.arange(10, dtype=np.int64))
    for batch_x, batch_y in DataLoader(dataset, batch_size=4, shuffle=True):
        assert isinstance(batch_x, Tensor) and isinstance(batch_y, Tensor)
        assert batch_x.dtype == np.float64 and batch_y.dtype == np.int64
        assert batch_x.numpy().flags.c_contiguous and batch_y.numpy().flags.c_contiguous
        assert not batch_x.requires_grad
        np.testing.assert_array_equal(batch_x.numpy(), x[batch_y.numpy()])


def test_loader_batches_do_not_alias_the_dataset():
    dataset = _dataset(6)
    batch_x, _ = next(iter(DataLoader(dataset, batch_size=6)))
    assert not np.shares_memory(batch_x.numpy(), dataset.tensors[0].numpy())


def _epoch_labels(loader):
    return np.concatenate([labels.numpy() for _, labels in loader])


def test_loader_shuffle_sees_every_sample_once_and_reorders_each_epoch():
    loader = DataLoader(_dataset(50), batch_size=8, shuffle=True, generator=Generator(0))
    first, second = _epoch_labels(loader), _epoch_labels(loader)
    np.testing.assert_array_equal(np.sort(first), np.arange(50))
    np.testing.assert_array_equal(np.sort(second), np.arange(50))
    assert not np.array_equal(first, np.arange(50))
    assert not np.array_equal(first, second)


def test_loader_shuffle_drop_last_sees_each_sample_at_most_once():
    loader = DataLoader(_dataset(50), batch_size=8, shuffle=True, drop_last=True)
    labels = _epoch_labels(loader)
    assert len(labels) == 48 and len(np.unique(labels)) == 48


def test_loader_same_seeded_generator_same_order():
    def epochs(generator):
        loader = DataLoader(_dataset(40), batch_size=7, shuffle=True, generator=generator)
        return [_epoch_labels(loader) for _ in range(3)]

    for first, second in zip(epochs(Generator(123)), epochs(Generator(123))):
        np.testing.assert_array_equal(first, second)
    different = epochs(Generator(124))
    assert not all(np.array_equal(a, b) for a, b in zip(epochs(Generator(123)), different))


@pytest.fixture
def restore_default_generator():
    state = random.default_generator.get_state()
    seed = random.default_generator.initial_seed()
    yield
    random.default_generator.manual_seed(seed)
    random.default_generator.set_state(state)


def test_loader_default_generator_follows_manual_seed(restore_default_generator):
    loader = DataLoader(_dataset(40), batch_size=7, shuffle=True)
    random.manual_seed(5)
    first = _epoch_labels(loader)
    random.manual_seed(5)
    np.testing.assert_array_equal(_epoch_labels(loader), first)


class _PairDataset:
    """A generic map-style dataset whose items are (array, int) pairs."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        return np.full((2, 2), index, dtype=np.float32), index


def test_loader_collates_a_generic_dataset():
    batches = list(DataLoader(_PairDataset(5), batch_size=2))
    assert len(batches) == 3
    images, labels = batches[1]
    assert isinstance(images, Tensor) and isinstance(labels, Tensor)
    assert images.shape == (2, 2, 2) and images.dtype == np.float32
    np.testing.assert_array_equal(images.numpy(), [np.full((2, 2), 2), np.full((2, 2), 3)])
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels.numpy(), [2, 3])
    assert batches[2][0].shape == (1, 2, 2)


def test_loader_collates_single_array_items():
    data = np.arange(12, dtype=np.float64).reshape(6, 2)
    batches = list(DataLoader(data, batch_size=4))
    assert all(isinstance(batch, Tensor) for batch in batches)
    np.testing.assert_array_equal(batches[0].numpy(), data[:4])
    np.testing.assert_array_equal(batches[1].numpy(), data[4:])


def test_loader_generic_dataset_with_ragged_items():
    class Ragged(_PairDataset):
        def __getitem__(self, index):
            return np.zeros(index + 1), index

    with pytest.raises(RuntimeError, match=r"stack expects tensors of equal shape"):
        list(DataLoader(Ragged(3), batch_size=3))


@pytest.mark.parametrize("kwargs, error, pattern", [
    ({"batch_size": 0}, ValueError, r"batch_size should be a positive integer .* got batch_size=0"),
    ({"batch_size": -2}, ValueError, r"batch_size should be .* got batch_size=-2"),
    ({"batch_size": 2.0}, ValueError, r"batch_size should be .* got batch_size=2\.0"),
    ({"batch_size": True}, ValueError, r"batch_size should be .* got batch_size=True"),
    ({"shuffle": 1}, TypeError, r"shuffle must be a bool or None, got int 1"),
    ({"shuffle": "yes"}, TypeError, r"shuffle must be a bool or None, got str 'yes'"),
    ({"drop_last": None}, ValueError, r"drop_last should be a boolean value, .* drop_last=None"),
    ({"generator": 123}, TypeError, r"generator must be a fastgrad\.random\.Generator .* got int"),
])
def test_loader_bad_arguments(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        DataLoader(_dataset(), **kwargs)


def test_loader_bad_dataset():
    with pytest.raises(TypeError, match=r"dataset must be a map-style dataset .* got int"):
        DataLoader(5)
