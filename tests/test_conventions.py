"""The project's own conventions, checked (stumpy keeps small scripts like these).

* The library speaks the library's language: no message outside the command line names a
  ``--flag``; it names the parameter (`lr=1e-4`), and the command line translates.
* The command line's choices are the registries' names, so the two cannot drift.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import numbamlp.cli.commands as cli
from numbamlp.datasets import loaders as datasets
from numbamlp.kernels import activations, optimizers, sampling
from numbamlp.model import network
from numbamlp.training import config as runconfig
from numbamlp.training import schedules

PACKAGE = Path(cli.__file__).parents[1]
#: Modules allowed to write --flags: the command line (cli/) and engines/cuda/ptx.py, a script
#: with its own argparse command line.
COMMAND_LINES = {*(PACKAGE / "cli").glob("*.py"), PACKAGE / "engines" / "cuda" / "ptx.py"}
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]*")


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def flags_in_messages(path: Path) -> list[str]:
    """Every string constant of ``path`` (f-string parts included, docstrings excluded) that
    names a --flag outside backquotes (`apt-get install --reinstall …` is another program's),
    as 'line: text'."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = _docstrings(tree)
    hits = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and FLAG.search(re.sub(r"`[^`]*`", "", node.value))
        ):
            hits.append(f"{node.lineno}: {node.value.strip()[:80]}")
    return hits


LIBRARY = sorted(p for p in PACKAGE.rglob("*.py") if p not in COMMAND_LINES)


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_library_message_names_a_command_line_flag(path):
    assert flags_in_messages(path) == []


def test_the_check_finds_a_flag_where_there_is_one(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('"""Docstrings may say --lr."""\nraise ValueError(f"try --lr {1e-3}")\n')
    assert flags_in_messages(bad) == ["2: try --lr"]


def test_the_command_line_translates_parameters_into_flags():
    message = "Try `lr=0.0001` or point `data_dir` at it; `epochs=N`; `nothing_of_ours` stays"
    assert cli.cli_message(message, cli.train) == (
        "Try --lr 0.0001 or point --data-dir at it; --epochs N; `nothing_of_ours` stays"
    )
    assert cli.cli_message("`output_path`: is a directory", cli.predict) == "--output: is a " \
        "directory"  # fmt: skip


def _choices(name: str) -> tuple[str, ...]:
    (param,) = [p for p in cli.train.params if p.name == name]
    return tuple(param.type.choices)


def test_the_command_line_s_choices_are_the_registries():
    assert tuple(activations.CODES) == runconfig.ACTIVATIONS == cli.ACTIVATIONS
    assert tuple(optimizers.OPTIMIZERS) == runconfig.OPTIMIZERS == _choices("optimizer")
    assert schedules.SCHEDULES == runconfig.SCHEDULES == _choices("schedule")
    assert network.HEADS == runconfig.HEADS == _choices("head")
    assert network.DTYPES == runconfig.DTYPES == _choices("dtype")
    assert sampling.SAMPLING_MODES == runconfig.SAMPLINGS == _choices("sampling")
    assert datasets.DATASET_NAMES == runconfig.DATASETS == _choices("dataset")
    assert runconfig.ENGINES == _choices("engine") and runconfig.DEVICES == _choices("device")
    from numbamlp.datasets import userfiles

    assert userfiles.TASKS == runconfig.TASKS == _choices("task")
    from numbamlp.model import export

    (fmt,) = [p for p in cli.export_model.params if p.name == "export_format"]
    assert export.EXPORT_FORMATS == runconfig.EXPORT_FORMATS == tuple(fmt.type.choices)


# --- the layers: imports point one way ---------------------------------------------------------

#: numbamlp's layers, bottom up (docs/architecture.md): a module may import from its own layer
#: and the ones below it, never from a layer above.
LAYERS = {
    "errors": 0,
    "equations": 0,
    "datasets": 1,
    "kernels": 2,
    "model": 3,
    "engines": 4,
    "training": 5,
    "cli": 6,
    "estimator": 6,
    "__init__": 6,
    "__main__": 6,
}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def upward_imports(path: Path, module: str) -> list[str]:
    """The numbamlp imports of ``path`` (the module ``module``) that reach a higher layer,
    including those inside functions and under TYPE_CHECKING."""
    own = LAYERS[_layer(module)]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("numbamlp"):
            if node.module == "numbamlp":
                names = [f"numbamlp.{alias.name}" for alias in node.names]
            else:
                names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names if alias.name.startswith("numbamlp")]
        for name in names:
            if name != "numbamlp" and LAYERS.get(_layer(name), -1) > own:
                found.append(f"{module} -> {name} (line {node.lineno})")
    return found


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_every_module_belongs_to_a_layer():
    assert {_layer(_module_name(p)) for p in PACKAGE.rglob("*.py")} <= set(LAYERS)


def test_imports_point_down_the_layers():
    upward = [
        hit for p in sorted(PACKAGE.rglob("*.py")) for hit in upward_imports(p, _module_name(p))
    ]
    assert upward == []


def test_the_layer_check_finds_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from numbamlp.training.fit import fit\n")
    assert upward_imports(bad, "numbamlp.kernels.bad") == [
        "numbamlp.kernels.bad -> numbamlp.training.fit (line 2)"
    ]
