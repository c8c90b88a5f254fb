"""bench/report.py: one pytest-benchmark JSON in, markdown tables of medians and ratios out."""
import importlib.util
import json
import pathlib

import pytest

_PATH = pathlib.Path(__file__).resolve().parents[1] / "bench" / "report.py"
_spec = importlib.util.spec_from_file_location("bench_report", _PATH)
report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report)


def _benchmark(group, backend, median, rounds=10, sizes="full", **extra):
    return {"group": group, "name": f"test_workload[{group}-{backend}]",
            "params": {"row": backend}, "stats": {"median": median, "rounds": rounds},
            "extra_info": dict(backend=backend, sizes=sizes, **extra)}


#: A run as bench/ writes it: two groups, one without PyTorch, and the compile figures.
RUN = {
    "machine_info": {
        "python_version": "3.11.7",
        "fastgrad": {"cpu_model": "AMD EPYC 7B13", "cores": 2, "python": "3.11.7",
                     "numpy": "2.4.6", "numba": "0.61.0", "torch": "2.13.0+cpu",
                     "blas": "scipy-openblas", "commit": "abc1234", "dirty": False,
                     "load_average": {"before": 0.12, "after": 1.9},
                     "threads": {"count": 2, "set_via": "fastgrad.set_num_threads",
                                 "numba": 2, "torch": 2,
                                 "blas": {"openblas (libscipy_openblas.so)": 2},
                                 "env": {"OMP_NUM_THREADS": "unset",
                                         "OPENBLAS_NUM_THREADS": "2"}}},
    },
    "commit_info": {"id": "abc1234def5678", "dirty": False},
    "datetime": "2025-01-02T03:04:05",
    "benchmarks": [
        _benchmark("linear_relu-64x784x256", "numba", 1e-3),
        _benchmark("linear_relu-64x784x256", "numpy", 2e-3),
        _benchmark("linear_relu-64x784x256", "gemm3-torch", 0.75e-3),
        _benchmark("linear_relu-64x784x256", "torch", 1.5e-3),
        _benchmark("adam-10Mx100", "numpy", 0.08, bytes=280_000_000),
        _benchmark("adam-10Mx100", "torch-fused", 5.6e-3, bytes=280_000_000),
        _benchmark("adam-10Mx100", "numba", 4e-3, bytes=280_000_000),
        _benchmark("adam-10Mx100", "torch", 16e-3, bytes=280_000_000),
        _benchmark("triad-40MiB", "numba", 2.5e-3, bytes=125_829_120),
        {"group": "compile", "name": "test_compile_time[cold_compile]",
         "stats": {"median": 30.0, "rounds": 1},
         "extra_info": {"backend": "cold_compile", "sizes": "full",
                        "figures": {"cold compile of the numba backend's 21 kernels": 25.5,
                                    "import of the numba backend": 0.25},
                        "notes": ["empty NUMBA_CACHE_DIR"]}},
        {"group": "compile", "name": "test_compile_time[import]",
         "stats": {"median": 1.0, "rounds": 1},
         "extra_info": {"backend": "import", "figures": {"import fastgrad": 0.0612},
                        "notes": ["import fastgrad loads Numba: no", "empty NUMBA_CACHE_DIR"]}},
    ],
}


@pytest.fixture
def rendered(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(RUN))
    return report.render(report.load(path))


def _row(text, group, backend):
    """The cells of ``backend``'s row in ``group``'s table."""
    section = text.split(f"### {group}\n", 1)[1].split("###", 1)[0]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == backend:
            return cells
    raise AssertionError(f"no row {backend!r} in group {group!r}:\n{section}")


def test_header_names_hardware_versions_threads_and_commit(rendered):
    head = rendered.split("###", 1)[0]
    for expected in ("`abc1234`", "AMD EPYC 7B13, 2 cores", "numpy 2.4.6", "numba 0.61.0",
                     "torch 2.13.0+cpu", "scipy-openblas",
                     "2 requested via fastgrad.set_num_threads",
                     "numba 2, torch 2, openblas (libscipy_openblas.so) 2",
                     "environment: OPENBLAS_NUM_THREADS=2", "2025-01-02T03:04:05",
                     "load average before the run: 0.12"):
        assert expected in head, expected
    assert "OMP_NUM_THREADS" not in head   # unset variables are not listed
    assert "uncommitted" not in head and "smoke" not in head and "busy" not in head


def test_header_flags_a_busy_machine(tmp_path):
    machine = json.loads(json.dumps(RUN["machine_info"]))
    machine["fastgrad"]["load_average"]["before"] = 3.5
    path = tmp_path / "results.json"
    path.write_text(json.dumps(dict(RUN, machine_info=machine)))
    assert "load average before the run: 3.50 — **a busy machine" in report.render(
        report.load(path))


@pytest.mark.parametrize("group, backend, expected", [
    # backend, median, rounds, x numpy, x torch: numpy's 2 ms over numba's 1 ms is 2x
    ("linear_relu-64x784x256", "numba", ["numba", "1 ms", "10", "2.00×", "1.50×"]),
    ("linear_relu-64x784x256", "numpy", ["numpy", "2 ms", "10", "1.00×", "0.75×"]),
    ("linear_relu-64x784x256", "torch", ["torch", "1.5 ms", "10", "1.33×", "1.00×"]),
    ("linear_relu-64x784x256", "gemm3-torch", ["gemm3-torch", "750 µs", "10", "2.67×",
                                               "2.00×"]),
    # GB/s from the bytes moved; one ratio column per PyTorch row
    ("adam-10Mx100", "numba", ["numba", "4 ms", "10", "70.0", "20.00×", "1.40×", "4.00×"]),
    ("adam-10Mx100", "torch-fused", ["torch-fused", "5.6 ms", "10", "50.0", "14.29×", "1.00×",
                                     "2.86×"]),
    # no numpy and no PyTorch row: the ratio is a dash, and no PyTorch column appears
    ("triad-40MiB", "numba", ["numba", "2.5 ms", "10", "50.3", "—"]),
])
def test_rows_carry_medians_ratios_and_bandwidth(rendered, group, backend, expected):
    assert _row(rendered, group, backend) == expected


def test_columns_and_row_order(rendered):
    lines = rendered.split("### adam-10Mx100\n", 1)[1].split("###", 1)[0].splitlines()
    assert lines[1] == ("| backend | median | rounds | GB/s | × numpy | × torch-fused | "
                        "× torch |")
    rows = [line.split("|")[1].strip() for line in lines[3:] if line.startswith("|")]
    assert rows == ["numpy", "numba", "torch-fused", "torch"]
    linear = rendered.split("### linear_relu-64x784x256\n", 1)[1].split("###", 1)[0]
    assert "GB/s" not in linear
    assert [line.split("|")[1].strip() for line in linear.splitlines()[3:] if line][-1] \
        == "gemm3-torch"


def test_compile_figures_get_their_own_section(rendered):
    assert "### compile" not in rendered
    section = rendered.split("## Compile and import times\n", 1)[1]
    assert "| cold compile of the numba backend's 21 kernels | 25.500 |" in section
    assert "| import of the numba backend | 0.250 |" in section
    assert "| import fastgrad | 0.061 |" in section
    # notes once each, in order
    assert section.count("- empty NUMBA_CACHE_DIR") == 1
    assert "- import fastgrad loads Numba: no" in section


def test_fallbacks_without_fastgrad_machine_info(tmp_path):
    run = dict(RUN, machine_info={"python_version": "3.12.1",
                                  "cpu": {"brand_raw": "Some CPU", "count": 8}},
               commit_info={"id": "0123456789abcdef", "dirty": True},
               benchmarks=[_benchmark("g", "numpy", 3e-7, sizes="smoke")])
    path = tmp_path / "results.json"
    path.write_text(json.dumps(run))
    text = report.render(report.load(path))
    assert "`0123456` (uncommitted changes)" in text
    assert "Some CPU, 8 cores" in text and "Python 3.12.1" in text
    assert "smoke sizes" in text
    assert _row(text, "g", "numpy") == ["numpy", "300 ns", "10", "1.00×"]
    assert "Compile" not in text


@pytest.mark.parametrize("seconds, expected", [
    (2.5, "2.5 s"), (0.0123, "12.3 ms"), (4.56e-5, "45.6 µs"), (7e-9, "7 ns"), (1e-3, "1 ms"),
])
def test_format_time(seconds, expected):
    assert report.format_time(seconds) == expected


def test_main_prints_the_report(tmp_path, capsys):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(RUN))
    assert report.main([str(path)]) == 0
    assert capsys.readouterr().out.startswith("# fastgrad benchmarks\n")


@pytest.mark.parametrize("content, message", [
    ("{not json", "is not JSON"),
    (json.dumps({"machine_info": {}}), "not a pytest-benchmark JSON file"),
    (json.dumps([1, 2]), "not a pytest-benchmark JSON file"),
])
def test_bad_input_is_refused_with_a_message(tmp_path, capsys, content, message):
    path = tmp_path / "results.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        report.load(path)
    with pytest.raises(SystemExit) as exit_info:
        report.main([str(path)])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_file_exits_with_status_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        report.main([str(tmp_path / "absent.json")])
    assert exit_info.value.code == 2
    assert "absent.json" in capsys.readouterr().err


def test_compact_report_has_a_row_per_group_with_both_ratios(tmp_path, capsys):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(RUN))
    assert report.main(["--compact", str(path)]) == 0
    text = capsys.readouterr().out
    assert "###" not in text and "## Compile and import times" in text
    lines = text.splitlines()
    head = next(line for line in lines if line.startswith("| group |"))
    assert head == "| group | numpy | numba | torch | torch-fused | gemm3-torch |"
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip().strip("|").split("|")]
            for line in lines if line.startswith("| ") and not line.startswith("| group")}
    # pt: the group's first PyTorch row (here torch-fused, run first)
    assert rows["adam-10Mx100"][1:] == ["80 ms (0.07× pt)", "4 ms (20.00× np, 1.40× pt)",
                                        "16 ms (5.00× np)", "5.6 ms (14.29× np)", ""]
    assert rows["triad-40MiB"][1:] == ["", "2.5 ms", "", "", ""]


# ----------------------------------------------------------------- bench/vs_torch.py's table
def _figures(median, check=1.0, other_cpu=0.0, errors=(), **extra):
    """One library's figures in a vs_torch.py row: three rounds around ``median``."""
    rounds = [dict(median_s=median * f, p10_s=median * f * 0.9, p90_s=median * f * 1.2,
                   steps=100, warmup_steps=3, first_step_s=median * 50, other_cpu_cores=c)
              for f, c in ((1.0, other_cpu), (0.9, 0.0), (1.1, 0.0))]
    return dict(median_s=median, rounds=rounds, errors=list(errors),
                check=dict(name="loss", value=check), **extra)


def _vs_row(name, goal, fastgrad, torch, check_agrees=True):
    ratio = None if not (fastgrad and torch and "median_s" in fastgrad and "median_s" in torch) \
        else torch["median_s"] / fastgrad["median_s"]
    check = None if ratio is None else dict(
        name="loss", fastgrad=fastgrad["check"]["value"], torch=torch["check"]["value"],
        relative_difference=0.0 if check_agrees else 0.02, tolerance=1e-3, agree=check_agrees)
    return dict(name=name, label=f"{name} workload", goal=goal, fastgrad=fastgrad, torch=torch,
                ratio=ratio, check=check)


FASTGRAD_INFO = dict(backend="numba", versions={"numpy": "2.4.6", "numba": "0.68.1",
                                                "fastgrad": "0.1.0"},
                     threads={"requested": 2, "fastgrad": 2})
TORCH_INFO = dict(backend=None, versions={"numpy": "2.4.6", "torch": "2.13.0+cpu"},
                  threads={"requested": 2, "torch": 2})

ADAM_FASTGRAD = _figures(16.5e-3, other_cpu=0.5, **FASTGRAD_INFO)

#: A results file as bench/vs_torch.py writes it (the fields report.py reads).
VS_TORCH = {
    "kind": "fastgrad-vs-torch",
    "datetime": "2026-12-06T10:00:00+00:00",
    "settings": {"threads": 2, "rounds": 3, "seconds": 1.5, "smoke": False, "retries": 2,
                 "libraries": ["fastgrad", "torch"],
                 "thread_variables": ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"]},
    "environment": {"cpu_model": "AMD EPYC 7B13", "cores": 2, "python": "3.11.7",
                    "commit": "abc1234", "dirty": True,
                    "load_average": {"before": 0.2, "after": 1.1}},
    "rows": [
        # met: 6.31 / 1.98 = 3.19 >= 2
        _vs_row("clip", 2, _figures(1.98e-3, **FASTGRAD_INFO), _figures(6.31e-3, **TORCH_INFO)),
        # missed, and a busy round for both
        _vs_row("adam_fused", 1.2, ADAM_FASTGRAD, _figures(9.9e-3, other_cpu=0.8, **TORCH_INFO)),
        # the same fastgrad run as adam_fused's
        _vs_row("adam_default", 3, ADAM_FASTGRAD, _figures(19e-3, **TORCH_INFO)),
        # the first steps disagree
        _vs_row("mlp", 1.5, _figures(1.77e-3, check=2.30, **FASTGRAD_INFO),
                _figures(1.92e-3, check=2.35, **TORCH_INFO), check_agrees=False),
        # fastgrad failed every round; PyTorch lost one round
        _vs_row("lstm", 1.2, {"errors": ["RuntimeError: out | of memory"] * 3},
                _figures(0.203, errors=["timed out after 600 s"], **TORCH_INFO)),
        # PyTorch not run
        _vs_row("tiny", 5, _figures(2.7e-4, **FASTGRAD_INFO), None),
    ],
}


@pytest.fixture
def vs_torch_text(tmp_path):
    path = tmp_path / "vs_torch.json"
    path.write_text(json.dumps(VS_TORCH))
    return report.render_vs_torch(report.load_vs_torch(path))


def _vs_cells(text, label):
    for line in text.splitlines():
        if line.startswith(f"| {label} |"):
            return [c.strip() for c in line.strip().strip("|").split("|")]
    raise AssertionError(f"no row {label!r}:\n{text}")


def test_vs_torch_table_columns(vs_torch_text):
    assert "| workload | fastgrad | PyTorch | ratio | goal | check |" in vs_torch_text


@pytest.mark.parametrize("label, expected", [
    ("clip workload", ["clip workload", "1.98 ms", "6.31 ms", "3.19", "≥ 2 ✓", "✓"]),
    # a busy round marks the cell; the goal is missed
    ("adam_fused workload", ["adam_fused workload", "16.5 ms *", "9.9 ms *", "0.60",
                             "≥ 1.2 ✗", "✓"]),
    ("adam_default workload", ["adam_default workload", "16.5 ms *", "19 ms", "1.15", "≥ 3 ✗",
                               "✓"]),
    ("mlp workload", ["mlp workload", "1.77 ms", "1.92 ms", "1.08", "≥ 1.5 ✗",
                      "✗ loss 2.3 vs 2.35"]),
    # an error in its cell (a pipe would break the table), no ratio, no mark
    ("lstm workload", ["lstm workload", "error: RuntimeError: out / of memory", "203 ms", "—",
                       "≥ 1.2", "—"]),
    ("tiny workload", ["tiny workload", "270 µs", "—", "—", "≥ 5", "—"]),
])
def test_vs_torch_rows(vs_torch_text, label, expected):
    assert _vs_cells(vs_torch_text, label) == expected


def test_vs_torch_header_and_notes(vs_torch_text):
    head = vs_torch_text.split("| workload |", 1)[0]
    for expected in ("`abc1234` (uncommitted changes)", "2026-12-06T10:00:00+00:00",
                     "AMD EPYC 7B13, 2 cores",
                     "numpy 2.4.6, numba 0.68.1, fastgrad 0.1.0 (numba backend), "
                     "torch 2.13.0+cpu",
                     "2 threads per process (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and "
                     "set_num_threads); in force: fastgrad 2, torch 2",
                     "3 rounds", "load average before the run: 0.20, after: 1.10",
                     "run again up to 2 times while other processes kept more than 0.25 cores "
                     "busy",
                     "to 0.001 relative."):
        assert expected in head, expected
    assert "smoke" not in head and "busy machine" not in head
    tail = vs_torch_text.split("| tiny workload |", 1)[1]
    assert "Goals met: 1 of 4 measured rows." in tail
    assert "adam_fused, torch: other processes kept up to 0.80 cores busy in 1 of 3" in tail
    # the shared fastgrad run is noted once, under the first row
    assert "adam_fused, fastgrad: other processes kept up to 0.50 cores" in tail
    assert "adam_default, fastgrad" not in tail
    assert "lstm, torch: 1 round(s) failed (timed out after 600 s)" in tail
    assert "lstm, fastgrad" not in tail   # its error is in the table already


def test_vs_torch_smoke_run_is_flagged(tmp_path):
    path = tmp_path / "vs_torch.json"
    path.write_text(json.dumps(dict(VS_TORCH, settings=dict(VS_TORCH["settings"], smoke=True))))
    assert "**smoke sizes**" in report.render_vs_torch(report.load_vs_torch(path))


def test_main_prints_the_vs_torch_table(tmp_path, capsys):
    path = tmp_path / "vs_torch.json"
    path.write_text(json.dumps(VS_TORCH))
    assert report.main(["--vs-torch", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# fastgrad vs PyTorch") and "| clip workload |" in out


@pytest.mark.parametrize("content, flags, message", [
    (VS_TORCH, [], "written by bench/vs_torch.py: use --vs-torch"),
    (RUN, ["--vs-torch"], "not a bench/vs_torch.py results file"),
    ({"kind": "fastgrad-vs-torch"}, ["--vs-torch"], "not a bench/vs_torch.py results file"),
])
def test_files_of_the_other_kind_are_refused(tmp_path, capsys, content, flags, message):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(content))
    with pytest.raises(SystemExit) as exit_info:
        report.main(flags + [str(path)])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_compact_does_not_apply_to_vs_torch(tmp_path, capsys):
    path = tmp_path / "vs_torch.json"
    path.write_text(json.dumps(VS_TORCH))
    with pytest.raises(SystemExit) as exit_info:
        report.main(["--vs-torch", "--compact", str(path)])
    assert exit_info.value.code == 2
