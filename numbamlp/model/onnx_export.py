"""Export a model as an ONNX graph of standard operators, to serve it with ONNX Runtime (or any
ONNX runtime) without numbamlp.

The graph (``format`` "numbamlp-onnx", version 1; opset 17, IR version 8), for layers k = 1..L:

* input ``features``, shape (n, d_0), float64 for every model (a float32 model without Z.1
  casts it to float32 first, as ``numbamlp predict`` rounds its input): the features **as the
  training data had them** — the columns of your CSV/NPZ file,
  or an image set's pixel values 0..255, as ``X.astype(numpy.float32)``. Nothing is to be
  scaled or standardised first: the record's input scale s (1/255 for pixels) and Z.1's μ and σ
  are folded into the first Gemm, W¹'_{ij} = W¹_{ij}·s/σ_j, b¹'_i = b¹_i − Σ_j W¹_{ij} μ_j/σ_j
  (export.folded_layers, computed in float64). This is the input ``numbamlp predict`` and the
  estimators' ``predict`` take.
* with Z.1 folded into a float32 model, the features come in float64 and the first layer
  computes in float64: the Gemm with W¹' and b¹' stored in float64, then a ``Cast`` of z¹ to
  float32. numbamlp standardises the features in float64, as read, before rounding to θ's
  dtype; in float32, b¹' − W¹'x would lose the digits that Z.1 divides by σ (a feature
  3 ± 0.01: x/σ ≈ 300, rounded to 2·10⁻⁵). Every other layer, and the first when nothing or
  only the scale is folded, computes in the model's dtype.
* one ``Gemm`` per layer (F.1, z^k = h^{k−1} W^kᵀ + b^k: ``transB=1``, so W^k is stored as numbamlp
  holds it, (d_k, d_{k−1})), then for k < L the activation φ_k (F.2): ``Sigmoid`` (A.1), ``Tanh``
  (A.2), ``Relu`` (A.3), ``LeakyRelu`` with alpha 0.01 (A.4), ``Softplus`` (A.5), ``Identity``
  (A.6). A float64 model's graph is float64 throughout; where an operator cannot carry it, the
  same function is written another way: leaky relu as ``PRelu`` with the slope a float64 tensor
  (LeakyRelu's alpha is a float32, 0.0099999998), and softplus, which ONNX Runtime has no
  float64 kernel for, as max(t, 0) + log(1 + e^{−|t|}) with Relu, Abs, Neg, Exp, Add and Log.
* the head: ``softmax`` (F.3) is ``Softmax`` over axis 1 (opset ≥ 13: that one axis);
  ``modified-softmax`` (F.4, MMiDS γ̃: M−1 logits, class M the reference with logit 0) is a
  ``Pad`` that appends a zero column, then the same ``Softmax``; both give the output
  ``probabilities`` (n, M) and ``label`` (n,) int64, ``ArgMax`` of the probabilities over axis 1
  (P.1; the first index of equal maxima, as numpy.argmax). A regressor's identity head (F.5) is
  the last Gemm itself, with Z.2 folded into it (W^L' = diag(σ^y) W^L, b^L' = σ^y b^L + μ^y), whose
  output ``values`` (n, T) is in the targets' own units.

Every node's ``doc_string`` names its equation. ``metadata_props`` (text → text; lists and
mappings as JSON): ``format``, ``format_version``, ``numbamlp_version``, ``sizes``,
``activations``, ``head``, ``task``, ``dtype``, ``equations`` (the tags the graph computes, in
order), ``input_features`` (what ``features`` takes, in words), ``class_names`` (a
classifier's, "0".."M−1" when the model file records none) or ``target_names`` (a
regressor's), and when the model file records them ``dataset``, ``input`` and ``target`` (its
input and target records as they are), ``standardization``: "folded" and
``target_standardization``: "folded".

Needs the ``onnx`` package (``pip install "numbamlp[onnx]"``); ONNX Runtime is not needed to write
the file.
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
from numbamlp.kernels.activations import LEAKY_RELU_SLOPE
from numbamlp.model.export import copy_metadata, folded_layers, network_metadata
from numbamlp.model.mlp import MLP

FORMAT = "numbamlp-onnx"
FORMAT_VERSION = 1
#: ONNX opset and IR version of the graph: opset 17 (ONNX 1.12, ONNX Runtime ≥ 1.13) has every
#: operator used, with Softmax over one axis (its semantics since opset 13).
OPSET = 17
IR_VERSION = 8
NEEDS_ONNX = 'exporting to ONNX needs the onnx package: pip install "numbamlp[onnx]"'

#: The ONNX operator (and attributes) of each activation φ (A.1–A.6), and the tag. The slope α
#: of leaky relu is activations.py's.
ONNX_ACTIVATIONS: dict[str, tuple[str, dict[str, Any], str]] = {
    "sigmoid": ("Sigmoid", {}, "A.1"),
    "tanh": ("Tanh", {}, "A.2"),
    "relu": ("Relu", {}, "A.3"),
    "leaky_relu": ("LeakyRelu", {"alpha": LEAKY_RELU_SLOPE}, "A.4"),
    "softplus": ("Softplus", {}, "A.5"),
    "identity": ("Identity", {}, "A.6"),
}

#: The graph's input and outputs.
INPUT = "features"
PROBABILITIES, LABEL, VALUES = "probabilities", "label", "values"


def onnx_model(model: MLP, metadata: dict[str, Any] | None = None) -> Any:
    """The ONNX ModelProto of ``model`` (see the module docstring), checked with
    ``onnx.checker.check_model``; ``metadata`` is the model file's, whose input record (scale,
    Z.1), target record (Z.2), class and target names are used. Needs the onnx package."""
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise NumbamlpError(NEEDS_ONNX) from None
    arch = model.architecture
    L = arch.L
    elem = helper.np_dtype_to_tensor_dtype(model.dtype)
    try:
        record = record_from_metadata(metadata or {})
        target = target_from_metadata(metadata or {})
        # Z.1 folded: layer 1 in float64, so that b¹' = b¹ − W¹ μ/σ loses nothing to cancellation
        wide = record.standardized and model.dtype != np.float64
        layers = folded_layers(
            model, metadata, fold_scale=True, first_dtype=np.float64 if wide else None
        )
    except ValueError as exc:
        raise NumbamlpError(f"the model's metadata cannot be exported: {exc}") from None

    nodes: list[Any] = []
    initializers: list[Any] = []
    tags: list[str] = []
    regression = arch.head == "identity"
    if record.standardized:
        tags.append("Z.1")
    h = INPUT  # float64: a standardised model's first layer takes it as it is (Z.1 in float64)
    if not wide and model.dtype != np.float64:
        h = f"{INPUT}_{model.dtype}"
        nodes.append(
            helper.make_node(
                "Cast", [INPUT], [h], name="features_cast", to=elem,
                doc_string=f"(F.1) h^0 = x, rounded to the model's dtype, {model.dtype}",
            )
        )  # fmt: skip
    for k, (W, b) in enumerate(layers, start=1):
        initializers += [numpy_helper.from_array(W, f"W{k}"), numpy_helper.from_array(b, f"b{k}")]
        z = VALUES if (k == L and regression) else f"z{k}"
        cast = k == 1 and wide  # layer 1 is float64: cast z^1 to the model's dtype
        folded = []
        if k == 1 and record.standardized:
            folded.append("Z.1 and the input scale folded in")
        elif k == 1 and record.scale != 1.0:
            folded.append(f"the input scale {record.scale:.6g} folded in")
        if k == L and target is not None and target.mean is not None:
            folded.append("Z.2 folded in")
        nodes.append(
            helper.make_node(
                "Gemm", [h, f"W{k}", f"b{k}"], [f"{z}_float64" if cast else z],
                name=f"layer{k}_gemm", transB=1,
                doc_string=f"(F.1) z^{k} = b^{k} + W^{k} h^{k - 1}"
                + (f" ({'; '.join(folded)})" if folded else ""),
            )
        )  # fmt: skip
        if cast:
            nodes.append(
                helper.make_node(
                    "Cast", [f"{z}_float64"], [z], name=f"layer{k}_cast", to=elem,
                    doc_string=f"(F.1) z^{k} cast to the model's dtype, {model.dtype}",
                )
            )  # fmt: skip
        tags.append("F.1")
        if k < L:
            h = f"h{k}"
            name = arch.activations[k - 1]
            nodes += _activation_nodes(name, z, h, k, model.dtype, initializers, helper)
            tags += ["F.2", ONNX_ACTIVATIONS[name][2]]
    if regression:  # (F.5) the last Gemm's output is the graph's: values (n, T)
        tags += ["F.5", "Z.2"] if target is not None and target.mean is not None else ["F.5"]
        outputs = [helper.make_tensor_value_info(VALUES, elem, ["n", arch.n_classes])]
    else:
        outputs = _classification_head(arch, f"z{L}", model.dtype, nodes, initializers, tags)
    graph = helper.make_graph(
        nodes,
        "numbamlp_mlp",
        [helper.make_tensor_value_info(INPUT, onnx.TensorProto.DOUBLE, ["n", arch.sizes[0]])],
        outputs,
        initializer=initializers,
        doc_string=repr(model),
    )
    proto = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="numbamlp",
        producer_version=__version__,
        doc_string=f"{model!r}: {_input_features(model, record)}",
    )
    helper.set_model_props(proto, onnx_metadata(model, metadata, tags))
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _classification_head(
    arch: Any, logits: str, dtype: np.dtype, nodes: list, initializers: list, tags: list
) -> list:
    """Append the head's nodes to ``nodes`` — γ̃'s reference logit (F.4), Softmax (F.3),
    ArgMax (P.1) — and return the graph outputs probabilities (n, M) and label (n,)."""
    import onnx
    from onnx import helper, numpy_helper

    M = arch.n_classes
    if arch.head == "modified-softmax":
        initializers += [
            numpy_helper.from_array(np.array([0, 0, 0, 1], np.int64), "pad_reference"),
            numpy_helper.from_array(np.zeros((), dtype), "reference_logit"),
        ]
        nodes.append(
            helper.make_node(
                "Pad", [logits, "pad_reference", "reference_logit"], ["logits"],
                name="reference_class", mode="constant",
                doc_string=f"(F.4) γ̃: class {M}'s logit 0 appended to the {M - 1} logits",
            )
        )  # fmt: skip
        logits = "logits"
        tags.append("F.4")
        softmax = "(F.4) f_{s,i} = e^{z_{s,i}} / (1 + Σ_{j<M} e^{z_{s,j}}), with z_{s,M} = 0"
    else:
        tags.append("F.3")
        softmax = "(F.3) f_{s,i} = e^{z_{s,i}} / Σ_j e^{z_{s,j}}"
    nodes.append(
        helper.make_node("Softmax", [logits], [PROBABILITIES], name="softmax", axis=1,
                         doc_string=softmax)
    )  # fmt: skip
    nodes.append(
        helper.make_node(
            "ArgMax", [PROBABILITIES], [LABEL], name="onecold", axis=1, keepdims=0,
            doc_string="(P.1) ŷ_s = argmax_k f_{s,k} (the first of equal maxima)",
        )
    )  # fmt: skip
    tags.append("P.1")
    elem = helper.np_dtype_to_tensor_dtype(dtype)
    return [
        helper.make_tensor_value_info(PROBABILITIES, elem, ["n", M]),
        helper.make_tensor_value_info(LABEL, onnx.TensorProto.INT64, ["n"]),
    ]


def _activation_nodes(
    name: str, z: str, h: str, k: int, dtype: np.dtype, initializers: list, helper: Any
) -> list:
    """The node(s) of h^k = φ_k(z^k) (F.2): one operator, or for a float64 softplus (which ONNX
    Runtime has no kernel for) max(t, 0) + log(1 + e^{−|t|}), the form activations.py uses."""
    from onnx import numpy_helper

    op, attributes, tag = ONNX_ACTIVATIONS[name]
    doc = f"(F.2, {tag}) h^{k} = {name}(z^{k})"
    if name == "leaky_relu" and dtype == np.float64:  # LeakyRelu's alpha is a float32
        if not any(t.name == "slope" for t in initializers):
            initializers.append(numpy_helper.from_array(np.array(LEAKY_RELU_SLOPE), "slope"))
        return [helper.make_node("PRelu", [z, "slope"], [h], name=f"layer{k}_{name}",
                                 doc_string=doc)]  # fmt: skip
    if not (name == "softplus" and dtype == np.float64):
        return [helper.make_node(op, [z], [h], name=f"layer{k}_{name}", doc_string=doc,
                                 **attributes)]  # fmt: skip
    if not any(t.name == "one" for t in initializers):
        initializers.append(numpy_helper.from_array(np.ones((), dtype), "one"))
    p = f"layer{k}_softplus"
    steps = [
        ("Relu", [z], f"{p}_pos"),  # max(t, 0)
        ("Abs", [z], f"{p}_abs"),
        ("Neg", [f"{p}_abs"], f"{p}_neg"),  # −|t|
        ("Exp", [f"{p}_neg"], f"{p}_exp"),
        ("Add", ["one", f"{p}_exp"], f"{p}_1p"),
        ("Log", [f"{p}_1p"], f"{p}_log"),  # log(1 + e^{−|t|})
        ("Add", [f"{p}_pos", f"{p}_log"], h),
    ]
    return [
        helper.make_node(op, inputs, [out], name=f"{p}_{i}", doc_string=doc)
        for i, (op, inputs, out) in enumerate(steps)
    ]


def _input_features(model: MLP, record: Any) -> str:
    """What the graph's input takes, in words (metadata ``input_features``)."""
    d, dtype = model.architecture.sizes[0], model.dtype
    if not record.known:
        return (
            f"the features the network was trained on (n, {d}) as float64: the model file "
            "records no training data, so scale them as the training data was"
        )
    if record.integer:
        top = np.iinfo(record.dtype).max
        what = f"{record.dtype} pixel values 0..{top} (n, {d}) as float64"
    else:
        what = f"the training data's features (n, {d}) as they are, as float64"
    folded = []
    if record.scale != 1.0:
        folded.append(f"the scale {record.scale:.6g}")
    if record.standardized:
        folded.append("the standardisation Z.1")
    if folded:
        what += f"; {' and '.join(folded)} folded into the first Gemm"
    if record.standardized and dtype != np.float64:
        what += f", which computes in float64 (the layers after it in {dtype})"
    return what


def onnx_metadata(
    model: MLP, metadata: dict[str, Any] | None = None, tags: list[str] | None = None
) -> dict[str, str]:
    """The graph's metadata_props (see the module docstring); ``metadata`` is the model
    file's, ``tags`` the equations the graph computes."""
    arch = model.architecture
    metadata = metadata or {}
    record = record_from_metadata(metadata)
    out = network_metadata(model, FORMAT, FORMAT_VERSION)
    out["head"] = arch.head
    out["task"] = arch.task
    out["dtype"] = str(model.dtype)
    out["equations"] = json.dumps(tags or [])
    out["input_features"] = _input_features(model, record)
    copy_metadata(out, metadata, skip=("class_names",))  # class_names: written below
    target = target_from_metadata(metadata)
    if arch.task == "regression":
        names = (
            list(target.names)
            if target is not None and len(target.names) == arch.n_classes
            else [f"y{t}" for t in range(arch.n_classes)]
        )
        out["target_names"] = json.dumps(names)
    else:
        recorded = metadata.get("class_names")
        if isinstance(recorded, list) and len(recorded) == arch.n_classes:
            names = [str(name) for name in recorded]
        else:
            names = [str(k) for k in range(arch.n_classes)]
        out["class_names"] = json.dumps(names)
    if record.standardized:
        out["standardization"] = "folded"
    if target is not None and target.mean is not None:
        out["target_standardization"] = "folded"
    return out


def export_onnx(
    path: str | os.PathLike, model: MLP, metadata: dict[str, Any] | None = None
) -> None:
    """Write ``model`` to ``path`` as an ONNX graph (see the module docstring), atomically
    (atomic.py: a crash or a full disk leaves any previous file intact). ``metadata``: the
    model file's (``load_model(path).metadata``), whose input scaling, Z.1, Z.2 and names the
    graph takes in; without it the graph takes the features the network itself sees."""
    data = onnx_model(model, metadata).SerializeToString()
    atomic_write(path, lambda f: f.write(data))
