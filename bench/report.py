"""Turn one pytest-benchmark run into markdown: a table per group with the median time of each
backend, its speed relative to the NumPy reference and to PyTorch, and the compile-time
figures, under a header naming the hardware, versions, threads and commit.

    python -m pytest bench --benchmark-only --benchmark-json=results.json
    python bench/report.py results.json > report.md
    python bench/report.py --compact results.json   # one table, a row per group
    python bench/report.py --vs-torch vs_torch.json  # bench/vs_torch.py's table

A ratio ``× numpy`` is the ``numpy`` row's median divided by this row's: above 1, this row is
that many times faster than the reference backend; ``× torch`` likewise against each PyTorch
row of the group (``torch``, ``torch-fused``). Groups with a ``bytes`` figure (memory-bound
work) also get the achieved bandwidth. The environment comes from what bench/conftest.py
recorded in the run's ``machine_info``, so the report can be made on another machine.

With ``--vs-torch`` the file is instead one written by ``bench/vs_torch.py --json`` (each library
timed in its own processes), and the report is its table: each workload's fastgrad and PyTorch
median, their ratio, the goal with a mark whether the ratio meets it, and whether the two
libraries' first steps agreed.

Standard library only: it reads a JSON file and prints text.
"""
import argparse
import json
import sys

COMPILE_GROUP = "compile"
#: The ``kind`` of a results file written by bench/vs_torch.py.
VS_TORCH_KIND = "fastgrad-vs-torch"
#: Cores other processes may keep busy while a vs_torch.py worker times before its cell is
#: marked: above it, two-thread timings measure scheduler stalls as much as the code.
BUSY_CORES = 0.25
REFERENCE = "numpy"
_UNITS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns"))


def format_time(seconds):
    """``seconds`` with three significant digits in the largest unit that keeps it >= 1."""
    for scale, unit in _UNITS:
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_ratio(reference, median):
    return "—" if reference is None else f"{reference / median:.2f}×"


def _read(path):
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not JSON ({error})") from None


def load(path):
    """The run's JSON, checked to be pytest-benchmark output.

    Raises:
        ValueError: the file is not JSON or has no list of benchmarks.
    """
    document = _read(path)
    if isinstance(document, dict) and document.get("kind") == VS_TORCH_KIND:
        raise ValueError(f"{path} was written by bench/vs_torch.py: use --vs-torch")
    if not isinstance(document, dict) or not isinstance(document.get("benchmarks"), list):
        raise ValueError(f"{path} is not a pytest-benchmark JSON file (no 'benchmarks' list); "
                         "write one with --benchmark-json=PATH")
    return document


def load_vs_torch(path):
    """A results file of bench/vs_torch.py, checked to be one.

    Raises:
        ValueError: the file is not JSON or not written by bench/vs_torch.py.
    """
    document = _read(path)
    if not isinstance(document, dict) or document.get("kind") != VS_TORCH_KIND \
            or not isinstance(document.get("rows"), list):
        raise ValueError(f"{path} is not a bench/vs_torch.py results file (no kind "
                         f"{VS_TORCH_KIND!r} with a 'rows' list); write one with "
                         "bench/vs_torch.py --json PATH")
    return document


def _row_name(benchmark):
    return (benchmark.get("extra_info", {}).get("backend")
            or (benchmark.get("params") or {}).get("backend") or benchmark["name"])


def _row_order(name):
    """numpy first, then the other fastgrad backends, PyTorch, and reference lines."""
    if name == REFERENCE:
        return 0
    if name.startswith("torch"):
        return 2
    if name.startswith("gemm"):
        return 3
    return 1


def groups(document):
    """``{group: [(row, benchmark), ...]}`` in the order of the run, rows sorted by kind; the
    compile figures excluded."""
    grouped = {}
    for benchmark in document["benchmarks"]:
        group = benchmark.get("group") or benchmark["name"]
        if group != COMPILE_GROUP:
            grouped.setdefault(group, []).append((_row_name(benchmark), benchmark))
    for rows in grouped.values():
        rows.sort(key=lambda row: _row_order(row[0]))   # stable: run order within a kind
    return grouped


def header(document):
    """The lines naming where and how the numbers were measured."""
    machine = document.get("machine_info", {})
    env = machine.get("fastgrad", {})
    commit = env.get("commit") or document.get("commit_info", {}).get("id", "")[:7] or "unknown"
    dirty = env.get("dirty", document.get("commit_info", {}).get("dirty"))
    cpu = env.get("cpu_model") or machine.get("cpu", {}).get("brand_raw") or "unknown CPU"
    cores = env.get("cores") or machine.get("cpu", {}).get("count")
    versions = [f"Python {env.get('python') or machine.get('python_version', '?')}"]
    for name in ("numpy", "numba", "torch"):
        if env.get(name):
            versions.append(f"{name} {env[name]}")
    if env.get("blas"):
        versions.append(f"NumPy's BLAS: {env['blas']}")
    threads = env.get("threads", {})
    counts = ", ".join(f"{name} {threads[name]}" for name in ("numba", "torch") if name in threads)
    lines = ["# fastgrad benchmarks", "",
             f"- commit `{commit}`{' (uncommitted changes)' if dirty else ''}, "
             f"run {document.get('datetime', 'at an unknown time')}",
             f"- CPU: {cpu}" + (f", {cores} cores" if cores else ""),
             "- " + ", ".join(versions)]
    if threads:
        blas = ", ".join(f"{pool} {count}" for pool, count in threads.get("blas", {}).items())
        counts = ", ".join(filter(None, [counts, blas]))
        variables = ", ".join(f"{name}={value}" for name, value in threads.get("env", {}).items()
                              if value != "unset")
        lines.append(f"- threads: {threads.get('count', '?')} requested via "
                     f"{threads.get('set_via', '?')}" + (f" (in force: {counts})" if counts
                                                         else "")
                     + (f"; environment: {variables}" if variables else ""))
    load = env.get("load_average") or {}
    if load.get("before") is not None:
        busy = cores and load["before"] > 0.5 * cores
        lines.append(f"- load average before the run: {load['before']:.2f}"
                     + (" — **a busy machine: other processes competed for the cores**"
                        if busy else ""))
    sizes = {b.get("extra_info", {}).get("sizes") for b in document["benchmarks"]} - {None}
    if "smoke" in sizes:
        lines.append("- **smoke sizes**: these numbers are not the published sizes")
    lines += ["", "Median times; `× numpy` and `× torch` are the reference row's median over "
              "this row's (above 1: this row is faster).", ""]
    return lines


_COMPACT_KEY = ("Median times; `np` and `pt` are the NumPy reference's and the group's first "
                "PyTorch row's median over this one's (above 1: this one is faster).")


def table(group, rows):
    """The markdown table of one group."""
    medians = {row: benchmark["stats"]["median"] for row, benchmark in rows}
    references = [REFERENCE] + [row for row, _ in rows if row.startswith("torch")]
    with_bytes = any(benchmark.get("extra_info", {}).get("bytes") for _, benchmark in rows)
    columns = ["backend", "median", "rounds"] + (["GB/s"] if with_bytes else [])
    columns += [f"× {reference}" for reference in references]
    lines = [f"### {group}", "", "| " + " | ".join(columns) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(columns) - 1)) + "|"]
    for row, benchmark in rows:
        median = medians[row]
        cells = [row, format_time(median), str(benchmark["stats"].get("rounds", ""))]
        if with_bytes:
            moved = benchmark.get("extra_info", {}).get("bytes")
            cells.append(f"{moved / median / 1e9:.1f}" if moved else "")
        cells += [format_ratio(medians.get(reference), median) for reference in references]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def summary(group_rows):
    """One markdown table, a row per group: each backend's median with its speed relative to
    the reference (``np``) and to the group's first PyTorch row (``pt``)."""
    names = []
    for rows in group_rows.values():
        names += [row for row, _ in rows if row not in names]
    names.sort(key=_row_order)   # stable: first appearance within a kind
    lines = ["| group | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for group, rows in group_rows.items():
        medians = {row: benchmark["stats"]["median"] for row, benchmark in rows}
        reference = medians.get(REFERENCE)
        torch = next((medians[row] for row in medians if row.startswith("torch")), None)
        cells = []
        for name in names:
            median = medians.get(name)
            if median is None:
                cells.append("")
                continue
            ratios = [f"{reference / median:.2f}× np" if reference and name != REFERENCE
                      else "",
                      f"{torch / median:.2f}× pt" if torch and not name.startswith("torch")
                      else ""]
            ratios = ", ".join(filter(None, ratios))
            cells.append(format_time(median) + (f" ({ratios})" if ratios else ""))
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    return lines + [""]


def compile_section(document):
    """The compile- and import-time figures, or nothing when the run has none."""
    entries = [b for b in document["benchmarks"] if b.get("group") == COMPILE_GROUP]
    if not entries:
        return []
    lines = ["## Compile and import times", "", "| figure | seconds |", "|---|---:|"]
    notes = []
    for benchmark in entries:
        info = benchmark.get("extra_info", {})
        for label, seconds in info.get("figures", {}).items():
            lines.append(f"| {label} | {seconds:.3f} |")
        notes += info.get("notes", [])
    return lines + [""] + [f"- {note}" for note in dict.fromkeys(notes)] + [""]


def render(document, compact=False):
    """The whole report as markdown text: a table per group, or with ``compact`` one table
    with a row per group."""
    lines = header(document)
    if compact:
        lines[-2] = _COMPACT_KEY
        lines += summary(groups(document))
    else:
        for group, rows in groups(document).items():
            lines += table(group, rows)
    lines += compile_section(document)
    return "\n".join(lines).rstrip() + "\n"


def _vs_torch_header(document):
    """The lines naming where and how bench/vs_torch.py measured."""
    env, settings = document.get("environment", {}), document.get("settings", {})
    commit = env.get("commit") or "unknown"
    cores, rounds = env.get("cores"), settings.get("rounds", "?")
    versions, threads, backend = {}, {}, None
    for row in document["rows"]:
        for library in ("fastgrad", "torch"):
            figures = row.get(library) or {}
            versions.update(figures.get("versions", {}))
            if library in figures.get("threads", {}):
                threads.setdefault(library, figures["threads"][library])
            if library == "fastgrad":
                backend = backend or figures.get("backend")
    names = [f"Python {env.get('python', '?')}"]
    for name in ("numpy", "numba", "fastgrad", "torch"):
        if name in versions:
            names.append(f"{name} {versions[name]}"
                         + (f" ({backend} backend)" if name == "fastgrad" and backend else ""))
    in_force = ", ".join(f"{library} {count}" for library, count in threads.items())
    variables = ", ".join(settings.get("thread_variables", []))
    lines = ["# fastgrad vs PyTorch: training workloads, each library in its own process", "",
             f"- commit `{commit}`{' (uncommitted changes)' if env.get('dirty') else ''}, "
             f"run {document.get('datetime', 'at an unknown time')}",
             f"- CPU: {env.get('cpu_model', 'unknown CPU')}"
             + (f", {cores} cores" if cores else ""),
             *([f"- **on the GPU** (CUDA tensors, GPU batch sizes): "
                f"{env.get('gpu') or 'unknown GPU'}"] if settings.get("device") == "cuda"
               else []),
             "- " + ", ".join(names),
             f"- {settings.get('threads', '?')} threads per process"
             + (f" ({variables} and set_num_threads)" if variables else "")
             + (f"; in force: {in_force}" if in_force else ""),
             f"- {rounds} round{'' if rounds == 1 else 's'} of alternated fastgrad/PyTorch "
             f"processes, about {settings.get('seconds', '?')} s of timed steps each, after "
             "warm-up" + (f"; a worker run again up to {settings['retries']} times while "
                          f"other processes kept more than {BUSY_CORES:g} cores busy"
                          if settings.get("retries") else "")]
    load = env.get("load_average") or {}
    if load.get("before") is not None:
        busy = cores and load["before"] > 0.5 * cores
        after = load.get("after")
        lines.append(f"- load average before the run: {load['before']:.2f}"
                     + (f", after: {after:.2f}" if after is not None else "")
                     + (" — **a busy machine: other processes competed for the cores**"
                        if busy else ""))
    if settings.get("smoke"):
        lines.append("- **smoke sizes**: a check of the code, not the sizes of the labels")
    return lines + ["", "Times: median over rounds of each process's median step. Ratio: "
                    "PyTorch's time over fastgrad's (above 1: fastgrad is faster). Check: the "
                    "two libraries' first steps gave the same loss (or norm, where a workload "
                    f"has no loss) to {_tolerance(document):g} relative.", ""]


def _tolerance(document):
    return next((row["check"]["tolerance"] for row in document["rows"] if row.get("check")),
                1e-3)


def _busy_rounds(figures):
    """The rounds of a library's figures during which other processes kept more than
    BUSY_CORES cores busy."""
    return [r for r in figures.get("rounds", []) if (r.get("other_cpu_cores") or 0) > BUSY_CORES]


def _time_cell(figures):
    """A library's cell: its median (marked ``*`` when a round ran on a busy machine), its
    error, or a dash when it did not run."""
    if not figures:
        return "—"
    if "median_s" in figures:
        return format_time(figures["median_s"]) + (" *" if _busy_rounds(figures) else "")
    error = (figures.get("errors") or ["no result"])[0].replace("|", "/")
    return f"error: {error[:80]}"


def _check_cell(check):
    if not check:
        return "—"
    if check["agree"]:
        return "✓"
    return f"✗ {check['name']} {check['fastgrad']:.6g} vs {check['torch']:.6g}"


def vs_torch_table(document):
    """The markdown table of a bench/vs_torch.py results file: a row per workload."""
    lines = ["| workload | fastgrad | PyTorch | ratio | goal | check |",
             "|---|---:|---:|---:|---|---|"]
    for row in document["rows"]:
        ratio = row.get("ratio")
        goal = f"≥ {row['goal']:g}"
        if ratio is not None:
            goal += " ✓" if ratio >= row["goal"] else " ✗"
        lines.append(f"| {row['label']} | {_time_cell(row.get('fastgrad'))} | "
                     f"{_time_cell(row.get('torch'))} | "
                     f"{'—' if ratio is None else f'{ratio:.2f}'} | {goal} | "
                     f"{_check_cell(row.get('check'))} |")
    return lines + [""]


def _vs_torch_notes(document):
    """What the table's cells do not show: busy rounds (the ``*``) and rounds that failed
    inside otherwise measured rows."""
    notes, seen = [], []
    for row in document["rows"]:
        for library in ("fastgrad", "torch"):
            figures = row.get(library) or {}
            if figures in seen:   # rows sharing fastgrad's run: noted once
                continue
            seen.append(figures)
            busy = _busy_rounds(figures)
            if busy:
                worst = max(r["other_cpu_cores"] for r in busy)
                notes.append(f"- \\* {row['name']}, {library}: other processes kept up to "
                             f"{worst:.2f} cores busy in {len(busy)} of "
                             f"{len(figures['rounds'])} round(s) while it was timed")
            if "median_s" in figures and figures.get("errors"):
                notes.append(f"- {row['name']}, {library}: {len(figures['errors'])} round(s) "
                             f"failed ({figures['errors'][0]})")
    return notes + [""] if notes else []


def render_vs_torch(document):
    """The report of a bench/vs_torch.py results file as markdown text."""
    met = [row for row in document["rows"]
           if row.get("ratio") is not None and row["ratio"] >= row["goal"]]
    measured = [row for row in document["rows"] if row.get("ratio") is not None]
    lines = _vs_torch_header(document) + vs_torch_table(document)
    if measured:
        lines.append(f"Goals met: {len(met)} of {len(measured)} measured rows.")
        lines.append("")
    lines += _vs_torch_notes(document)
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", help="a pytest-benchmark JSON file (--benchmark-json), or "
                                        "with --vs-torch one of bench/vs_torch.py --json")
    parser.add_argument("--compact", action="store_true",
                        help="one table with a row per group instead of a table per group")
    parser.add_argument("--vs-torch", action="store_true",
                        help="the file is bench/vs_torch.py's: print its table")
    arguments = parser.parse_args(argv)
    if arguments.compact and arguments.vs_torch:
        parser.error("--compact applies to pytest-benchmark files, not with --vs-torch")
    try:
        if arguments.vs_torch:
            text = render_vs_torch(load_vs_torch(arguments.results))
        else:
            text = render(load(arguments.results), compact=arguments.compact)
    except (OSError, ValueError) as error:
        parser.exit(2, f"report.py: error: {error}\n")
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
