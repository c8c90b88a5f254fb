"""One source for every constant Python and C share: each value csrc/ defines that a Python
module also holds is read from both sides here and must agree.

The C side is read from the sources' text (``#define NAME value`` and ``enum { NAME = value }``),
the Python side from the modules' text (module-level assignments of literals), so the check
needs neither a C build nor Numba. Where the compiled C kernels are installed, their values
(the parallel thresholds and the ABI version cffi reads from them) are checked against the
header too: a stale build shows here.

What is shared and why it must agree:
- the activation codes (``ACTIVATIONS``, ``FG_<NAME>``): Python passes them to C;
- the ABI version and the status codes: the C wrappers check and translate them;
- the reduction pieces (``CHUNK``/``FG_CHUNK``, ``MAX_PIECES``) and the GEMM blocking rule:
  the Numba and C backends cut reductions and products the same way, so both round alike (the
  products bit for bit);
- the batchnorm tiling (``BN_*``/``FG_BN_*``): one layout design in both backends;
- exp's argument reduction (``_LOG2E``, ``_LN2_*``, ``_EXP_*``): the same algorithm in both;
- CBLAS's enum values, which both pass to the BLAS.
The Numba backend's parallel thresholds are its own measurements, not C's; the C backend reads
its thresholds from the compiled header (``FG_PAR_*``), so only the kernel groups must match.
"""
import ast
import importlib.util
import operator
import pathlib
import re

import pytest

from fastgrad.backends import ACTIVATIONS

ROOT = pathlib.Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"
BACKENDS = ROOT / "fastgrad" / "backends"

_NUMBER = r"\(?\s*(-?[0-9][0-9.eE+-]*)f?\s*\)?"


def _c_constants():
    """``{name: number}`` of every numeric ``#define`` and enum constant under csrc/."""
    constants = {}
    for path in sorted(CSRC.glob("*.[chi]*")):
        text = path.read_text()
        for name, value in re.findall(rf"^#define\s+(FG_\w+)\s+{_NUMBER}\s*(?:/\*.*)?$", text,
                                      re.MULTILINE):
            constants[name] = float(value)
        for body in re.findall(r"\benum\s*\{([^}]*)\}", text):
            for name, value in re.findall(rf"(FG_\w+)\s*=\s*{_NUMBER}", body):
                constants[name] = float(value)
    return constants


_OPERATIONS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
               ast.LShift: operator.lshift, ast.Pow: operator.pow}


def _evaluate(node):
    """The value of a literal expression: numbers, tuples, unary minus and arithmetic."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Tuple):
        return tuple(_evaluate(element) for element in node.elts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATIONS:
        return _OPERATIONS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    raise ValueError(f"not a literal: {ast.dump(node)}")


def _python_constants(relative):
    """``{name: value}`` of the module-level assignments of literals in a backend module."""
    constants = {}
    for node in ast.parse((BACKENDS / relative).read_text()).body:
        if not isinstance(node, ast.Assign):
            continue
        try:
            value = _evaluate(node.value)
        except ValueError:
            continue
        for target in node.targets:
            if isinstance(target, ast.Name):
                constants[target.id] = value
            elif isinstance(target, ast.Tuple) and isinstance(value, tuple):
                constants.update({t.id: v for t, v in zip(target.elts, value)})
    return constants


C = _c_constants()

#: (C name, Python module under fastgrad/backends, Python name)
SHARED = [
    ("FG_ABI_VERSION", "c.py", "ABI_VERSION"),
    ("FG_ERR_OFFSETS", "c.py", "_ERR_OFFSETS"),
    ("FG_ERR_MEMORY", "c.py", "_ERR_MEMORY"),
    ("FG_ERR_BLAS", "c.py", "_ERR_BLAS"),
    ("FG_ERR_ACTIVATION", "c.py", "_ERR_ACTIVATION"),
    ("FG_ERR_GEOMETRY", "c.py", "_ERR_GEOMETRY"),
    ("FG_CHUNK", "numba_cpu/_layers.py", "CHUNK"),
    ("FG_CHUNK", "numba_cpu/_arena.py", "CHUNK"),
    ("FG_MAX_PIECES", "numba_cpu/_layers.py", "MAX_PIECES"),
    ("FG_GEMM_ALIGN", "numba_cpu/_layers.py", "ALIGN"),
    ("FG_GEMM_MIN_BLOCK_WORK", "numba_cpu/_layers.py", "MIN_BLOCK_WORK"),
    ("FG_GEMM_MAX_BLOCKS", "numba_cpu/_layers.py", "MAX_BLOCKS"),
    ("FG_GEMM_BLAS_SERIAL_WORK", "numba_cpu/_layers.py", "BLAS_SERIAL_WORK"),
    ("FG_BN_COLS", "numba_cpu/_layers.py", "BN_COLS"),
    ("FG_BN_TASKS", "numba_cpu/_layers.py", "BN_TASKS"),
    ("FG_BN_WIDE_COLS", "numba_cpu/_layers.py", "BN_WIDE_COLS"),
    ("FG_LOG2E_32", "numba_cpu/_layers.py", "_LOG2E"),
    ("FG_LOG2E_64", "numba_cpu/_layers.py", "_LOG2E"),
    ("FG_LN2_HI32", "numba_cpu/_layers.py", "_LN2_HI32"),
    ("FG_LN2_LO32", "numba_cpu/_layers.py", "_LN2_LO32"),
    ("FG_LN2_HI64", "numba_cpu/_layers.py", "_LN2_HI64"),
    ("FG_LN2_LO64", "numba_cpu/_layers.py", "_LN2_LO64"),
    ("FG_EXP_MIN32", "numba_cpu/_layers.py", "_EXP_MIN32"),
    ("FG_EXP_MAX32", "numba_cpu/_layers.py", "_EXP_MAX32"),
    ("FG_EXP_MIN64", "numba_cpu/_layers.py", "_EXP_MIN64"),
    ("FG_EXP_MAX64", "numba_cpu/_layers.py", "_EXP_MAX64"),
    ("FG_CBLAS_ROW_MAJOR", "blas.py", "ROW_MAJOR"),
    ("FG_CBLAS_NO_TRANS", "blas.py", "NO_TRANS"),
    ("FG_CBLAS_TRANS", "blas.py", "TRANS"),
]


@pytest.mark.parametrize("c_name, module, name", SHARED,
                         ids=[f"{c}-{m}:{n}" for c, m, n in SHARED])
def test_python_and_c_agree(c_name, module, name):
    assert c_name in C, f"{c_name} is not defined under csrc/"
    python = _python_constants(module)
    assert name in python, f"{name} is not a module-level literal of fastgrad/backends/{module}"
    assert python[name] == C[c_name], (
        f"fastgrad/backends/{module}: {name} = {python[name]!r}, csrc/: {c_name} = "
        f"{C[c_name]!r}; change both, or neither")


def test_activation_codes_agree_both_ways():
    """Every code of ACTIVATIONS is fastgrad.h's FG_<NAME>, and every activation code the
    header declares is one of ACTIVATIONS."""
    header = (CSRC / "fastgrad.h").read_text()
    block = header[header.index("/* activation codes"):]
    block = block[:block.index("\n\n")]
    declared = {name: int(value) for name, value in
                re.findall(r"#define\s+FG_(\w+)\s+(-?\d+)", block)}
    expected = {name.upper(): code for name, code in ACTIVATIONS.items()}
    assert declared == expected, (
        f"fastgrad.h's activation codes {declared} differ from ACTIVATIONS {expected}: declare "
        f"each code in both")


def test_every_shared_c_constant_is_checked():
    """The C constants with a Python twin are all in SHARED: a constant of the listed families
    that is new in csrc/ needs its agreement here, or a comment why it has no twin."""
    families = ("FG_CHUNK", "FG_MAX_PIECES", "FG_GEMM_", "FG_BN_", "FG_LOG2E", "FG_LN2_",
                "FG_EXP_", "FG_CBLAS_", "FG_ERR_", "FG_ABI_")
    # C's alone: the batchnorm lanes (the Numba backend sums without them)
    own = {"FG_BN_LANES"}
    listed = {c_name for c_name, _, _ in SHARED}
    unchecked = {name for name in C if name.startswith(families)} - listed - own
    assert not unchecked, f"C constants with no agreement check: {sorted(unchecked)}"


def _compiled_c():
    if importlib.util.find_spec("fastgrad.backends._ckernels") is None:
        pytest.skip("the compiled C kernels are not installed")
    from fastgrad import backends
    module = backends._load("c")
    if module is None:
        pytest.skip(f"the c backend is unavailable: {backends.describe()['c']}")
    return module


def test_parallel_thresholds_are_the_headers_groups_and_values():
    """The C backend's kernel groups are exactly the header's FG_PAR_<GROUP> (each with its
    _SPINNING twin), and the compiled values are the header's (not a stale build)."""
    c = _compiled_c()
    header = {name: value for name, value in C.items() if name.startswith("FG_PAR_")}
    groups = {f"FG_PAR_{group.upper()}" for group in c.PARALLEL_MIN}
    assert set(header) == groups | {f"{name}_SPINNING" for name in groups}
    for name, value in header.items():
        assert getattr(c._lib, name) == value, f"{name}: compiled {getattr(c._lib, name)}, " \
                                               f"header {value}: rebuild with pip install -e ."
    assert c._lib.fg_abi_version() == C["FG_ABI_VERSION"]
