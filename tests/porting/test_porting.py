"""The porting suite: PyTorch tutorial-shaped scripts (the numbered ``*.py`` files next to this
one), each run unchanged under PyTorch (skipped without it) and under fastgrad after the import
swap described in README.md here, which :func:`swap_imports` applies.

Scripts run in-process, in a fresh ``__main__`` namespace with the working directory in a
temporary folder, so the suite costs one import of each framework rather than a process per
script. Global state a script may change (default dtype, grad mode, thread count, the default
random generator) is restored afterwards.
"""
import ast
import pathlib
import sys

import pytest

import fastgrad

HERE = pathlib.Path(__file__).parent
SCRIPTS = sorted(HERE.glob("[0-9]*.py"))

#: What a script may import: the PyTorch modules the swap covers, NumPy, and a few of the
#: standard library's.
ALLOWED_MODULES = {
    "torch", "torch.nn", "torch.nn.functional", "torch.optim", "torch.optim.lr_scheduler",
    "torch.utils.data", "numpy", "math", "io", "os", "tempfile", "collections",
}


def swap_imports(source):
    """Rewrite the import statements of a PyTorch script so that it runs on fastgrad.

    In import statements only, the top-level module ``torch`` becomes ``fastgrad``, and a bare
    ``import torch`` becomes ``import fastgrad as torch`` so the name ``torch`` still works::

        import torch                           ->  import fastgrad as torch
        import torch.nn as nn                  ->  import fastgrad.nn as nn
        import torch.nn.functional as F        ->  import fastgrad.nn.functional as F
        from torch import nn, optim            ->  from fastgrad import nn, optim
        from torch.optim import lr_scheduler   ->  from fastgrad.optim import lr_scheduler
        from torch.utils.data import Dataset   ->  from fastgrad.utils.data import Dataset

    Everything else (``torch.`` in code, strings, comments) is left alone. Each rewritten
    statement keeps its indentation, its trailing comment and its line numbers, so tracebacks
    point at the script's own lines.

    Raises:
        ValueError: for ``import torch.nn`` without ``as`` (it binds ``torch`` to the package,
            a form the swap cannot express), or an import sharing its lines with other code.
    """
    lines = source.splitlines(keepends=True)
    edits = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = []
            for alias in node.names:
                if alias.name == "torch":
                    names.append(ast.alias("fastgrad", alias.asname or "torch"))
                elif alias.name.startswith("torch."):
                    if alias.asname is None:
                        raise ValueError(f"line {node.lineno}: 'import {alias.name}' binds "
                                         f"'torch'; write 'import {alias.name} as <name>'")
                    names.append(ast.alias("fastgrad" + alias.name[len("torch"):], alias.asname))
                else:
                    names.append(alias)
            new = ast.Import(names=names)
        elif (isinstance(node, ast.ImportFrom) and node.level == 0
              and (node.module == "torch" or node.module.startswith("torch."))):
            new = ast.ImportFrom("fastgrad" + node.module[len("torch"):], node.names, 0)
        else:
            continue
        if ast.unparse(new) == ast.unparse(node):
            continue
        first, last = node.lineno - 1, node.end_lineno - 1
        indent, rest = lines[first][:node.col_offset], lines[last][node.end_col_offset:]
        if indent.strip() or rest.strip() and not rest.strip().startswith("#"):
            raise ValueError(f"line {node.lineno}: an import must stand on its own lines")
        edits.append((first, last, indent + ast.unparse(new) + rest + "\n" * (last - first)))
    for first, last, text in sorted(edits, reverse=True):
        lines[first:last + 1] = [text]
    return "".join(lines)


def _run(source, path, monkeypatch, tmp_path):
    """Execute ``source`` as the script ``path`` would run: as ``__main__``, from ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(path)])
    code = compile(source, str(path), "exec")
    # exec, not runpy: a swapped script exists only as source; the file name keeps tracebacks
    exec(code, {"__name__": "__main__", "__file__": str(path),  # noqa: S102
                "__builtins__": __builtins__})


@pytest.fixture
def torch_module():
    """PyTorch on one thread; its global state as it was before, afterwards."""
    torch = pytest.importorskip("torch")
    saved = (torch.get_default_dtype(), torch.is_grad_enabled(), torch.get_num_threads(),
             torch.get_rng_state())
    torch.set_num_threads(1)
    yield torch
    torch.set_default_dtype(saved[0])
    torch.set_grad_enabled(saved[1])
    torch.set_num_threads(saved[2])
    torch.set_rng_state(saved[3])


@pytest.fixture
def fastgrad_state():
    """fastgrad's global state as it was before the script, afterwards."""
    saved = (fastgrad.get_default_dtype(), fastgrad.is_grad_enabled(), fastgrad.get_num_threads(),
             fastgrad.random.default_generator.get_state())
    yield
    fastgrad.set_default_dtype(saved[0])
    fastgrad.set_grad_enabled(saved[1])
    fastgrad.set_num_threads(saved[2])
    fastgrad.random.default_generator.set_state(saved[3])


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda path: path.stem)
def test_script_runs_under_pytorch(path, torch_module, monkeypatch, tmp_path):
    _run(path.read_text(), path, monkeypatch, tmp_path)


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda path: path.stem)
def test_script_runs_under_fastgrad(path, fastgrad_state, monkeypatch, tmp_path):
    _run(swap_imports(path.read_text()), path, monkeypatch, tmp_path)


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda path: path.stem)
def test_script_imports_only_what_the_swap_covers(path):
    """A script imports only the allowed modules, in forms swap_imports rewrites."""
    source = path.read_text()
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module]
        else:
            continue
        for module in modules:
            assert module in ALLOWED_MODULES, f"{path.name}:{node.lineno} imports {module}"
    swapped = swap_imports(source)
    assert swapped.count("\n") == source.count("\n")
    for node in ast.walk(ast.parse(swapped)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module] if isinstance(node, ast.ImportFrom) else [
                alias.name for alias in node.names]
            assert not any(name == "torch" or name.startswith("torch.") for name in names)
    assert "torch.manual_seed(" in source, f"{path.name} must seed torch"


def test_suite_size():
    assert len(SCRIPTS) >= 32
    assert len({path.stem.split("_")[0] for path in SCRIPTS}) == len(SCRIPTS)


def test_swap_imports_rewrites_each_form():
    source = (
        "import torch\n"
        "import torch.nn as nn\n"
        "import torch.nn.functional as F\n"
        "import numpy as np, torch\n"
        "from torch import nn, optim\n"
        "from torch.optim import lr_scheduler\n"
        "from torch.utils.data import (Dataset,\n"
        "                              DataLoader)\n"
        "import torchvision_like\n"
        "from torchaudio_like import x\n"
        "def f():\n"
        "    import torch.optim as optim  # inside a function\n"
        "    return torch.zeros(1)  # 'import torch' in a comment stays\n"
        "s = 'import torch'\n"
    )
    expected = (
        "import fastgrad as torch\n"
        "import fastgrad.nn as nn\n"
        "import fastgrad.nn.functional as F\n"
        "import numpy as np, fastgrad as torch\n"
        "from fastgrad import nn, optim\n"
        "from fastgrad.optim import lr_scheduler\n"
        "from fastgrad.utils.data import Dataset, DataLoader\n"
        "\n"
        "import torchvision_like\n"
        "from torchaudio_like import x\n"
        "def f():\n"
        "    import fastgrad.optim as optim  # inside a function\n"
        "    return torch.zeros(1)  # 'import torch' in a comment stays\n"
        "s = 'import torch'\n"
    )
    assert swap_imports(source) == expected
    assert swap_imports("import numpy as np\n") == "import numpy as np\n"


def test_swap_imports_refuses_what_it_cannot_express():
    with pytest.raises(ValueError, match="binds 'torch'"):
        swap_imports("import torch.nn\n")
    with pytest.raises(ValueError, match="own lines"):
        swap_imports("x = 1; import torch\n")


def test_swapped_script_runs_on_fastgrad(monkeypatch, tmp_path):
    """The harness itself: a swapped script sees fastgrad under the name torch."""
    script = tmp_path / "probe.py"
    script.write_text("import torch\nimport torch.nn as nn\nRESULT.append((torch, nn))\n")
    result = []
    source = swap_imports(script.read_text())
    monkeypatch.chdir(tmp_path)
    exec(compile(source, str(script), "exec"),  # noqa: S102
         {"__name__": "__main__", "RESULT": result})
    assert result == [(fastgrad, fastgrad.nn)]
