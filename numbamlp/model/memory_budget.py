"""How much memory a training run will allocate, checked before it allocates any of it.

A width of 10⁹ or a batch of 10¹² would otherwise end in a MemoryError (or a machine that swaps
itself to a halt) part-way through building the model. :func:`check_training_memory` estimates
what θ, the gradient, the optimizer state and the minibatch buffers need and refuses, naming the
size and the amount, when that exceeds the machine's physical memory. The estimate is a lower
bound of what the run holds (the data set itself is already loaded), so a refusal is never wrong.
"""

from __future__ import annotations

import os

from numbamlp.errors import NumbamlpError
from numbamlp.model.network import Architecture

#: Optimizer state arrays of θ's size, by optimizer (kernels/optimizers.py OPTIMIZERS).
_STATE_ARRAYS = {"sgd": 0, "momentum": 1, "adagrad": 1, "rmsprop": 1, "adadelta": 2, "adam": 2}


def physical_memory() -> int | None:
    """The machine's physical memory in bytes, or None where it is not known."""
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not a POSIX system
        return None
    if pages <= 0 or page_size <= 0:
        return None
    return int(pages) * int(page_size)


def effective_batch_size(sampling: str, n_rows: int, batch_size: int) -> int:
    """The batch the sampler uses: ``shuffle`` cuts a permutation of the n rows, so a batch
    larger than n is n (kernels/sampling.py); ``iid`` draws B indices whatever n is."""
    return min(batch_size, n_rows) if sampling == "shuffle" and n_rows >= 1 else batch_size


def training_bytes(
    architecture: Architecture,
    itemsize: int,
    batch_size: int,
    n_rows: int,
    sampling: str,
    optimizer: str,
) -> tuple[int, int]:
    """(bytes for θ, the gradient and the optimizer state; bytes for the minibatch buffers and
    the sampler's index matrix). Python integers: no overflow for any size."""
    P = architecture.n_parameters
    parameters = (2 + _STATE_ARRAYS.get(optimizer, 2)) * P * itemsize
    B = effective_batch_size(sampling, n_rows, batch_size)
    # h, z, δ, f, ℓ_s and the regression targets in θ's dtype; classes, indices, labels and
    # the weights' factors ω_s in 8 bytes each
    sizes = architecture.sizes
    per_row = (3 * sum(sizes) + architecture.n_classes + sizes[-1] + 1) * itemsize + 5 * 8
    steps = -(-n_rows // B) if n_rows >= 1 else 1
    index = steps * B * 8 * (2 if sampling == "iid" else 1)  # iid: indices and their uniforms
    return parameters, B * per_row + index


def format_bytes(n: int) -> str:
    """E.g. '2.9 TiB', '23 GiB', '512 B'."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if value < 1024 or unit == "EiB":
            return f"{value:.0f} {unit}" if unit == "B" or value >= 10 else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def check_training_memory(
    architecture: Architecture,
    itemsize: int,
    batch_size: int,
    n_rows: int,
    sampling: str,
    optimizer: str,
    what: str,
) -> None:
    """Refuse (NumbamlpError) a run whose buffers alone exceed the machine's memory. ``what``
    names the size to blame when the batch is not: e.g. ``"`hidden`: 1000000000 units"``."""
    memory = physical_memory()
    if memory is None:
        return
    parameters, buffers = training_bytes(
        architecture, itemsize, batch_size, n_rows, sampling, optimizer
    )
    if parameters + buffers <= memory:
        return
    B = effective_batch_size(sampling, n_rows, batch_size)
    # The batch is to blame when the network with a batch of one row would fit.
    if sum(training_bytes(architecture, itemsize, 1, n_rows, sampling, optimizer)) <= memory:
        subject = f"`batch_size`: {B} rows"
        needs = "for the minibatch buffers and the sampler's indices"
    else:
        subject = what
        needs = "for θ, the optimizer state and the buffers"
    raise NumbamlpError(
        f"{subject} need {format_bytes(parameters + buffers)} {needs}; "
        f"this machine has {format_bytes(memory)}"
    )
