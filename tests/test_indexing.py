"""Indexing (``x[key]``) and item assignment (``x[key] = value``) by PyTorch's rules.

PyTorch applies integers, slices and None one at a time as views, then the index tensors,
lists and masks by NumPy's advanced indexing on the result; NumPy alone treats integers as
advanced indices too, which moves dimensions (``x[0, :, [0, 2]]``). Checked three ways: a
sequential NumPy reference written the way PyTorch's ``applySlicing`` walks a key, float64
gradchecks, and PyTorch itself on generated keys (values, shapes, gradients, assignment,
errors) where it is installed.
"""
import warnings

import numpy as np
import pytest

import fastgrad as fg
from fastgrad.autograd import gradcheck


# ---------------------------------------------------------------------- reference and keys
def reference_index(a, key):
    """``a[key]`` computed the way PyTorch's indexing walks a key: one part at a time on the
    result so far (an int selects, a slice narrows, None and a bool add a dimension), index
    arrays collected by position, then NumPy's advanced indexing on what is left. Raises
    IndexError for the keys PyTorch refuses with one (for keys of ints, slices, None,
    Ellipsis, bools and int64 or bool arrays; other numbers are refused)."""
    parts = list(key) if isinstance(key, tuple) else [key]
    for i, part in enumerate(parts):
        if isinstance(part, np.ndarray) and part.ndim == 0:
            parts[i] = part.item()  # a 0-d array selects (an int) or adds a dimension (a bool)
        elif not (part is None or part is Ellipsis or isinstance(part, (int, slice, list))
                  or isinstance(part, np.ndarray) and part.dtype.kind in "bi"):
            raise IndexError(f"not an index: {part!r}")
    is_mask = [isinstance(p, np.ndarray) and p.dtype == bool for p in parts]
    specified = sum(p.ndim if mask else 0 if p is None or p is Ellipsis or isinstance(p, bool)
                    else 1 for p, mask in zip(parts, is_mask))
    if specified > a.ndim:
        raise IndexError("too many indices")
    dim, arrays, ndim = 0, {}, a.ndim
    for part, mask in zip(parts, is_mask):
        if part is Ellipsis:
            dim += ndim - specified
        elif part is None or isinstance(part, bool):
            a = np.expand_dims(a, dim)
            if isinstance(part, bool):
                arrays[dim] = np.zeros(int(part), np.int64)
            dim += 1
        elif isinstance(part, int):
            a = np.take(a, part, axis=dim)
        elif isinstance(part, slice):
            a = a[(slice(None),) * dim + (part,)]
            dim += 1
        else:
            array = np.asarray(part)
            if mask and array.shape != a.shape[dim:dim + array.ndim]:
                raise IndexError("mask shape")
            arrays[dim] = array
            dim += array.ndim if mask else 1
    if not arrays:
        return a
    key, position = [], 0
    for start in sorted(arrays):
        key += [slice(None)] * (start - position) + [arrays[start]]
        position = start + (arrays[start].ndim if arrays[start].dtype == bool else 1)
    return a[tuple(key)]


def random_key(rng, shape, with_tensors=None):
    """A random key mixing ints (negative too), slices with steps, None, Ellipsis, bools,
    int lists, int arrays or tensors (broadcast-compatible) and bool masks; valid for
    ``shape`` except that masks and bools may not broadcast with the other indices.
    ``with_tensors(array)`` turns an index array into the tensor type under test."""
    ndim = len(shape)
    wrap = with_tensors or (lambda array: array)
    common = [(), (2,), (3,), (2, 1), (1, 3)][rng.integers(5)]

    def part_for(dims):
        """A part indexing the dimensions ``dims`` (one, or two for a 2-d mask)."""
        size = shape[dims[0]]
        kind = rng.choice(["int", "slice", "slice", "list", "array", "mask", "zero_d"])
        if len(dims) == 2:
            return wrap(rng.random((size, shape[dims[1]])) < 0.5)
        if kind == "int" and size:
            return int(rng.integers(-size, size))
        if kind == "zero_d" and size:
            return wrap(np.array(rng.integers(-size, size)))
        if kind in ("list", "array") and size:
            positions = rng.integers(-size, size, common)
            return positions.tolist() if kind == "list" and positions.ndim == 1 else \
                wrap(positions)
        if kind == "mask":
            return wrap(rng.random(size) < 0.5)
        start, stop = rng.integers(-size - 1, size + 2, 2)
        step = [None, 1, 2, 3][rng.integers(4)]
        return slice(*[None if rng.random() < 0.3 else int(v) for v in (start, stop)], step)

    consumed = int(rng.integers(0, ndim + 1))
    front = consumed if rng.random() < 0.5 else int(rng.integers(0, consumed + 1))
    parts, dim = [], 0
    while dim < front:
        width = 2 if dim + 1 < front and rng.random() < 0.15 else 1
        parts.append(part_for((dim, dim + 1)[:width]))
        dim += width
    if front < consumed:
        parts.append(Ellipsis)
        dim = ndim - (consumed - front)
        while dim < ndim:
            parts.append(part_for((dim,)))
            dim += 1
    for _ in range(int(rng.integers(0, 3))):
        extra = [None, None, True, False][rng.integers(4)]
        parts.insert(int(rng.integers(0, len(parts) + 1)), extra)
    if len(parts) == 1 and rng.random() < 0.5:
        return parts[0]
    return tuple(parts)


SHAPES = [(5,), (3, 4), (2, 3, 4), (2, 3, 2, 3), (4, 1, 3)]


# ---------------------------------------------------------------------- PyTorch's axis rules
def test_integer_and_array_split_by_a_slice_keeps_pytorch_axis_order(rng):
    a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    x = fg.tensor(a)
    out = x[0, :, [0, 2]]
    assert out.shape == (3, 2)  # NumPy: (2, 3)
    np.testing.assert_array_equal(out.numpy(), a[0][:, [0, 2]])
    np.testing.assert_array_equal(x[:, 1, [0, 2]].numpy(), a[:, 1][:, [0, 2]])
    # two arrays split by a slice: their broadcast dimension goes first, as in NumPy
    np.testing.assert_array_equal(x[[0, 1], :, [1, 3]].numpy(), a[[0, 1], :, [1, 3]])
    assert x[[0, 1], :, [1, 3]].shape == (2, 3)


def test_zero_d_integer_tensors_select_and_bool_scalars_add_a_dimension(rng):
    a = rng.standard_normal((2, 3, 4))
    x = fg.tensor(a)
    np.testing.assert_array_equal(x[fg.tensor(1)].numpy(), a[1])
    np.testing.assert_array_equal(x[fg.tensor(0), :, [0, 2]].numpy(), a[0][:, [0, 2]])
    assert x[True].shape == (1, 2, 3, 4) and x[False].shape == (0, 2, 3, 4)
    assert x[fg.tensor(True), :, [0, 1]].shape == (2, 2, 4)
    assert x[[0, 1], :, True].shape == (2, 3, 4)
    assert x[True, False].shape == (0, 2, 3, 4)
    assert fg.tensor(3.0)[None, True].shape == (1, 1)


def test_sequences_read_as_pytorch_reads_them(rng):
    a = rng.standard_normal((2, 3, 4))
    x = fg.tensor(a)
    with pytest.warns(UserWarning, match="non-tuple sequence"):
        np.testing.assert_array_equal(x[[[0, 1], [1, 2]]].numpy(), a[[0, 1], [1, 2]])
    assert x[np.array([[0, 1], [1, 0]])].shape == (2, 2, 3, 4)  # an array is one index
    assert x[[0] * 33].shape == (33, 3, 4)  # 32 or more: one index, not a tuple
    assert x[[0.5, 1.7]].shape == (2, 3, 4)  # numbers convert to int64, as PyTorch does
    assert x[[]].shape == (0, 3, 4)
    assert x[[True, False]].shape == (1, 3, 4)
    assert x[range(2)].shape == (2, 3, 4)
    with pytest.warns(UserWarning, match="uint8"):
        assert x[fg.tensor([1, 0], dtype=fg.uint8)].shape == (1, 3, 4)


def test_negative_slice_steps_reverse_as_in_numpy(rng):
    a = rng.standard_normal((3, 4))  # an extension: PyTorch raises a ValueError
    np.testing.assert_array_equal(fg.tensor(a)[::-1, 1::-2].numpy(), a[::-1, 1::-2])


def test_basic_keys_give_views_advanced_keys_copies(rng):
    a = rng.standard_normal((3, 4))
    x = fg.tensor(a)
    for key in (0, (slice(None), 1), (None, Ellipsis), (1, 2), fg.tensor(2), ()):
        assert np.shares_memory(x[key].numpy(), x.numpy()), key
    for key in ([0, 1], x > 0, True):
        assert not np.shares_memory(x[key].numpy(), x.numpy()), key
    x[1, 2].numpy()[...] = 7.0  # an element read is still a view, as in PyTorch
    assert x[1, 2].item() == 7.0


def test_generated_keys_match_the_sequential_reference(rng):
    tested = 0
    for _ in range(300):
        shape = SHAPES[rng.integers(len(SHAPES))]
        a = rng.standard_normal(shape)
        key = random_key(rng, shape)
        try:
            expected = reference_index(a, key)
        except IndexError:
            with pytest.raises(IndexError), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fg.tensor(a)[key]
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = fg.tensor(a)[key]
        assert out.shape == expected.shape, key
        np.testing.assert_array_equal(out.numpy(), expected, err_msg=repr(key))
        tested += 1
    assert tested > 200


# ----------------------------------------------------------------------------- gradients
GRAD_KEYS = [
    (0, slice(None), [0, 2]), ([1, 1, 0], Ellipsis, [2, 2, 0]), (Ellipsis, [[0], [1]]),
    (slice(None, None, 2), None, 1), (True, 1), ([0, 1], slice(None), True),
    (slice(1, None), fg.tensor([[True, False, True, False], [False, True, True, False],
                                [True, True, False, False]])),
]


@pytest.mark.parametrize("key", GRAD_KEYS, ids=[repr(k)[:40] for k in GRAD_KEYS])
def test_gradcheck_of_indexing(rng, key):
    x = fg.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    assert gradcheck(lambda t: t[key], (x,))


def test_repeated_indices_sum_their_gradients(rng):
    x = fg.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    x[[0, 0, 2], 1].sum().backward()
    expected = np.zeros((3, 4))
    expected[0, 1], expected[2, 1] = 2, 1
    np.testing.assert_array_equal(x.grad.numpy(), expected)


def test_gradcheck_of_item_assignment_into_a_buffer_and_a_non_leaf(rng):
    def build(w, v):
        out = fg.zeros(3, 4, dtype=fg.float64)
        out[0] = w[1] * 2
        out[[1, 2], 1:3] = v
        h = out * 1.5
        h[h > 1] = 0.25  # masked write into a non-leaf: its gradient stops there
        return h

    w = fg.tensor(rng.standard_normal((2, 4)), requires_grad=True)
    v = fg.tensor(rng.standard_normal((1, 2)), requires_grad=True)  # broadcast
    assert gradcheck(build, (w, v))


# ----------------------------------------------------------------------- item assignment
def test_item_assignment_values_and_broadcasting(rng):
    x = fg.zeros(2, 3, 4)
    x[0, :, [0, 2]] = fg.arange(6.0).reshape(3, 2)
    expected = np.zeros((2, 3, 4), np.float32)
    expected[0][:, [0, 2]] = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(x.numpy(), expected)
    x[x > 2] = -1.0
    expected[expected > 2] = -1.0
    np.testing.assert_array_equal(x.numpy(), expected)
    x[:, 1] = fg.ones(1, 1, 4) * 3  # leading size-1 dimensions are dropped
    expected[:, 1] = 3
    np.testing.assert_array_equal(x.numpy(), expected)
    x[1, 0, 0] = fg.tensor(9.0, dtype=fg.float64)  # basic keys cast the value
    assert x[1, 0, 0].item() == 9.0 and x.dtype == fg.float32
    x[...] = 0.5
    assert (x.numpy() == 0.5).all()
    x[False] = 2.0
    assert (x.numpy() == 0.5).all()


def test_item_assignment_into_integer_tensors_truncates_numbers():
    x = fg.zeros(3, dtype=fg.int64)
    x[0] = 2.7
    x[x == 0] = -1
    assert x.tolist() == [2, -1, -1] and x.dtype == fg.int64


def test_a_tensor_becomes_part_of_the_graph_when_a_value_requiring_grad_is_written():
    w = fg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    out = fg.zeros(2, 3)
    assert not out.requires_grad
    out[0] = w * 2
    out[1, [0, 2]] = w[:2] * 3
    assert out.requires_grad and not out.is_leaf
    (out * fg.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [2 + 12, 4 + 18, 6])


def test_writes_that_lose_values_a_backward_needs_fail_at_backward():
    w = fg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    h = w.exp()  # exp's backward reads its output
    h[0] = 0.0
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        h.sum().backward()
    out = fg.zeros(3)
    y = out * w  # reads out's old values
    out[0] = 1.0
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        y.sum().backward()


ASSIGNMENT_ERRORS = [
    ("leaf requiring grad", lambda: fg.ones(3, requires_grad=True).__setitem__(0, 1.0),
     RuntimeError, "leaf Variable that requires grad"),
    ("value list", lambda: fg.ones(3).__setitem__(0, [1.0]), TypeError, "can't assign a list"),
    ("value array", lambda: fg.ones(3).__setitem__(0, np.ones(1)), TypeError, "ndarray"),
    ("dtype with index tensor", lambda: fg.ones(3).__setitem__([0], fg.ones(1, dtype=fg.int64)),
     RuntimeError, "dtypes match"),
    ("broadcast", lambda: fg.ones(2, 3).__setitem__(0, fg.ones(2)), RuntimeError,
     "cannot be broadcast"),
    ("broadcast advanced", lambda: fg.ones(2, 3).__setitem__([0, 1], fg.ones(4)), RuntimeError,
     r"shape \[2, 3\]"),
    ("bad key", lambda: fg.ones(2, 3).__setitem__(5, 1.0), IndexError, "out of bounds"),
    ("expanded", lambda: fg.ones(3, 1).expand(3, 4).__setitem__(0, 1.0), RuntimeError,
     "expanded"),
    ("view in a graph", lambda: (fg.ones(2, 3, requires_grad=True) * 2)[0].__setitem__(1, 7.0),
     RuntimeError, "view of another tensor"),
]


@pytest.mark.parametrize("case", ASSIGNMENT_ERRORS, ids=[c[0] for c in ASSIGNMENT_ERRORS])
def test_item_assignment_errors(case):
    _, action, error, match = case
    with pytest.raises(error, match=match):
        action()


def test_item_assignment_in_no_grad_writes_a_leaf_requiring_grad():
    w = fg.ones(3, requires_grad=True)
    with fg.no_grad():
        w[0] = 5.0
    assert w.tolist() == [5.0, 1.0, 1.0] and w.is_leaf and w.requires_grad


# ---------------------------------------------------------------------------------- errors
INDEX_ERRORS = [
    (5, "out of bounds for dimension 0 with size 2"), ((slice(None), -4), "dimension 1"),
    ([0, 5], "index 5 is out of bounds"), ((0, 0, 0, 0), "too many indices"),
    (1.5, "only integers"), ({}, "got dict"),
    (np.bool_(True), "got bool"), (np.float64(1), "got float64"),
    (np.ones(3, bool), r"mask \[3\] at index 0"), ((slice(None), np.ones(2, bool)), "index 1"),
]


@pytest.mark.parametrize("key, match", INDEX_ERRORS, ids=[repr(k)[:30] for k, _ in INDEX_ERRORS])
def test_bad_keys_raise_index_error(key, match):
    with pytest.raises(IndexError, match=match):
        fg.zeros(2, 3, 4)[key]


def test_other_key_errors():
    x = fg.zeros(2, 3)
    with pytest.raises(IndexError, match="long, int, byte or bool"):
        x[fg.tensor([0.0, 1.0])]
    with pytest.raises(IndexError, match="long, int, byte or bool"):
        x[fg.tensor([1], dtype=fg.int16)]
    with pytest.raises(ValueError, match="step cannot be zero"):
        x[::0]
    with pytest.raises(IndexError, match="dimension 0.*item"):
        fg.tensor(1.0)[0]
    with pytest.raises(TypeError, match="slice indices"):
        x[0.5:1]
    with pytest.raises(IndexError, match="cannot be a str"):
        x["a"]  # PyTorch: a TypeError, from reading the string as a sequence


# ------------------------------------------------------------------------- against PyTorch
def _torch_pair(torch, rng, shape):
    a = rng.standard_normal(shape)
    return a, fg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def _key_for(torch_or_fg, key):
    """``key`` with its NumPy index arrays as tensors of ``torch_or_fg``."""
    def convert(part):
        if isinstance(part, np.ndarray):
            return torch_or_fg.tensor(part)
        return part
    return tuple(convert(p) for p in key) if isinstance(key, tuple) else convert(key)


def test_generated_keys_match_pytorch(rng):
    torch = pytest.importorskip("torch")
    compared = 0
    for _ in range(400):
        shape = SHAPES[rng.integers(len(SHAPES))]
        _, x, xt = _torch_pair(torch, rng, shape)
        key = random_key(rng, shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                expected = xt[_key_for(torch, key)]
            except IndexError:
                with pytest.raises(IndexError):
                    x[_key_for(fg, key)]
                continue
            out = x[_key_for(fg, key)]
        assert tuple(out.shape) == tuple(expected.shape), key
        np.testing.assert_array_equal(out.detach().numpy(), expected.detach().numpy(),
                                      err_msg=repr(key))
        weights = rng.standard_normal(tuple(expected.shape))
        (out * fg.tensor(weights)).sum().backward()
        (expected * torch.tensor(weights)).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), err_msg=repr(key))
        compared += 1
    assert compared > 250


def test_generated_assignments_match_pytorch(rng):
    torch = pytest.importorskip("torch")
    compared = 0
    for _ in range(300):
        shape = SHAPES[rng.integers(len(SHAPES))]
        a, x, xt = _torch_pair(torch, rng, shape)
        key = random_key(rng, shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                places = torch.arange(a.size).reshape(shape)[_key_for(torch, key)]
            except IndexError:
                continue
            # repeated places: PyTorch does not say which write wins, so write one number
            unique = len(set(places.reshape(-1).tolist())) == places.numel()
            value = rng.standard_normal(tuple(places.shape)) if unique else 2.5
            v = fg.tensor(value, requires_grad=True) if unique else value
            vt = torch.tensor(value, requires_grad=True) if unique else value
            h, ht = x * 1.0, xt * 1.0
            h[_key_for(fg, key)] = v
            ht[_key_for(torch, key)] = vt
        np.testing.assert_array_equal(h.detach().numpy(), ht.detach().numpy(),
                                      err_msg=repr(key))
        weights = rng.standard_normal(shape)
        (h * fg.tensor(weights)).sum().backward()
        (ht * torch.tensor(weights)).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), err_msg=repr(key))
        if unique:  # no gradient at all when nothing was written (x[False] = v)
            assert (v.grad is None) == (vt.grad is None), key
            if v.grad is not None:
                np.testing.assert_allclose(v.grad.numpy(), vt.grad.numpy(), err_msg=repr(key))
        compared += 1
    assert compared > 200


def test_bad_keys_raise_like_pytorch():
    torch = pytest.importorskip("torch")
    for key, _ in INDEX_ERRORS:
        with pytest.raises(IndexError):
            torch.zeros(2, 3, 4)[_key_for(torch, key)]
