"""A :class:`~fastgrad.diagnostics.GradientMonitor`'s history as TensorBoard event files,
through tensorboardX (``pip install fastgrad[tensorboard]``), imported only here."""
import math
import os

import numpy as np

from .reports import _row_length, time_profiles

_HINT = "writing TensorBoard files needs tensorboardX: pip install fastgrad[tensorboard]"


def _writer(logdir):
    try:
        from tensorboardX import SummaryWriter
    except ImportError as error:
        raise ImportError(_HINT) from error
    return SummaryWriter(logdir=logdir)


def write(monitor, logdir):
    """Write the recorded steps and verdicts of ``monitor`` that no earlier call wrote to
    ``logdir``; returns how many recorded steps it wrote. See
    :meth:`~fastgrad.diagnostics.GradientMonitor.to_tensorboard` for the tags."""
    if not isinstance(logdir, (str, os.PathLike)):
        raise TypeError(f"logdir must be a str or os.PathLike, got {type(logdir).__name__}")
    where = os.path.abspath(os.fspath(logdir))
    done_steps, done_verdicts = monitor._tensorboard.get(where, (0, 0))
    history = monitor.history()
    steps = history["step"]
    verdicts = monitor.verdicts
    if done_steps == len(steps) and done_verdicts == len(verdicts):
        return 0
    writer = _writer(where)
    try:
        profiles = time_profiles(history, monitor.thresholds.time_vanishing_ratio)
        for s in range(done_steps, len(steps)):
            _write_step(writer, history, profiles, s, int(steps[s]))
        for verdict in verdicts[done_verdicts:]:
            writer.add_text("verdicts", str(verdict), global_step=verdict.step)
            writer.add_scalar(f"verdicts/{verdict.kind}", 1.0, global_step=verdict.step)
        writer.flush()
    finally:
        writer.close()
    monitor._tensorboard[where] = (len(steps), len(verdicts))
    return len(steps) - done_steps


def _write_step(writer, history, profiles, s, step):
    for j, layer in enumerate(history["layers"]):
        writer.add_scalar(f"grad_norm/{layer}", float(history["grad_norm"][s, j]), step)
        writer.add_scalar(f"update_ratio/{layer}", float(history["update_ratio"][s, j]), step)
    writer.add_scalar("global_norm", float(history["global_norm"][s]), step)
    writer.add_scalar("clipped_norm", float(history["clipped_norm"][s]), step)
    for key, norms in history["time_grad_norms"].items():
        row = norms[s, :_row_length(norms[s])]
        if not row.size or not np.isfinite(row).all():
            continue  # a histogram needs finite values; the non-finite verdict says the rest
        if key in profiles:
            ratio, horizon, _ = profiles[key]
            if not math.isnan(ratio[s]):
                writer.add_scalar(f"time/{key}/first_over_last", float(ratio[s]), step)
                writer.add_scalar(f"time/{key}/horizon", float(horizon[s]), step)
        # bucket t holds ||dL/dh_t||: the histogram tab then draws the norm against time step
        limits = np.arange(1, row.size + 1, dtype=np.float64)
        writer.add_histogram_raw(f"time/{key}", min=1.0, max=float(row.size),
                                 num=float(row.sum()), sum=float(limits @ row),
                                 sum_squares=float((limits * limits) @ row),
                                 bucket_limits=limits.tolist(), bucket_counts=row.tolist(),
                                 global_step=step)
