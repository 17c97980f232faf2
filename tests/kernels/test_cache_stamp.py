"""The on-disk cache of compiled code is keyed on every module with compiled code
(kernels/_jit.py, ``kernel_source_stamp``): a kernel whose helper in another module changed is
compiled again, instead of loading the machine code of the old helper."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from numbamlp.engines.fused import regions
from numbamlp.kernels import _jit, forward


def test_kernels_and_engines_are_stamped_with_every_compiled_module():
    for function in (forward.affine_forward, regions.run_steps):
        locator = function._cache._impl.locator
        assert type(locator).__name__.startswith("Numbamlp")
        assert locator.get_source_stamp() == ("numbamlp kernel sources", _jit.kernel_source_stamp())


def test_only_the_compiled_folders_are_stamped(tmp_path):
    root = _jit.PACKAGE_ROOT
    assert _jit._compiled_here(str(root / "kernels" / "forward.py"))
    assert _jit._compiled_here(str(root / "engines" / "fused" / "tiles.py"))
    assert not _jit._compiled_here(str(root / "training" / "fit.py"))
    assert not _jit._compiled_here(str(tmp_path / "kernels" / "forward.py"))


def _copy_of_the_package(destination: Path) -> Path:
    shutil.copytree(
        _jit.PACKAGE_ROOT,
        destination / "numbamlp",
        ignore=shutil.ignore_patterns("__pycache__", "data"),
    )
    return destination / "numbamlp"


def test_the_stamp_follows_every_byte_of_the_compiled_modules(tmp_path):
    package = _copy_of_the_package(tmp_path)
    before = _jit.kernel_source_stamp.__wrapped__(package)
    assert before == _jit.kernel_source_stamp()  # the same bytes, elsewhere: the same stamp
    (package / "training" / "fit.py").write_text("# not compiled code\n")
    assert _jit.kernel_source_stamp.__wrapped__(package) == before
    tiles = package / "engines" / "fused" / "tiles.py"
    tiles.write_bytes(tiles.read_bytes() + b"\n")
    assert _jit.kernel_source_stamp.__wrapped__(package) != before


SIGMOID_OF_ZERO = """
import numpy as np
from numbamlp.kernels.activations import CODES
from numbamlp.kernels.forward import activation_forward
h, z = np.zeros((1, 1)), np.zeros((1, 1))
activation_forward(h, z, CODES["sigmoid"])
print(h[0, 0])
"""


def test_a_kernel_is_compiled_again_when_a_helper_in_another_module_changes(tmp_path):
    """activation_forward (forward.py) calls σ of activations.py. With a cache keyed on
    forward.py alone, the second run would load the first run's σ and print 0.5 again."""
    package = _copy_of_the_package(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(tmp_path), NUMBA_CACHE_DIR=str(tmp_path / "cache"))

    def sigmoid_of_zero() -> str:
        done = subprocess.run(
            [sys.executable, "-c", SIGMOID_OF_ZERO], env=env, cwd=tmp_path,
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return done.stdout.strip()

    assert sigmoid_of_zero() == "0.5"
    assert any((tmp_path / "cache").rglob("*.nbi"))  # the first run filled the cache
    activations = package / "kernels" / "activations.py"
    source = activations.read_text()
    sigmoid = "    return 1.0 / (1.0 + e) if t >= 0 else e / (1.0 + e)\n"
    assert sigmoid in source
    activations.write_text(source.replace(sigmoid, sigmoid.replace("1.0 / (1.0", "2.0 / (1.0"), 1))
    assert sigmoid_of_zero() == "1.0"
