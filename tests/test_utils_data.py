"""fastgrad.utils.data: datasets, samplers, default_collate and the DataLoader, against NumPy
references and, where it is installed, torch.utils.data on the same datasets."""
import collections
import warnings

import numpy as np
import pytest

import fastgrad as fg
from fastgrad.random import Generator
from fastgrad.tensor import Tensor
from fastgrad.utils.data import (BatchSampler, ChainDataset, ConcatDataset, DataLoader, Dataset,
                                 IterableDataset, RandomSampler, Sampler, SequentialSampler,
                                 Subset, SubsetRandomSampler, TensorDataset,
                                 WeightedRandomSampler, default_collate, default_convert,
                                 get_worker_info, random_split)

Point = collections.namedtuple("Point", ["x", "y"])


def _tree(value):
    """A batch as plain data, for comparing fastgrad's with PyTorch's: tensors become
    ("tensor", dtype name, shape, values); containers keep their type's name."""
    if isinstance(value, Tensor) or type(value).__name__ == "Tensor":
        array = np.asarray(value.detach().numpy() if hasattr(value, "detach") else value)
        return ("tensor", array.dtype.name, array.shape, array.tolist())
    if isinstance(value, dict):
        return (type(value).__name__, {k: _tree(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [_tree(v) for v in value])
    return (type(value).__name__, value)


class Records(Dataset):
    """A user dataset whose samples are whatever ``make(index)`` gives."""

    def __init__(self, n, make):
        self.n, self.make = n, make

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        return self.make(index)


SAMPLES = {
    "tuple": lambda i: (np.full((2, 3), i, np.float32), i),
    "dict": lambda i: {"image": np.arange(4, dtype=np.float64) * i, "label": i % 3,
                       "name": f"s{i}", "weight": 0.5 * i},
    "namedtuple": lambda i: Point(np.float32(i), [i, -i]),
    "list": lambda i: [i, float(i), bool(i % 2)],
    "scalar_float": lambda i: 0.25 * i,
    "numpy_scalar": lambda i: np.int32(i),
    "array": lambda i: np.arange(3, dtype=np.int64) + i,
    "nested": lambda i: {"pair": (np.ones(2, np.float32) * i, {"k": i})},
}


# ------------------------------------------------------------------------- default_collate
@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_collate_of_each_sample_kind(kind):
    batch = default_collate([SAMPLES[kind](i) for i in range(3)])
    flat = _tree(batch)
    assert "tensor" in repr(flat)
    if kind == "tuple":
        assert isinstance(batch, list) and batch[0].shape == (3, 2, 3)
        assert batch[0].dtype == np.float32 and batch[1].dtype == np.int64
    if kind == "dict":
        assert batch["name"] == ["s0", "s1", "s2"]
        assert batch["label"].dtype == np.int64 and batch["weight"].dtype == np.float64


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_collate_matches_pytorch(kind):
    pytest.importorskip("torch")
    from torch.utils.data import default_collate as torch_collate
    samples = [SAMPLES[kind](i) for i in range(4)]
    assert _tree(default_collate(samples)) == _tree(torch_collate(samples))


@pytest.mark.parametrize("batch", [
    [1, 2, 3], [1.5, 2.0], [True, False], [1, 2.5], [2.5, 1], [np.float32(1), np.float32(2)],
    [np.float64(1), 2.5], [np.int32(4)], [np.bool_(True)], ["a", "b"], [b"x", b"y"],
    [(1, 2.0), (3, 4.0)], [[1, 2], [3, 4]], [np.zeros((2, 2), np.float16)] * 2,
])
def test_collate_dtypes_match_pytorch(batch):
    pytest.importorskip("torch")
    from torch.utils.data import default_collate as torch_collate
    assert _tree(default_collate(batch)) == _tree(torch_collate(batch))


def test_collate_dtype_rules_without_pytorch():
    assert default_collate([1, 2]).dtype == np.int64
    assert default_collate([1.0, 2]).dtype == np.float64
    assert default_collate([1, 2.5]).dtype == np.float32  # dispatch on the first element
    assert default_collate([True, False]).dtype == np.bool_
    assert default_collate([np.float32(1), np.float32(2)]).dtype == np.float32
    stacked = default_collate([fg.ones(2), fg.zeros(2, dtype=fg.float64)])
    assert stacked.dtype == np.float64 and stacked.shape == (2, 2)  # promoted, as torch.stack


def test_collate_keeps_the_graph_of_tensors_that_require_grad():
    w = fg.ones(3, requires_grad=True)
    batch = default_collate([w * 2, w * 3])
    batch.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.full(3, 5.0))


def test_collate_keeps_mapping_and_sequence_types():
    ordered = [collections.OrderedDict([("b", 1), ("a", 2)])] * 2
    batch = default_collate(ordered)
    assert type(batch) is collections.OrderedDict and list(batch) == ["b", "a"]
    assert type(default_collate([Point(1, 2)] * 2)) is Point
    assert type(default_collate([(1, 2)] * 2)) is list  # tuples become lists, as in PyTorch


@pytest.mark.parametrize("batch, error, pattern", [
    ([(1, 2), (1,)], RuntimeError, "each element in list of batch should be of equal size"),
    ([np.zeros(2), np.zeros(3)], RuntimeError, "stack expects tensors of equal shape"),
    ([object(), object()], TypeError, "batch must contain tensors, numpy arrays, numbers"),
    ([np.array(["a"])] * 2, TypeError, "found <U1"),
    ([None, None], TypeError, "NoneType"),
])
def test_collate_errors(batch, error, pattern):
    with pytest.raises(error, match=pattern):
        default_collate(batch)


def test_collate_error_types_match_pytorch():
    pytest.importorskip("torch")
    from torch.utils.data import default_collate as torch_collate
    for batch in ([(1, 2), (1,)], [np.zeros(2), np.zeros(3)], [object()], [np.array(["a"])]):
        with pytest.raises(Exception) as ours:
            default_collate(batch)
        with pytest.raises(Exception) as theirs:
            torch_collate(batch)
        assert type(ours.value) is type(theirs.value)


def test_default_convert_matches_pytorch():
    pytest.importorskip("torch")
    from torch.utils.data import default_convert as torch_convert
    for sample in [np.arange(3), np.float64(2), 3, "s", (np.zeros(2), 1),
                   {"a": np.ones(2, np.float32), "b": [np.int64(1), "x"]}, Point(np.ones(1), 2),
                   np.array(["a", "b"])]:
        assert _tree(default_convert(sample)) == _tree(torch_convert(sample))


def test_default_convert_wraps_arrays_without_copying():
    array = np.arange(4.0)
    converted = default_convert(array)
    assert isinstance(converted, Tensor) and np.shares_memory(converted.numpy(), array)
    assert default_convert(7) == 7 and default_convert("x") == "x"


# ------------------------------------------------------------------------ map-style loading
@pytest.mark.parametrize("kind", sorted(SAMPLES))
@pytest.mark.parametrize("batch_size, drop_last", [(2, False), (3, True), (None, False)])
def test_loader_over_a_user_dataset_matches_pytorch(kind, batch_size, drop_last):
    torch = pytest.importorskip("torch")
    dataset = Records(7, SAMPLES[kind])
    ours = list(DataLoader(dataset, batch_size=batch_size, drop_last=drop_last))
    theirs = list(torch.utils.data.DataLoader(dataset, batch_size=batch_size,
                                              drop_last=drop_last))
    assert len(ours) == len(theirs)
    assert [_tree(b) for b in ours] == [_tree(b) for b in theirs]


def test_loader_over_a_user_dataset_without_pytorch():
    loader = DataLoader(Records(5, SAMPLES["dict"]), batch_size=2)
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    assert batches[0]["image"].shape == (2, 4) and batches[0]["image"].dtype == np.float64
    np.testing.assert_array_equal(batches[1]["label"].numpy(), [2, 0])
    assert batches[2]["name"] == ["s4"]
    unbatched = list(DataLoader(Records(3, SAMPLES["tuple"]), batch_size=None))
    assert isinstance(unbatched[0], list) and unbatched[0][0].shape == (2, 3)
    assert unbatched[2][1] == 2  # numbers stay numbers without batching, as in PyTorch


def test_loader_uses_getitems_when_the_dataset_has_it():
    class Batched(Records):
        def __getitems__(self, indices):
            self.calls.append(list(indices))
            return [self[i] for i in indices]

    dataset = Batched(5, lambda i: i)
    dataset.calls = []
    assert [b.tolist() for b in DataLoader(dataset, batch_size=2)] == [[0, 1], [2, 3], [4]]
    assert dataset.calls == [[0, 1], [2, 3], [4]]
    assert all(type(i) is int for call in dataset.calls for i in call)


def test_loader_with_collate_fn_sampler_and_batch_sampler():
    dataset = Records(6, lambda i: i)
    collated = list(DataLoader(dataset, batch_size=4, collate_fn=lambda b: sum(b)))
    assert collated == [6, 9]
    ordered = list(DataLoader(dataset, batch_size=2, sampler=[5, 4, 3, 2, 1, 0]))
    assert [b.tolist() for b in ordered] == [[5, 4], [3, 2], [1, 0]]
    batches = list(DataLoader(dataset, batch_sampler=[[0, 5], [1], [2, 3, 4]]))
    assert [b.tolist() for b in batches] == [[0, 5], [1], [2, 3, 4]]
    loader = DataLoader(dataset, batch_sampler=BatchSampler(SequentialSampler(dataset), 4, True))
    assert len(loader) == 1 and [b.tolist() for b in loader] == [[0, 1, 2, 3]]


def test_num_workers_and_pin_memory_load_the_same_batches_in_process():
    dataset = Records(9, SAMPLES["tuple"])
    plain = [_tree(b) for b in DataLoader(dataset, batch_size=4)]
    workers = DataLoader(dataset, batch_size=4, num_workers=2, pin_memory=True,
                         persistent_workers=True, prefetch_factor=2, worker_init_fn=print)
    assert [_tree(b) for b in workers] == plain
    assert get_worker_info() is None


# ---------------------------------------------------------------- TensorDataset fast path
def test_tensor_dataset_items_are_tuples_of_tensors():
    x = fg.randn(5, 3)
    dataset = TensorDataset(x, np.arange(5))
    item = dataset[2]
    assert isinstance(item, tuple) and all(isinstance(t, Tensor) for t in item)
    np.testing.assert_array_equal(item[0].numpy(), x.numpy()[2])
    assert item[1].shape == () and item[1].item() == 2
    assert dataset.tensors[0] is x and len(dataset) == 5


def _slow(batch):
    return default_collate(batch)  # not default_collate itself: the per-sample path


@pytest.mark.parametrize("make_dataset", [
    lambda td: td,
    lambda td: random_split(td, [0.6, 0.4], generator=Generator(1))[0],
    lambda td: Subset(Subset(td, list(range(20, 1, -1))), [3, 0, 7, 7, 11, 2, 5]),
])
def test_tensor_dataset_fast_path_equals_per_sample_collation(make_dataset, rng):
    td = TensorDataset(rng.standard_normal((23, 2, 3)).astype(np.float32),
                       rng.integers(0, 9, 23), rng.standard_normal(23) > 0)
    dataset = make_dataset(td)
    for shuffle in (False, True):
        fast = DataLoader(dataset, batch_size=4, shuffle=shuffle, generator=Generator(5))
        slow = DataLoader(dataset, batch_size=4, shuffle=shuffle, generator=Generator(5),
                          collate_fn=_slow)
        assert [_tree(b) for b in fast] == [_tree(b) for b in slow]
    batch = next(iter(DataLoader(dataset, batch_size=4)))
    assert isinstance(batch, list) and batch[0].numpy().flags.c_contiguous


def test_tensor_dataset_fast_path_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((10, 3)).astype(np.float32)
    y = rng.integers(0, 4, 10)
    ours = list(DataLoader(TensorDataset(x, y), batch_size=3))
    theirs = list(torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=3))
    assert [_tree(b) for b in ours] == [_tree(b) for b in theirs]


def test_tensors_that_require_grad_are_collated_with_their_graph():
    w = fg.ones(4, 2, requires_grad=True)
    batch_w, _ = next(iter(DataLoader(TensorDataset(w, np.arange(4)), batch_size=4)))
    assert batch_w.requires_grad
    batch_w.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.ones((4, 2)))


# ------------------------------------------------------------------------------ datasets
class Range(Dataset):
    def __init__(self, start, stop):
        self.values = list(range(start, stop))

    def __len__(self):
        return len(self.values)

    def __getitem__(self, index):
        return self.values[index]


def test_concat_dataset_and_add():
    a, b, c = Range(0, 3), Range(10, 12), Range(20, 24)
    joined = a + b + c
    assert isinstance(joined, ConcatDataset) and len(joined) == 9
    assert [joined[i] for i in range(9)] == [0, 1, 2, 10, 11, 20, 21, 22, 23]
    assert joined[-1] == 23 and joined[-9] == 0
    assert ConcatDataset([a, b]).cumulative_sizes == [3, 5]
    with pytest.raises(ValueError, match="absolute value of index"):
        joined[-10]
    with pytest.raises(IndexError, match="index 9 is out of range"):
        joined[9]
    with pytest.raises(ValueError, match="should not be an empty iterable"):
        ConcatDataset([])
    with pytest.raises(TypeError, match="does not support IterableDataset"):
        ConcatDataset([a, Stream(3)])


def test_concat_dataset_matches_pytorch():
    torch = pytest.importorskip("torch")
    parts = [Range(0, 3), Range(10, 10), Range(5, 9)]
    ours, theirs = ConcatDataset(parts), torch.utils.data.ConcatDataset(parts)
    assert ours.cumulative_sizes == theirs.cumulative_sizes
    assert [ours[i] for i in range(-len(ours), len(ours))] == \
        [theirs[i] for i in range(-len(theirs), len(theirs))]


def test_subset():
    subset = Subset(Range(0, 10), [9, 2, 4])
    assert len(subset) == 3 and subset[0] == 9 and subset[-1] == 4
    assert subset.__getitems__([2, 0]) == [4, 9]

    class Remapped(Subset):
        def __getitem__(self, idx):
            return -super().__getitem__(idx)

    with pytest.raises(NotImplementedError, match="overrides __getitem__ but not __getitems__"):
        Remapped(Range(0, 3), [0])


def test_dataset_base_class():
    assert Dataset[int] is not None  # generic in annotations and base classes, as in PyTorch

    class Typed(Dataset[tuple]):
        pass

    with pytest.raises(NotImplementedError, match="should implement __getitem__"):
        Typed()[0]


def test_tensor_dataset_errors():
    with pytest.raises(ValueError, match="at least one tensor"):
        TensorDataset()
    with pytest.raises(ValueError, match=r"same first dimension .* \[3, 2\]"):
        TensorDataset(fg.ones(3), fg.ones(2))
    with pytest.raises(TypeError, match=r"tensors\[0\] must be a Tensor or a NumPy array"):
        TensorDataset([1, 2])
    with pytest.raises(TypeError, match=r"tensors\[0\] must hold bool, integer or floating"):
        TensorDataset(np.array(["a", "b"]))


# -------------------------------------------------------------------------- random_split
@pytest.mark.parametrize("n, fractions", [
    (10, [0.3, 0.7]), (11, [0.5, 0.5]), (7, [0.1, 0.2, 0.3, 0.4]), (100, [1 / 3] * 3),
    (5, [0.8, 0.2]), (13, [0.25, 0.25, 0.25, 0.25]),
])
def test_random_split_lengths_follow_pytorch(n, fractions):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parts = random_split(Range(0, n), fractions, generator=Generator(0))
    lengths = [len(p) for p in parts]
    floors = [int(np.floor(n * f)) for f in fractions]
    expected = [f + (i < n - sum(floors)) for i, f in enumerate(floors)]
    assert lengths == expected
    assert sorted(v for p in parts for v in (p[i] for i in range(len(p)))) == list(range(n))
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = torch.utils.data.random_split(range(n), fractions)
    assert lengths == [len(p) for p in theirs]


def test_random_split_with_lengths_and_generators():
    first = random_split(Range(0, 20), [5, 15], generator=Generator(3))
    again = random_split(Range(0, 20), [5, 15], generator=Generator(3))
    assert [s.indices for s in first] == [s.indices for s in again]
    assert sorted(first[0].indices + first[1].indices) == list(range(20))
    fg.manual_seed(4)
    default = random_split(Range(0, 20), [10, 10])
    fg.manual_seed(4)
    assert random_split(Range(0, 20), [10, 10])[0].indices == default[0].indices
    with pytest.warns(UserWarning, match="Length of split at index 1 is 0"):
        random_split(Range(0, 2), [1.0, 0.0])


@pytest.mark.parametrize("lengths, pattern", [
    ([3, 3], "Sum of input lengths does not equal the length of the input dataset"),
    ([1.5, -0.5], "Fraction at index 0 is not between 0 and 1"),
    ([0.5, 0.4], "lengths\\[0\\] must be a non-negative int"),
    ([-1, 6], "lengths\\[0\\] must be a non-negative int"),
])
def test_random_split_errors(lengths, pattern):
    with pytest.raises(ValueError, match=pattern):
        random_split(Range(0, 5), lengths)


# ------------------------------------------------------------------------------ samplers
def test_sequential_and_batch_samplers_match_pytorch():
    torch = pytest.importorskip("torch")
    data = Range(0, 10)
    assert list(SequentialSampler(data)) == list(torch.utils.data.SequentialSampler(data))
    for size, drop in [(3, False), (3, True), (5, True), (11, False), (11, True)]:
        ours = BatchSampler(SequentialSampler(data), size, drop)
        theirs = torch.utils.data.BatchSampler(torch.utils.data.SequentialSampler(data), size,
                                               drop)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)


def test_random_samplers():
    data = Range(0, 10)
    order = list(RandomSampler(data, generator=Generator(0)))
    assert sorted(order) == list(range(10)) and order != list(range(10))
    assert order == list(RandomSampler(data, generator=Generator(0)))
    long = list(RandomSampler(data, num_samples=25, generator=Generator(1)))
    assert len(long) == 25 and sorted(long[:10]) == sorted(long[10:20]) == list(range(10))
    drawn = list(RandomSampler(data, replacement=True, num_samples=200, generator=Generator(2)))
    assert len(drawn) == 200 and set(drawn) <= set(range(10)) and len(set(drawn)) == 10
    assert list(RandomSampler(Range(0, 0))) == []
    subset = list(SubsetRandomSampler([7, 3, 5], generator=Generator(0)))
    assert sorted(subset) == [3, 5, 7] and all(type(i) is int for i in subset)
    weighted = list(WeightedRandomSampler([0.0, 1.0, 3.0], 400, generator=Generator(0)))
    counts = np.bincount(weighted, minlength=3)
    assert counts[0] == 0 and 0.6 < counts[2] / 400 < 0.9
    unique = list(WeightedRandomSampler([1, 1, 1, 0], 3, replacement=False))
    assert sorted(unique) == [0, 1, 2]


@pytest.mark.parametrize("build, error, pattern", [
    (lambda: RandomSampler(Range(0, 3), replacement=1), TypeError, "replacement should be"),
    (lambda: RandomSampler(Range(0, 3), num_samples=0), ValueError, "num_samples should be"),
    (lambda: BatchSampler(range(3), 0, False), ValueError, "batch_size should be"),
    (lambda: BatchSampler(range(3), 2, "no"), ValueError, "drop_last should be"),
    (lambda: WeightedRandomSampler([1.0], 0), ValueError, "num_samples should be"),
    (lambda: WeightedRandomSampler([[1.0]], 1), ValueError, "weights should be a 1d"),
    (lambda: WeightedRandomSampler([1.0], 1, replacement=None), ValueError, "replacement"),
    (lambda: WeightedRandomSampler([-1.0, 2.0], 1), RuntimeError, "invalid multinomial"),
    (lambda: WeightedRandomSampler([1.0, 0.0], 2, replacement=False), RuntimeError,
     "without replacement from 1 non-zero"),
    (lambda: RandomSampler(Range(0, 3), generator=0), TypeError, "generator must be"),
])
def test_sampler_errors(build, error, pattern):
    with pytest.raises(error, match=pattern):
        build()


def test_sampler_base_and_subclasses():
    class Evens(Sampler):
        def __init__(self, n):
            self.n = n

        def __iter__(self):
            return iter(range(0, self.n, 2))

        def __len__(self):
            return (self.n + 1) // 2

    loader = DataLoader(Range(0, 7), batch_size=3, sampler=Evens(7))
    assert len(loader) == 2 and [b.tolist() for b in loader] == [[0, 2, 4], [6]]
    with pytest.raises(NotImplementedError):
        iter(Sampler())


# ------------------------------------------------------------------------ IterableDataset
class Stream(IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self):
        return self.n


@pytest.mark.parametrize("batch_size, drop_last", [(3, False), (3, True), (None, False)])
def test_iterable_dataset_loading(batch_size, drop_last):
    loader = DataLoader(Stream(7), batch_size=batch_size, drop_last=drop_last)
    got = [b.tolist() if isinstance(b, Tensor) else b for b in loader]
    if batch_size is None:
        assert got == list(range(7))
    else:
        expected = [[0, 1, 2], [3, 4, 5]] + ([] if drop_last else [[6]])
        assert got == expected
    assert len(loader) == len(got)
    chained = list(DataLoader(Stream(2) + Stream(3), batch_size=2))
    assert [b.tolist() for b in chained] == [[0, 1], [0, 1], [2]]
    assert isinstance(Stream(1) + Stream(1), ChainDataset) and len(Stream(2) + Stream(3)) == 5


def test_iterable_dataset_loading_matches_pytorch():
    torch = pytest.importorskip("torch")

    class TorchStream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(range(7))

    for batch_size, drop_last in [(3, False), (3, True), (None, False)]:
        ours = list(DataLoader(Stream(7), batch_size=batch_size, drop_last=drop_last))
        theirs = list(torch.utils.data.DataLoader(TorchStream(), batch_size=batch_size,
                                                  drop_last=drop_last))
        assert [_tree(b) for b in ours] == [_tree(b) for b in theirs]


# ------------------------------------------------------------------------ loader arguments
BAD_LOADERS = [
    ({"shuffle": True, "sampler": [0, 1]}, ValueError, "mutually exclusive with shuffle"),
    ({"batch_sampler": [[0]], "batch_size": 2}, ValueError, "batch_sampler option is mutually"),
    ({"batch_sampler": [[0]], "drop_last": True}, ValueError, "batch_sampler option is mutually"),
    ({"batch_sampler": [[0]], "sampler": [0]}, ValueError, "batch_sampler option is mutually"),
    ({"batch_size": None, "drop_last": True}, ValueError, "batch_size=None option disables"),
    ({"num_workers": -1}, ValueError, "num_workers option should be non-negative"),
    ({"timeout": -1}, ValueError, "timeout option should be non-negative"),
    ({"prefetch_factor": 2}, ValueError, "prefetch_factor option could only be specified"),
    ({"persistent_workers": True}, ValueError, "persistent_workers option needs num_workers"),
    ({"batch_size": 0}, ValueError, "batch_size should be a positive integer"),
    ({"drop_last": 1}, ValueError, "drop_last should be a boolean"),
]


@pytest.mark.parametrize("kwargs, error, pattern", BAD_LOADERS + [
    ({"collate_fn": 3}, TypeError, "collate_fn must be callable"),
    ({"num_workers": 1.5}, TypeError, "num_workers must be an int"),
])
def test_loader_argument_errors(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        DataLoader(Range(0, 4), **kwargs)


@pytest.mark.parametrize("kwargs, error, pattern", BAD_LOADERS)
def test_loader_argument_error_types_match_pytorch(kwargs, error, pattern):
    torch = pytest.importorskip("torch")
    with pytest.raises(error):
        torch.utils.data.DataLoader(Range(0, 4), **kwargs)


@pytest.mark.parametrize("kwargs", [{"shuffle": True}, {"sampler": [0]},
                                    {"batch_sampler": [[0]]}])
def test_iterable_dataset_refuses_orderings(kwargs):
    with pytest.raises(ValueError, match="DataLoader with IterableDataset: expected unspecified"):
        DataLoader(Stream(3), **kwargs)


def test_loader_without_a_length_needs_a_sampler():
    class Keyed:
        def __getitem__(self, key):
            return {"a": 1, "b": 2}[key]

    with pytest.raises(TypeError, match="dataset must have __len__"):
        DataLoader(Keyed())
    assert [b.tolist() for b in DataLoader(Keyed(), batch_size=2, sampler=["b", "a"])] == [[2, 1]]


# ---------------------------------------------------------------------------- checkpoints
def test_state_dict_resumes_an_epoch_of_a_subset_random_sampler():
    dataset = TensorDataset(np.arange(30))

    def loader():
        return DataLoader(dataset, batch_size=4,
                          sampler=SubsetRandomSampler(list(range(0, 30, 2))))

    fg.manual_seed(7)
    first = loader()
    batches = iter(first)
    seen = [next(batches)[0].tolist() for _ in range(2)]
    state = first.state_dict()
    rest = [b[0].tolist() for b in batches]
    resumed = loader()
    resumed.load_state_dict(state)
    assert [b[0].tolist() for b in resumed] == rest
    assert sorted(i for batch in seen + rest for i in batch) == list(range(0, 30, 2))
    with pytest.raises(ValueError, match=r"must hold the 15 indices in \[0, 30\)"):
        resumed.load_state_dict({**state, "order": np.arange(14)})


def test_state_dict_needs_an_ordering_it_can_record():
    for loader in (DataLoader(Range(0, 4), sampler=[3, 2, 1, 0]),
                   DataLoader(Range(0, 4), batch_sampler=[[0, 1], [2, 3]]),
                   DataLoader(Stream(4), batch_size=2)):
        with pytest.raises(TypeError, match="position cannot be checkpointed"):
            loader.state_dict()


def test_the_pytorch_import_path():
    from fastgrad.utils import data
    assert fg.utils.data is data and data.DataLoader is fg.data.DataLoader
    assert data.TensorDataset is fg.data.TensorDataset
    from fastgrad.utils.data.dataloader import default_collate as collate
    from fastgrad.utils.data.sampler import SubsetRandomSampler as sampler
    assert collate is default_collate and sampler is SubsetRandomSampler
