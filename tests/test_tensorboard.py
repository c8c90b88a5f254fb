"""GradientMonitor.to_tensorboard: the event files it writes, read back with tensorboardX's
own protobufs (skipped without tensorboardX), and its message when tensorboardX is missing."""
import struct
import sys

import numpy as np
import pytest

from fastgrad import demo


@pytest.fixture(scope="module")
def monitor():
    return demo.run(demo.Config(cell="rnn", depth=1, width=16, length=20, optimizer="adam",
                                lr=0.03, steps=4, batch_size=32, seed=0)).monitor


def _events(logdir):
    """Every Event of every event file in ``logdir`` (TFRecord framing: a little-endian
    uint64 length, its masked CRC, the record, its masked CRC)."""
    event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2")
    events = []
    for path in sorted(logdir.iterdir()):
        data = path.read_bytes()
        at = 0
        while at < len(data):
            (length,) = struct.unpack_from("<Q", data, at)
            at += 12
            events.append(event_pb2.Event.FromString(data[at:at + length]))
            at += length + 4
    return events


def _values(events):
    """``{tag: [(step, summary value)]}``."""
    found = {}
    for event in events:
        for value in event.summary.value:
            found.setdefault(value.tag, []).append((event.step, value))
    return found


def test_to_tensorboard_writes_norms_time_profiles_and_verdicts(monitor, tmp_path):
    pytest.importorskip("tensorboardX")
    history = monitor.history()
    assert monitor.to_tensorboard(tmp_path) == 4
    values = _values(_events(tmp_path))
    steps = [step for step, _ in values["global_norm"]]
    assert steps == [0, 1, 2, 3]
    np.testing.assert_allclose([v.simple_value for _, v in values["global_norm"]],
                               history["global_norm"], rtol=1e-6)
    np.testing.assert_allclose([v.simple_value for _, v in values["grad_norm/rnn"]],
                               history["grad_norm"][:, 0], rtol=1e-6)
    assert "update_ratio/head" in values and "clipped_norm" in values
    norms = history["time_grad_norms"]["rnn.l0"]
    for s, (step, value) in enumerate(values["time/rnn.l0"]):
        assert step == s
        assert list(value.histo.bucket_limit) == list(range(1, 21))
        np.testing.assert_array_equal(value.histo.bucket, norms[s])
    ratio = [v.simple_value for _, v in values["time/rnn.l0/first_over_last"]]
    np.testing.assert_allclose(ratio, norms[:, 0] / norms[:, -1], rtol=1e-6)
    assert len(values["time/rnn.l0/horizon"]) == 4
    (step, text), = values["verdicts/text_summary"]
    assert step == 2 and b"vanishing-in-time" in text.tensor.string_val[0]
    assert [s for s, _ in values["verdicts/vanishing-in-time"]] == [2]


def test_to_tensorboard_writes_each_step_once(monitor, tmp_path):
    pytest.importorskip("tensorboardX")
    assert monitor.to_tensorboard(str(tmp_path)) == 4
    assert monitor.to_tensorboard(tmp_path) == 0
    values = _values(_events(tmp_path))
    assert len(values["global_norm"]) == 4 and len(values["verdicts/text_summary"]) == 1


def test_to_tensorboard_without_tensorboardx_says_what_to_install(monitor, tmp_path,
                                                                  monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ImportError, match=r"pip install fastgrad\[tensorboard\]"):
        monitor.to_tensorboard(tmp_path)
    with pytest.raises(TypeError, match="logdir must be a str or os.PathLike, got int"):
        monitor.to_tensorboard(3)
