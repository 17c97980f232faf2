"""`numbamlp export --format onnx` and numbamlp.model.onnx_export: the graph run in ONNX Runtime
gives numbamlp's predictions — the same classes, probabilities within 1e-6 (float32), a
regressor's values within 1e-5 relative — for every activation, both classification heads,
regression with one and two targets and depths 0–3, on the raw input `numbamlp predict` takes
(standardised features, MNIST pixels). Skipped without onnx and onnxruntime (the test extra
has both)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_support import one_error_line, run

import numbamlp
from numbamlp import MLP, generators, save_model
from numbamlp.cli.options import model_inputs
from numbamlp.model.modelio import load_model
from numbamlp.model.onnx_export import ONNX_ACTIVATIONS, export_onnx, onnx_model

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ACTIVATIONS = tuple(ONNX_ACTIVATIONS)
#: (hidden, activations): depth 0 (no hidden layer, multinomial logistic regression), then
#: every activation at depths 1, 2 and 3, and one network mixing them.
NETWORKS = [((), ())] + [
    ((7,) * depth, (name,) * depth) for name in ACTIVATIONS for depth in (1, 2, 3)
] + [((6, 5, 4), ("tanh", "leaky_relu", "softplus"))]  # fmt: skip
NETWORK_IDS = ["depth0"] + [f"{'-'.join(a)}" for _, a in NETWORKS[1:]]


def _model(hidden, activations, head="softmax", dtype="float32", n_outputs=4) -> MLP:
    """Glorot weights (N.1, the model's own start) and random biases, so a swapped W or b, or
    a missing bias, would show."""
    init_rng, _ = generators(11)
    model = MLP.create(5, list(hidden), n_outputs, activations=list(activations), head=head,
                       dtype=dtype, rng=init_rng)  # fmt: skip
    rng = np.random.default_rng(3)
    for k in range(1, model.architecture.L + 1):
        model.params.b[k][:] = rng.normal(scale=0.5, size=model.params.b[k].shape)
    return model


def _inputs(n: int = 500) -> np.ndarray:
    return np.random.default_rng(5).normal(size=(n, 5)) * 2


def _session(source):
    """An ONNX Runtime session of a ModelProto or a file, on the CPU."""
    data = source.SerializeToString() if hasattr(source, "SerializeToString") else str(source)
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def _meta(source) -> dict[str, str]:
    """A graph's metadata_props, of a ModelProto or a file."""
    proto = onnx.load(source) if isinstance(source, (str, Path)) else source
    return {p.key: p.value for p in proto.metadata_props}


def _initializers(source) -> dict[str, np.ndarray]:
    proto = onnx.load(source) if isinstance(source, (str, Path)) else source
    return {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}


def _predict_inputs(loaded, X: np.ndarray) -> tuple[np.ndarray, float]:
    """(X', s) as `numbamlp predict` gives them to the model: X in the model's dtype, then
    scaled or standardised as the model's training data was (Z.1 in float64)."""
    return model_inputs(loaded.model, loaded.input, X, "x")


def _run(source, X: np.ndarray) -> dict[str, np.ndarray]:
    session = _session(source)
    names = [o.name for o in session.get_outputs()]
    # every graph takes float64 features (a float32 model casts them, as predict rounds them)
    features = np.asarray(X, dtype=np.float64)
    return dict(zip(names, session.run(None, {"features": features}), strict=True))


# --- the graph in ONNX Runtime equals predict -------------------------------------------------


@pytest.mark.parametrize("head", ["softmax", "modified-softmax"])
@pytest.mark.parametrize(("hidden", "activations"), NETWORKS, ids=NETWORK_IDS)
def test_classes_and_probabilities_are_numbamlp_s(head, hidden, activations):
    model = _model(hidden, activations, head)
    X = _inputs().astype(np.float32)
    out = _run(onnx_model(model), X)
    assert out["label"].dtype == np.int64 and out["label"].shape == (X.shape[0],)
    np.testing.assert_array_equal(out["label"], model.predict(X))
    assert out["probabilities"].dtype == np.float32 and out["probabilities"].shape == (500, 4)
    np.testing.assert_allclose(out["probabilities"], model.predict_proba(X), rtol=0, atol=1e-6)


@pytest.mark.parametrize("n_targets", [1, 2])
@pytest.mark.parametrize(("hidden", "activations"), NETWORKS, ids=NETWORK_IDS)
def test_a_regressor_s_values_are_numbamlp_s(n_targets, hidden, activations):
    model = _model(hidden, activations, "identity", n_outputs=n_targets)
    X = _inputs().astype(np.float32)
    out = _run(onnx_model(model), X)
    assert sorted(out) == ["values"] and out["values"].shape == (500, n_targets)
    expected = model.predict(X)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(out["values"], expected, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("head", ["softmax", "modified-softmax", "identity"])
@pytest.mark.parametrize(
    ("hidden", "activations"),
    [((), ()), ((6, 5, 4), ("sigmoid", "relu", "leaky_relu")), ((4, 3), ("softplus", "tanh")),
     ((3,), ("identity",))],
    ids=["depth0", "sigmoid-relu-leaky", "softplus-tanh", "identity"],
)  # fmt: skip
def test_a_float64_model_is_a_float64_graph(head, hidden, activations):
    """float64 throughout: leaky relu as PRelu with a float64 slope, softplus composed (ONNX
    Runtime has no float64 Softplus); the results agree to rounding."""
    model = _model(hidden, activations, head, "float64")
    X = _inputs()
    out = _run(onnx_model(model), X)
    if head == "identity":
        np.testing.assert_allclose(out["values"], model.predict(X), rtol=1e-12, atol=1e-12)
        return
    assert out["probabilities"].dtype == np.float64
    np.testing.assert_array_equal(out["label"], model.predict(X))
    np.testing.assert_allclose(out["probabilities"], model.predict_proba(X), rtol=0, atol=1e-13)


# --- the graph itself -------------------------------------------------------------------------


def test_the_graph_is_gemm_activation_softmax_argmax_with_w_k_as_numbamlp_holds_it():
    model = _model((6, 3), ("tanh", "relu"), "modified-softmax")
    proto = onnx_model(model, {"class_names": list("abcd"), "dataset": "iris", "seed": 1})
    graph = proto.graph
    assert [n.op_type for n in graph.node] == [
        "Cast", "Gemm", "Tanh", "Gemm", "Relu", "Gemm", "Pad", "Softmax", "ArgMax",
    ]  # fmt: skip
    for node in graph.node:
        assert node.doc_string.startswith("(")  # its equation's tag
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Gemm":
            assert attributes == {"transB": 1}
        if node.op_type in ("Softmax", "ArgMax"):
            assert attributes["axis"] == 1
    tensors = _initializers(proto)
    assert {tensors[f"{t}{k}"].dtype for t in "Wb" for k in (1, 2, 3)} == {np.dtype(np.float32)}
    for k in (1, 2, 3):  # nothing to fold: W^k and b^k exactly, shape (d_k, d_{k−1})
        np.testing.assert_array_equal(tensors[f"W{k}"], model.params.W[k])
        np.testing.assert_array_equal(tensors[f"b{k}"], model.params.b[k])
    assert tensors["W3"].shape == (3, 3)  # γ̃: M − 1 logits
    assert [i.name for i in graph.input] == ["features"]
    assert [o.name for o in graph.output] == ["probabilities", "label"]
    shape = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert shape == ["n", 5]
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    assert proto.opset_import[0].version == 17 and proto.producer_name == "numbamlp"
    meta = _meta(proto)
    assert meta["format"] == "numbamlp-onnx" and meta["format_version"] == "1"
    assert meta["numbamlp_version"] == numbamlp.__version__
    assert json.loads(meta["class_names"]) == list("abcd") and meta["dataset"] == "iris"
    assert json.loads(meta["sizes"]) == [5, 6, 3, 3] and meta["head"] == "modified-softmax"
    assert json.loads(meta["equations"]) == [
        "F.1", "F.2", "A.2", "F.1", "F.2", "A.3", "F.1", "F.4", "P.1",
    ]  # fmt: skip
    assert "seed" not in meta and "standardization" not in meta
    onnx.checker.check_model(proto, full_check=True)


def test_a_model_saved_without_its_data_says_so(tmp_path):
    model = _model((3,), ("relu",))
    save_model(tmp_path / "m.npz", model)  # no data: the input record is {"recorded": False}
    loaded = load_model(tmp_path / "m.npz")
    meta = _meta(onnx_model(loaded.model, loaded.metadata))
    assert "records no training data" in meta["input_features"]
    np.testing.assert_array_equal(
        _initializers(onnx_model(loaded.model, loaded.metadata))["W1"], model.params.W[1]
    )


def test_without_recorded_names_the_classes_are_numbered_and_targets_y_t():
    meta = _meta(onnx_model(_model((), ())))
    assert json.loads(meta["class_names"]) == ["0", "1", "2", "3"]
    assert meta["task"] == "classification"
    meta = _meta(onnx_model(_model((), (), "identity", n_outputs=2)))
    assert json.loads(meta["target_names"]) == ["y0", "y1"] and "class_names" not in meta


# --- trained models, on the raw input numbamlp predict takes -----------------------------------


def _table(rng, n=120):
    """Features on very different scales and offsets, which fit standardises (Z.1)."""
    y = rng.integers(0, 3, n)
    X = (rng.normal(size=(n, 5)) + np.eye(3, 5)[y]) * [1, 100, 0.01, 5, 1] + [0, 500, 3, -7, 2]
    return X, y


def test_a_standardised_classifier_takes_the_raw_features(tmp_path):
    X, y = _table(np.random.default_rng(0))
    numbamlp.fit(X, y, hidden=[6], epochs=3, batch_size=16, lr=0.05, verbose=0,
                 save=tmp_path / "m.npz")  # fmt: skip
    loaded = load_model(tmp_path / "m.npz")
    assert loaded.input.standardized
    export_onnx(tmp_path / "m.onnx", loaded.model, loaded.metadata)
    out = _run(tmp_path / "m.onnx", X)  # float64: a standardised model's input
    X_tilde, scale = _predict_inputs(loaded, X)
    np.testing.assert_array_equal(out["label"], loaded.model.predict(X_tilde, scale))
    np.testing.assert_allclose(
        out["probabilities"], loaded.model.predict_proba(X_tilde, scale), rtol=0, atol=1e-6
    )
    graph = onnx.load(tmp_path / "m.onnx").graph  # layer 1 in float64, then float32
    assert [n.op_type for n in graph.node][:3] == ["Gemm", "Cast", "Sigmoid"]
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    W = _initializers(tmp_path / "m.onnx")
    assert W["W1"].dtype == W["b1"].dtype == np.float64 and W["W2"].dtype == np.float32
    meta = _meta(tmp_path / "m.onnx")
    assert meta["standardization"] == "folded" and "Z.1" in json.loads(meta["equations"])
    assert "standardisation Z.1 folded into the first Gemm" in meta["input_features"]


def test_the_graph_gives_what_the_predict_command_writes(tmp_path):
    """End to end: `numbamlp export --format onnx` and `numbamlp predict --proba` of one model
    on one input file."""
    X, y = _table(np.random.default_rng(2))
    numbamlp.fit(X, np.array(["ant", "bee", "cat"])[y], hidden=[5, 4], activation="softplus",
                 epochs=3, batch_size=16, verbose=0, save=tmp_path / "m.npz")  # fmt: skip
    np.savez(tmp_path / "x.npz", X=X)
    result = run("predict", "--model", tmp_path / "m.npz", "--input", tmp_path / "x.npz",
                 "--proba", "--output", tmp_path / "p.npz")  # fmt: skip
    assert result.exit_code == 0, result.output
    result = run("export", "--model", tmp_path / "m.npz", "--output", tmp_path / "m.onnx")
    assert result.exit_code == 0, result.output
    predicted = np.load(tmp_path / "p.npz")
    out = _run(tmp_path / "m.onnx", X)
    np.testing.assert_array_equal(out["label"], predicted["classes"])
    np.testing.assert_allclose(out["probabilities"], predicted["probabilities"], atol=1e-6)
    names = json.loads(_meta(tmp_path / "m.onnx")["class_names"])
    assert names == ["ant", "bee", "cat"] == list(predicted["class_names"])


@pytest.mark.parametrize(("hidden", "n_targets"), [([8], 1), ([8], 2), ([], 2)])
def test_a_standardised_regressor_gives_values_in_the_targets_units(tmp_path, hidden, n_targets):
    rng = np.random.default_rng(1)
    X, _ = _table(rng)
    Y = np.column_stack([X[:, 1] * 3 + 1000, X[:, 3] ** 2 - 50])[:, :n_targets]
    Y = Y + rng.normal(size=Y.shape)
    numbamlp.fit(X, Y if n_targets > 1 else Y[:, 0], hidden=hidden, epochs=3, batch_size=16,
                 lr=0.05, verbose=0, save=tmp_path / "m.npz")  # fmt: skip
    loaded = load_model(tmp_path / "m.npz")
    assert loaded.target is not None and loaded.target.mean is not None
    export_onnx(tmp_path / "m.onnx", loaded.model, loaded.metadata)
    out = _run(tmp_path / "m.onnx", X)
    X_tilde, scale = _predict_inputs(loaded, X)
    expected = loaded.target.restore(loaded.model.predict(X_tilde, scale))  # Z.2 inverted
    for t, sigma in enumerate(loaded.target.std):  # 1e-5 of the value, or of σ^y near 0
        np.testing.assert_allclose(
            out["values"][:, t], expected[:, t], rtol=1e-5, atol=1e-5 * sigma
        )
    meta = _meta(tmp_path / "m.onnx")
    assert meta["target_standardization"] == "folded"
    assert json.loads(meta["target_names"]) == list(loaded.target.names)


def test_an_mnist_model_takes_the_pixels_0_to_255(tmp_path):
    """The scale 1/255 folded into W¹: the graph takes the pixel values as the IDX files hold
    them (as float32), and gives what numbamlp predict gives for the raw pixels."""
    from numbamlp.datasets.loaders import load_mnist

    data = load_mnist()
    numbamlp.fit(data, hidden=[16], activation="relu", epochs=1, verbose=0,
                 save=tmp_path / "m.npz")  # fmt: skip
    loaded = load_model(tmp_path / "m.npz")
    model = loaded.model
    assert loaded.input.scale == pytest.approx(1 / 255) and loaded.input.integer
    export_onnx(tmp_path / "m.onnx", loaded.model, loaded.metadata)
    pixels = data.X_test_raw  # uint8, 10,000 images
    out = _run(tmp_path / "m.onnx", pixels.astype(np.float32))
    X, scale = _predict_inputs(loaded, pixels)
    np.testing.assert_array_equal(out["label"], loaded.model.predict(X, scale))
    # Sums of 784 float32 products, in MLAS's order and in numbamlp's: each is within 1e-6 of
    # the float64 result (measured 7.9e-7 and 6.1e-7), so the two within 2e-6 of each other
    # (measured 1.4e-6 on 2 of the 100,000 probabilities, below 1e-6 on the rest).
    arch = model.architecture
    exact = MLP.create(784, list(arch.sizes[1:-1]), 10, activations=list(arch.activations),
                       dtype="float64", rng=generators(0)[0])  # fmt: skip
    exact.params.theta[:] = model.params.theta
    exact_proba = exact.predict_proba(X, scale)
    np.testing.assert_allclose(out["probabilities"], exact_proba, rtol=0, atol=1e-6)
    np.testing.assert_allclose(model.predict_proba(X, scale), exact_proba, rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        out["probabilities"], model.predict_proba(X, scale), rtol=0, atol=2e-6
    )
    W1 = _initializers(tmp_path / "m.onnx")["W1"]  # W¹/255, computed in float64
    np.testing.assert_array_equal(
        W1, (model.params.W[1].astype(np.float64) / 255).astype(np.float32)
    )
    meta = _meta(tmp_path / "m.onnx")
    assert meta["input_features"] == (
        "uint8 pixel values 0..255 (n, 784) as float64; the scale 0.00392157 folded into the "
        "first Gemm"
    )


# --- the command ----------------------------------------------------------------------------


@pytest.fixture
def model_file(tmp_path) -> Path:
    path = tmp_path / "m.npz"
    save_model(path, _model((6,), ("sigmoid",)), metadata={"class_names": list("wxyz")})
    return path


def test_command_writes_the_graph(model_file, tmp_path):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"an older export")  # replaced, atomically
    result = run("export", "--model", model_file, "--format", "onnx", "--output", out)
    assert result.exit_code == 0, result.output
    assert "wrote an ONNX graph (2 Gemm layers, 64 parameters, float32" in result.output
    assert str(out) in result.output
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left
    loaded = load_model(model_file)
    X = _inputs().astype(np.float32)
    o = _run(out, X)
    np.testing.assert_array_equal(o["label"], loaded.model.predict(X))
    meta = _meta(out)
    assert json.loads(meta["class_names"]) == list("wxyz")


def test_a_full_disk_leaves_the_previous_file(model_file, tmp_path, monkeypatch):
    """The graph is written atomically: a write that fails is one error line, and the file
    that was there is unchanged, with no partial file beside it."""
    import errno
    import os

    from numbamlp.datasets import atomic

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", full)
    out = tmp_path / "m.onnx"
    out.write_bytes(b"an older export")
    one_error_line(
        run("export", "--model", model_file, "--format", "onnx", "--output", out),
        "No space left on device",
        "unchanged",
    )
    assert out.read_bytes() == b"an older export"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_an_onnx_suffix_chooses_the_format(model_file, tmp_path):
    result = run("export", "--model", model_file, "--output", tmp_path / "m.onnx")
    assert result.exit_code == 0, result.output
    onnx.checker.check_model(onnx.load(tmp_path / "m.onnx"))
    result = run("export", "--model", model_file, "--output", tmp_path / "w.safetensors")
    assert result.exit_code == 0 and "wrote 4 tensors" in result.output


def test_the_model_itself_is_refused_as_the_output(model_file):
    before = model_file.read_bytes()
    one_error_line(
        run("export", "--model", model_file, "--format", "onnx", "--output", model_file),
        "is the same file as --model",
    )
    assert model_file.read_bytes() == before


def test_a_bad_model_file_is_one_error_line_and_nothing_is_written(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file at all")
    out = tmp_path / "m.onnx"
    out.write_bytes(b"precious")
    one_error_line(run("export", "--model", bad, "--format", "onnx", "--output", out),
                   "is not a valid numbamlp model")  # fmt: skip
    assert out.read_bytes() == b"precious"


def test_without_onnx_the_error_names_the_extra(model_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    out = tmp_path / "m.onnx"
    output = one_error_line(
        run("export", "--model", model_file, "--format", "onnx", "--output", out)
    )
    assert output.strip().splitlines() == [
        'error: exporting to ONNX needs the onnx package: pip install "numbamlp[onnx]"'
    ]
    assert not out.exists()
    assert not list(tmp_path.glob(".m.onnx.*"))


def test_numbamlp_export_onnx_is_the_library_function():
    assert numbamlp.export_onnx is export_onnx


def test_serving_md_s_five_lines(tmp_path, monkeypatch):
    """docs/serving.md's "In five lines", run as written on an exported γ̃ model."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "serving.md").read_text()
    start = page.index("import json, numpy as np, onnxruntime as ort\n")
    snippet = page[start : page.index("```", start)]
    assert len([line for line in snippet.splitlines() if line.strip()]) == 5
    model = _model((4, 3), ("leaky_relu", "softplus"), "modified-softmax")
    export_onnx(tmp_path / "model.onnx", model, {"class_names": ["ant", "bee", "cat", "dog"]})
    monkeypatch.chdir(tmp_path)
    X = _inputs()
    scope = {"X": X}
    exec(snippet, scope)
    assert scope["predicted"] == [["ant", "bee", "cat", "dog"][k] for k in model.predict(X)]
    np.testing.assert_allclose(scope["probabilities"], model.predict_proba(X), atol=1e-6)
