"""`numbamlp export` and numbamlp.model.export: the safetensors layout read back with
safetensors.numpy,
and loaded into a PyTorch nn.Sequential whose predictions are numbamlp's (skipped without torch:
``pip install "numbamlp[bench-torch]"``, the CPU build)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_support import one_error_line, run

from numbamlp import MLP, generators, save_model
from numbamlp.model.export import TORCH_ACTIVATIONS, export_safetensors

safetensors_numpy = pytest.importorskip("safetensors.numpy")

ACTIVATIONS = tuple(TORCH_ACTIVATIONS)


def _model(hidden, activations, head="softmax", dtype="float32", n_classes=4) -> MLP:
    """A network with random (not Glorot) biases too, so a swapped W or b would show."""
    init_rng, _ = generators(11)
    model = MLP.create(5, hidden, n_classes, activations=activations, head=head, dtype=dtype,
                       rng=init_rng)  # fmt: skip
    model.params.theta[:] = np.random.default_rng(3).normal(size=model.params.theta.shape)
    return model


def _inputs(n: int = 64) -> np.ndarray:
    return np.random.default_rng(5).normal(size=(n, 5)) * 2


# --- the layout, without torch --------------------------------------------------------------


@pytest.mark.parametrize("head", ["softmax", "modified-softmax"])
def test_tensors_are_w_k_and_b_k_under_sequential_names(tmp_path, head):
    model = _model([6, 3], ["tanh", "relu"], head)
    path = tmp_path / "w.safetensors"
    export_safetensors(path, model, {"class_names": list("abcd"), "dataset": "mnist", "seed": 1})
    tensors = safetensors_numpy.load_file(path)
    assert sorted(tensors) == ["0.bias", "0.weight", "2.bias", "2.weight", "4.bias", "4.weight"]
    for k in (1, 2, 3):
        W, b = tensors[f"{2 * (k - 1)}.weight"], tensors[f"{2 * (k - 1)}.bias"]
        assert W.dtype == np.float32 and W.shape == model.params.W[k].shape
        np.testing.assert_array_equal(W, model.params.W[k])
        np.testing.assert_array_equal(b, model.params.b[k])
    assert tensors["4.weight"].shape == ((3 if head == "modified-softmax" else 4), 3)

    from safetensors import safe_open

    with safe_open(path, "numpy") as f:
        meta = f.metadata()
    assert meta["format"] == "numbamlp-safetensors" and meta["format_version"] == "1"
    assert json.loads(meta["sizes"]) == list(model.architecture.sizes)
    assert json.loads(meta["activations"]) == ["tanh", "relu"]
    assert json.loads(meta["torch_modules"]) == [
        "Linear(5, 6)", "Tanh()", "Linear(6, 3)", "ReLU()", f"Linear(3, {4 - (head != 'softmax')})",
    ]  # fmt: skip
    assert meta["head"] == head and meta["n_classes"] == "4" and meta["dtype"] == "float32"
    assert json.loads(meta["class_names"]) == list("abcd") and meta["dataset"] == "mnist"
    assert "seed" not in meta and "input" not in meta


def test_an_input_record_in_the_model_metadata_is_exported(tmp_path):
    record = {"scale": 1 / 255, "features": "pixels"}
    path = tmp_path / "w.safetensors"
    export_safetensors(path, _model([3], ["sigmoid"]), {"input": record})
    from safetensors import safe_open

    with safe_open(path, "numpy") as f:
        assert json.loads(f.metadata()["input"]) == record


def test_float64_is_kept(tmp_path):
    path = tmp_path / "w.safetensors"
    model = _model([], [], dtype="float64")
    export_safetensors(path, model)
    tensors = safetensors_numpy.load_file(path)
    assert sorted(tensors) == ["0.bias", "0.weight"] and tensors["0.weight"].dtype == np.float64
    np.testing.assert_array_equal(tensors["0.weight"], model.params.W[1])


# --- the command ----------------------------------------------------------------------------


@pytest.fixture
def model_file(tmp_path) -> Path:
    path = tmp_path / "m.npz"
    save_model(path, _model([6], ["sigmoid"]), metadata={"class_names": list("wxyz")})
    return path


def test_command_writes_the_file(model_file, tmp_path):
    out = tmp_path / "w.safetensors"
    result = run("export", "--model", model_file, "--format", "safetensors", "--output", out)
    assert result.exit_code == 0, result.output
    assert f"wrote 4 tensors (64 parameters, float32) to {out}" in result.output
    assert sorted(safetensors_numpy.load_file(out)) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_a_bad_model_file_is_one_error_line_and_nothing_is_written(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file at all")
    out = tmp_path / "w.safetensors"
    out.write_bytes(b"precious")
    one_error_line(run("export", "--model", bad, "--output", out), "is not a valid numbamlp model")
    one_error_line(run("export", "--model", tmp_path / "none.npz", "--output", out), "not exist")
    assert out.read_bytes() == b"precious"


def test_bad_outputs_are_refused(model_file, tmp_path):
    one_error_line(
        run("export", "--model", model_file, "--output", tmp_path / "no" / "w.st"),
        "does not exist",
    )
    one_error_line(run("export", "--model", model_file, "--output", tmp_path), "directory")
    before = model_file.read_bytes()
    one_error_line(
        run("export", "--model", model_file, "--output", model_file), "is the same file as --model"
    )
    assert model_file.read_bytes() == before
    one_error_line(
        run("export", "--model", model_file, "--format", "torch", "--output", tmp_path / "w"),
        "'torch' is not one of 'safetensors', 'onnx'",
    )


def test_without_safetensors_the_error_names_the_extra(model_file, tmp_path):
    code = (
        "import sys\n"
        "sys.modules['safetensors'] = sys.modules['safetensors.numpy'] = None\n"
        "from numbamlp.cli.commands import main\n"
        f"main(['export', '--model', {str(model_file)!r}, '--output', "
        f"{str(tmp_path / 'w.safetensors')!r}], prog_name='numbamlp')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [
        "error: exporting to safetensors needs the safetensors package: pip install "
        '"numbamlp[export]"'
    ]
    assert not (tmp_path / "w.safetensors").exists()


# --- into PyTorch ---------------------------------------------------------------------------


def _torch_sequential(path: Path, torch):
    """nn.Sequential from the file's metadata, the weights loaded with load_state_dict."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(path, "numpy") as f:
        meta = f.metadata()
    sizes, activations = json.loads(meta["sizes"]), json.loads(meta["activations"])
    nn = torch.nn
    torch_modules = {
        "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU,
        "leaky_relu": lambda: nn.LeakyReLU(0.01), "softplus": nn.Softplus,
        "identity": nn.Identity,
    }  # fmt: skip
    layers = []
    for k in range(1, len(sizes)):
        layers.append(nn.Linear(sizes[k - 1], sizes[k]))
        if k < len(sizes) - 1:
            layers.append(torch_modules[activations[k - 1]]())
    net = nn.Sequential(*layers)
    if meta["dtype"] == "float64":
        net = net.double()
    net.load_state_dict(load_file(path), strict=True)
    return net, meta


@pytest.mark.parametrize("head", ["softmax", "modified-softmax"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    ("hidden", "activations"),
    [([], []), ([7], ["sigmoid"]), ([6, 5], ["tanh", "relu"]), ([4, 4], ACTIVATIONS[3:5]),
     ([3], ["identity"])],
    ids=["no hidden", "sigmoid", "tanh-relu", "leaky-softplus", "identity"],
)  # fmt: skip
def test_torch_reproduces_predict_and_predict_proba(tmp_path, head, dtype, hidden, activations):
    torch = pytest.importorskip("torch")
    model = _model(hidden, activations, head, dtype)
    path = tmp_path / "w.safetensors"
    export_safetensors(path, model)
    net, meta = _torch_sequential(path, torch)
    X = _inputs()
    with torch.no_grad():
        z = net(torch.from_numpy(X.astype(dtype)))
        if meta["head"] == "modified-softmax":  # class M is the reference class: logit 0
            z = torch.cat([z, z.new_zeros(z.shape[0], 1)], dim=1)
        proba = torch.softmax(z, dim=1).numpy()
        classes = z.argmax(dim=1).numpy()
    np.testing.assert_array_equal(classes, model.predict(X))
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(proba, model.predict_proba(X), rtol=tol, atol=tol)


def test_module_names_in_the_metadata_are_torch_s_reprs(tmp_path):
    torch = pytest.importorskip("torch")
    model = _model([3, 3, 3, 3, 3, 3], list(ACTIVATIONS))
    path = tmp_path / "w.safetensors"
    export_safetensors(path, model)
    net, meta = _torch_sequential(path, torch)
    names = [repr(m).replace("in_features=", "").replace("out_features=", "") for m in net]
    names = [re.sub(r", bias=True", "", n) for n in names]
    assert json.loads(meta["torch_modules"]) == names


def test_readme_s_pytorch_snippet(tmp_path, monkeypatch):
    """docs/files.md's "Exporting the weights" code, run as written on an exported γ̃ model."""
    torch = pytest.importorskip("torch")
    readme = (Path(__file__).resolve().parents[2] / "docs" / "files.md").read_text()
    start = readme.index("import json, torch\n")
    snippet = readme[start : readme.index("```", start)]
    model = _model([4, 3], ["leaky_relu", "softplus"], "modified-softmax")
    export_safetensors(tmp_path / "W.safetensors", model)
    monkeypatch.chdir(tmp_path)
    X = _inputs().astype(np.float32)
    scope = {"x": torch.from_numpy(X)}
    with torch.no_grad():
        exec(snippet, scope)
    np.testing.assert_array_equal(scope["classes"].numpy(), model.predict(X))
    np.testing.assert_allclose(scope["proba"].numpy(), model.predict_proba(X), atol=1e-5)


# --- Z.1 (and Z.2) folded into the exported layers ----------------------------------------


def _numpy_forward(tensors: dict[str, np.ndarray], x: np.ndarray, L: int) -> np.ndarray:
    """The exported Sequential with sigmoid hidden layers, in float64: z^L of raw features."""
    h = x.astype(np.float64)
    for k in range(1, L + 1):
        z = h @ tensors[f"{2 * (k - 1)}.weight"].astype(np.float64).T
        z += tensors[f"{2 * (k - 1)}.bias"]
        h = 1 / (1 + np.exp(-z)) if k < L else z
    return h


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_standardisation_is_folded_into_the_first_layer(tmp_path, dtype):
    """A model trained on standardised features (Z.1), exported, takes the raw features: its
    classes are numbamlp's predict on the raw input, its probabilities close."""
    import numbamlp
    from numbamlp.datasets.inputscale import prepare_input
    from numbamlp.model.modelio import load_model

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 90)
    X = (rng.normal(size=(90, 5)) + np.eye(3, 5)[y]) * [1, 100, 0.01, 5, 1] + [0, 500, 3, -7, 2]
    numbamlp.fit(X, y, hidden=[6], epochs=3, batch_size=16, lr=0.05, dtype=dtype, verbose=0,
                 save=tmp_path / "m.npz")  # fmt: skip
    loaded = load_model(tmp_path / "m.npz")
    assert loaded.input.standardized
    export_safetensors(tmp_path / "w.safetensors", loaded.model, loaded.metadata)
    tensors = safetensors_numpy.load_file(tmp_path / "w.safetensors")
    assert tensors["0.weight"].dtype == np.dtype(dtype)
    # the weights really changed: σ_j ≠ 1 multiplies column j
    assert not np.allclose(tensors["0.weight"], loaded.model.params.W[1])
    z = _numpy_forward(tensors, X, 2)
    proba = np.exp(z - z.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    X_tilde, scale = prepare_input(X, loaded.input, "x", loaded.model.dtype)
    np.testing.assert_array_equal(z.argmax(axis=1), loaded.model.predict(X_tilde, scale))
    tolerance = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(proba, loaded.model.predict_proba(X_tilde, scale), atol=tolerance)
    from safetensors import safe_open

    with safe_open(tmp_path / "w.safetensors", "numpy") as f:
        assert f.metadata()["standardization"] == "folded"


def test_target_standardisation_is_folded_into_the_last_layer(tmp_path):
    """Z.2 of a regressor: W^L' = diag(σ^y) W^L, b^L' = σ^y b^L + μ^y (checked on the
    tensors; the end-to-end regression export waits for the identity head)."""
    from numbamlp.datasets.inputscale import TargetRecord

    model = _model([3], ["sigmoid"], n_classes=2)
    target = TargetRecord(("a", "b"), (10.0, -1.0), (2.0, 0.5))
    tensors = {}
    from numbamlp.model.export import safetensors_tensors

    tensors = safetensors_tensors(model, {"target": target.as_metadata()})
    W, b = model.params.W[2].astype(np.float64), model.params.b[2].astype(np.float64)
    np.testing.assert_allclose(tensors["2.weight"], np.array([[2.0], [0.5]]) * W, rtol=1e-6)
    np.testing.assert_allclose(tensors["2.bias"], [2 * b[0] + 10, 0.5 * b[1] - 1], rtol=1e-6)
    np.testing.assert_array_equal(tensors["0.weight"], model.params.W[1])  # no Z.1 recorded
