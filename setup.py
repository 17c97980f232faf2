"""Builds the wheel with the kernels compiled for this machine (numbamlp/cli/precompile.py: why).

Everything else about the package is in pyproject.toml. ``build_py`` copies the package into
the build directory as usual, then runs ``python -m numbamlp.cli.precompile`` there, which leaves
Numba's cache files in ``numbamlp/__pycache__`` of the build directory, so they go into the
wheel and the first ``numbamlp train`` loads its kernels instead of compiling them (~17 s).
Best effort: if it fails, the build goes on and the kernels compile on first use as before.
Skipped for editable installs (their cache fills on first use, next to the sources) and when
``NUMBAMLP_PRECOMPILE=0``.
"""

from __future__ import annotations

import os
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithKernels(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False) or os.environ.get("NUMBAMLP_PRECOMPILE") == "0":
            return
        # In front of what is there: pip's isolated build environment puts its own packages
        # (numba among them) on the path through PYTHONPATH.
        path = [os.path.abspath(self.build_lib), os.environ.get("PYTHONPATH", "")]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in path if p))
        env.pop("NUMBA_CACHE_DIR", None)  # the cache must land next to the built modules
        env.pop("NUMBA_DISABLE_JIT", None)
        print("numbamlp: compiling the kernels for this machine (NUMBAMLP_PRECOMPILE=0 skips)")
        done = subprocess.run(
            [sys.executable, "-m", "numbamlp.cli.precompile"],
            cwd=self.build_lib,
            env=env,
            check=False,
        )
        if done.returncode != 0:
            print("numbamlp: precompiling failed; the kernels will compile on first use")


setup(cmdclass={"build_py": BuildPyWithKernels})
