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

A model trained on standardised features (its input record holds Z.1's μ and σ) is exported
with Z.1 folded into the first layer, so that the Sequential takes the raw features, as
``numbamlp predict`` does: W¹'_{ij} = W¹_{ij}·s/σ_j and b¹'_i = b¹_i − Σ_j W¹_{ij} μ_j/σ_j (s the
record's scale), computed in float64 and stored in the model's dtype; the metadata says
``"standardization": "folded"``. A regressor's Z.2 is folded into the last layer the same way,
W^L' = diag(σ^y) W^L and b^L' = σ^y b^L + μ^y, so the Sequential outputs the targets in their
own units (metadata ``target``: their names and the folded μ^y, σ^y).

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
from numbamlp.datasets.inputscale import record_from_metadata, target_from_metadata
from numbamlp.errors import NumbamlpError
from numbamlp.model.mlp import MLP

#: The formats `numbamlp export` writes: safetensors (here) and ONNX (onnx_export.py).
EXPORT_FORMATS = ("safetensors", "onnx")

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
COPIED_METADATA = ("class_names", "dataset", "input", "target")


def tensor_name(k: int, what: str) -> str:
    """The tensor name of W^k (``what`` = "weight") or b^k ("bias"): nn.Sequential's module
    index of the k-th nn.Linear is 2(k−1)."""
    return f"{2 * (k - 1)}.{what}"


def safetensors_tensors(
    model: MLP, metadata: dict[str, Any] | None = None
) -> dict[str, np.ndarray]:
    """W^k and b^k of every layer under their nn.Sequential names, as contiguous copies; with
    Z.1 (Z.2) of the model file's ``metadata`` folded into the first (last) layer."""
    tensors = {}
    for k, (W, b) in enumerate(folded_layers(model, metadata), start=1):
        tensors[tensor_name(k, "weight")], tensors[tensor_name(k, "bias")] = W, b
    return tensors


def folded_layers(
    model: MLP,
    metadata: dict[str, Any] | None = None,
    fold_scale: bool = False,
    first_dtype: Any = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(W^k, b^k) for k = 1..L as contiguous copies in the model's dtype (layer 1 in
    ``first_dtype`` when given), with the model file's Z.1 folded into layer 1 and its Z.2 into
    layer L (computed in float64). Z.1 brings the record's input scale s with it; ``fold_scale``
    folds s even without Z.1 (W¹' = s W¹), so that layer 1 takes the raw features (pixels 0..255
    rather than pixels/255)."""
    params = model.params
    L = model.architecture.L
    dtypes = [model.dtype if first_dtype is None or k > 1 else np.dtype(first_dtype)
              for k in range(1, L + 1)]  # fmt: skip
    layers = [
        (params.W[k].astype(dtypes[k - 1]), params.b[k].astype(dtypes[k - 1]))
        for k in range(1, L + 1)
    ]
    record = _input_record(metadata)
    if record is not None and record.standardized:
        mu, sigma = np.asarray(record.mean), np.asarray(record.std)
        W, b = params.W[1].astype(np.float64), params.b[1].astype(np.float64)
        # F.1 of x̃ = (x·s − μ)/σ (Z.1): Σ_j W_ij (x_j s − μ_j)/σ_j + b_i
        layers[0] = (
            (W * (record.scale / sigma)).astype(dtypes[0]),
            (b - W @ (mu / sigma)).astype(dtypes[0]),
        )
    elif fold_scale:
        scale = record_from_metadata(metadata or {}).scale
        if scale != 1.0:
            # F.1 of x = X_raw · s: Σ_j (s W_ij) X_raw_j + b_i
            W = params.W[1].astype(np.float64)
            layers[0] = ((W * scale).astype(dtypes[0]), layers[0][1])
    target = target_from_metadata(metadata or {})
    if target is not None and target.mean is not None and target.std is not None:
        mu_y, sigma_y = np.asarray(target.mean), np.asarray(target.std)
        W, b = layers[L - 1][0].astype(np.float64), layers[L - 1][1].astype(np.float64)
        # (Z.2) ŷ = μ^y + σ^y f, f = W^L h + b^L
        layers[L - 1] = (
            (sigma_y[:, None] * W).astype(dtypes[L - 1]),
            (sigma_y * b + mu_y).astype(dtypes[L - 1]),
        )
    return layers


def _input_record(metadata: dict[str, Any] | None) -> Any:
    """The model file's input record when it standardises (Z.1: "mean" and "std"), else None
    (any other record is copied as it is, not interpreted)."""
    record = (metadata or {}).get("input")
    if not isinstance(record, dict) or not ("mean" in record or "std" in record):
        return None
    return record_from_metadata(metadata or {})


def network_metadata(model: MLP, file_format: str, format_version: int) -> dict[str, str]:
    """The entries that every exported file starts its metadata with: its format and the
    format's version, numbamlp's version, d_0..d_L and the activations."""
    arch = model.architecture
    return {
        "format": file_format,
        "format_version": str(format_version),
        "numbamlp_version": __version__,
        "sizes": json.dumps(list(arch.sizes)),
        "activations": json.dumps(list(arch.activations)),
    }


def copy_metadata(
    out: dict[str, str], metadata: dict[str, Any], skip: tuple[str, ...] = ()
) -> None:
    """Copy the model file's COPIED_METADATA entries (but ``skip``) into ``out``, as text."""
    for key in COPIED_METADATA:
        value = metadata.get(key)
        if value is not None and key not in skip:
            out[key] = value if isinstance(value, str) else json.dumps(value)


def safetensors_metadata(model: MLP, metadata: dict[str, Any] | None = None) -> dict[str, str]:
    """The file's metadata (see the module docstring); ``metadata`` is the model file's."""
    arch = model.architecture
    modules = []
    for k in range(1, arch.L + 1):
        modules.append(f"Linear({arch.sizes[k - 1]}, {arch.sizes[k]})")
        if k < arch.L:
            modules.append(TORCH_ACTIVATIONS[arch.activations[k - 1]])
    out = network_metadata(model, FORMAT, FORMAT_VERSION)
    out["torch_modules"] = json.dumps(modules)
    out["head"] = arch.head
    out["n_classes"] = str(arch.n_classes)
    out["dtype"] = str(model.dtype)
    copy_metadata(out, metadata or {})
    record = _input_record(metadata)
    if record is not None and record.standardized:
        out["standardization"] = "folded"  # Z.1 is in 0.weight and 0.bias: give raw features
    target = target_from_metadata(metadata or {})
    if target is not None and target.mean is not None:
        out["target_standardization"] = "folded"  # Z.2 is in the last Linear
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
    try:
        tensors = safetensors_tensors(model, metadata)
        meta = safetensors_metadata(model, metadata)
    except ValueError as exc:
        raise NumbamlpError(f"the model's metadata cannot be exported: {exc}") from None
    data = save(tensors, meta)
    atomic_write(path, lambda f: f.write(data))
