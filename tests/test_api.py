"""The top-level Python API (``from numbamlp import …``), pickling a model, and the tiny networks
the estimator trains (a defect of the fused engine's work split that they found)."""

from __future__ import annotations

import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import numbamlp
from numbamlp.engines.fused import layout
from numbamlp.model.network import Architecture

ROOT = Path(__file__).resolve().parent.parent


def test_import_numbamlp_loads_no_numba_and_names_load_on_use():
    code = (
        "import sys, numbamlp\n"
        "print('numba' in sys.modules, 'numbamlp.model.mlp' in sys.modules)\n"
        "from numbamlp import MLP, TrainConfig, generators, load_mnist, train\n"
        "print('numba' in sys.modules, MLP.__module__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split("\n")[:2] == ["False False", "True numbamlp.model.mlp"]


def test_every_exported_name_is_the_module_s_own():
    from numbamlp import errors, estimator
    from numbamlp.datasets import loaders as datasets
    from numbamlp.model import export, modelio, onnx_export
    from numbamlp.model import mlp as model
    from numbamlp.training import callbacks, runner
    from numbamlp.training import fit as fitting
    from numbamlp.training import trainer as training

    assert numbamlp.MLP is model.MLP
    assert numbamlp.fit is fitting.fit and numbamlp.FitResult is runner.FitResult
    assert numbamlp.Callback is callbacks.Callback and numbamlp.Run is callbacks.Run
    assert numbamlp.train is fitting.train and numbamlp.TrainConfig is training.TrainConfig
    assert numbamlp.load_mnist is datasets.load_mnist
    assert numbamlp.save_model is modelio.save_model
    assert numbamlp.MLPClassifier is estimator.MLPClassifier
    assert numbamlp.export_safetensors is export.export_safetensors
    assert numbamlp.export_onnx is onnx_export.export_onnx
    assert numbamlp.NumbamlpError is errors.NumbamlpError
    assert set(numbamlp.__all__) == {"__version__", *numbamlp._EXPORTS}
    for name in numbamlp.__all__:
        assert getattr(numbamlp, name) is not None
        assert name in dir(numbamlp)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nonesuch'"):
        numbamlp.nonesuch  # noqa: B018
    assert not hasattr(numbamlp, "nonesuch")


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


def test_readme_python_example_runs_as_written(tmp_path, monkeypatch, capsys):
    """README's "From Python" example, run as written (5 epochs of MNIST with early stopping)."""
    code = _python_blocks(ROOT / "README.md")[0]
    assert "numbamlp.fit(" in code
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    last = eval(capsys.readouterr().out.strip().splitlines()[-1])  # the printed record
    assert last["epoch"] == 5 and last["test_accuracy"] > 0.9 and "val_loss" in last
    assert numbamlp.load_model(tmp_path / "mnist.npz").model.architecture.sizes == (784, 32, 10)


def test_readme_scikit_learn_example_runs_as_written(capsys):
    pytest.importorskip("sklearn")
    code = _python_blocks(ROOT / "README.md")[1]
    assert "numbamlp.MLPClassifier(" in code
    exec(compile(code, "README.md", "exec"), {})
    assert float(capsys.readouterr().out) > 0.9


def test_the_pieces_underneath_fit_on_a_subset():
    """docs/python.md's own loop over a Trainer, on 2000 MNIST images and 2 epochs."""
    from numbamlp import MLP, TrainConfig, Trainer, generators, load_mnist

    data = load_mnist()
    init_rng, train_rng = generators(seed=0)
    model = MLP.create(784, [32], 10, activations="sigmoid", rng=init_rng)
    trainer = Trainer(model, data.X_train[:2000], data.y_train[:2000], TrainConfig(epochs=2),
                      train_rng)  # fmt: skip
    history = [trainer.train_epoch() for _ in range(2)]
    assert history[1].train_loss < history[0].train_loss
    assert np.mean(model.predict(data.X_test[:500]) == data.y_test[:500]) > 0.3  # chance: 0.1


def test_the_deprecated_train_still_trains():
    from numbamlp import MLP, TrainConfig, generators, load_mnist

    data = load_mnist()
    init_rng, train_rng = generators(seed=0)
    model = MLP.create(784, [8], 10, rng=init_rng)
    with pytest.deprecated_call():
        history = numbamlp.train(model, data.X_train[:500], data.y_train[:500],
                                 TrainConfig(epochs=1), train_rng)  # fmt: skip
    assert len(history) == 1


def test_a_pickled_model_keeps_its_weights_as_views_of_theta():
    """Pickling W^k and b^k as arrays would unpickle them as copies: training the unpickled model
    (which updates θ) would then leave the W^k that the forward pass reads behind."""
    model = numbamlp.MLP.create(4, [3], 2, rng=np.random.default_rng(0))
    X = np.random.default_rng(1).normal(size=(6, 4))
    before = model.predict_proba(X)
    copy = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(copy.predict_proba(X), before)
    for k in (1, 2):
        assert np.shares_memory(copy.params.W[k], copy.params.theta)
        assert np.shares_memory(copy.params.b[k], copy.params.theta)
    copy.params.theta[:] = 0
    assert not copy.params.W[1].any()
    assert copy._eval_ws is None or copy._eval_ws is not model._eval_ws
    assert len(pickle.dumps(model)) < 2000  # θ and the architecture, not the buffers


@pytest.mark.parametrize("n_items", [1, 2, 3, 4, 8, 16])
@pytest.mark.parametrize(
    "sizes", [(10, 1), (10, 2), (3, 2, 1), (784, 32, 10), (5, 4, 3, 2)], ids=str
)
def test_work_items_of_networks_with_few_rows(sizes, n_items):
    """Region 2's cuts when a network has fewer weight rows than threads, e.g. γ̃ on 2 classes
    without a hidden layer (one row): the cut at the very end of the last layer used to index
    past the layer table (IndexError) whenever there were more threads than rows."""
    head = "modified-softmax" if sizes[-1] == 1 else "softmax"
    arch = Architecture(sizes, ("sigmoid",) * (len(sizes) - 2), head)
    cuts = layout.balanced_cuts(arch, n_items)
    assert cuts[0] == 0 and cuts[-1] == sum(sizes[1:]) and len(cuts) == n_items + 1
    assert (np.diff(cuts) >= 0).all()


def test_logistic_regression_with_the_modified_softmax_on_two_classes_trains():
    from numbamlp import MLP, TrainConfig, generators, train

    init_rng, train_rng = generators(0)
    X = np.random.default_rng(1).normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    model = MLP.create(3, [], 2, head="modified-softmax", rng=init_rng)
    train(model, X, y, TrainConfig(epochs=30, batch_size=8, lr=0.05), train_rng)
    assert model.accuracy(X, y) > 0.9


def test_the_licence_files_are_those_pyproject_names():
    tomllib = pytest.importorskip("tomllib")
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    for name in project["license-files"]:
        assert (root / name).is_file(), name
    licence = (root / "LICENSE").read_text()
    assert licence.startswith("MIT License") and "2026 numbamlp contributors" in licence
    assert "CC BY-SA 3.0" in licence and "numbamlp/data/mnist/README.md" in licence
    data_readme = (root / "numbamlp/data/mnist/README.md").read_text()
    assert "Attribution-Share Alike 3.0" in data_readme and "LeCun" in data_readme


def test_export_help_loads_no_numba():
    code = (
        "import sys\n"
        "from numbamlp.cli.commands import main\n"
        "try:\n"
        "    main(['export', '--help'], prog_name='numbamlp')\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "print('numba' in sys.modules, file=sys.stderr)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "--format [safetensors|onnx]" in out.stdout and out.stderr.strip() == "False"
