"""Reports of a :class:`~fastgrad.diagnostics.GradientMonitor`: the text summary, CSV, and
PNG plots (matplotlib, imported only when a plot is asked for)."""
import csv
import math

import numpy as np

from .verdicts import KINDS, through_time

_PLOT_HINT = "plotting needs matplotlib: pip install fastgrad[plot]"


def fmt(value, spec=".2e"):
    """A number for a table; NaN as ``-``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def median(column):
    """The median of the finite values (NaN when there are none)."""
    column = np.asarray(column, np.float64)
    finite = column[np.isfinite(column)]
    return float(np.median(finite)) if finite.size else math.nan


def table(header, rows, align=None):
    """Rows of strings as a fixed-width text table (left-aligned text, right-aligned
    numbers, or as ``align`` says: a string of ``<`` and ``>``)."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    align = align or "<" + ">" * (len(header) - 1)
    lines = []
    for row in [header] + rows:
        cells = [format(str(c), f"{a}{w}") for c, a, w in zip(row, align, widths)]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def layer_ratios(history):
    """Per recorded step, the earliest layer's gradient norm over the latest's (NaN where
    undefined)."""
    grad = history["grad_norm"]
    if grad.shape[1] < 2:
        return np.full(grad.shape[0], math.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return grad[:, 0] / grad[:, -1]


def time_profiles(history, fraction=1e-3):
    """Per recurrent layer key of ``history["time_grad_norms"]`` (the hidden-state keys, not
    the ``.cell`` ones), per recorded step: the gradient norm at the first step the recurrence
    runs through over that at its last (:math:`\\lVert \\partial L / \\partial h_1 \\rVert
    / \\lVert \\partial L / \\partial h_T \\rVert`, the other way round for a reverse
    direction) and the effective horizon (see :func:`.verdicts.through_time`; ``fraction`` is
    its threshold, the monitor's ``thresholds.time_vanishing_ratio``).

    Returns:
        ``{key: (ratio, horizon, length)}``, three (S,) float64 arrays (NaN at the recorded
        steps where the layer had no backward; ``length`` is each row's T).
    """
    profiles = {}
    for key, norms in history["time_grad_norms"].items():
        if key.endswith(".cell"):
            continue
        ratio, horizon, length = (np.full(len(norms), math.nan) for _ in range(3))
        for s, row in enumerate(norms):
            row = row[:_row_length(row)]
            if row.size:
                row = row[::-1] if key.endswith("_reverse") else row
                ratio[s], horizon[s] = through_time(row, fraction)
                length[s] = row.size
        profiles[key] = (ratio, horizon, length)
    return profiles


def _row_length(row):
    """The length of a NaN-padded row of ``time_grad_norms`` (its last non-NaN entry + 1)."""
    present = np.flatnonzero(~np.isnan(row))
    return int(present[-1]) + 1 if present.size else 0


def summary(monitor):
    history = monitor.history()
    steps = history["step"]
    lines = [f"GradientMonitor: {len(steps)} recorded step(s) of {monitor.steps} (every "
             f"{monitor.every}), {len(history['layers'])} layer(s) in forward order"]
    if not len(steps):
        return "\n".join(lines + ["nothing recorded yet: call monitor.step() after each "
                                  "optimizer.step()"])
    grad = history["grad_norm"]
    with np.errstate(divide="ignore", invalid="ignore"):
        to_output = grad / grad[:, -1:]
    flagged = {}
    for verdict in monitor.verdicts:
        for layer in verdict.layers:
            flagged.setdefault(layer, [])
            if verdict.kind not in flagged[layer]:
                flagged[layer].append(verdict.kind)
    rows = []
    for j, (name, kind, shape) in enumerate(zip(history["layers"], monitor.layer_types,
                                                monitor.layer_shapes)):
        rows.append([name, kind, "x".join(map(str, shape)) or "()", fmt(grad[0, j]),
                     fmt(grad[-1, j]), fmt(median(grad[:, j])), fmt(median(to_output[:, j])),
                     fmt(median(history["update_ratio"][:, j])),
                     ", ".join(flagged.get(name, [])) or "-"])
    lines.append(table(["layer", "type", "shape", "grad first", "grad last", "grad median",
                        "ratio to output", "update/param", "verdict"], rows,
                       "<<<>>>>><"))
    total, clipped = history["global_norm"], history["clipped_norm"]
    finite = total[np.isfinite(total)]
    line = (f"global gradient norm: first {fmt(total[0])}, last {fmt(total[-1])}, median "
            f"{fmt(median(total))}, max {fmt(float(finite.max()) if finite.size else math.nan)}")
    if finite.size < total.size:
        line += f", non-finite at {total.size - finite.size} recorded step(s)"
    scaled = int(np.sum(history["clip_coef"] < 1.0))
    if np.isfinite(history["clip_coef"]).any():
        line += (f"; clipping ran at {int(np.isfinite(history['clip_coef']).sum())} recorded "
                 f"step(s), scaling {scaled} (median after clipping {fmt(median(clipped))})")
    lines.append(line)
    profiles = time_profiles(history, monitor.thresholds.time_vanishing_ratio)
    if profiles:
        rows = []
        for key, (ratio, horizon, length) in profiles.items():
            last = np.flatnonzero(np.isfinite(length))
            last = last[-1] if last.size else None
            rows.append([key, fmt(length[last], ".0f") if last is not None else "-",
                         fmt(ratio[last]) if last is not None else "-", fmt(median(ratio)),
                         fmt(horizon[last], ".0f") if last is not None else "-",
                         ", ".join(kind for kind in flagged.get(key, [])) or "-"])
        lines.append("gradient through time, ||dL/dh_t||: ratio of the first step's to the "
                     "last step's (as the recurrence runs);\nhorizon: for how many of the last "
                     f"steps it stays above {monitor.thresholds.time_vanishing_ratio:g} of the "
                     "last step's")
        lines.append(table(["layer", "T", "ratio last", "ratio median", "horizon last",
                            "verdict"], rows, "<>>>><"))
    activations = history["activations"]
    if activations:
        rows = []
        for name, rec in activations.items():
            rows.append([name, rec["kind"], fmt(rec["mean"][-1], ".3f"), fmt(rec["std"][-1], ".3f"),
                         fmt(rec["saturated"][-1], ".1%"), fmt(rec["dead"][-1], ".1%")])
        lines.append("activations at the last recorded step:")
        lines.append(table(["layer", "type", "mean", "std", "saturated", "dead units"], rows,
                           "<<>>>>"))
    verdicts = sorted(monitor.verdicts, key=lambda v: (KINDS.index(v.kind), v.step))
    if verdicts:
        lines.append("verdicts:")
        lines.extend(f"  {v}" for v in verdicts)
    else:
        lines.append("verdicts: none - the gradients look healthy")
    return "\n".join(lines)


def to_csv(monitor, path):
    history = monitor.history()
    columns = ["step", "layer", "type", "grad_norm", "param_norm", "update_ratio",
               "global_norm", "clipped_norm", "act_mean", "act_std", "saturated", "dead",
               "time_step", "time_grad_norm"]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for s, step in enumerate(history["step"]):
            for j, (name, kind) in enumerate(zip(history["layers"], monitor.layer_types)):
                writer.writerow([int(step), name, kind, repr(float(history["grad_norm"][s, j])),
                                 repr(float(history["param_norm"][s, j])),
                                 repr(float(history["update_ratio"][s, j])),
                                 repr(float(history["global_norm"][s])),
                                 repr(float(history["clipped_norm"][s])), "", "", "", "",
                                 "", ""])
        for name, rec in history["activations"].items():
            for a, step in enumerate(rec["step"]):
                writer.writerow([int(step), name, rec["kind"], "", "", "", "", ""]
                                + [repr(float(rec[k][a]))
                                   for k in ("mean", "std", "saturated", "dead")] + ["", ""])
        # through time: type dL/dh (or dL/dc for an LSTM's cell state), one row per time step
        for key, norms in history["time_grad_norms"].items():
            kind = "dL/dc" if key.endswith(".cell") else "dL/dh"
            for s, step in enumerate(history["step"]):
                row = norms[s, :_row_length(norms[s])]
                for t, value in enumerate(row, 1):
                    writer.writerow([int(step), key, kind] + [""] * 9
                                    + [t, repr(float(value))])


# ------------------------------------------------------------------------------------ plots
def new_figure(width=11.0, height=4.2, panels=2):
    """A matplotlib Figure drawn by the Agg canvas (pyplot and its global backend are left
    alone), with ``panels`` side-by-side axes."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(_PLOT_HINT) from error
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    axes = [figure.add_subplot(1, panels, i + 1) for i in range(panels)]
    return figure, axes


def _positive(values):
    """Values for a log axis: zeros, negatives and non-finite values masked as NaN."""
    values = np.array(values, np.float64)
    values[~(np.isfinite(values) & (values > 0))] = np.nan
    return values


def plot_depth(axis, grad, labels, title, xlabel="layer (forward order)"):
    """Gradient norm against depth (1 = earliest layer): one line per row of ``grad`` (rows
    may differ in length)."""
    for row, label in zip(grad, labels):
        axis.plot(np.arange(1, len(row) + 1), _positive(row), marker="o", markersize=3,
                  label=label)
    axis.set_yscale("log")
    axis.xaxis.get_major_locator().set_params(integer=True)
    axis.set_xlabel(xlabel)
    axis.set_ylabel("gradient norm")
    axis.set_title(title)
    axis.grid(True, which="major", alpha=0.3)
    axis.legend(fontsize=7)


def plot_steps(axis, series, title):
    """Global gradient norm against step: ``series`` is a list of ``(steps, norms, label)``."""
    for steps, norms, label in series:
        axis.plot(steps, _positive(norms), linewidth=0.8, label=label)
    axis.set_yscale("log")
    axis.set_xlabel("step")
    axis.set_ylabel("global gradient norm (before clipping)")
    axis.set_title(title)
    axis.grid(True, which="major", alpha=0.3)
    axis.legend(fontsize=7)


def plot_time(axis, curves, title):
    """Gradient norm against time step (1 = first step of the sequence): ``curves`` is a list
    of ``(norms, label)``, one line each, on a log scale."""
    for norms, label in curves:
        axis.plot(np.arange(1, len(norms) + 1), _positive(norms), linewidth=1.0, label=label)
    axis.set_yscale("log")
    axis.xaxis.get_major_locator().set_params(integer=True)
    axis.set_xlabel("time step t")
    axis.set_ylabel("||dL/dh_t||")
    axis.set_title(title)
    axis.grid(True, which="major", alpha=0.3)
    axis.legend(fontsize=7)


def time_curves(history, fraction=1e-3, wanted=4):
    """What :func:`plot` draws through time: the recurrent layer key whose median ratio (see
    :func:`time_profiles`) is smallest, and up to ``wanted`` of its recorded rows, evenly
    spread over training: ``(key, [(norms, label), ...])``, or None without recurrent layers.
    """
    profiles = time_profiles(history, fraction)
    if not profiles:
        return None
    key = min(profiles, key=lambda k: (np.nan_to_num(median(profiles[k][0]), nan=np.inf), k))
    norms = history["time_grad_norms"][key]
    recorded = [s for s in range(len(norms)) if _row_length(norms[s])]
    curves = [(norms[recorded[i], :_row_length(norms[recorded[i]])],
               f"step {history['step'][recorded[i]]}")
              for i in snapshot_rows(len(recorded), wanted)]
    return key, curves


def snapshot_rows(count, wanted=4):
    """Up to ``wanted`` evenly spread row indices out of ``count`` (first and last kept)."""
    if count <= wanted:
        return list(range(count))
    return sorted({int(round(i * (count - 1) / (wanted - 1))) for i in range(wanted)})


def plot(monitor, path):
    history = monitor.history()
    if not len(history["step"]):
        raise ValueError("nothing recorded yet: call monitor.step() after each "
                         "optimizer.step() before plotting")
    through = time_curves(history, monitor.thresholds.time_vanishing_ratio)
    if through is None:
        figure, (left, right) = new_figure()
    else:
        figure, (left, right, third) = new_figure(width=16.0, panels=3)
        key, curves = through
        plot_time(third, curves, f"gradient through time: {key}")
    rows = snapshot_rows(len(history["step"]))
    plot_depth(left, history["grad_norm"][rows],
               [f"step {history['step'][i]}" for i in rows], "gradient norm per layer")
    series = [(history["step"], history["global_norm"], "before clipping")]
    if np.isfinite(history["clip_coef"]).any():
        series.append((history["step"], history["clipped_norm"], "after clipping"))
    plot_steps(right, series, "global gradient norm")
    kinds = sorted({v.kind for v in monitor.verdicts}, key=KINDS.index)
    figure.suptitle("verdicts: " + (", ".join(kinds) if kinds else "none"), fontsize=10)
    figure.tight_layout()
    figure.savefig(path, format="png")
