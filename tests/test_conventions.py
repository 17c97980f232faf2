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

import numbamlp.cli as cli
from numbamlp import activations, datasets, network, optimizers, runconfig, sampling, schedules

PACKAGE = Path(cli.__file__).parent
#: Modules allowed to write --flags: the command line itself, cuda/ptx.py (a script with its own
#: argparse command line), and errata.py (course material that prints command lines for the
#: notebooks).
COMMAND_LINES = {PACKAGE / "cli.py", PACKAGE / "cuda" / "ptx.py", PACKAGE / "errata.py"}
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
    assert tuple(activations.CODES) == runconfig.ACTIVATIONS == cli.ACTIVATION_NAMES
    assert tuple(optimizers.OPTIMIZERS) == runconfig.OPTIMIZERS == _choices("optimizer")
    assert schedules.SCHEDULES == runconfig.SCHEDULES == _choices("schedule")
    assert network.HEADS == runconfig.HEADS == _choices("head")
    assert network.DTYPES == runconfig.DTYPES == _choices("dtype")
    assert sampling.SAMPLING_MODES == runconfig.SAMPLINGS == _choices("sampling")
    assert datasets.DATASET_NAMES == runconfig.DATASETS == _choices("dataset")
    assert runconfig.ENGINES == _choices("engine") and runconfig.DEVICES == _choices("device")
