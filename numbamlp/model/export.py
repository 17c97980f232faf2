"""Export a model's weights for other frameworks: a safetensors file in PyTorch's layout.

The layout (``format`` "numbamlp-safetensors", version 1), for layers k = 1..L:

* tensor ``"{2(k−1)}.weight"`` is W^k, shape (d_k, d_{k−1}), and ``"{2(k−1)}.bias"`` is b^k,
  shape (d_k,), in the model's dtype. These are the ``state_dict`` keys of
  ``nn.Sequential(nn.Linear(d_0, d_1), φ_1, nn.Linear(d_1, d_2), φ_2, …, nn.Linear(d_{L−1},
  d_L))``: module 2(k−1) is the k-th Linear, module 2k−1 its activation (an identity layer is
  ``nn.Identity()``, so the numbering never shifts). ``nn.Linear`` computes x Wᵀ + b with its
  weight stored (out, in), which is F.1 with numbamlp's W^k as it is: no transpose.
* The metadata (safetensors metadata is text → text; lists and mappings are JSON):
  ``format``, ``format_version``, ``numbamlp_version``, ``sizes`` (d_0..d_L), ``activations``
  (φ_1..φ_{L−1}), ``torch_modules`` (the Sequential's modules, e.g. ``["Linear(784, 32)",
  "Sigmoid()", "Linear(32, 10)"]``), ``head``, ``n_classes``, ``dtype``, and, when the model
  file records them, ``class_names``, ``dataset`` and ``input`` (the model's record of how its
  inputs are scaled, copied as it is).

The Sequential computes the logits z^L. With the ``softmax`` head the class probabilities are
``softmax(z^L)``; with ``modified-softmax`` (MMiDS γ̃) z^L has M−1 entries and class M is the
reference class with logit 0, so append a zero column first: ``torch.cat([z, z.new_zeros(n,
1)], 1)``, then softmax or argmax, to get numbamlp's ``predict_proba`` / ``predict``.

Needs the ``safetensors`` package (``pip install "numbamlp[export]"``); PyTorch is not needed to
write the file.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from numbamlp import __version__
from numbamlp.datasets.atomic import atomic_write
from numbamlp.errors import NumbamlpError
from numbamlp.model.mlp import MLP

FORMAT = "numbamlp-safetensors"
FORMAT_VERSION = 1
NEEDS_SAFETENSORS = (
    'exporting to safetensors needs the safetensors package: pip install "numbamlp[export]"'
)

#: The torch.nn module that computes each of numbamlp's activations (A.1–A.6), by name, as
#: written in the ``torch_modules`` metadata. leaky_relu's slope α is activations.py's 0.01,
#: torch's default; Softplus's default (β = 1, linear above 20) differs from log(1 + e^t) by
#: less than e^{−20}.
TORCH_ACTIVATIONS = {
    "sigmoid": "Sigmoid()",
    "tanh": "Tanh()",
    "relu": "ReLU()",
    "leaky_relu": "LeakyReLU(negative_slope=0.01)",
    "softplus": "Softplus(beta=1.0, threshold=20.0)",
    "identity": "Identity()",
}

#: Model-file metadata fields copied into the export when present.
COPIED_METADATA = ("class_names", "dataset", "input")


def tensor_name(k: int, what: str) -> str:
    """The tensor name of W^k (``what`` = "weight") or b^k ("bias"): nn.Sequential's module
    index of the k-th nn.Linear is 2(k−1)."""
    return f"{2 * (k - 1)}.{what}"


def safetensors_tensors(model: MLP) -> dict[str, np.ndarray]:
    """W^k and b^k of every layer under their nn.Sequential names, as contiguous copies."""
    params, tensors = model.params, {}
    for k in range(1, model.architecture.L + 1):
        tensors[tensor_name(k, "weight")] = np.ascontiguousarray(params.W[k]).copy()
        tensors[tensor_name(k, "bias")] = np.ascontiguousarray(params.b[k]).copy()
    return tensors


def safetensors_metadata(model: MLP, metadata: dict[str, Any] | None = None) -> dict[str, str]:
    """The file's metadata (see the module docstring); ``metadata`` is the model file's."""
    arch = model.architecture
    modules = []
    for k in range(1, arch.L + 1):
        modules.append(f"Linear({arch.sizes[k - 1]}, {arch.sizes[k]})")
        if k < arch.L:
            modules.append(TORCH_ACTIVATIONS[arch.activations[k - 1]])
    out = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "numbamlp_version": __version__,
        "sizes": json.dumps(list(arch.sizes)),
        "activations": json.dumps(list(arch.activations)),
        "torch_modules": json.dumps(modules),
        "head": arch.head,
        "n_classes": str(arch.n_classes),
        "dtype": str(model.dtype),
    }
    for key in COPIED_METADATA:
        value = (metadata or {}).get(key)
        if value is not None:
            out[key] = value if isinstance(value, str) else json.dumps(value)
    return out


def export_safetensors(
    path: str | os.PathLike, model: MLP, metadata: dict[str, Any] | None = None
) -> None:
    """Write ``model``'s weights to ``path`` as safetensors, atomically (atomic.py: a crash or
    a full disk leaves any previous file intact). ``metadata``: the model file's, whose
    class names, data set and input record are copied."""
    try:
        from safetensors.numpy import save
    except ImportError:
        raise NumbamlpError(NEEDS_SAFETENSORS) from None
    data = save(safetensors_tensors(model), safetensors_metadata(model, metadata))
    atomic_write(path, lambda f: f.write(data))
