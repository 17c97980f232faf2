"""Compile every CUDA kernel to PTX without a GPU: the type check the simulator does not do.

``python -m numbamlp.engines.cuda.ptx [--cc 9.0 ...]`` compiles each kernel of cuda/forward.py,
backward.py, optimizers.py, checks.py and dropout.py for float32 and float64, with the argument
types the trainer passes, for each compute capability given; it prints one line per kernel and
exits 1 if any fails. It needs NVVM, which the ``cuda`` extra installs as wheels (numba-cuda[cu13]).

Both backends ask the driver for the current device's compute capability while compiling a
kernel that calls a device function (φ, φ′), even when the target is given. With no GPU there
is no driver, so for the duration of the compile that question is answered with the target
(``_target_device``): a patch of one lookup in each backend, the only place this module reaches
into their internals.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator
from typing import Any

from numbamlp.engines.cuda import backward, checks, dropout, forward, optimizers
from numbamlp.engines.cuda.backend import BACKEND, MLIR, cuda

MODULES = (forward, backward, optimizers, checks, dropout)
DEFAULT_CCS = ((8, 0), (9, 0))


def _signatures(dtype_name: str) -> dict[str, list[tuple]]:
    """Argument types of each kernel, as the trainer calls it (some kernels have several)."""
    types: Any = getattr(cuda, "types", None)  # each backend has its own type objects
    if types is None or not hasattr(types, "Array"):
        from numba import types

    ft = getattr(types, dtype_name)

    def a(dt, ndim):
        return types.Array(dt, ndim, "C")

    F1, F2, I1 = a(ft, 1), a(ft, 2), a(types.int64, 1)
    D1 = a(types.float64, 1)  # the sample weights and their factors ω_s (S.2)
    i64 = types.int64
    u64, U1 = types.uint64, a(types.uint64, 1)
    upd = {  # optimizers: θ, state…, g, γ, hyperparameters…
        "sgd_update": (F1, F1, ft),
        "momentum_update": (F1, F1, F1, ft, ft),
        "adagrad_update": (F1, F1, F1, ft, ft),
        "adadelta_update": (F1, F1, F1, F1, ft, ft, ft),
        "rmsprop_update": (F1, F1, F1, ft, ft, ft),
        "adam_update": (F1, F1, F1, F1, ft, ft, ft, ft, ft, ft),
    }
    return {
        # raw bytes (image pixels) or floats
        "gather_batch": [(F2, a(types.uint8, 2), I1, ft), (F2, F2, I1, ft)],
        "affine_forward": [(F2, F2, F1, F2)],
        "activation_forward": [(F2, F2, i64)],
        "softmax_forward": [(F2, F2)],
        "modified_softmax_forward": [(F2, F2)],
        "cross_entropy": [(F1, F2, I1, i64)],
        "identity_forward": [(F2, F2)],
        "squared_error": [(F1, F2, F2)],
        "sample_weight_factors": [(D1, D1, I1)],
        "weight_losses": [(F1, D1)],
        "gather_targets": [(F2, F2, I1)],
        "squared_error_delta": [(F2, F2, F2)],
        "weight_output_delta": [(F2, D1)],
        "batch_mean": [(a(types.float64, 1), F1)],
        "predict_classes": [(I1, F2)],
        "count_correct": [(I1, F2, I1, i64)],
        "gather_labels": [(I1, I1, I1)],
        "output_delta": [(F2, F2, I1)],
        "bias_gradient": [(F1, F2, ft)],
        "weight_gradient": [(F2, F2, F2, ft)],
        "weight_decay_gradient": [(F2, F2, ft)],
        "weight_penalty": [(a(types.float64, 1), F2)],
        "hidden_delta": [(F2, F2, F2, F2, i64)],
        "softmax_jacobian": [(F2, F1)],
        "count_nonfinite": [(I1, F1)],
        # dropout: the layer, step and threshold as uint64, the key (2,) uint64 (D.1–D.3)
        "dropout_mask": [(a(types.uint8, 2), I1, u64, u64, U1, u64)],
        "dropout_forward": [(F2, I1, u64, u64, U1, u64, ft)],
        "dropout_backward": [(F2, I1, u64, u64, U1, u64, ft)],
        **{name: [sig] for name, sig in upd.items()},
    }


def kernels() -> dict[str, Any]:
    """name → kernel (the dispatcher) of every CUDA kernel defined in MODULES."""
    found: dict[str, Any] = {}  # the backend's dispatchers: untyped
    for module in MODULES:
        for name, obj in vars(module).items():
            py_func = getattr(obj, "py_func", None)
            if py_func is not None and py_func.__module__ == module.__name__:
                found[name] = obj
    return found


@contextlib.contextmanager
def _target_device(cc: tuple[int, int]) -> Iterator[None]:
    """Answer "which device is current?" with a device of compute capability ``cc``."""
    if BACKEND == MLIR:
        from numba_cuda_mlir import tools

        saved = tools._cached_cc
        tools._cached_cc = cc
        try:
            yield
        finally:
            tools._cached_cc = saved
        return

    from numba.cuda import dispatcher

    class TargetDevice:
        compute_capability = cc

    saved_lookup = dispatcher.get_current_device
    dispatcher.get_current_device = TargetDevice
    try:
        yield
    finally:
        dispatcher.get_current_device = saved_lookup


def compile_all(
    ccs: tuple[tuple[int, int], ...] = DEFAULT_CCS, dtypes: tuple[str, ...] = ("float32", "float64")
) -> dict[tuple[str, str, tuple[int, int], int], str]:
    """PTX of every kernel, keyed by (name, dtype, cc, signature number); raises on failure."""
    found = kernels()
    ptx = {}
    for dtype in dtypes:
        sigs = _signatures(dtype)
        missing = sorted(set(found) - set(sigs))
        if missing:
            raise KeyError(f"no PTX signature for kernels {missing}")
        for cc in ccs:
            with _target_device(cc):
                for name, kernel in found.items():
                    for n, sig in enumerate(sigs[name]):
                        result = cuda.compile_ptx(kernel.py_func, sig, cc=cc)
                        text = result[0] if isinstance(result, tuple) else result
                        ptx[(name, dtype, cc, n)] = str(text)
    return ptx


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cc", action="append", help="compute capability, e.g. 9.0 (repeat)")
    args = parser.parse_args(argv)
    ccs = tuple(tuple(int(p) for p in c.split(".")) for c in args.cc) if args.cc else DEFAULT_CCS
    started = time.perf_counter()
    try:
        ptx = compile_all(ccs)  # type: ignore[arg-type]
    except Exception as exc:  # report the kernel's compile error on one screen
        print(f"PTX compilation failed ({BACKEND}): {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for (name, dtype, _cc, n), text in sorted(ptx.items()):
        target = next((ln.split()[1] for ln in text.splitlines() if ln.startswith(".target")), "?")
        print(f"{name:26s} {dtype:8s} sig {n}  {target:7s} {len(text):7d} chars of PTX")
    seconds = time.perf_counter() - started
    print(f"{len(ptx)} kernel builds compiled to PTX with {BACKEND} in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
