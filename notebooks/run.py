"""Execute the notebooks from their jupytext ``.py`` sources and write the paired ``.ipynb``.

    python notebooks/run.py                 # every notebook, full size, outputs saved
    python notebooks/run.py 03-jacobian-view
    NUMBAMLP_NOTEBOOK_QUICK=1 python notebooks/run.py --no-write   # what CI runs

The ``.py`` files are the source of truth (review them); the ``.ipynb`` files carry the outputs
and plots so they read on a code host. tests/test_notebooks.py uses ``execute`` in quick mode.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
QUICK_ENV = "NUMBAMLP_NOTEBOOK_QUICK"


def sources() -> list[Path]:
    """The notebooks' .py sources, in order (this script excluded)."""
    return sorted(p for p in HERE.glob("[0-9][0-9]-*.py"))


@contextmanager
def this_python_kernel():
    """A kernelspec named python3 that runs *this* interpreter, ahead of any other on the path
    (a user-wide python3 kernel could point at another environment without numbamlp)."""
    with tempfile.TemporaryDirectory() as tmp:
        spec_dir = Path(tmp) / "kernels" / "python3"
        spec_dir.mkdir(parents=True)
        spec = {
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3",
            "language": "python",
        }
        (spec_dir / "kernel.json").write_text(json.dumps(spec))
        before = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = os.pathsep.join([tmp, *([before] if before else [])])
        try:
            yield "python3"
        finally:
            if before is None:
                del os.environ["JUPYTER_PATH"]
            else:
                os.environ["JUPYTER_PATH"] = before


def execute(source: Path, timeout: int = 1800) -> nbformat.NotebookNode:
    """Run every cell of the notebook in a fresh kernel (cwd: notebooks/); raises on an error."""
    notebook = jupytext.read(source)
    with this_python_kernel() as kernel_name:
        client = NotebookClient(
            notebook,
            timeout=timeout,
            kernel_name=kernel_name,
            record_timing=False,  # no timestamps in the saved file: smaller diffs
            resources={"metadata": {"path": str(source.parent)}},
        )
        client.execute()
    return notebook


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook names (default: all)")
    parser.add_argument("--no-write", action="store_true", help="run only, keep the .ipynb")
    args = parser.parse_args(argv)
    chosen = [p for p in sources() if not args.names or p.stem in args.names]
    for source in chosen:
        print(f"running {source.name}{' (quick)' if os.environ.get(QUICK_ENV) == '1' else ''}")
        notebook = execute(source)
        if not args.no_write:
            jupytext.write(notebook, source.with_suffix(".ipynb"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
