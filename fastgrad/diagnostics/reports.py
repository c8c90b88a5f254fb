"""Reports of a :class:`~fastgrad.diagnostics.GradientMonitor`: the text summary, CSV, and
PNG plots (matplotlib, imported only when a plot is asked for)."""
import csv
import math

import numpy as np

from .verdicts import KINDS

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
               "global_norm", "clipped_norm", "act_mean", "act_std", "saturated", "dead"]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for s, step in enumerate(history["step"]):
            for j, (name, kind) in enumerate(zip(history["layers"], monitor.layer_types)):
                writer.writerow([int(step), name, kind, repr(float(history["grad_norm"][s, j])),
                                 repr(float(history["param_norm"][s, j])),
                                 repr(float(history["update_ratio"][s, j])),
                                 repr(float(history["global_norm"][s])),
                                 repr(float(history["clipped_norm"][s])), "", "", "", ""])
        for name, rec in history["activations"].items():
            for a, step in enumerate(rec["step"]):
                writer.writerow([int(step), name, rec["kind"], "", "", "", "", ""]
                                + [repr(float(rec[k][a]))
                                   for k in ("mean", "std", "saturated", "dead")])


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
    figure, (left, right) = new_figure()
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
