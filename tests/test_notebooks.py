"""The notebooks in notebooks/: every equation tag has a check in one of them, each .ipynb is in
sync with its jupytext .py source, and each notebook runs without error in a real kernel
(quick mode: NUMBAMLP_NOTEBOOK_QUICK=1, matplotlib's Agg backend)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from numbamlp.equations import EQUATIONS

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]-*.py"))
TAG = re.compile(r"\b[A-Z]\.\d+\b")
HAVE_TOOLS = all(importlib.util.find_spec(m) for m in ("jupytext", "nbclient", "ipykernel"))
needs_tools = pytest.mark.skipif(
    not HAVE_TOOLS, reason='notebook tools missing: pip install -e ".[notebooks]"'
)
#: A tag counts as "next to its check" when it is in a code cell with an assert, or in a cell
#: followed within this many cells by a code cell with an assert.
CHECK_WINDOW = 3


def cells(path: Path) -> list[tuple[str, str]]:
    """(cell type, source) of each cell of a percent-format notebook, without jupytext."""
    out: list[tuple[str, str]] = []
    kind, lines = None, []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# %%"):
            if kind is not None:
                out.append((kind, "\n".join(lines)))
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        elif kind is not None:
            lines.append(line)
    if kind is not None:
        out.append((kind, "\n".join(lines)))
    return out


def test_there_is_one_notebook_per_topic():
    names = [p.stem for p in SOURCES]
    assert names == [
        "01-warm-up",
        "02-backpropagation",
        "03-jacobian-view",
        "04-mnist",
        "05-performance",
        "06-errata",
        "07-tables",
        "08-dropout",
    ]


def checked_tags(paths: list[Path]) -> set[str]:
    """Tags cited in a cell that asserts, or in a cell shortly before one."""
    checked: set[str] = set()
    for path in paths:
        nb = cells(path)
        for index, (_, source) in enumerate(nb):
            window = nb[index : index + 1 + CHECK_WINDOW]
            if any(kind == "code" and "assert " in text for kind, text in window):
                checked.update(TAG.findall(source))
    return checked


def test_every_equation_tag_appears_next_to_a_check():
    """Each registry tag is cited in some notebook in (or just before) a cell that asserts."""
    missing = sorted(set(EQUATIONS) - checked_tags(SOURCES))
    assert not missing, f"tags without a check in any notebook: {missing}"


def test_a_tag_far_from_any_assert_does_not_count(tmp_path):
    far = "\n".join(["# %% [markdown]", "# (B.4) the recursion", *["# %%", "x = 1"] * 4])
    near = "\n".join(["# %% [markdown]", "# (B.3)", "# %%", "assert 1 + 1 == 2"])
    (tmp_path / "far.py").write_text(far)
    (tmp_path / "near.py").write_text(near)
    assert checked_tags([tmp_path / "far.py", tmp_path / "near.py"]) == {"B.3"}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_notebooks_cite_only_registered_tags(path):
    cited = set(TAG.findall(path.read_text(encoding="utf-8")))
    assert cited <= set(EQUATIONS), sorted(cited - set(EQUATIONS))


@needs_tools
@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_ipynb_is_in_sync_with_its_py_source(path):
    """The committed .ipynb holds the same cells as the .py (re-run notebooks/run.py if not)."""
    import jupytext

    ipynb = path.with_suffix(".ipynb")
    assert ipynb.is_file(), f"{ipynb.name} missing: run python notebooks/run.py {path.stem}"
    from_py = jupytext.read(path)
    from_ipynb = jupytext.read(ipynb)
    assert [(c.cell_type, c.source) for c in from_ipynb.cells] == [
        (c.cell_type, c.source) for c in from_py.cells
    ], f"{ipynb.name} is out of date: run python notebooks/run.py {path.stem}"
    assert any(c.get("outputs") for c in from_ipynb.cells if c.cell_type == "code"), (
        f"{ipynb.name} has no outputs"
    )
    assert ipynb.stat().st_size < 800_000, f"{ipynb.name} is large: lower figure sizes"


@needs_tools
@pytest.mark.slow
@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_notebook_runs(path, monkeypatch):
    """Every cell runs in a fresh kernel, in quick mode, without an error (a failing assert in a
    check cell fails this test)."""
    monkeypatch.setenv("NUMBAMLP_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    spec = importlib.util.spec_from_file_location("notebooks_run", NOTEBOOKS / "run.py")
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)

    notebook = run.execute(path, timeout=600)
    errors = [
        out
        for cell in notebook.cells
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert not errors
