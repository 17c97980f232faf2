"""Every CPU kernel of forward.py, backward.py and optimizers.py has a CUDA twin in
numbamlp/engines/cuda/ with the same name, the same argument names in the same order and the same
equation tags, read from the source (no CUDA package is imported here)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import numbamlp

PACKAGE = Path(numbamlp.__file__).parent
MODULES = ["forward", "backward", "optimizers"]
KERNELS = PACKAGE / "kernels"  # the CPU kernels; their twins are in CUDA below
CUDA = PACKAGE / "engines" / "cuda"
TAG = re.compile(r"\b[A-Z]\.\d+\b")
#: Twins whose arguments differ on purpose, with the reason.
ARGUMENTS_DIFFER = {
    "batch_mean": "a kernel cannot return: the CUDA twin writes the mean to its first argument",
    "weight_penalty": "a kernel cannot return: the CUDA twin writes the sum to its first argument",
    "count_correct": "a kernel cannot return: the CUDA twin writes the count to its first argument",
}
JIT_DECORATORS = {"kernel", "serial", "helper"}


def _decorator_name(node: ast.expr) -> str:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return f"{getattr(node.value, 'id', '')}.{node.attr}"
    return getattr(node, "id", "")


def _functions(path: Path, cuda: bool) -> dict[str, tuple[list[str], set[str]]]:
    """name → (argument names, tags in its source) of each compiled kernel in the file."""
    text = path.read_text(encoding="utf-8")
    found = {}
    for node in ast.parse(text).body:
        if not isinstance(node, ast.FunctionDef):
            continue
        names = {_decorator_name(d) for d in node.decorator_list}
        if (cuda and "cuda.jit" in names) or (not cuda and names & JIT_DECORATORS):
            source = ast.get_source_segment(text, node) or ""
            found[node.name] = ([a.arg for a in node.args.args], set(TAG.findall(source)))
    return found


@pytest.mark.parametrize("module", MODULES)
def test_every_cpu_kernel_has_a_cuda_twin(module):
    cpu = _functions(KERNELS / f"{module}.py", cuda=False)
    gpu = _functions(CUDA / f"{module}.py", cuda=True)
    assert cpu, module
    missing = sorted(set(cpu) - set(gpu))
    assert not missing, f"CPU kernels of {module}.py without a CUDA twin: {missing}"
    extra = sorted(set(gpu) - set(cpu))
    assert not extra, f"CUDA kernels in cuda/{module}.py with no CPU twin: {extra}"
    for name, (cpu_args, cpu_tags) in cpu.items():
        gpu_args, gpu_tags = gpu[name]
        if name in ARGUMENTS_DIFFER:
            assert gpu_args[1:] == cpu_args, name
        else:
            assert gpu_args == cpu_args, (name, cpu_args, gpu_args)
        assert gpu_tags == cpu_tags, (name, cpu_tags, gpu_tags)


def test_cuda_kernels_use_no_numpy_functions():
    """np.exp, np.sqrt … do not compile in device code: kernels use math.*."""
    for module in MODULES + ["activations"]:
        text = (CUDA / f"{module}.py").read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef) and any(
                _decorator_name(d) == "cuda.jit" for d in node.decorator_list
            ):
                source = ast.get_source_segment(text, node) or ""
                assert "np." not in source, (module, node.name)
