"""TensorBoard events without TensorFlow: what the writer writes is read back from the file's records."""

import glob
import os
import struct

import pytest
from tensorboardX.proto import event_pb2

from flowjax.train.writer import MetricWriter


def _events(logdir):
    """Every Event of the event file in ``logdir``, parsed from its TFRecord framing (length, its CRC, data, CRC)."""
    (path,) = glob.glob(os.path.join(logdir, "events.out.tfevents.*"))
    with open(path, "rb") as f:
        data = f.read()
    events, pos = [], 0
    while pos < len(data):
        (length,) = struct.unpack("<Q", data[pos : pos + 8])
        events.append(event_pb2.Event.FromString(data[pos + 12 : pos + 12 + length]))
        pos += 12 + length + 4
    return events


def test_scalars_reach_the_event_file(tmp_path):
    writer = MetricWriter(str(tmp_path))
    writer.write_scalars(10, {"loss": 0.5, "coupling/cost_after": 2.25})
    writer.write_scalars(20, {"loss": 0.25})
    writer.close()
    scalars = {(e.step, v.tag): v.simple_value for e in _events(tmp_path) for v in e.summary.value}
    assert scalars == {(10, "loss"): 0.5, (10, "coupling/cost_after"): 2.25, (20, "loss"): 0.25}


def test_other_processes_only_log(tmp_path):
    writer = MetricWriter(str(tmp_path), just_logging=True)
    writer.write_scalars(1, {"loss": 1.0})
    writer.close()
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError):
        _events(tmp_path)
