"""Regression (F.5, L.2, B.5) and sample weights (S.2) through the Trainer, with each CPU engine:
integer weights are duplicated rows, weights all 1 are the unweighted run bit for bit, the
classifier's runs are untouched, and a regressor learns and reports R² (E.3)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from numbamlp.errors import NumbamlpError
from numbamlp.model.mlp import MLP
from numbamlp.training.trainer import TrainConfig, Trainer, TrainingDiverged, generators

ENGINES = ["kernels", "fused"]


def problem(n: int = 60, d: int = 5, T: int = 2, seed: int = 0):
    """Gaussian inputs; targets a smooth function of them (learnable), labels their argmax."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    Y = np.tanh(X @ rng.normal(size=(d, T))) + 0.1 * rng.normal(size=(n, T))
    labels = np.argmax(X @ rng.normal(size=(d, 3)), axis=1)
    return X, Y, labels


def trainer(X, y, head, engine, dtype, batch_size, weights=None, optimizer="sgd", lr=0.1,
            epochs=5, sampling="shuffle", seed=5):  # fmt: skip
    init_rng, rng = generators(seed)
    outputs = y.shape[1] if head == "identity" else 3
    model = MLP.create(
        X.shape[1], [7, 4], outputs, activations=["tanh", "sigmoid"], head=head, dtype=dtype,
        rng=init_rng,
    )  # fmt: skip
    config = TrainConfig(
        epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr, engine=engine,
        sampling=sampling,
    )  # fmt: skip
    return Trainer(model, X, y, config, rng, sample_weight=weights)


@pytest.mark.parametrize("head", ["identity", "softmax"])
@pytest.mark.parametrize("engine", ENGINES)
def test_integer_weights_equal_duplicated_rows(engine, head):
    """Full batch, float64, SGD: weights w_s ∈ {0, 1, 2, 3} give the θ of the data set in which
    row s appears w_s times (S.2's Σ_s w_s ℓ_s / Σ_s w_s is that set's mean), to rounding."""
    X, Y, labels = problem()
    y = Y if head == "identity" else labels
    w = np.random.default_rng(1).integers(0, 4, size=X.shape[0])
    w[0] = 0
    rows = np.repeat(np.arange(X.shape[0]), w)
    weighted = trainer(X, y, head, engine, "float64", X.shape[0], w.astype(np.float64))
    duplicated = trainer(X[rows], y[rows], head, engine, "float64", rows.shape[0])
    for _ in range(5):
        a, b = weighted.train_epoch(), duplicated.train_epoch()
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-12)
    theta_w, theta_d = weighted.model.params.theta, duplicated.model.params.theta
    assert np.abs(theta_w - theta_d).max() <= 1e-12 * np.abs(theta_d).max()
    unweighted = trainer(X, y, head, engine, "float64", X.shape[0])
    for _ in range(5):
        unweighted.train_epoch()
    assert np.abs(unweighted.model.params.theta - theta_d).max() > 1e-6  # the weights count


@pytest.mark.parametrize("head", ["identity", "softmax", "modified-softmax"])
@pytest.mark.parametrize("engine", ENGINES)
def test_weights_all_one_are_bitwise_the_unweighted_run(engine, head):
    """ω_s = B · 1 / B = 1.0 exactly, so every product with it is exact: θ, the losses and the
    counts of a float32 Adam run with a short last batch are the same bits."""
    X, Y, labels = problem(n=70)
    y = Y if head == "identity" else labels
    runs = []
    for weights in (None, np.ones(X.shape[0])):
        t = trainer(X, y, head, engine, "float32", 16, weights, "adam", 0.01, epochs=3)
        metrics = [t.train_epoch() for _ in range(3)]
        runs.append(
            (t.model.params.theta.tobytes(), [(m.train_loss, m.train_accuracy) for m in metrics])
        )
    assert runs[0] == runs[1]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_regressor_learns_and_reports_r2(engine):
    X, Y, _ = problem(n=200)
    t = trainer(X, Y, "identity", engine, "float64", 20, optimizer="adam", lr=0.01, epochs=30)
    history = [t.train_epoch() for _ in range(30)]
    assert all(m.train_accuracy is None for m in history)
    assert history[-1].train_loss < 0.3 * history[0].train_loss
    loss, r2 = t.validation_metrics(X, Y)
    assert 0.8 < r2 <= 1.0
    assert loss == pytest.approx(t.model.loss(X, Y), rel=1e-12)
    assert t.accuracy(X, Y) == r2  # accuracy's place: R²
    assert t.model.predict(X).shape == Y.shape


def test_the_growth_limit_of_a_regressor_uses_half_the_targets(monkeypatch):
    """GROWTH_LIMIT × max(ℓ_ref, T/2): a regressor whose first loss is tiny still has the
    limit of a zero prediction's loss T/2 on standardised targets."""
    from numbamlp.training import trainer as trainer_module

    X, Y, _ = problem(T=4)
    t = trainer(X, Y * 1e-3, "identity", "kernels", "float64", 20)
    t.model.params.theta[:] = 0.0  # f = 0: ℓ_ref = ½ Σ_i y_i², tiny
    t.train_epoch()
    assert t.reference_loss < 1e-4
    assert t._loss_limit == pytest.approx(1e4 * 2.0)
    monkeypatch.setattr(trainer_module, "GROWTH_LIMIT", 1e-9)
    t._set_reference_loss(t.reference_loss)
    with pytest.raises(TrainingDiverged, match="a zero prediction's 2"):
        t.train_epoch()


def test_bad_weights_and_targets_are_refused():
    X, Y, labels = problem()
    with pytest.raises(NumbamlpError, match="`sample_weight` must hold one weight per sample"):
        trainer(X, labels, "softmax", "fused", "float32", 8, np.ones(3))
    with pytest.raises(NumbamlpError, match="`sample_weight` must be finite and non-negative"):
        trainer(X, labels, "softmax", "fused", "float32", 8, np.full(X.shape[0], math.nan))
    model = MLP.create(X.shape[1], [4], 2, head="identity", rng=np.random.default_rng(0))
    config = TrainConfig(epochs=1, batch_size=8)
    with pytest.raises(NumbamlpError, match="training targets must be an array of 60 rows × 2"):
        Trainer(model, X, Y[:, :1].repeat(3, axis=1), config, np.random.default_rng(1))
    with pytest.raises(NumbamlpError, match="training targets contain NaN"):
        Trainer(model, X, np.full_like(Y, math.nan), config, np.random.default_rng(1))


def test_a_minibatch_of_zero_weights_counts_for_nothing():
    """Σ_s w_s = 0 in a minibatch: ω_s = 0 (not 0/0), loss 0, θ unchanged by its step (SGD)."""
    X, Y, _ = problem(n=8)
    w = np.zeros(8)
    w[0] = 1.0  # a positive total, but every batch of 4 without row 0 sums to 0
    for engine in ENGINES:
        t = trainer(X, Y, "identity", engine, "float64", 4, w, epochs=1, sampling="iid")
        t.train_epoch()
        assert np.isfinite(t.model.params.theta).all()
        for q in range(t.sampler.steps_per_epoch):
            if 0 not in t.sampler.batches[q]:
                assert t.batch_losses[q] == 0.0
