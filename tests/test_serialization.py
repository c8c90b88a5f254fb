"""Checkpoints (fastgrad.serialization): typed round trips, atomic writes, refusal of bad
files, safetensors/PyTorch interoperability, and exact resume of a training loop in-process."""
import collections
import io
import json
import math
import os
import struct

import numpy as np
import pytest

import fastgrad as fg
import fastgrad.nn.functional as F
from fastgrad import nn, serialization
from fastgrad.optim import lr_scheduler
from fastgrad.serialization import load, save, write_safetensors

DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64, np.uint8,
          np.uint16, np.uint32, np.uint64, np.bool_]


def _mlp():
    return nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(16, 3))


def _assert_same_state(a, b):
    """Two model state dicts with bit-identical values."""
    assert list(a) == list(b)
    for key in a:
        x, y = np.asarray(a[key]), np.asarray(b[key])
        assert x.dtype == y.dtype and x.shape == y.shape, key
        assert x.tobytes() == y.tobytes(), key


# ------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 0, 4), (3, 5)])
def test_arrays_of_every_dtype_and_shape_round_trip_bit_for_bit(tmp_path, dtype, shape):
    rng = np.random.default_rng(0)
    values = np.asarray(np.abs(rng.standard_normal(shape)) * 50).astype(dtype)
    path = tmp_path / "a.safetensors"
    save({"t": fg.Tensor(values.copy()), "a": values}, path)
    back = load(path)
    assert isinstance(back["t"], fg.Tensor) and isinstance(back["a"], np.ndarray)
    for loaded in (back["t"].numpy(), back["a"]):
        assert loaded.dtype == values.dtype and loaded.shape == values.shape
        assert loaded.tobytes() == values.tobytes()
        assert loaded.flags.writeable and loaded.flags.c_contiguous


def test_plain_values_keep_their_types(tmp_path):
    big = 2 ** 127 + 12345  # a PCG64 state word
    meta = {
        "int": 3, "big": big, "neg": -7, "float": 0.1, "whole_float": 2.0, "neg_zero": -0.0,
        "inf": math.inf, "ninf": -math.inf, "nan": math.nan, "true": True, "none": None,
        "str": "héllo \"quoted\" . dots", "list": [1, [2.5, "x"], []], "tuple": (1, (2, 3)),
        "empty_tuple": (), "empty": {}, "int_keys": {0: "a", 10: "b"},
        "odict": collections.OrderedDict([("z", 1), ("a", 2)]),
        "counter": collections.Counter([4, 4, 9]),
        "np_f32": np.float32(1.5), "np_i64": np.int64(-3), "np_bool": np.bool_(True),
    }
    path = tmp_path / "m.safetensors"
    save({"meta": meta}, path)
    back = load(path)["meta"]
    assert list(back) == list(meta)
    for key, value in meta.items():
        got = back[key]
        assert type(got) is type(value), key
        if key == "nan":
            assert math.isnan(got)
        elif key == "neg_zero":
            assert math.copysign(1.0, got) == -1.0
        else:
            assert got == value, key
    assert back["big"] == big
    assert list(back["odict"]) == ["z", "a"] and list(back["int_keys"]) == [0, 10]
    assert type(back["list"][1]) is list and type(back["tuple"][1]) is tuple
    assert back["np_f32"].dtype == np.float32 and back["np_i64"].dtype == np.int64


def test_a_full_checkpoint_round_trips_and_loads_into_fresh_objects(tmp_path):
    fg.manual_seed(0)
    model = _mlp()
    optimizer = fg.optim.Adam(model.parameters(), lr=1e-2, amsgrad=True)
    scheduler = lr_scheduler.MultiStepLR(optimizer, milestones=[1, 3])
    x, y = fg.randn(8, 6), fg.tensor(np.arange(8) % 3)
    for _ in range(2):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        scheduler.step()
    checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                  "scheduler": scheduler.state_dict(),
                  "rng": fg.random.default_generator.get_state(), "step": 2,
                  "metadata": {"run": "test", "lr": 1e-2}}
    path = tmp_path / "ckpt.safetensors"
    save(checkpoint, path)
    back = load(path)
    assert back["step"] == 2 and type(back["step"]) is int
    assert back["metadata"] == {"run": "test", "lr": 1e-2}
    assert back["rng"] == checkpoint["rng"]
    assert isinstance(back["model"], collections.OrderedDict)
    _assert_same_state(back["model"], checkpoint["model"])
    saved_opt, loaded_opt = checkpoint["optimizer"], back["optimizer"]
    assert loaded_opt["param_groups"] == saved_opt["param_groups"]
    assert type(loaded_opt["param_groups"][0]["betas"]) is tuple
    assert sorted(loaded_opt["state"]) == sorted(saved_opt["state"])
    for index, state in saved_opt["state"].items():
        assert type(loaded_opt["state"][index]["step"]) is float
        for name, value in state.items():
            assert np.array_equal(np.asarray(loaded_opt["state"][index][name]),
                                  np.asarray(value))
    assert back["scheduler"] == checkpoint["scheduler"]
    assert type(back["scheduler"]["milestones"]) is collections.Counter

    fg.manual_seed(99)
    fresh = _mlp()
    fresh_opt = fg.optim.Adam(fresh.parameters(), lr=1.0)
    fresh_sched = lr_scheduler.MultiStepLR(fresh_opt, milestones=[1, 3])
    fresh.load_state_dict(back["model"])
    fresh_opt.load_state_dict(back["optimizer"])
    fresh_sched.load_state_dict(back["scheduler"])
    _assert_same_state(fresh.state_dict(), model.state_dict())
    assert fresh_opt.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]


def test_as_numpy_gives_arrays_for_tensors(tmp_path):
    path = tmp_path / "n.safetensors"
    save({"w": fg.ones(2, 3)}, path)
    assert isinstance(load(path, as_numpy=True)["w"], np.ndarray)


def test_every_scheduler_state_round_trips(tmp_path):
    def sequential(o):
        return lr_scheduler.SequentialLR(o, [lr_scheduler.LinearLR(o, total_iters=2),
                                             lr_scheduler.StepLR(o, 2)], milestones=[2])
    factories = [
        lambda o: lr_scheduler.StepLR(o, step_size=2, gamma=0.5),
        lambda o: lr_scheduler.MultiStepLR(o, milestones=[2, 2, 5]),
        lambda o: lr_scheduler.ExponentialLR(o, gamma=0.9),
        lambda o: lr_scheduler.LinearLR(o), lambda o: lr_scheduler.PolynomialLR(o),
        lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=5),
        lambda o: lr_scheduler.OneCycleLR(o, max_lr=0.5, total_steps=20),
        lambda o: lr_scheduler.ReduceLROnPlateau(o, patience=1),
        sequential,
    ]
    for factory in factories:
        optimizer = fg.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1, momentum=0.9)
        scheduler = factory(optimizer)
        plateau = isinstance(scheduler, lr_scheduler.ReduceLROnPlateau)

        def advance(s):
            if plateau:
                s.step(1.0)  # a loss that never improves
            else:
                s.step()
        for _ in range(3):
            advance(scheduler)
        path = tmp_path / "s.safetensors"
        save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, path)
        back = load(path)
        fresh_opt = fg.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1, momentum=0.9)
        fresh = factory(fresh_opt)
        fresh_opt.load_state_dict(back["optimizer"])
        fresh.load_state_dict(back["scheduler"])
        for _ in range(6):
            advance(scheduler)
            advance(fresh)
            assert fresh.get_last_lr() == scheduler.get_last_lr(), type(scheduler).__name__


def test_rng_state_round_trips(tmp_path):
    generator = fg.Generator(5)
    generator.numpy.standard_normal(7)
    path = tmp_path / "r.safetensors"
    save({"rng": generator.get_state()}, path)
    expected = generator.numpy.standard_normal(5)
    other = fg.Generator(0)
    other.set_state(load(path)["rng"])
    assert np.array_equal(other.numpy.standard_normal(5), expected)


@pytest.mark.parametrize("value, message", [
    (np.zeros(2, np.complex64), "complex64"),
    (np.array(["a"], object), "object"),
    (lambda: 0, "function"),
    ({1, 2}, "set"),
    (nn.Linear(2, 2), "state_dict"),
    ({(1, 2): 0}, "keys must be str or int"),
    ({True: 0}, "keys must be str or int"),
])
def test_unsupported_values_raise_a_type_error_naming_the_path(tmp_path, value, message):
    with pytest.raises(TypeError, match=message) as info:
        save({"outer": {"inner": value}}, tmp_path / "x.safetensors")
    assert "outer.inner" in str(info.value)
    assert not os.listdir(tmp_path)


def test_save_refuses_colliding_keys(tmp_path):
    with pytest.raises(ValueError, match="'a.b'"):
        save({"a.b": fg.ones(1), "a": {"b": fg.ones(1)}}, tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match="__metadata__"):
        save({"__metadata__": fg.ones(1)}, tmp_path / "x.safetensors")


def test_non_contiguous_and_big_endian_arrays_are_saved_by_value(tmp_path):
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    big_endian = base.astype(">f4")
    path = tmp_path / "v.safetensors"
    save({"t": base.T, "b": big_endian, "s": base[::2, 1::3]}, path)
    back = load(path)
    np.testing.assert_array_equal(back["t"], base.T)
    np.testing.assert_array_equal(back["s"], base[::2, 1::3])
    assert back["b"].dtype == np.float32 and back["b"].dtype.isnative
    np.testing.assert_array_equal(back["b"], base)


# ---------------------------------------------------------------------------- atomic writes
def _previous_checkpoint(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    save({"w": fg.ones(100), "step": 1}, path)
    return path


def _check_intact(path):
    back = load(path)
    assert back["step"] == 1 and np.array_equal(back["w"].numpy(), np.ones(100, np.float32))
    assert os.listdir(path.parent) == [path.name]  # no temporary file left behind


def test_a_crash_in_the_middle_of_the_write_leaves_the_previous_file(tmp_path, monkeypatch):
    path = _previous_checkpoint(tmp_path)

    def write_half_then_fail(handle, chunks):
        data = b"".join(bytes(c) for c in chunks)
        handle.write(data[:len(data) // 2])
        handle.flush()
        raise OSError("simulated crash: disk full")

    monkeypatch.setattr(serialization, "_write_chunks", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save({"w": fg.zeros(100), "step": 2}, path)
    _check_intact(path)


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_a_failure_before_the_rename_leaves_the_previous_file(tmp_path, monkeypatch, failing):
    path = _previous_checkpoint(tmp_path)

    def fail(*args):
        raise OSError(f"simulated {failing} failure")

    monkeypatch.setattr(serialization.os, failing, fail)
    with pytest.raises(OSError, match=failing):
        save({"w": fg.zeros(100), "step": 2}, path)
    monkeypatch.undo()
    _check_intact(path)


def test_a_successful_save_replaces_the_file_and_keeps_no_temporary(tmp_path):
    path = _previous_checkpoint(tmp_path)
    save({"w": fg.zeros(3), "step": 2}, path)
    assert load(path)["step"] == 2
    assert os.listdir(tmp_path) == [path.name]


# ------------------------------------------------------------------------------ refusals
def _raw(path, header, data=b"", length=None):
    """Write a hand-made safetensors file (header a dict, or bytes used verbatim)."""
    encoded = header if isinstance(header, bytes) else json.dumps(header).encode()
    length = len(encoded) if length is None else length
    path.write_bytes(struct.pack("<Q", length) + encoded + data)
    return path


def _f32(offsets, shape=(2,)):
    return {"dtype": "F32", "shape": list(shape), "data_offsets": list(offsets)}


BAD_FILES = {
    "empty": (b"", None, None, "too few"),
    "short": (b"\x01\x02\x03", None, None, "too few"),
    "length_zero": (b"{}", b"", 0, "bad header length"),
    "length_huge": (b"{}", b"", 2 ** 60, "bad header length"),
    "length_past_end": (b"{}", b"", 50, "bad header length"),
    "not_utf8": (b"\xff\xfe{}", b"", None, "not valid JSON"),
    "not_json": (b"{'a': 1}", b"", None, "not valid JSON"),
    "not_object": (b"[1, 2]", b"", None, "JSON object"),
    "nan_constant": (b'{"a": NaN}', b"", None, "not valid JSON"),
    "duplicate_key": (b'{"a": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}, '
                      b'"a": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}}', b"",
                      None, "duplicate"),
    "unknown_dtype": ({"a": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}, bytes(4),
                      None, "unknown or unsupported dtype 'BF16'"),
    "bad_shape": ({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, bytes(4),
                  None, "invalid shape"),
    "bad_offsets": ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, bytes(4),
                    None, "invalid data_offsets"),
    "extra_field": ({"a": {**_f32((0, 8)), "x": 1}}, bytes(8), None, "exactly"),
    "size_mismatch": ({"a": _f32((0, 12))}, bytes(12), None, "needs 8 bytes"),
    "out_of_range": ({"a": _f32((0, 8)), "b": _f32((8, 16))}, bytes(12), None, "truncated"),
    "overlap": ({"a": _f32((0, 8)), "b": _f32((4, 12))}, bytes(12), None, "overlaps"),
    "gap": ({"a": _f32((0, 8)), "b": _f32((12, 20))}, bytes(20), None, "gap"),
    "trailing": ({"a": _f32((0, 8))}, bytes(16), None, "follow"),
    "metadata_not_strings": ({"__metadata__": {"a": 1}}, b"", None, "__metadata__"),
    "bool_not_0_or_1": ({"a": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}},
                        b"\x01\x07", None, "other than 0 and 1"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_foreign_and_malformed_files_are_refused_with_the_path(tmp_path, case):
    header, data, length, message = BAD_FILES[case]
    path = tmp_path / f"{case}.safetensors"
    if data is None:
        path.write_bytes(header)
    else:
        _raw(path, header, data, length)
    with pytest.raises(ValueError, match=message) as info:
        load(path)
    assert str(path) in str(info.value)


def _checkpoint(tmp_path):
    path = tmp_path / "c.safetensors"
    save({"w": fg.tensor(np.arange(64, dtype=np.float32)), "step": 3}, path)
    return path


def test_a_truncated_checkpoint_is_refused(tmp_path):
    path = _checkpoint(tmp_path)
    content = path.read_bytes()
    for keep in (len(content) - 1, len(content) - 100, 40, 8):
        path.write_bytes(content[:keep])
        with pytest.raises(ValueError, match=str(path)):
            load(path)


def test_a_flipped_data_byte_fails_the_checksum(tmp_path):
    path = _checkpoint(tmp_path)
    content = bytearray(path.read_bytes())
    content[-7] ^= 0x10
    path.write_bytes(bytes(content))
    with pytest.raises(ValueError, match="corrupted: the sha256"):
        load(path)


def _rewrite_metadata(path, change):
    content = path.read_bytes()
    (length,) = struct.unpack("<Q", content[:8])
    header = json.loads(content[8:8 + length])
    change(header["__metadata__"])
    _raw(path, header, content[8 + length:])


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update({"fastgrad.structure": '{"bogus": 1}'}), "unknown node"),
    (lambda m: m.update({"fastgrad.structure": "{not json"}), "not JSON"),
    (lambda m: m.update({"fastgrad.structure": '{"dict": [["w", {"tensor": "zz"}]]}'}),
     "missing"),
    (lambda m: m.update({"fastgrad.structure": '{"dict": [["step", 3]]}'}),
     "not part of the structure"),
    (lambda m: m.update({"fastgrad.structure": "[" * 100000 + "]" * 100000}), "structure"),
    (lambda m: m.update({"fastgrad.version": "2"}), "version '2'"),
    (lambda m: m.pop("fastgrad.sha256"), "without its checksum"),
])
def test_a_corrupted_structure_is_refused(tmp_path, change, message):
    path = _checkpoint(tmp_path)
    _rewrite_metadata(path, change)
    with pytest.raises(ValueError, match=message) as info:
        load(path)
    assert str(path) in str(info.value)


def test_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "absent.safetensors")


def test_write_safetensors_validates_names_and_metadata(tmp_path):
    with pytest.raises(ValueError, match="non-empty"):
        write_safetensors(tmp_path / "x", {"": np.ones(1)})
    with pytest.raises(TypeError, match="str to str"):
        write_safetensors(tmp_path / "x", {"a": np.ones(1)}, {"k": 1})
    with pytest.raises(TypeError, match="Tensor or numpy.ndarray"):
        write_safetensors(tmp_path / "x", {"a": [1.0]})


def test_data_is_aligned_in_the_file(tmp_path):
    path = tmp_path / "al.safetensors"
    save({"a": np.ones(3, np.uint8), "b": np.ones(3, np.float64), "c": np.ones(1, np.int16)},
         path)
    content = path.read_bytes()
    (length,) = struct.unpack("<Q", content[:8])
    assert (8 + length) % 8 == 0
    header = json.loads(content[8:8 + length])
    for entry in (v for k, v in header.items() if k != "__metadata__"):
        begin = entry["data_offsets"][0]
        assert begin % {"F64": 8, "I16": 2, "U8": 1}[entry["dtype"]] == 0


# ------------------------------------------------------------------------- interoperability
def test_the_safetensors_numpy_loader_reads_fastgrad_files_and_back(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    rng = np.random.default_rng(1)
    arrays = {f"x.{np.dtype(d).name}": (np.abs(rng.standard_normal((3, 2))) * 9).astype(d)
              for d in DTYPES}
    path = tmp_path / "fg.safetensors"
    save({"nested": {k.split(".")[1]: v for k, v in arrays.items()}, "step": 4}, path)
    read = st.load_file(str(path))
    assert sorted(read) == sorted(f"nested.{k.split('.')[1]}" for k in arrays)
    for key, value in arrays.items():
        got = read[f"nested.{key.split('.')[1]}"]
        assert got.dtype == value.dtype and np.array_equal(got, value)
    foreign = tmp_path / "st.safetensors"
    st.save_file(arrays, str(foreign), metadata={"format": "np"})
    back = load(foreign, as_numpy=True)
    assert sorted(back) == sorted(arrays)
    for key, value in arrays.items():
        assert back[key].dtype == value.dtype and np.array_equal(back[key], value)


def _twin_models(torch):
    fg.manual_seed(3)
    ours = nn.Sequential(nn.Linear(5, 7), nn.BatchNorm1d(7), nn.Tanh(), nn.Linear(7, 2))
    theirs = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.BatchNorm1d(7),
                                 torch.nn.Tanh(), torch.nn.Linear(7, 2))
    return ours, theirs


def test_fastgrad_weights_load_into_the_matching_pytorch_module(tmp_path):
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    ours, theirs = _twin_models(torch)
    x = fg.randn(16, 5)
    for _ in range(3):
        ours(x)  # moves the running statistics away from their initial values
    ours.eval()
    theirs.eval()
    path = tmp_path / "w.safetensors"
    save(ours.state_dict(), path)
    theirs.load_state_dict(st_torch.load_file(str(path)), strict=True)
    assert int(theirs[1].num_batches_tracked) == 3
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x.numpy())).numpy()
    np.testing.assert_allclose(ours(x).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_pytorch_written_weights_load_into_fastgrad_modules(tmp_path):
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    ours, theirs = _twin_models(torch)
    lstm_ours = nn.LSTM(3, 4, num_layers=2, batch_first=True)
    lstm_theirs = torch.nn.LSTM(3, 4, num_layers=2, batch_first=True)
    theirs.train()
    theirs(torch.randn(16, 5))
    theirs.eval()
    path = tmp_path / "t.safetensors"
    st_torch.save_file({**theirs.state_dict(),
                        **{f"lstm.{k}": v for k, v in lstm_theirs.state_dict().items()}},
                       str(path))
    loaded = load(path)
    ours.load_state_dict({k: v for k, v in loaded.items() if not k.startswith("lstm.")})
    lstm_ours.load_state_dict({k[5:]: v for k, v in loaded.items() if k.startswith("lstm.")})
    ours.eval()
    x = np.random.default_rng(2).standard_normal((4, 5)).astype(np.float32)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
        sequence = torch.randn(2, 6, 3)
        expected_seq = lstm_theirs(sequence)[0].numpy()
    np.testing.assert_allclose(ours(fg.tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lstm_ours(fg.tensor(sequence.numpy()))[0].numpy(),
                               expected_seq, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- exact resume
_X = np.random.default_rng(7).standard_normal((64, 6)).astype(np.float32)
_Y = np.random.default_rng(8).integers(0, 3, 64)

OPTIMIZERS = {
    "sgd": lambda p: fg.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
    "adam": lambda p: fg.optim.Adam(p, lr=1e-2, amsgrad=True, weight_decay=1e-3),
    "adamw": lambda p: fg.optim.AdamW(p, lr=1e-2),
    "rmsprop": lambda p: fg.optim.RMSprop(p, lr=1e-3, momentum=0.5, centered=True),
    "adagrad": lambda p: fg.optim.Adagrad(p, lr=1e-2),
    "groups": lambda p: fg.optim.Adam([{"params": list(p)[:2], "lr": 1e-3},
                                       {"params": list(p)[2:]}], lr=1e-2),
}


def _build(seed, optimizer):
    fg.manual_seed(seed)
    model = _mlp()
    opt = OPTIMIZERS[optimizer](list(model.parameters()))
    return model, opt, lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)


def _train(model, optimizer, scheduler, steps):
    """The loop of the module docstring: batches and dropout masks from the default stream."""
    model.train()
    for _ in range(steps):
        index = fg.random.numpy_generator().integers(0, len(_X), 16)
        optimizer.zero_grad()
        F.cross_entropy(model(fg.tensor(_X[index])), fg.tensor(_Y[index])).backward()
        optimizer.step()
        scheduler.step()


def _checkpoint_of(model, optimizer, scheduler, step):
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": fg.random.default_generator.get_state(), "step": step,
            "metadata": {"note": "resume test"}}


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_resuming_from_a_checkpoint_is_bit_identical_to_continuing(tmp_path, optimizer):
    path = tmp_path / "run.safetensors"
    model, opt, sched = _build(0, optimizer)
    _train(model, opt, sched, 5)
    save(_checkpoint_of(model, opt, sched, 5), path)
    _train(model, opt, sched, 7)
    uninterrupted = model.state_dict()

    def resume(restore_rng):
        fresh, fresh_opt, fresh_sched = _build(123, optimizer)  # other weights, other stream
        checkpoint = load(path)
        fresh.load_state_dict(checkpoint["model"])
        fresh_opt.load_state_dict(checkpoint["optimizer"])
        fresh_sched.load_state_dict(checkpoint["scheduler"])
        if restore_rng:
            fg.random.default_generator.set_state(checkpoint["rng"])
        assert checkpoint["step"] == 5
        _train(fresh, fresh_opt, fresh_sched, 7)
        return fresh, fresh_opt, fresh_sched

    fresh, fresh_opt, fresh_sched = resume(restore_rng=True)
    _assert_same_state(fresh.state_dict(), uninterrupted)
    assert fresh_sched.get_last_lr() == sched.get_last_lr()
    for group, other in zip(fresh_opt.param_groups, opt.param_groups):
        assert group["lr"] == other["lr"]
    # the check has teeth: without the random stream the batches and masks differ
    drifted, _, _ = resume(restore_rng=False)
    assert any(not np.array_equal(drifted.state_dict()[k].numpy(), v.numpy())
               for k, v in uninterrupted.items())


# ------------------------------------------------------------ PyTorch's call forms of save/load
def _tutorial_checkpoint():
    """The checkpoint of PyTorch's "saving and loading a general checkpoint" tutorial."""
    fg.manual_seed(0)
    model = _mlp()
    optimizer = fg.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = fg.randn(8, 6), fg.tensor(np.arange(8) % 3)
    for _ in range(2):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    checkpoint = {"epoch": 2, "model_state_dict": model.state_dict(),
                  "optimizer_state_dict": optimizer.state_dict(), "loss": loss.item(),
                  "loss_tensor": loss, "history": [1.5, 1.25], "notes": {"run": "t", "ok": True},
                  "rng": fg.random.default_generator.get_state()}
    return model, optimizer, (x, y), checkpoint


def _resume_and_step(checkpoint, batch):
    """A fresh model and optimizer loaded from ``checkpoint``, after one more step."""
    fg.manual_seed(42)
    model = _mlp()
    optimizer = fg.optim.SGD(model.parameters(), lr=1.0)
    model.load_state_dict(checkpoint["model_state_dict"])
    optimizer.load_state_dict(checkpoint["optimizer_state_dict"])
    fg.random.default_generator.set_state(checkpoint["rng"])  # the same dropout masks
    optimizer.zero_grad()
    F.cross_entropy(model(batch[0]), batch[1]).backward()
    optimizer.step()
    return model


@pytest.mark.parametrize("target", ["str", "pathlike", "bytesio", "file"])
def test_the_tutorial_checkpoint_round_trips_through_paths_and_file_objects(tmp_path, target):
    model, optimizer, batch, checkpoint = _tutorial_checkpoint()
    path = tmp_path / "model.pt"
    if target == "bytesio":
        buffer = io.BytesIO()
        save(checkpoint, buffer)
        buffer.seek(0)
        back = fg.load(buffer, weights_only=True)
    elif target == "file":
        with open(path, "wb") as handle:
            fg.save(checkpoint, handle)
            assert not handle.closed
        with open(path, "rb") as handle:
            back = fg.load(handle, map_location="cpu")
    else:
        where = str(path) if target == "str" else path
        fg.save(checkpoint, where)
        back = fg.load(where, map_location=fg.tensor(0).device if hasattr(fg.Tensor, "device")
                       else "cpu", weights_only=True)
    assert back["epoch"] == 2 and type(back["epoch"]) is int
    assert back["loss"] == checkpoint["loss"] and type(back["loss"]) is float
    assert back["loss_tensor"].shape == () and back["loss_tensor"].item() == checkpoint["loss"]
    assert back["history"] == [1.5, 1.25] and back["notes"] == {"run": "t", "ok": True}
    _assert_same_state(back["model_state_dict"], checkpoint["model_state_dict"])
    optimizer.zero_grad()
    F.cross_entropy(model(batch[0]), batch[1]).backward()
    optimizer.step()  # the uninterrupted run's next step, with the momentum buffers
    _assert_same_state(_resume_and_step(back, batch).state_dict(), model.state_dict())


def test_save_and_load_of_other_top_level_values(tmp_path):
    save(fg.arange(4), tmp_path / "t.pt")
    tensor = load(tmp_path / "t.pt")
    assert isinstance(tensor, fg.Tensor) and tensor.numpy().tolist() == [0, 1, 2, 3]
    for value in ([fg.ones(2), fg.zeros(1)], 7, ("a", 1.5)):
        save(value, tmp_path / "v.safetensors")
        back = load(tmp_path / "v.safetensors")
        assert type(back) is type(value) and len(_flat(back)) == len(_flat(value))


def _flat(value):
    return value if isinstance(value, (list, tuple)) else [value]


def test_file_objects_are_read_from_their_position_and_written_at_it():
    buffer = io.BytesIO(b"head")
    buffer.seek(4)
    save({"w": fg.ones(3)}, buffer)
    assert buffer.getvalue().startswith(b"head")
    buffer.seek(4)
    assert load(buffer)["w"].numpy().tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="<BytesIO>: not a valid safetensors file"):
        load(io.BytesIO(b"\x01\x02"))


class _Unseekable(io.RawIOBase):
    """A stream that can only be read forward (a pipe, a socket)."""

    def __init__(self, data):
        self.data = io.BytesIO(data)

    def readable(self):
        return True

    def readinto(self, buffer):
        return self.data.readinto(buffer)


def test_an_unseekable_stream_loads():
    buffer = io.BytesIO()
    save({"w": fg.ones(2), "n": 1}, buffer)
    back = load(io.BufferedReader(_Unseekable(buffer.getvalue())))
    assert back["n"] == 1 and back["w"].numpy().tolist() == [1.0, 1.0]


def test_bad_targets_are_refused(tmp_path):
    with pytest.raises(TypeError, match="path .* or a binary file object, got int"):
        save({"w": fg.ones(1)}, 3)
    with pytest.raises(TypeError, match="path .* or a binary file object, got NoneType"):
        load(None)
    with open(tmp_path / "t.txt", "w") as handle, \
            pytest.raises(TypeError, match="binary file object .*'wb'"):
        save({"w": fg.ones(1)}, handle)
    save({"w": fg.ones(1)}, tmp_path / "t.txt")
    with open(tmp_path / "t.txt") as handle, \
            pytest.raises(TypeError, match="binary file object .*'rb'"):
        load(handle)


@pytest.mark.parametrize("model", [
    lambda: _mlp(), lambda: fg.optim.SGD(_mlp().parameters(), lr=0.1),
])
def test_saving_a_whole_module_or_optimizer_says_to_save_its_state_dict(tmp_path, model):
    with pytest.raises(TypeError, match=r"save its state_dict\(\) instead") as info:
        save(model(), tmp_path / "m.pt")
    assert "never unpickled" in str(info.value)
    with pytest.raises(TypeError, match=r"cannot save model: a Sequential .* state_dict"):
        save({"model": _mlp()}, io.BytesIO())


class _Device:
    """A device object as PyTorch's (and fastgrad's, where it has one): a ``.type``."""

    def __init__(self, kind):
        self.type = kind

    def __repr__(self):
        return f"device(type={self.type!r})"


def _cpu_forms():
    forms = ["cpu", "cpu:0", b"cpu", _Device("cpu"), {"cpu": "cpu"}, {"cuda:0": "cpu"},
             {"cpu": _Device("cpu")}, lambda storage, location: storage,
             lambda storage, location: None]
    if hasattr(fg, "device"):
        forms.append(fg.device("cpu"))
    return forms


@pytest.mark.parametrize("map_location", _cpu_forms())
def test_map_location_forms_that_mean_the_cpu(tmp_path, map_location):
    save({"w": fg.ones(2), "n": 3}, tmp_path / "c.pt")
    back = load(tmp_path / "c.pt", map_location=map_location)
    assert back["n"] == 3 and back["w"].numpy().tolist() == [1.0, 1.0]


def test_a_map_location_callable_sees_each_tensor_and_its_location(tmp_path):
    seen = []

    def halve(tensor, location):
        seen.append((tensor.shape, location))
        return tensor * 0.5

    save({"a": fg.ones(2), "b": [fg.ones(1, 3)]}, tmp_path / "c.pt")
    back = load(tmp_path / "c.pt", map_location=halve)
    assert sorted(seen) == [((1, 3), "cpu"), ((2,), "cpu")]
    assert back["a"].numpy().tolist() == [0.5, 0.5]


@pytest.mark.parametrize("kwargs, error, message", [
    ({"map_location": "cuda"}, RuntimeError, "onto device 'cuda'.* no CUDA backend"),
    ({"map_location": "cuda:1"}, RuntimeError, "onto device 'cuda:1'"),
    ({"map_location": _Device("cuda")}, RuntimeError, r"device\(type='cuda'\)"),
    ({"map_location": {"cpu": "cuda:0"}}, RuntimeError, "onto device 'cuda:0'"),
    ({"map_location": "gpu"}, RuntimeError, "onto device 'gpu'"),
    ({"map_location": 3}, TypeError, "map_location must be a device"),
    ({"map_location": lambda s, loc: "x"}, TypeError, "must return a Tensor or None, got str"),
    ({"weights_only": False}, ValueError, "weights_only=False .* never unpickled"),
    ({"weights_only": "yes"}, TypeError, "weights_only must be a bool or None"),
    ({"pickle_module": json}, RuntimeError, "never unpickles"),
    ({"mmap": "yes"}, TypeError, "mmap must be a bool or None"),
])
def test_load_arguments_that_are_refused(tmp_path, kwargs, error, message):
    path = tmp_path / "c.pt"
    save({"w": fg.ones(2)}, path)
    with pytest.raises(error, match=message):
        load(path, **kwargs)


@pytest.mark.parametrize("kwargs", [{"weights_only": None}, {"weights_only": True},
                                    {"mmap": True}, {"mmap": False}, {"as_numpy": True}])
def test_load_arguments_that_are_accepted(tmp_path, kwargs):
    path = tmp_path / "c.pt"
    save({"w": fg.ones(2)}, path)
    assert np.asarray(load(path, **kwargs)["w"]).tolist() == [1.0, 1.0]


def test_save_and_load_take_pytorchs_leading_parameters():
    torch = pytest.importorskip("torch")
    import inspect
    for ours, theirs, count in ((save, torch.save, 2), (load, torch.load, 5)):
        mine = list(inspect.signature(ours).parameters.values())[:count]
        their = list(inspect.signature(theirs).parameters.values())[:count]
        assert [(p.name, p.kind) for p in mine] == [(p.name, p.kind) for p in their]
